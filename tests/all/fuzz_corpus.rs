//! The fuzzers' corpus (`tests/fuzz/corpus/TARGET/`), replayed through the
//! same entry points `cargo fuzz` drives (`tests/fuzz/src/lib.rs`, included
//! here), so that every test run checks that each committed input, the
//! crashes fuzzing found included, is read or refused without a panic. The
//! fuzzing itself is `scripts/fuzz.sh` (tests/README.md).
//!
//! The seeds were written by [`write_fuzz_seeds`] from files pf itself
//! writes (an ignored test: run it with `--ignored` to write them again).

#[path = "../fuzz/src/lib.rs"]
mod entries;

use std::path::{Path, PathBuf};

/// A fuzz target's entry point.
type Entry = fn(&[u8]);

/// Each fuzz target and its entry point.
const TARGETS: [(&str, Entry); 6] = [
    ("idx", entries::idx),
    ("cifar", entries::cifar),
    ("image", entries::image),
    ("model", entries::model),
    ("onnx", entries::onnx),
    ("registry", entries::registry),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_fuzz_input_is_read_or_refused_without_a_panic() {
    for (target, entry) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}; the corpus is committed", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 2,
            "{} holds {} inputs; the corpus of each target is committed",
            dir.display(),
            files.len()
        );
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let result = std::panic::catch_unwind(|| entry(&bytes));
            assert!(
                result.is_ok(),
                "fuzz target `{target}` panics on {}",
                file.display()
            );
        }
    }
}

