//! TFLite export, checked by the official LiteRT interpreter (pip
//! `ai-edge-litert`, which scripts/test.sh installs into
//! target/litert-venv): every zoo model loads, and under LiteRT's reference
//! kernels its logits agree with pf's forward pass.

use crate::support::{stderr, tempdir};
use candle_core::{DType, Device, Tensor};
use pf::model::Model;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with LiteRT that scripts/test.sh set up (or `$PF_LITERT_PYTHON`).
pub fn litert_python() -> PathBuf {
    if let Some(p) = std::env::var_os("PF_LITERT_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/litert-venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test.sh (it installs ai-edge-litert there), or set PF_LITERT_PYTHON",
        p.display()
    );
    p
}

/// What LiteRT computed.
pub struct LiteRt {
    /// Operator names in execution order.
    pub ops: Vec<String>,
    /// One output vector per sample.
    pub outputs: Vec<Vec<f32>>,
}

/// Runs `model` in LiteRT on NCHW samples `x` (reference kernels if `reference`).
pub fn run_litert(model: &Path, x: &Tensor, reference: bool) -> LiteRt {
    let dir = tempdir();
    let nhwc = x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap();
    let data: Vec<u8> = nhwc
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let inputs = dir.path().join("inputs.bin");
    std::fs::write(&inputs, data).unwrap();
    let out = dir.path().join("out.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tflite/litert_run.py");
    let mut cmd = Command::new(litert_python());
    cmd.arg(script).arg(model).arg(&inputs).arg(&out);
    if reference {
        cmd.arg("--ref");
    }
    let o = cmd.output().expect("python runs");
    assert!(
        o.status.success(),
        "LiteRT refused {}: {}",
        model.display(),
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    LiteRt {
        ops: v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        outputs: v["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect(),
    }
}

pub fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A zoo model with non-trivial batch-norm statistics and biases, so that
/// folding is really exercised.
pub fn zoo_model(name: &str, channels: usize, size: usize, width: f64) -> Model {
    let mut m = crate::surgery::model(name, channels, size, width);
    let keys: Vec<String> = m.buffers.keys().cloned().collect();
    for (i, k) in keys.iter().enumerate() {
        let t = &m.buffers[k];
        let r = random(t.dims(), 100 + i as u64);
        let v = if k.ends_with("running_var") {
            r.abs().unwrap().affine(1.0, 0.2).unwrap()
        } else {
            r.affine(0.3, 0.0).unwrap()
        };
        m.buffers.insert(k.clone(), v.to_dtype(DType::F32).unwrap());
    }
    for (i, (k, v)) in m.params.iter().enumerate() {
        if k.ends_with(".bias") {
            v.set(&random(v.dims(), 200 + i as u64).affine(0.1, 0.0).unwrap())
                .unwrap();
        }
    }
    m
}

/// Exports `m`, runs it in LiteRT's reference kernels, and checks every
/// logit within 1e-4·max(1, max|logit|) of pf's forward pass.
pub fn assert_litert_agrees(m: &Model, samples: usize) -> LiteRt {
    let dir = tempdir();
    let path = dir.path().join("model.tflite");
    pf::export::tflite::export(m, &path).unwrap_or_else(|e| panic!("{}: {e:#}", m.graph.name));
    let i = m.graph.input;
    let x = random(&[samples, i.channels, i.height, i.width], 42);
    let ours = m.forward_inference(&x).unwrap().to_vec2::<f32>().unwrap();
    let theirs = run_litert(&path, &x, true);
    assert_eq!(theirs.outputs.len(), samples);
    for (a, b) in ours.iter().zip(&theirs.outputs) {
        let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{}: pf {x} vs LiteRT {y} (tolerance {})\npf     {a:?}\nLiteRT {b:?}",
                m.graph.name,
                1e-4 * scale
            );
        }
    }
    theirs
}

/// Every zoo architecture as the export tests build it: name, input
/// channels, input size, width multiplier (small where that keeps the tests
/// quick).
pub const ZOO: [(&str, usize, usize, f64); 8] = [
    ("digits_cnn", 1, 8, 1.0),
    ("lenet", 1, 28, 1.0),
    ("resnet20", 3, 32, 1.0),
    ("resnet32", 3, 16, 1.0),
    ("resnet44", 3, 16, 1.0),
    ("resnet56", 3, 16, 1.0),
    ("mobilenet_v1", 3, 64, 0.5),
    ("mobilenet_v2", 3, 64, 0.5),
];

