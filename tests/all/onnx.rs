//! ONNX import and export, judged by ONNX Runtime (pip `onnxruntime`, which
//! scripts/test.sh installs into target/litert-venv beside LiteRT) and by
//! models built with the `onnx` helper API (tests/onnx/build_models.py), not
//! by pf's own writer.

use crate::support::{assert_refused, digits_model, json, path_str, pf, plugin_file, tempdir};
use crate::tflite::{litert_python, random, run_litert, zoo_model, ZOO};
use candle_core::Tensor;
use pf::model::Model;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Runs an ONNX file in ONNX Runtime on NCHW samples `x`.
fn run_onnxruntime(file: &Path, x: &Tensor) -> Vec<Vec<f32>> {
    let samples = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    pf::onnx::runtime::infer(&litert_python(), file, &samples, x.dims())
        .unwrap_or_else(|e| panic!("ONNX Runtime on {}: {e:#}", file.display()))
}

/// Asserts that every output is within 1e-4·max(1, max|output|) of pf's.
fn assert_close(what: &str, ours: &[Vec<f32>], theirs: &[Vec<f32>]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: sample count");
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(a.len(), b.len(), "{what}: outputs per sample");
        let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{what}: pf {x} vs ONNX Runtime {y} (tolerance {})\npf   {a:?}\nORT  {b:?}",
                1e-4 * scale
            );
        }
    }
}

fn pf_outputs(m: &Model, x: &Tensor) -> Vec<Vec<f32>> {
    m.forward_inference(x)
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

fn samples(m: &Model, n: usize, seed: u64) -> Tensor {
    let i = m.graph.input;
    random(&[n, i.channels, i.height, i.width], seed)
}

pub(crate) fn import(path: &Path) -> Model {
    pf::onnx::import_file(
        path,
        &pf::onnx::ImportOptions::default(),
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("importing {}: {e:#}", path.display()))
    .model
}

/// The models of tests/onnx/build_models.py, built once.
pub(crate) fn helper_models() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, dir) = DIR.get_or_init(|| {
        let tmp = tempdir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/onnx/build_models.py");
        let o = std::process::Command::new(litert_python())
            .arg(script)
            .arg(tmp.path())
            .output()
            .expect("python runs");
        assert!(
            o.status.success(),
            "build_models.py failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let dir = tmp.path().to_path_buf();
        (tmp, dir)
    });
    dir
}

