//! The `non_uniform_quant` learner (Han et al. 2016) and the packed model
//! files its codebooks are saved in.

use crate::support::{assert_refused, digits_model, json, pf, stderr, tempdir};
use candle_core::Device;
use pf::graph::Quantizer;
use std::collections::BTreeSet;
use std::path::Path;

fn apply(dir: &Path, args: &[&str]) -> std::process::Output {
    pf().current_dir(dir)
        .args(["plugin", "apply", "-p", "non_uniform_quant"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn codebooks_train_and_save_packed_at_their_bit_width() {
    let dir = tempdir();
    let base = digits_model(dir.path(), 30);
    let float_bytes = std::fs::metadata(&base).unwrap().len();
    for train in ["weights", "centroids", "both"] {
        let out = format!("q-{train}.pf");
        let o = apply(
            dir.path(),
            &[
                "--model",
                &base,
                "--set",
                "bits=4",
                "--set",
                &format!("train={train}"),
                "--finetune-steps",
                "20",
                "--output",
                &out,
                "--json",
            ],
        );
        let r = json(&o);
        let after = r["test_accuracy_after"].as_f64().unwrap();
        let before = r["test_accuracy_before"].as_f64().unwrap();
        assert!(after > before - 0.05, "{train}: {before} → {after}");
        // The host's count: 4-bit indices plus 16 centroids per layer.
        let ratio = r["measured"]["bytes_ratio"].as_f64().unwrap();
        assert!(ratio < 0.2, "{train}: {ratio}");
        assert_eq!(r["plugin_report"]["bytes_ratio"].as_f64().unwrap(), ratio);

        // The saved file is that small too, and computes what it did.
        let path = dir.path().join(&out);
        let file_bytes = std::fs::metadata(&path).unwrap().len();
        assert!(
            (file_bytes as f64) < 0.25 * float_bytes as f64,
            "{train}: {file_bytes} of {float_bytes} bytes"
        );
        let model = pf::model::load(&path, &Device::Cpu).unwrap();
        for layer in model.graph.layers.iter().filter(|l| l.op.has_weight()) {
            let Some(Quantizer::Codebook { centroids }) =
                layer.quant.as_ref().and_then(|q| q.weight.clone())
            else {
                panic!("{train}: `{}` has no codebook", layer.name)
            };
            assert_eq!(centroids.len(), 16);
            let w = model.params[&format!("{}.weight", layer.name)]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let distinct: BTreeSet<u32> = w.iter().map(|v| v.to_bits()).collect();
            assert!(distinct.len() <= 16, "{train}: {}", distinct.len());
            assert!(w.iter().all(|v| centroids.contains(v)));
        }
        let e = pf()
            .args(["eval", path.to_str().unwrap(), "--split", "test", "--json"])
            .output()
            .unwrap();
        let acc = json(&e)["metrics"]["accuracy"].as_f64().unwrap();
        assert!(
            (acc - after).abs() < 1e-9,
            "{train}: saved {acc}, trained {after}"
        );
    }
}

#[test]
fn a_size_target_sets_the_bits_and_bad_bits_are_refused() {
    let dir = tempdir();
    let base = digits_model(dir.path(), 30);
    let o = apply(
        dir.path(),
        &[
            "--model",
            &base,
            "--target",
            "size=0.1",
            "--finetune-steps",
            "2",
            "--json",
        ],
    );
    let r = json(&o);
    assert!(r["measured"]["bytes_ratio"].as_f64().unwrap() <= 0.1, "{r}");
    let bits = r["plugin_report"]["bits"].as_f64().unwrap();
    assert!((1.0..4.0).contains(&bits), "{r}");
    for bad in ["bits=0", "bits=33", "centroid_lr=0", "train=everything"] {
        let o = apply(
            dir.path(),
            &["--model", &base, "--set", bad, "--finetune-steps", "1"],
        );
        assert_refused(&o, bad.split('=').next().unwrap());
    }
}

#[test]
fn a_corrupt_packed_weight_is_a_clear_error() {
    let dir = tempdir();
    let base = digits_model(dir.path(), 30);
    let o = apply(
        dir.path(),
        &[
            "--model",
            &base,
            "--finetune-steps",
            "1",
            "--output",
            "q.pf",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let path = dir.path().join("q.pf");
    let bytes = std::fs::read(&path).unwrap();
    // Rewrite one layer's codes one byte short, keeping the rest.
    let (tensors, header) = {
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let mut data = v.data().to_vec();
                let mut shape = v.shape().to_vec();
                if n.ends_with(".weight.codes") && n.starts_with("block2") {
                    data.pop();
                    shape[0] -= 1;
                }
                (n, v.dtype(), shape, data)
            })
            .collect();
        (tensors, meta.metadata().clone().unwrap())
    };
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let corrupt = safetensors::serialize(views, Some(header)).unwrap();
    std::fs::write(&path, corrupt).unwrap();
    let err = match pf::model::load(&path, &Device::Cpu) {
        Ok(_) => panic!("a corrupt file loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("block2") && err.contains("corrupt"), "{err}");
}
