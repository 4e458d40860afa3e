//! The fuzzers' entry points: one function per target, each feeding bytes to
//! the reader pf runs on a file a stranger may have written, and checking
//! what must hold of whatever it accepts. A reader may refuse any input with
//! an error; it must never panic, abort, or allocate what the input merely
//! claims. The `fuzz_targets/` binaries call these under libFuzzer
//! (scripts/fuzz.sh), and `tests/all/fuzz_corpus.rs` includes this file to
//! replay the committed corpus through the same functions in every test run.

use candle_core::Device;

/// The image side the image-folder target resizes to (small: the decoder is
/// what is fuzzed, not the resize).
const IMAGE_SIZE: usize = 4;

/// MNIST-style IDX files: the first byte says where the images file ends
/// and the labels file begins in the rest (each may be gzip).
pub fn idx(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(cut) / 255;
    let (images, labels) = rest.split_at(at);
    if let Ok(set) = pf::data::parse::idx_pair(images, "images.idx", labels, "labels.idx") {
        assert_eq!(set.pixels.len(), set.len() * set.sample_len());
        assert!(set.labels.iter().all(|&l| (l as usize) < set.classes));
    }
}

/// One CIFAR-10 binary batch.
pub fn cifar(data: &[u8]) {
    if let Ok(set) = pf::data::parse::cifar_batch(data, "data_batch_1.bin") {
        assert_eq!(set.pixels.len(), set.len() * set.sample_len());
        assert!(set.labels.iter().all(|&l| (l as usize) < set.classes));
    }
}

/// One image of an image folder (PNG or JPEG), decoded and resized.
pub fn image(data: &[u8]) {
    if let Ok(pixels) = pf::data::parse::folder_image(data, "class/image.png", IMAGE_SIZE) {
        assert_eq!(pixels.len(), 3 * IMAGE_SIZE * IMAGE_SIZE);
    }
}

/// A pf model file. One that loads must save to bytes that load again to
/// the same bytes (re-saving a model never changes it).
pub fn model(data: &[u8]) {
    let Ok(model) = pf::model::from_bytes(data, &Device::Cpu, "model.pf") else {
        return;
    };
    let saved = pf::model::to_bytes(&model).expect("a loaded model saves");
    let again =
        pf::model::from_bytes(&saved, &Device::Cpu, "resaved.pf").expect("a saved model loads");
    assert_eq!(
        pf::model::to_bytes(&again).expect("saves again"),
        saved,
        "saving a loaded model is not stable"
    );
}

/// An ONNX model to import.
pub fn onnx(data: &[u8]) {
    let _ = pf::onnx::import_bytes(
        data,
        "model.onnx",
        "model",
        &pf::onnx::ImportOptions::default(),
        &Device::Cpu,
    );
}

/// The registry's documents: the first byte picks the parser (manifest,
/// signature file, index, lock, policy, key / digest / `NAME@VERSION`
/// spec), the rest is the document.
pub fn registry(data: &[u8]) {
    use pf_manifest::{Digest, Manifest};
    use pf_registry::index::{parse_spec, Index};
    use pf_registry::keys::{PublicKey, SignatureFile};
    use pf_registry::lock::Lock;
    use pf_registry::policy::Policy;
    let Some((&which, doc)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(m) = Manifest::from_json(doc) {
                let again = Manifest::from_json(&m.to_json()).expect("a written manifest parses");
                assert_eq!(again, m, "a manifest changed in a round trip");
            }
        }
        1 => {
            if let Ok(f) = SignatureFile::from_json(doc) {
                for s in &f.signatures {
                    let _ = s.verify(doc, &Digest([3; 32]));
                }
            }
        }
        2 => {
            if let Ok(i) = Index::from_json(doc) {
                let _ = i.find("l1_filter", None);
            }
        }
        3 => {
            let _ = Lock::from_json(doc);
        }
        4 => {
            if let Ok(text) = std::str::from_utf8(doc) {
                let _ = Policy::from_toml(text, None);
            }
        }
        _ => {
            let s = String::from_utf8_lossy(doc);
            let _ = s.parse::<PublicKey>();
            let _ = s.parse::<Digest>();
            let _ = parse_spec(&s);
        }
    }
}