#[test]
fn every_zoo_model_round_trips_through_onnx_and_onnx_runtime_agrees() {
    let dir = tempdir();
    for (name, channels, size, width) in ZOO {
        let m = zoo_model(name, channels, size, width);
        let path = dir.path().join(format!("{name}.onnx"));
        pf::onnx::export(&m, &path, &Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let x = samples(&m, 3, 42);
        assert_close(name, &pf_outputs(&m, &x), &run_onnxruntime(&path, &x));
        // Back into pf: the same graph and the same tensors, bit for bit.
        let back = import(&path);
        assert_eq!(back.graph, m.graph, "{name}: the imported graph differs");
        let (ours, theirs) = (m.named_tensors(), back.named_tensors());
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (k, t) in &ours {
            let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = theirs[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(a == b, "{name}: tensor {k} changed on the way back");
        }
    }
}

#[test]
fn a_pruned_model_exports_with_its_smaller_shapes() {
    let mut m = zoo_model("resnet20", 3, 32, 1.0);
    let full = pf::onnx::to_bytes(&m, &Default::default()).unwrap().len();
    crate::tflite::prune_all(&mut m, 0.5);
    let dir = tempdir();
    let path = dir.path().join("pruned.onnx");
    let bytes = pf::onnx::export(&m, &path, &Default::default()).unwrap();
    // Half the channels of the inner convolutions: about half the weights.
    assert!(bytes * 10 < full * 6, "pruned {bytes} bytes vs full {full}");
    let x = samples(&m, 3, 7);
    assert_close(
        "pruned resnet20",
        &pf_outputs(&m, &x),
        &run_onnxruntime(&path, &x),
    );
    assert_eq!(import(&path).graph, m.graph);
}

#[test]
fn models_built_with_the_onnx_helper_import_and_match_onnx_runtime() {
    let dir = helper_models();
    for (file, kinds) in [
        // A residual block: two inputs into one add.
        (
            "resnet_block",
            &[
                "conv2d",
                "batch_norm",
                "relu",
                "add",
                "global_avg_pool",
                "flatten",
                "linear",
            ][..],
        ),
        // Depthwise-separable: a depthwise conv, ReLU6 from Clip, a MatMul
        // whose bias comes from the Add after it.
        (
            "depthwise_separable",
            &[
                "dwconv2d", "relu6", "avg_pool", "max_pool", "flatten", "linear", "softmax",
            ][..],
        ),
        // Gemm with transB=1, alpha and beta.
        ("gemm_transb", &["flatten", "linear", "relu"][..]),
        // x.mean((2, 3)): ReduceMean without keepdims, a Gemm without bias.
        (
            "mean_pool",
            &["conv2d", "global_avg_pool", "flatten", "linear"][..],
        ),
        // MobileNetV3's and EfficientNet's blocks: HardSwish, squeeze and
        // excitation with HardSigmoid and Sigmoid gates, SiLU.
        (
            "mobile_block",
            &[
                "hard_swish",
                "hard_sigmoid",
                "sigmoid",
                "mul",
                "global_avg_pool",
            ][..],
        ),
        // Inception's branches and a DenseNet step, joined by Concat.
        ("concat_block", &["concat", "max_pool", "conv2d"][..]),
        // GoogLeNet's and SqueezeNet's pools: ceil_mode 1.
        ("ceil_pool_block", &["max_pool", "avg_pool"][..]),
        // RegNet's grouped convolution, DenseNet's pre-activation.
        ("grouped_block", &["conv2d", "batch_norm", "max_pool"][..]),
        // ShuffleNet v2's units: Split, Concat, channel shuffle.
        (
            "shuffle_block",
            &["channel_slice", "concat", "channel_shuffle", "dwconv2d"][..],
        ),
    ] {
        let path = dir.join(format!("{file}.onnx"));
        let m = import(&path);
        for kind in kinds {
            assert!(
                m.graph.layers.iter().any(|l| l.op.kind() == *kind),
                "{file}: no {kind} layer in {:?}",
                m.graph
                    .layers
                    .iter()
                    .map(|l| l.op.kind())
                    .collect::<Vec<_>>()
            );
        }
        let x = samples(&m, 5, 3);
        assert_close(file, &pf_outputs(&m, &x), &run_onnxruntime(&path, &x));
    }
    // Folded away: the Identity, the Constant and the shape arithmetic of
    // the residual net, the Dropout and the bias Add of the depthwise one.
    let m = import(&dir.join("resnet_block.onnx"));
    assert_eq!(m.graph.layers.len(), 15);
    let add = m
        .graph
        .layers
        .iter()
        .find(|l| l.op.kind() == "add")
        .unwrap();
    assert_eq!(add.inputs.len(), 2);
    let m = import(&dir.join("depthwise_separable.onnx"));
    assert!(m.graph.layers.iter().all(|l| !l.name.contains('/')));
    assert!(matches!(
        m.graph
            .layers
            .iter()
            .find(|l| l.op.kind() == "linear")
            .unwrap()
            .op,
        pf::graph::Op::Linear { bias: true, .. }
    ));
}

#[test]
fn import_errors_name_the_problem() {
    let dir = tempdir();
    let models = helper_models();
    let out = path_str(dir.path(), "out.pf");
    let import = |file: &str, extra: &[&str]| {
        pf().args(["import", file, "-o", &out])
            .args(extra)
            .output()
            .unwrap()
    };
    // An unsupported operator: the node, the operator, the opset, and what
    // pf supports.
    let o = import(&path_str(models, "unsupported.onnx"), &[]);
    assert_refused(&o, "node `act1` (LeakyRelu, opset 13)");
    assert_refused(&o, "pf imports Conv, BatchNormalization");
    // A Transpose outside a channel shuffle: what pf imports instead.
    let o = import(&path_str(models, "lone_transpose.onnx"), &[]);
    assert_refused(&o, "node `turn` (Transpose, opset 13)");
    assert_refused(&o, "only inside a channel shuffle");
    // A damaged file: bytes that are not protobuf, and a truncated model.
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xfe not a protobuf at all \x00\x01").unwrap();
    assert_refused(
        &import(garbage.to_str().unwrap(), &[]),
        "is not a valid ONNX file",
    );
    let whole = std::fs::read(models.join("resnet_block.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    assert_refused(
        &import(cut.to_str().unwrap(), &[]),
        "is not a valid ONNX file",
    );
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert_refused(&import(empty.to_str().unwrap(), &[]), "holds no graph");
    // A dynamic input shape needs --input-shape, which must be well formed.
    let dynamic = path_str(models, "dynamic.onnx");
    let o = import(&dynamic, &[]);
    assert_refused(&o, "has a dynamic shape [batch, 1, height, width]");
    assert_refused(&o, "--input-shape");
    assert_refused(&import(&dynamic, &["--input-shape", "1x8"]), "is not CxHxW");
    assert_refused(
        &import(&dynamic, &["--input-shape", "3x8x8"]),
        "--input-shape gives channels 3 but the model fixes it at 1",
    );
    assert!(!Path::new(&out).exists(), "nothing is written on an error");
    let o = import(&dynamic, &["--input-shape", "1x8x8", "--json"]);
    let r = json(&o);
    assert_eq!(r["input"]["height"], 8, "{r}");
    assert_eq!(r["opset"], 11);
    let m = pf::model::load(Path::new(&out), &candle_core::Device::Cpu).unwrap();
    let x = samples(&m, 4, 9);
    assert_close(
        "dynamic",
        &pf_outputs(&m, &x),
        &run_onnxruntime(&models.join("dynamic.onnx"), &x),
    );
}

/// How many of an ONNX file's tensors (initializers and node attributes)
/// keep their data in external files, and how many it has.
fn external_tensors(path: &Path) -> (usize, usize) {
    use pf::onnx::proto::{tensor_proto::DataLocation, ModelProto};
    use prost::Message;
    let m = ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let g = m.graph.unwrap();
    let attrs = g.node.iter().flat_map(|n| &n.attribute).flat_map(|a| &a.t);
    let all: Vec<_> = g.initializer.iter().chain(attrs).collect();
    let external = all
        .iter()
        .filter(|t| t.data_location() == DataLocation::External)
        .count();
    (external, all.len())
}

#[test]
fn weights_in_external_data_files_import_as_if_they_were_inside() {
    let models = helper_models();
    let inside = import(&models.join("resnet_block.onnx"));
    // One data file with offsets (PyTorch's default exporter), and one
    // file per tensor in a folder of its own.
    for file in ["resnet_block_ext.onnx", "per_tensor/resnet_block.onnx"] {
        let path = models.join(file);
        // Every weight is outside, the Constant node's included.
        let (external, all) = external_tensors(&path);
        assert!(external == all && all > 20, "{file}: {external} of {all}");
        let m = import(&path);
        assert_eq!(m.graph, inside.graph, "{file}");
        let (ours, theirs) = (inside.named_tensors(), m.named_tensors());
        assert_eq!(ours.len(), theirs.len(), "{file}");
        for (k, t) in &ours {
            let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = theirs[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(a == b, "{file}: tensor {k} differs from the one inside");
        }
        // ONNX Runtime's shape inference cannot read the external integer
        // constants of the shape arithmetic (exporters keep such small
        // tensors inside), so it runs the file with everything inside.
        let x = samples(&m, 3, 11);
        let inside_file = models.join("resnet_block.onnx");
        assert_close(
            file,
            &pf_outputs(&m, &x),
            &run_onnxruntime(&inside_file, &x),
        );
    }
}

#[test]
fn external_data_outside_the_models_folder_missing_or_short_is_refused() {
    use pf::onnx::proto::ModelProto;
    use prost::Message;
    let dir = tempdir();
    let models = helper_models();
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    let data = std::fs::read(models.join("resnet_block_ext.onnx.data")).unwrap();
    std::fs::write(folder.join("resnet_block_ext.onnx.data"), &data).unwrap();
    std::fs::write(dir.path().join("outside.data"), &data).unwrap();
    std::fs::write(folder.join("short.data"), &data[..data.len() / 2]).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.data"), folder.join("link.data")).unwrap();
    let original = std::fs::read(models.join("resnet_block_ext.onnx")).unwrap();
    // The model with every tensor's `key` set to `value`.
    let variant = |name: &str, key: &str, value: &str| -> String {
        let mut m = ModelProto::decode(original.as_slice()).unwrap();
        let g = m.graph.as_mut().unwrap();
        for t in &mut g.initializer {
            for kv in &mut t.external_data {
                if kv.key() == key {
                    kv.value = Some(value.to_string());
                }
            }
        }
        let path = folder.join(name);
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let out = path_str(dir.path(), "out.pf");
    let import = |file: &str| pf().args(["import", file, "-o", &out]).output().unwrap();
    // The untouched copy imports: the refusals below are the locations'.
    let ok = pf()
        .args([
            "import",
            &variant("same.onnx", "location", "resnet_block_ext.onnx.data"),
        ])
        .args(["-o", &path_str(dir.path(), "same.pf")])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let outside = dir.path().join("outside.data");
    for (location, says) in [
        ("../outside.data", "is not a path inside the model's folder"),
        (
            outside.to_str().unwrap(),
            "is not a path inside the model's folder",
        ),
        ("link.data", "leads outside the model's folder"),
        ("missing.data", "does not exist"),
        ("short.data", "the data file is truncated"),
    ] {
        let o = import(&variant("bad.onnx", "location", location));
        assert_refused(&o, says);
        assert_refused(&o, "initializer `");
    }
    // A length the tensor's shape does not need.
    let o = import(&variant("bad.onnx", "length", "4"));
    assert_refused(&o, "bytes long, but its shape");
    let o = import(&variant("bad.onnx", "offset", "-1"));
    assert_refused(&o, "not a whole number of bytes");
    assert!(!Path::new(&out).exists(), "nothing is written on an error");
}

/// Accuracy of ONNX Runtime on the digits test split, each pixel scaled
/// to [0, 1] and normalised with `mean` and `std` here, outside pf.
fn onnxruntime_digits_accuracy(file: &Path, mean: f32, std: f32) -> f64 {
    let splits = pf::data::load(
        &pf::data::DataSource::Digits,
        &pf::data::LoadOptions::default(),
    )
    .unwrap();
    let test = &splits.test;
    let x: Vec<f32> = (0..test.len())
        .flat_map(|i| test.sample(i).iter())
        .map(|&p| (p as f32 / test.max_value - mean) / std)
        .collect();
    let [c, h, w] = test.shape;
    let x = Tensor::from_vec(x, (test.len(), c, h, w), &candle_core::Device::Cpu).unwrap();
    let logits = run_onnxruntime(file, &x);
    let correct = logits
        .iter()
        .zip(&test.labels)
        .filter(|(l, &label)| {
            let best = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
            best as u32 == label
        })
        .count();
    correct as f64 / test.len() as f64
}

#[test]
fn a_model_imported_with_its_own_mean_and_std_evaluates_in_pf_as_outside() {
    // A model trained elsewhere: its file does not say how its inputs were
    // normalised; its trainer says mean 0.5 and std 0.25 (not the digits'
    // own statistics, which pf would compute).
    let dir = tempdir();
    let base = digits_model(dir.path(), 150);
    let onnx = path_str(dir.path(), "elsewhere.onnx");
    let o = pf().args(["export", &base, "-o", &onnx]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = onnxruntime_digits_accuracy(Path::new(&onnx), 0.5, 0.25);
    let eval = |model: &str| {
        let r = json(&pf().args(["eval", model, "--json"]).output().unwrap());
        r["metrics"]["accuracy"].as_f64().unwrap()
    };
    let own = path_str(dir.path(), "own.pf");
    let r = json(
        &pf()
            .args([
                "import", &onnx, "-o", &own, "--mean", "0.5", "--std", "0.25", "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(r["preprocessing"]["mean"], serde_json::json!([0.5]), "{r}");
    // pf evaluates it as ONNX Runtime does with those statistics (to one
    // image of the 360: two runtimes' rounding may split a near tie).
    let same = |a: f64| (a - reference).abs() < 0.003;
    let ours = eval(&own);
    assert!(same(ours), "pf {ours} vs ONNX Runtime {reference}");
    // Without them pf would use the digits' own statistics and score
    // differently: the statistics are really applied.
    let plain = path_str(dir.path(), "plain.pf");
    let o = pf().args(["import", &onnx, "-o", &plain]).output().unwrap();
    assert!(o.status.success());
    let plain = eval(&plain);
    assert!((plain - reference).abs() > 0.01, "{plain} vs {reference}");
    // The statistics travel: the same in a raw-pixel convention, and
    // through pf's ONNX export (its metadata) back into pf.
    let scaled = path_str(dir.path(), "scaled.pf");
    let o = pf()
        .args(["import", &onnx, "-o", &scaled])
        .args(["--mean", "127.5", "--std", "63.75", "--pixel-scale", "255"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(same(eval(&scaled)));
    let again = path_str(dir.path(), "again.onnx");
    let o = pf().args(["export", &own, "-o", &again]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = path_str(dir.path(), "back.pf");
    let o = pf().args(["import", &again, "-o", &back]).output().unwrap();
    assert!(o.status.success());
    assert!(same(eval(&back)));
    // Statistics that do not fit the input are refused, and nothing written.
    let bad = path_str(dir.path(), "bad.pf");
    let o = pf()
        .args([
            "import", &onnx, "-o", &bad, "--mean", "0.5,0.5", "--std", "0.25",
        ])
        .output()
        .unwrap();
    assert_refused(&o, "1 channel");
    let o = pf()
        .args(["import", &onnx, "-o", &bad, "--mean", "0.5", "--std", "0"])
        .output()
        .unwrap();
    assert_refused(&o, "must be above 0");
    assert!(!Path::new(&bad).exists());
}

/// `pf compress` on an ONNX file, then both deployment formats, each
/// checked against pf by its own runtime.
fn compress_onnx(learner: &str, target: &str, measure: &str) {
    compress_onnx_model("resnet_block.onnx", learner, target, measure);
}

/// [`compress_onnx`] on one of the helper models; returns the folder of
/// the outputs (`out.pf`, `out.onnx`, `out.tflite`).
fn compress_onnx_model(
    file: &str,
    learner: &str,
    target: &str,
    measure: &str,
) -> tempfile::TempDir {
    let dir = tempdir();
    let source = path_str(helper_models(), file);
    let o = pf()
        .current_dir(dir.path())
        .args(["compress", "--model", &source])
        .args(["--plugin", plugin_file(learner).to_str().unwrap()])
        .args(["--optimizer", "random", "--target", target, "--trials", "2"])
        .args(["--finetune-steps", "20", "--retrain-epochs", "0"])
        .args(["--export", "out.onnx", "--no-report", "--json"])
        .output()
        .unwrap();
    let r = json(&o);
    let got = r["final"]["footprint"][measure].as_f64().unwrap();
    let base = r["baseline"]["footprint"][measure].as_f64().unwrap();
    let bound: f64 = target.split('=').nth(1).unwrap().parse().unwrap();
    assert!(
        got <= bound * base * 1.0001,
        "{learner}: {measure} {got} of {base}"
    );
    let compressed =
        pf::model::load(&dir.path().join("out.pf"), &candle_core::Device::Cpu).unwrap();
    let x = samples(&compressed, 8, 11);
    let ours = pf_outputs(&compressed, &x);
    assert_close(
        learner,
        &ours,
        &run_onnxruntime(&dir.path().join("out.onnx"), &x),
    );
    let tflite = dir.path().join("out.tflite");
    let o = pf()
        .args([
            "export",
            &path_str(dir.path(), "out.pf"),
            "--format",
            "tflite",
            "-o",
        ])
        .arg(&tflite)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    let lite = run_litert(&tflite, &x, true);
    for (a, b) in ours.iter().zip(&lite.outputs) {
        let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (p, l) in a.iter().zip(b) {
            assert!(
                (p - l).abs() <= 1e-4 * scale,
                "{learner}: pf {p} vs LiteRT {l}"
            );
        }
    }
    dir
}

#[test]
fn mobile_blocks_compress_with_their_gates_coupled_and_export_to_onnx_and_tflite() {
    // channel_pruned at 75 % of the MACs. A gate multiplies the map it
    // gates, so the two are one coupling group with two producers, which
    // channel_pruned leaves whole (as it leaves residual sums); it prunes
    // the last convolution and the gates' inner ones, and both runtimes
    // still compute what pf does (checked inside).
    let dir = compress_onnx_model("mobile_block.onnx", "channel_pruned", "flops=0.75", "macs");
    let out = path_str(dir.path(), "out.pf");
    let m = pf::model::load(Path::new(&out), &candle_core::Device::Cpu).unwrap();
    // The stem conv and the first gate's up-projection produce one group
    // of channels, which stays prunable.
    let coupling = m.graph.coupling().unwrap();
    let stem = coupling.group_of("s").expect("the stem conv has a group");
    assert!(
        stem.producers.contains(&"se1_up".to_string()) && stem.prunable,
        "{stem:?}"
    );
    // At int8 too, as TFLite and as QDQ ONNX: each runtime's integer
    // kernels agree with pf's simulation on the digits test set.
    for file in ["int8.tflite", "int8.onnx"] {
        let o = pf()
            .args(["export", &out, "--int8", "--verify", "--json", "-o"])
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        let r = json(&o);
        let agreement = r["verification"]["agreement"].as_f64().unwrap();
        assert!(agreement >= 0.95, "{file}: {r}");
    }
}

#[test]
fn an_imported_model_compresses_with_weight_sparse_and_exports_to_onnx_and_tflite() {
    compress_onnx("weight_sparse", "size=0.5", "nonzero_params");
}

#[test]
fn an_imported_model_compresses_with_channel_pruned_and_exports_to_onnx_and_tflite() {
    compress_onnx("channel_pruned", "flops=0.6", "macs");
}

/// Imports `file` of the helper models into `dir` and exports it as
/// TFLite and ONNX, float and int8, each checked by its runtime against pf
/// on the digits test set; returns the pf model's path.
fn import_and_export_all_four(dir: &Path, file: &str) -> String {
    let model = path_str(dir, &format!("{file}.pf"));
    let source = path_str(helper_models(), &format!("{file}.onnx"));
    let o = pf()
        .args(["import", &source, "-o", &model])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    for (out, int8) in [
        ("f.tflite", false),
        ("q.tflite", true),
        ("f.onnx", false),
        ("q.onnx", true),
    ] {
        let o = pf()
            .args(["export", &model, "--verify", "--json", "-o"])
            .arg(dir.join(format!("{file}.{out}")))
            .args(if int8 { &["--int8"][..] } else { &[][..] })
            .output()
            .unwrap();
        let r = json(&o);
        let v = &r["verification"];
        let bar = if int8 { 0.95 } else { 1.0 };
        assert!(v["agreement"].as_f64().unwrap() >= bar, "{file} {out}: {r}");
    }
    model
}

/// Pools with ceil_mode: the max pool whose overhang SAME cannot express
/// is padded with the lowest value (`PADV2`), float and int8.
#[test]
fn ceil_mode_pools_export_to_tflite_and_onnx_float_and_int8() {
    let dir = tempdir();
    import_and_export_all_four(dir.path(), "ceil_pool_block");
}

/// ShuffleNet's units: channel slices become `SLICE`, the shuffle a
/// `GATHER` of the channels (TFLite) or PyTorch's own three nodes (ONNX),
/// float and int8; pruning is blocked through them, with the reason.
#[test]
fn channel_shuffles_and_splits_export_to_tflite_and_onnx_float_and_int8() {
    let dir = tempdir();
    let model = import_and_export_all_four(dir.path(), "shuffle_block");
    let r = json(
        &pf()
            .args(["info", &model, "--coupling", "--json"])
            .output()
            .unwrap(),
    );
    let reasons = r["coupling"].to_string();
    assert!(
        reasons.contains("shuffled by `u1_out`") && reasons.contains("split by `u1_x1`"),
        "{reasons}"
    );
    // pf's ONNX export is PyTorch's form, so it imports back.
    let again = path_str(dir.path(), "again.pf");
    let o = pf()
        .args(["import"])
        .arg(dir.path().join("shuffle_block.f.onnx"))
        .args(["-o", &again])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    let (a, b) = (
        pf::model::load(Path::new(&model), &candle_core::Device::Cpu).unwrap(),
        pf::model::load(Path::new(&again), &candle_core::Device::Cpu).unwrap(),
    );
    let kinds = |m: &Model| {
        m.graph
            .layers
            .iter()
            .map(|l| l.op.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&a), kinds(&b));
}

/// A grouped convolution (one SLICE and CONV_2D per group in TFLite, one
/// Conv in ONNX) and a batch norm with no convolution before it (MUL and
/// ADD in TFLite), float and int8.
#[test]
fn grouped_convolutions_and_lone_batch_norms_export_to_tflite_and_onnx_float_and_int8() {
    let dir = tempdir();
    import_and_export_all_four(dir.path(), "grouped_block");
}

#[test]
fn concatenated_branches_export_to_tflite_and_onnx_float_and_int8() {
    let dir = tempdir();
    let model = import_and_export_all_four(dir.path(), "concat_block");
    // Channels that a concatenation joins are not pruned (yet), and the
    // coupling says why.
    let o = pf()
        .args(["info", &model, "--coupling", "--json"])
        .output()
        .unwrap();
    let r = json(&o);
    let reasons: Vec<String> = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("concatenated by")),
        "{reasons:?}"
    );
}

#[test]
fn int8_export_writes_qdq_that_onnx_runtime_runs() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 150);
    let run = |args: &[&str], out: &str| {
        let o = pf()
            .args([
                "export",
                &model,
                "--format",
                "onnx",
                "-o",
                &path_str(dir.path(), out),
            ])
            .args(args)
            .args(["--verify", "--json"])
            .output()
            .unwrap();
        json(&o)
    };
    let float = run(&[], "float.onnx");
    let v = &float["verification"];
    assert_eq!(v["agreement"], 1.0, "{float}");
    assert!(
        v["max_abs_diff"].as_f64().unwrap()
            <= 1e-4 * v["max_abs_output"].as_f64().unwrap().max(1.0)
    );
    let int8 = run(&["--int8"], "int8.onnx");
    let v = &int8["verification"];
    assert!(v["agreement"].as_f64().unwrap() >= 0.95, "{int8}");
    let (pf_acc, ort_acc) = (
        v["pf_accuracy"].as_f64().unwrap(),
        v["onnxruntime_accuracy"].as_f64().unwrap(),
    );
    assert!(ort_acc >= pf_acc - 0.03, "{int8}");
    // int8 weights: about a quarter of the float file.
    let (f, q) = (
        float["bytes"].as_f64().unwrap(),
        int8["bytes"].as_f64().unwrap(),
    );
    assert!(q < 0.4 * f, "int8 {q} bytes vs float {f}");
    // The file really is QDQ: int8 initializers behind DequantizeLinear.
    let bytes = std::fs::read(dir.path().join("int8.onnx")).unwrap();
    let proto = <pf::onnx::proto::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let g = proto.graph.unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    assert!(
        ops.contains(&"QuantizeLinear") && ops.contains(&"DequantizeLinear"),
        "{ops:?}"
    );
    assert!(g
        .initializer
        .iter()
        .any(|t| t.data_type() == pf::onnx::proto::tensor_proto::DataType::Int8 as i32));
    assert!(
        g.node
            .iter()
            .any(|n| n.op_type() == "QuantizeLinear" && n.input[0] == "input"),
        "the float input is quantized first"
    );
    // The same integers as the int8 TFLite file (same calibration): ONNX
    // Runtime and LiteRT, each on its own integer kernels, agree.
    let tflite = dir.path().join("int8.tflite");
    let o = pf()
        .args(["export", &model, "--int8", "-o"])
        .arg(&tflite)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    let m = pf::model::load(Path::new(&model), &candle_core::Device::Cpu).unwrap();
    let x = samples(&m, 64, 5);
    let ort = run_onnxruntime(&dir.path().join("int8.onnx"), &x);
    let lite = run_litert(&tflite, &x, true).outputs;
    let top = |v: &Vec<f32>| {
        v.iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &y)| if y > b.1 { (i, y) } else { b })
            .0
    };
    let agree = ort
        .iter()
        .zip(&lite)
        .filter(|(a, b)| top(a) == top(b))
        .count();
    assert!(
        agree >= 62,
        "ONNX Runtime and LiteRT agree on {agree} of 64"
    );
    let scale = lite.iter().flatten().fold(1f32, |m, v| m.max(v.abs()));
    let diff = ort
        .iter()
        .flatten()
        .zip(lite.iter().flatten())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 0.05 * scale,
        "largest difference {diff} (outputs up to {scale})"
    );
    // --reduce-range: 7-bit weights (for ONNX Runtime on x86 without VNNI).
    let reduced = run(&["--int8", "--reduce-range"], "int8r.onnx");
    assert!(
        reduced["verification"]["agreement"].as_f64().unwrap() >= 0.95,
        "{reduced}"
    );
    let bytes = std::fs::read(dir.path().join("int8r.onnx")).unwrap();
    let proto = <pf::onnx::proto::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let weights: Vec<i8> = proto
        .graph
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.name().ends_with(".weight_quantized"))
        .flat_map(|t| t.raw_data().iter().map(|&b| b as i8).collect::<Vec<_>>())
        .collect();
    let widest = weights.iter().map(|w| w.unsigned_abs()).max().unwrap();
    assert_eq!(widest, 63, "7-bit weights reach ±63 and no further");
    let o = pf()
        .args([
            "export",
            &model,
            "--int8",
            "--reduce-range",
            "-o",
            &path_str(dir.path(), "r.tflite"),
        ])
        .output()
        .unwrap();
    assert_refused(&o, "--reduce-range applies to ONNX");
    // --sparse is TFLite's.
    let o = pf()
        .args([
            "export",
            &model,
            "--format",
            "onnx",
            "--sparse",
            "-o",
            &path_str(dir.path(), "s.onnx"),
        ])
        .output()
        .unwrap();
    assert_refused(&o, "--sparse");
}

#[test]
fn an_imported_model_trains_and_evaluates_like_a_zoo_model() {
    // The depthwise-separable net ends in Softmax: training must take the
    // logits before it, or the loss would barely move.
    let dir = tempdir();
    let source = path_str(helper_models(), "depthwise_separable.onnx");
    let eval = |model: &str| {
        let r = json(&pf().args(["eval", model, "--json"]).output().unwrap());
        let m = &r["metrics"];
        (m["accuracy"].as_f64().unwrap(), m["loss"].as_f64().unwrap())
    };
    let (before, _) = eval(&source);
    let trained = path_str(dir.path(), "trained.pf");
    let o = pf()
        .args(["train", "--model", &source, "--epochs", "3", "--seed", "1"])
        .args(["-o", &trained, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    let (after, loss) = eval(&trained);
    assert!(
        after >= 0.8 && after > before + 0.3,
        "accuracy {before} → {after}"
    );
    // The loss is the cross-entropy of the logits, not of probabilities
    // softmaxed twice (which cannot fall below ln(e + 9) − 1 ≈ 1.46).
    assert!(loss < 1.0, "test loss {loss}");
    // Still the imported architecture, final softmax included.
    let m = pf::model::load(Path::new(&trained), &candle_core::Device::Cpu).unwrap();
    assert_eq!(m.graph, import(Path::new(&source)).graph);
    let x = samples(&m, 4, 2);
    for row in pf_outputs(&m, &x) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{row:?}");
    }
}

#[test]
fn damaged_onnx_files_are_errors_never_panics() {
    // 400 copies of two helper-built models with 1–6 bytes overwritten:
    // each imports (a flipped weight is still a model) or fails with an
    // error; none may panic.
    let sources = [
        std::fs::read(helper_models().join("resnet_block.onnx")).unwrap(),
        std::fs::read(helper_models().join("depthwise_separable.onnx")).unwrap(),
    ];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut imported, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut bytes = sources[(next() % 2) as usize].clone();
        for _ in 0..1 + next() % 6 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let result = std::panic::catch_unwind(|| {
            pf::onnx::import_bytes(
                &bytes,
                "damaged.onnx",
                "damaged",
                &Default::default(),
                &candle_core::Device::Cpu,
            )
            .map(drop)
        });
        match result {
            Ok(Ok(())) => imported += 1,
            Ok(Err(e)) => {
                assert!(e.to_string().contains("damaged.onnx"), "{e:#}");
                refused += 1;
            }
            Err(_) => panic!("importing a damaged file panicked"),
        }
    }
    assert!(
        imported > 0 && refused > 0,
        "{imported} imported, {refused} refused"
    );
}

#[test]
fn compress_writes_an_int8_onnx_file_with_export_int8() {
    let dir = tempdir();
    let source = path_str(helper_models(), "resnet_block.onnx");
    let o = pf()
        .current_dir(dir.path())
        .args(["compress", "--model", &source])
        .args(["--plugin", plugin_file("weight_sparse").to_str().unwrap()])
        .args([
            "--optimizer",
            "random",
            "--target",
            "size=0.5",
            "--trials",
            "1",
        ])
        .args(["--finetune-steps", "10", "--retrain-epochs", "0"])
        .args([
            "--export",
            "int8.onnx",
            "--export-int8",
            "--no-report",
            "--json",
        ])
        .output()
        .unwrap();
    let r = json(&o);
    assert_eq!(r["complete"].as_u64(), Some(1), "{r}");
    let bytes = std::fs::read(dir.path().join("int8.onnx")).unwrap();
    let proto = <pf::onnx::proto::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let ops: Vec<&str> = proto
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type())
        .collect();
    assert!(ops.contains(&"QuantizeLinear"), "{ops:?}");
    let m = pf::model::load(&dir.path().join("int8.pf"), &candle_core::Device::Cpu).unwrap();
    let x = samples(&m, 4, 1);
    let out = run_onnxruntime(&dir.path().join("int8.onnx"), &x);
    assert!(out.iter().flatten().all(|v| v.is_finite()) && out[0].len() == 10);
}