#[test]
fn every_zoo_model_exports_at_float32_and_litert_agrees() {
    for (name, channels, size, width) in ZOO {
        let m = zoo_model(name, channels, size, width);
        let run = assert_litert_agrees(&m, 3);
        for op in &run.ops {
            assert!(
                [
                    "CONV_2D",
                    "DEPTHWISE_CONV_2D",
                    "FULLY_CONNECTED",
                    "ADD",
                    "AVERAGE_POOL_2D",
                    "MAX_POOL_2D",
                    "MEAN",
                    "RESHAPE",
                    "SOFTMAX",
                    "PAD",
                ]
                .contains(&op.as_str()),
                "{name}: unexpected operator {op}"
            );
        }
    }
}

/// Prunes every prunable channel group to `keep` of its channels (the first
/// ones), physically.
pub fn prune_all(m: &mut Model, keep: f64) {
    let groups: Vec<(String, usize)> = m
        .graph
        .coupling()
        .unwrap()
        .groups
        .iter()
        .filter(|g| g.prunable)
        .map(|g| (g.producers[0].clone(), g.channels))
        .collect();
    for (producer, channels) in groups {
        let k = ((channels as f64 * keep).round() as usize).clamp(1, channels);
        m.prune_channels(&producer, &(0..k).collect::<Vec<_>>())
            .unwrap();
    }
}

#[test]
fn a_pruned_model_exports_smaller_with_the_same_operators_and_litert_agrees() {
    for (name, channels, size, width) in [
        ("resnet20", 3, 32, 1.0),
        ("mobilenet_v1", 3, 64, 0.5),
        ("lenet", 1, 28, 1.0),
    ] {
        let full = zoo_model(name, channels, size, width);
        let full_cost = full.graph.cost().unwrap();
        // The largest uniform keep ratio at or under half the MACs.
        let mut pruned = None;
        for step in 0..40 {
            let keep = 0.8 - 0.01 * step as f64;
            let mut m = zoo_model(name, channels, size, width);
            prune_all(&mut m, keep);
            if m.graph.cost().unwrap().macs * 2 <= full_cost.macs {
                pruned = Some(m);
                break;
            }
        }
        let pruned = pruned.unwrap_or_else(|| panic!("{name}: no ratio reached 50% of the MACs"));
        let cost = pruned.graph.cost().unwrap();
        assert!(cost.macs * 2 <= full_cost.macs && cost.macs * 5 >= full_cost.macs * 2);

        let dir = tempdir();
        let (a, b) = (
            dir.path().join("full.tflite"),
            dir.path().join("pruned.tflite"),
        );
        pf::export::tflite::export(&full, &a).unwrap();
        let bytes = pf::export::tflite::export(&pruned, &b).unwrap() as i64;
        // The file is the parameters, as `pf info` counts their bytes, plus
        // a fixed overhead: folding a batch norm into its convolution turns
        // its 2 parameters per channel into one bias, which stays within 2%.
        let params = cost.param_bytes as i64;
        assert!(
            (bytes - params).abs() <= params / 50 + 16 * 1024,
            "{name}: {bytes} bytes for {params} bytes of parameters"
        );
        // The same operators as the unpruned model: nothing is gathered.
        let ops_full = run_litert(&a, &random(&[1, channels, size, size], 1), true).ops;
        let run = assert_litert_agrees(&pruned, 2);
        assert_eq!(run.ops, ops_full, "{name}: pruning changed the operators");
        assert!(!run.ops.iter().any(|o| o.contains("GATHER")));
    }
}

