//! Full-integer (int8) TFLite export, checked by LiteRT: every zoo model
//! loads and runs, and LiteRT computes what pf's simulated-quantization
//! forward pass predicts; a trained CNN keeps its accuracy; trained
//! activation ranges are used as they are.

use crate::support::{json, pf, stderr, tempdir};
use crate::tflite::{litert_python, random, run_litert, zoo_model};
use pf::export::tflite::lower::{self, DType};
use pf::export::tflite::quantize::{self, Int8Options};
use pf::export::tflite::{simulate, write};

#[test]
fn pf_evaluates_the_lowered_float_graph_as_its_own_forward_pass() {
    // The simulation is what calibrates int8 export; on a float graph it
    // must be the model itself.
    for (name, channels, size, width) in crate::tflite::ZOO {
        let m = zoo_model(name, channels, size, width);
        let g = lower::lower(&m).unwrap();
        let x = random(&[2, channels, size, size], 9);
        let ours = m.forward_inference(&x).unwrap().to_vec2::<f32>().unwrap();
        let sim = simulate::evaluate(&g, &x, false)
            .unwrap()
            .output
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in ours.iter().zip(&sim) {
            let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-4 * scale, "{name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn every_zoo_model_exports_at_int8_and_litert_computes_what_pf_simulates() {
    for (name, channels, size, width) in crate::tflite::ZOO {
        let m = zoo_model(name, channels, size, width);
        let calibration: Vec<_> = (0..2)
            .map(|i| random(&[8, channels, size, size], 300 + i))
            .collect();
        let g = quantize::lower_int8(&m, &calibration, &Int8Options::default())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        // Every tensor between the QUANTIZE and the DEQUANTIZE is int8 or
        // an int32 bias (or shape); no float arithmetic is left.
        for op in &g.ops[1..g.ops.len() - 1] {
            for &t in op.inputs.iter().chain(&op.outputs) {
                let t = &g.tensors[t];
                assert!(t.dtype != DType::F32, "{name}: `{}` is float", t.name);
            }
        }
        let dir = tempdir();
        let path = dir.path().join("int8.tflite");
        let bytes = write::serialize(&g, &m.graph);
        std::fs::write(&path, &bytes).unwrap();
        let float_bytes = pf::export::tflite::to_bytes(&m).unwrap().len();
        assert!(
            bytes.len() * 10 < float_bytes * 4,
            "{name}: int8 file {} bytes, float {float_bytes}",
            bytes.len()
        );

        // (XNNPACK takes the operators over, so read them from the file.)
        let ops = pf::export::tflite::check::read(&bytes).unwrap().ops;
        assert_eq!(ops.first().map(String::as_str), Some("QUANTIZE"));
        assert_eq!(ops.last().map(String::as_str), Some("DEQUANTIZE"));
        let x = random(&[6, channels, size, size], 77);
        assert_litert_near_simulation(name, &g, &path, &x);
    }
}

/// Runs the int8 file at `path` (written from `g`) in LiteRT on `x`, and
/// checks it against pf's simulation of `g`. On the output grid the two
/// may differ where a value sits on a rounding boundary, which moves it by
/// a step, and such steps can add up over layers (random weights make many
/// boundaries); a wrong scale or zero point would move most outputs by
/// many steps.
fn assert_litert_near_simulation(
    what: &str,
    g: &lower::Lowered,
    path: &std::path::Path,
    x: &candle_core::Tensor,
) {
    let sim = simulate::evaluate(g, x, false)
        .unwrap()
        .output
        .to_vec2::<f32>()
        .unwrap();
    let lite = run_litert(path, x, false);
    assert!(!lite.outputs.is_empty());
    let out = &g.tensors[g.ops.last().unwrap().inputs[0]];
    let step = out.quant.as_ref().unwrap().scale[0];
    let (mut off, mut total) = (0usize, 0usize);
    for (a, b) in sim.iter().zip(&lite.outputs) {
        for (x, y) in a.iter().zip(b) {
            let steps = ((x - y).abs() / step).round() as usize;
            assert!(
                steps <= 4,
                "{what}: pf {x} vs LiteRT {y} ({steps} steps of {step})"
            );
            off += usize::from(steps > 0);
            total += 1;
        }
    }
    // One-step differences come from rounding (XNNPACK requantizes in
    // float, pf rounds in float).
    assert!(
        off * 2 <= total,
        "{what}: {off} of {total} outputs differ from pf's simulation"
    );
}

#[test]
fn sigmoid_hard_swish_and_gates_export_at_int8_and_litert_computes_what_pf_simulates() {
    // MobileNetV3's and EfficientNet's blocks (tests/onnx/build_models.py):
    // LOGISTIC, HARD_SWISH, MUL with a broadcast gate, and a hard-sigmoid
    // as MUL/ADD/MUL with int8 constants.
    let m = crate::onnx::import(&crate::onnx::helper_models().join("mobile_block.onnx"));
    let calibration: Vec<_> = (0..2).map(|i| random(&[8, 1, 8, 8], 310 + i)).collect();
    let g = quantize::lower_int8(&m, &calibration, &Int8Options::default()).unwrap();
    for op in &g.ops[1..g.ops.len() - 1] {
        for &t in op.inputs.iter().chain(&op.outputs) {
            let t = &g.tensors[t];
            assert!(t.dtype != DType::F32, "`{}` is float", t.name);
        }
    }
    let dir = tempdir();
    let path = dir.path().join("int8.tflite");
    let bytes = write::serialize(&g, &m.graph);
    std::fs::write(&path, &bytes).unwrap();
    let ops = pf::export::tflite::check::read(&bytes).unwrap().ops;
    for op in ["LOGISTIC", "HARD_SWISH", "MUL"] {
        assert!(ops.iter().any(|o| o == op), "no {op} in {ops:?}");
    }
    let x = random(&[16, 1, 8, 8], 78);
    assert_litert_near_simulation("mobile_block", &g, &path, &x);
}

#[test]
fn a_trained_cnn_at_int8_keeps_its_accuracy_and_litert_agrees_with_pf() {
    let dir = tempdir();
    let model = dir.path().join("digits.pf");
    let o = pf()
        .args(["train", "--epochs", "6", "--seed", "3", "-o"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for io in [&[][..], &["--int8-io"][..]] {
        let file = dir.path().join("digits-int8.tflite");
        let o = pf()
            .arg("export")
            .arg(&model)
            .arg("-o")
            .arg(&file)
            .args(["--int8", "--verify", "--json"])
            .args(io)
            .env("PF_LITERT_PYTHON", litert_python())
            .output()
            .unwrap();
        let r = json(&o);
        let v = &r["verification"];
        let f = |k: &str| v[k].as_f64().unwrap();
        assert_eq!(v["images"], 360, "the whole test split");
        assert!(f("float_accuracy") > 0.9, "{v}");
        assert!(f("agreement") >= 0.99, "LiteRT and pf disagree: {v}");
        assert!(
            (f("litert_accuracy") - f("float_accuracy")).abs() <= 0.005 + 1e-9,
            "int8 lost accuracy: {v}"
        );
        let float = std::fs::metadata(&model).unwrap().len();
        assert!(
            r["bytes"].as_u64().unwrap() * 3 < float,
            "the int8 file is not smaller: {r}"
        );
        let ops = pf::export::tflite::check::read(&std::fs::read(&file).unwrap())
            .unwrap()
            .ops;
        assert_eq!(
            ops.first().map(String::as_str) == Some("QUANTIZE"),
            io.is_empty(),
            "float input is wrapped in QUANTIZE only without --int8-io: {ops:?}"
        );
    }
}

#[test]
fn trained_activation_ranges_set_the_int8_parameters() {
    use pf::graph::{LayerQuant, Quantizer};
    let mut m = zoo_model("digits_cnn", 1, 8, 1.0);
    // The first activation layer gets a uniform activation quantizer with a
    // trained range; export must use that range, not calibration's.
    let relu = m
        .graph
        .layers
        .iter()
        .position(|l| l.op == pf::graph::Op::Relu)
        .unwrap();
    let name = m.graph.layers[relu].name.clone();
    m.graph.layers[relu].quant = Some(LayerQuant {
        weight: None,
        activation: Some(Quantizer::Uniform {
            bits: 8,
            symmetric: false,
            per_channel: false,
            bucket: 0,
        }),
    });
    m.ensure_quant_buffers().unwrap();
    m.buffers.insert(
        format!("{name}.act_range"),
        candle_core::Tensor::new(&[0.0f32, 5.1], &candle_core::Device::Cpu).unwrap(),
    );
    let calibration = vec![random(&[8, 1, 8, 8], 1)];
    let g = quantize::lower_int8(&m, &calibration, &Int8Options::default()).unwrap();
    let t = g.tensors.iter().find(|t| t.name == name).unwrap();
    let q = t.quant.as_ref().unwrap();
    assert!((q.scale[0] - 5.1 / 255.0).abs() < 1e-7, "{q:?}");
    assert_eq!(q.zero_point, vec![-128]);
}

#[test]
fn int8_export_refuses_data_that_does_not_fit_the_model() {
    let dir = tempdir();
    let out = dir.path().join("x.tflite");
    // The zoo LeNet takes 3×32×32 images by default; the default data
    // (digits) is 1×8×8.
    let o = pf()
        .args(["export", "lenet", "--int8", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("3×32×32") && e.contains("1×8×8") && e.contains("--data"),
        "{e}"
    );
    assert!(!e.contains("panicked") && !out.exists());
    // --int8-io means nothing without --int8.
    let o = pf()
        .args(["export", "digits_cnn", "--int8-io", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("--int8"));
}

#[test]
fn a_quantization_aware_model_exports_with_the_ranges_it_trained() {
    use candle_core::Device;
    use pf::graph::Quantizer;
    let dir = tempdir();
    let (base, _) = pf::conformance::digits_baseline(2, 150).unwrap();
    let base_file = dir.path().join("base.pf");
    pf::model::save(&base, &base_file).unwrap();
    let model = dir.path().join("qat.pf");
    // uniform_quant on the digits CNN: 8-bit weights and activations.
    let o = pf()
        .args([
            "plugin",
            "apply",
            "-p",
            "uniform_quant",
            "--finetune-steps",
            "60",
            "--model",
        ])
        .arg(&base_file)
        .arg("-o")
        .arg(&model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let m = pf::model::load(&model, &Device::Cpu).unwrap();
    // Each weight layer's activations are quantized where its block ends
    // (after the batch norm and ReLU), with a trained range.
    let ranged: Vec<(String, Vec<f32>)> = m
        .graph
        .layers
        .iter()
        .filter(|l| {
            matches!(
                l.quant.as_ref().and_then(|q| q.activation.as_ref()),
                Some(Quantizer::Uniform { .. })
            )
        })
        .map(|l| {
            let r = m.buffers[&format!("{}.act_range", l.name)]
                .to_vec1::<f32>()
                .unwrap();
            (l.name.clone(), r)
        })
        .collect();
    let weight_layers = m.graph.layers.iter().filter(|l| l.op.has_weight()).count();
    assert_eq!(ranged.len(), weight_layers, "{ranged:?}");
    for (name, _) in &ranged {
        assert_eq!(
            m.graph.block_output(name),
            name.as_str(),
            "`{name}` is not a block end"
        );
    }
    // int8 export takes those ranges, not calibration's.
    let calibration = vec![random(&[8, 1, 8, 8], 3)];
    let g = quantize::lower_int8(&m, &calibration, &Int8Options::default()).unwrap();
    for (name, r) in &ranged {
        // (The output's int8 tensor is `NAME/int8`, before the DEQUANTIZE.)
        let t = g
            .tensors
            .iter()
            .find(|t| t.dtype == DType::I8 && (&t.name == name || t.name == format!("{name}/int8")))
            .unwrap();
        let want = quantize::activation_quant(r[0], r[1]);
        assert_eq!(t.quant.as_ref(), Some(&want), "`{name}`");
    }
    // And LiteRT agrees with pf on the file.
    let file = dir.path().join("qat.tflite");
    let o = pf()
        .arg("export")
        .arg(&model)
        .arg("-o")
        .arg(&file)
        .args(["--int8", "--verify", "--json"])
        .env("PF_LITERT_PYTHON", litert_python())
        .output()
        .unwrap();
    let v = json(&o)["verification"].clone();
    assert!(v["agreement"].as_f64().unwrap() >= 0.99, "{v}");
    assert!(
        (v["litert_accuracy"].as_f64().unwrap() - v["float_accuracy"].as_f64().unwrap()).abs()
            <= 0.005 + 1e-9,
        "{v}"
    );
}
