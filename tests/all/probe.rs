//! Probes used by compression algorithms: sampled layer features and weight
//! gradients.

use candle_core::{Device, Tensor};
use pf::data::{self, Batcher, DataSource, LoadOptions, Normalization};
use pf::graph::InputSpec;
use pf::model::Model;
use pf::zoo::{self, ZooConfig};

fn setup() -> (Model, data::Splits) {
    let splits = data::load(&DataSource::Digits, &LoadOptions::default()).unwrap();
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        num_classes: 10,
        width: 0.5,
    };
    (
        Model::init(zoo::build("digits_cnn", &cfg).unwrap(), 2, &Device::Cpu).unwrap(),
        splits,
    )
}

#[test]
fn sampled_conv_features_are_real_patches_and_responses() {
    let (m, splits) = setup();
    let batcher = Batcher::new(
        &splits.train,
        Normalization::of(&splits.train),
        &Device::Cpu,
    );
    let s = m.sample_features(&batcher, "block2.conv", 3, 5, 9).unwrap();
    assert_eq!(s.inputs.dims(), &[15, 8 * 9]);
    assert_eq!(s.outputs.dims(), &[15, 16]);
    // Every sampled response is the conv's real output at some position.
    let idx: Vec<usize> = (0..3).collect();
    let mut r = pf::rng::stream(0, &["t"]);
    let b = batcher
        .batch(&idx, pf::data::Augment::None, &mut r)
        .unwrap();
    let out = m.forward(&b.images, false, &["block2.conv"]).unwrap();
    let y = out.captured["block2.conv"]
        .permute((0, 2, 3, 1))
        .unwrap()
        .reshape((3 * 64, 16))
        .unwrap();
    let y = y.to_vec2::<f32>().unwrap();
    for row in s.outputs.to_vec2::<f32>().unwrap() {
        let found = y
            .iter()
            .any(|cand| cand.iter().zip(&row).all(|(a, b)| (a - b).abs() < 1e-4));
        assert!(found, "sampled response matches no real position");
    }
    // The same seed samples the same positions.
    let again = m.sample_features(&batcher, "block2.conv", 3, 5, 9).unwrap();
    assert_eq!(
        again.inputs.to_vec2::<f32>().unwrap(),
        s.inputs.to_vec2::<f32>().unwrap()
    );
    assert!(m.sample_features(&batcher, "pool1", 3, 5, 9).is_err());
}

#[test]
fn weight_gradients_add_up_over_batches() {
    let (m, splits) = setup();
    let batcher = Batcher::new(
        &splits.train,
        Normalization::of(&splits.train),
        &Device::Cpu,
    );
    let g1 = m.weight_gradients(&batcher, 1, 16, 4, 0).unwrap();
    let g2 = m.weight_gradients(&batcher, 2, 16, 4, 0).unwrap();
    assert_eq!(
        g1.keys().cloned().collect::<Vec<_>>(),
        vec!["block1.conv", "block2.conv", "block3.conv", "fc"]
    );
    assert_eq!(g1["fc"].dims(), m.params["fc.weight"].dims());
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(norm(&g1["block2.conv"]) > 0.0);
    assert!(norm(&(&g2["fc"] - &g1["fc"]).unwrap()) > 0.0);
    // Probing changes nothing in the model.
    let again = m.weight_gradients(&batcher, 1, 16, 4, 0).unwrap();
    assert_eq!(norm(&(&again["fc"] - &g1["fc"]).unwrap()), 0.0);
}