#[test]
fn unexportable_models_and_damaged_files_get_clear_errors() {
    use pf::graph::{Graph, InputSpec, Layer, Op};
    // A ReLU straight after the input has no operator to fuse into.
    let graph = Graph {
        preprocessing: None,
        name: "odd".into(),
        input: InputSpec {
            channels: 2,
            height: 4,
            width: 4,
        },
        layers: vec![
            Layer::new("act", Op::Relu, &["input"]),
            Layer::new("pool", Op::GlobalAvgPool, &["act"]),
        ],
    };
    let m = Model::init(graph, 0, &Device::Cpu).unwrap();
    let dir = tempdir();
    let out = dir.path().join("odd.tflite");
    let err = format!("{:#}", pf::export::tflite::export(&m, &out).unwrap_err());
    assert!(err.contains("`act`") && err.contains("activation"), "{err}");
    assert!(
        !out.exists(),
        "nothing is written for a model that cannot be exported"
    );
    // The same through the CLI, from a saved model.
    let saved = dir.path().join("odd.pf");
    pf::model::save(&m, &saved).unwrap();
    let o = crate::support::pf()
        .args([
            "export",
            saved.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("`act`"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    // A truncated file and a file that is not TFLite, through pf bench-tflite.
    let good = dir.path().join("good.tflite");
    pf::export::tflite::export(&zoo_model("digits_cnn", 1, 8, 1.0), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.tflite");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let junk = dir.path().join("junk.tflite");
    std::fs::write(&junk, b"not a model at all").unwrap();
    for (file, want) in [(&cut, "truncated or damaged"), (&junk, "TFL3")] {
        let o = crate::support::pf()
            .args(["bench-tflite", file.to_str().unwrap(), "--runs", "3"])
            .env("PF_LITERT_PYTHON", litert_python())
            .output()
            .unwrap();
        assert!(!o.status.success(), "{} was accepted", file.display());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    // And the good one is timed, with its settings reported.
    let o = crate::support::pf()
        .args([
            "bench-tflite",
            good.to_str().unwrap(),
            "--runs",
            "5",
            "--warmup",
            "2",
            "--json",
        ])
        .env("PF_LITERT_PYTHON", litert_python())
        .output()
        .unwrap();
    let v = crate::support::json(&o);
    assert!(v["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["warmup"], 2);
    assert_eq!(v["runs_ms"].as_array().unwrap().len(), 5);
}

/// `m` with the largest `keep` of every convolution's and linear layer's
/// weights kept by magnitude and the rest masked, as weight_sparse leaves
/// a model.
fn sparse_model(mut m: Model, keep: f32) -> Model {
    let layers: Vec<String> = m
        .graph
        .layers
        .iter()
        .filter(|l| l.op.has_weight())
        .map(|l| l.name.clone())
        .collect();
    for name in layers {
        let w = m.params[&format!("{name}.weight")]
            .as_tensor()
            .abs()
            .unwrap();
        let mut v = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.sort_by(|a, b| b.total_cmp(a));
        let threshold = v[((v.len() as f32 * keep) as usize).min(v.len() - 1)];
        let mask = w
            .gt(threshold as f64)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        m.set_mask(&name, mask).unwrap();
    }
    m
}

#[test]
fn a_sparse_model_exports_in_tflite_sparse_encoding_smaller_and_litert_agrees() {
    use pf::export::tflite::{check, lower, quantize, sparse, write};
    for (name, channels, size, width) in [("lenet", 1, 28, 1.0), ("mobilenet_v1", 3, 64, 0.5)] {
        let m = sparse_model(zoo_model(name, channels, size, width), 0.2);
        let dense = pf::export::tflite::to_bytes(&m).unwrap();
        let (g, stored) = sparse::sparsify(&lower::lower(&m).unwrap());
        assert!(stored > 0, "{name}: no weight was stored sparse");
        let bytes = write::serialize(&g, &m.graph);
        // 80 % zeros: a fifth of the values, plus one index byte or two each.
        assert!(
            bytes.len() * 5 < dense.len() * 2,
            "{name}: sparse file {} bytes, dense {}",
            bytes.len(),
            dense.len()
        );
        let ops = check::read(&bytes).unwrap().ops;
        assert_eq!(ops.iter().filter(|o| *o == "DENSIFY").count(), stored);
        let dir = tempdir();
        let path = dir.path().join("sparse.tflite");
        std::fs::write(&path, &bytes).unwrap();
        let x = random(&[2, channels, size, size], 5);
        let ours = m.forward_inference(&x).unwrap().to_vec2::<f32>().unwrap();
        for reference in [true, false] {
            let theirs = run_litert(&path, &x, reference).outputs;
            for (a, b) in ours.iter().zip(&theirs) {
                let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-4 * scale,
                        "{name}: pf {x} vs LiteRT {y}"
                    );
                }
            }
        }
        // The same through `pf export --sparse`, from the saved model.
        let saved = dir.path().join("sparse.pf");
        pf::model::save(&m, &saved).unwrap();
        let out = dir.path().join("cli.tflite");
        let o = crate::support::pf()
            .arg("export")
            .arg(&saved)
            .arg("-o")
            .arg(&out)
            .args(["--sparse", "--json"])
            .output()
            .unwrap();
        let r = crate::support::json(&o);
        assert_eq!(r["sparse_weights"], stored as u64);
        assert_eq!(std::fs::read(&out).unwrap(), bytes);
        // int8 weights stay dense: LiteRT's XNNPACK cannot prepare an int8
        // layer whose weights come from DENSIFY.
        let calibration = vec![random(&[8, channels, size, size], 6)];
        let q = quantize::lower_int8(&m, &calibration, &Default::default()).unwrap();
        assert_eq!(sparse::sparsify(&q).1, 0);
    }
}