/// The seeds from which fuzzing started: small files of each format as pf
/// and its tests write them.
#[test]
#[ignore = "writes the fuzz seeds into tests/fuzz/corpus; run with --ignored to renew them"]
fn write_fuzz_seeds() {
    use pf_manifest::{Digest, Manifest, PluginKind, RequestedLimits, FORMAT};
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let gzip = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    // IDX: three 4×4 images and their labels, raw and gzip; the first byte
    // places the cut between the two files.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    images.extend((0..48u8).map(|i| i * 5));
    let labels = [0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9];
    for (name, images, labels) in [
        ("raw", images.clone(), labels.to_vec()),
        ("gzip", gzip(&images), gzip(&labels)),
    ] {
        let cut = (images.len() * 255).div_ceil(images.len() + labels.len());
        let mut doc = vec![cut as u8];
        doc.extend(&images);
        doc.extend(&labels);
        let at = doc[1..].len() * usize::from(doc[0]) / 255;
        assert_eq!(at, images.len(), "the cut byte places the cut");
        put("idx", name, &doc);
    }
    // CIFAR-10: two records.
    let mut batch = Vec::new();
    for label in [3u8, 9] {
        batch.push(label);
        batch.extend((0..3072).map(|i| (i % 251) as u8));
    }
    put("cifar", "two-records", &batch);
    put("cifar", "one-record", &batch[..3073]);
    // Image folders: a PNG and a JPEG.
    let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
    for (name, format) in [
        ("png", image::ImageFormat::Png),
        ("jpeg", image::ImageFormat::Jpeg),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).unwrap();
        put("image", name, bytes.get_ref());
    }
    // A tiny pf model, plain and with pruned (sparse) weights and masks, and
    // the same model as ONNX.
    let graph: pf::graph::Graph = serde_json::from_value(serde_json::json!({
        "name": "tiny",
        "input": {"channels": 1, "height": 4, "width": 4},
        "layers": [
            {"name": "conv", "op": {"type": "conv2d", "in_channels": 1, "out_channels": 8,
             "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "groups": 1, "bias": false},
             "inputs": ["input"]},
            {"name": "bn", "op": {"type": "batch_norm", "channels": 8, "eps": 0.00001,
             "momentum": 0.1}, "inputs": ["conv"]},
            {"name": "relu", "op": {"type": "relu"}, "inputs": ["bn"]},
            {"name": "pool", "op": {"type": "global_avg_pool"}, "inputs": ["relu"]},
            {"name": "flatten", "op": {"type": "flatten"}, "inputs": ["pool"]},
            {"name": "fc", "op": {"type": "linear", "in_features": 8, "out_features": 3,
             "bias": true}, "inputs": ["flatten"]}
        ]
    }))
    .unwrap();
    let model = pf::model::Model::init(graph, 1, &candle_core::Device::Cpu).unwrap();
    put("model", "plain", &pf::model::to_bytes(&model).unwrap());
    put(
        "onnx",
        "tiny",
        &pf::onnx::to_bytes(&model, &Default::default()).unwrap(),
    );
    let mut pruned = model.try_clone().unwrap();
    for (layer, shape) in [("conv", vec![8, 1, 3, 3]), ("fc", vec![3, 8])] {
        let n: usize = shape.iter().product();
        let keep: Vec<f32> = (0..n).map(|i| f32::from(i % 5 == 0)).collect();
        let mask = candle_core::Tensor::from_vec(keep, shape.as_slice(), &candle_core::Device::Cpu)
            .unwrap();
        pruned.set_mask(layer, mask).unwrap();
    }
    pruned.apply_masks().unwrap();
    put("model", "sparse", &pf::model::to_bytes(&pruned).unwrap());
    put(
        "onnx",
        "tiny-pruned",
        &pf::onnx::to_bytes(&pruned, &Default::default()).unwrap(),
    );
    // The registry's documents, each behind the byte that picks its parser.
    let manifest = Manifest {
        format: FORMAT,
        name: "l1_filter".into(),
        version: "0.2.1".parse().unwrap(),
        kind: PluginKind::Learner,
        contract: "0.1.0".parse().unwrap(),
        component: Digest([3; 32]),
        description: "L1-norm filter pruning".into(),
        authors: vec!["Ada <ada@example.org>".into()],
        license: Some("MIT".into()),
        source: None,
        params_schema: serde_json::json!({"type": "object", "properties": {"ratio": {"type": "number", "minimum": 0, "maximum": 0.9}}}),
        limits: RequestedLimits {
            memory_mib: Some(64),
            fuel_millions: Some(100),
            tensors: None,
        },
    }
    .to_json();
    let key = pf_registry::keys::SecretKey::from_seed([9; 32]);
    let mut sigs = pf_registry::keys::SignatureFile::default();
    sigs.add(key.sign("alice", &manifest, &Digest([3; 32])));
    let index = format!(
        r#"{{"format":1,"plugins":{{"l1_filter":{{"0.2.1":{{"kind":"learner","component":"{d1}","manifest":"{d2}","signatures":"{d3}","published":"2026-11-30T00:00:00Z"}}}}}}}}"#,
        d1 = Digest([1; 32]),
        d2 = Digest([2; 32]),
        d3 = Digest([3; 32])
    );
    let lock = format!(
        r#"{{"format":1,"plugins":{{"tpe":"{}"}}}}"#,
        Digest([4; 32])
    );
    let policy = format!(
        "audit_log = \"audit.jsonl\"\n[signatures]\nrequired = true\nallow_unsigned_flag = \
         false\n[[publishers]]\nname = \"pf-team\"\nkey = \"{}\"\n[worlds]\nlearner = \
         \"^0.1\"\n[limits]\nmax_memory_mib = 512\nmax_trials = 200\n",
        key.public()
    );
    let spec = "l1_filter@^0.2".to_string();
    for (which, name, doc) in [
        (0u8, "manifest", manifest),
        (1, "signatures", sigs.to_json()),
        (2, "index", index.into_bytes()),
        (3, "lock", lock.into_bytes()),
        (4, "policy", policy.into_bytes()),
        (5, "spec", spec.into_bytes()),
    ] {
        let mut bytes = vec![which];
        bytes.extend(doc);
        put("registry", name, &bytes);
    }
}
