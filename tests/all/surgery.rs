//! Physical channel pruning: the pruned model is smaller, computes what the
//! unpruned model computed with those channels silenced, and still trains.

use crate::support::tempdir;
use candle_core::{DType, Device, Tensor};
use pf::graph::InputSpec;
use pf::model::{self, Model};
use pf::zoo::{self, ZooConfig};

/// A zoo model at seed 5 for `channels`×`size`×`size` inputs and 10 classes.
pub fn model(name: &str, channels: usize, size: usize, width: f64) -> Model {
    let cfg = ZooConfig {
        input: InputSpec {
            channels,
            height: size,
            width: size,
        },
        num_classes: 10,
        width,
    };
    Model::init(zoo::build(name, &cfg).unwrap(), 5, &Device::Cpu).unwrap()
}

fn input(m: &Model, n: usize) -> Tensor {
    let i = m.graph.input;
    Tensor::randn(0f32, 1.0, (n, i.channels, i.height, i.width), &Device::Cpu).unwrap()
}

/// Sets entries `drop` of a 1-D parameter to zero.
fn zero_entries(m: &mut Model, key: &str, drop: &[usize]) {
    let v = m.params[key].as_tensor();
    let mut data = v.to_vec1::<f32>().unwrap();
    for &d in drop {
        data[d] = 0.0;
    }
    let t = Tensor::from_vec(data, v.dims(), &Device::Cpu).unwrap();
    m.params[key].set(&t).unwrap();
}

/// Silences channels by zeroing the γ and β of every batch norm carrying them.
fn silence(m: &mut Model, bns: &[&str], drop: &[usize]) {
    for bn in bns {
        zero_entries(m, &format!("{bn}.weight"), drop);
        zero_entries(m, &format!("{bn}.bias"), drop);
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn layer_macs(m: &Model, name: &str) -> u64 {
    m.graph
        .cost()
        .unwrap()
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap()
        .macs
}

#[test]
fn pruning_a_resnet_inner_conv_keeps_the_function_and_halves_its_cost() {
    let mut m = model("resnet20", 3, 32, 1.0);
    let keep: Vec<usize> = (0..16).step_by(2).collect();
    let drop: Vec<usize> = (1..16).step_by(2).collect();
    silence(&mut m, &["layer1.0.a.bn"], &drop);
    let x = input(&m, 2);
    let before = m.forward_inference(&x).unwrap();
    let (a, b) = (
        layer_macs(&m, "layer1.0.a.conv"),
        layer_macs(&m, "layer1.0.b.conv"),
    );
    let total = m.graph.cost().unwrap().macs;
    m.prune_channels("layer1.0.a.conv", &keep).unwrap();
    let after = m.forward_inference(&x).unwrap();
    assert!(
        max_abs_diff(&before, &after) < 1e-4,
        "outputs differ by {}",
        max_abs_diff(&before, &after)
    );
    assert_eq!(layer_macs(&m, "layer1.0.a.conv"), a / 2);
    assert_eq!(layer_macs(&m, "layer1.0.b.conv"), b / 2);
    assert_eq!(m.graph.cost().unwrap().macs, total - a / 2 - b / 2);
    assert_eq!(m.params["layer1.0.a.conv.weight"].dims(), &[8, 16, 3, 3]);
    assert_eq!(m.params["layer1.0.b.conv.weight"].dims(), &[16, 8, 3, 3]);
    assert_eq!(m.buffers["layer1.0.a.bn.running_var"].dims(), &[8]);
}

#[test]
fn pruning_before_a_flatten_removes_whole_feature_blocks() {
    let mut m = model("lenet", 1, 28, 1.0);
    let drop: Vec<usize> = (0..50).filter(|c| c % 5 == 0).collect();
    let keep: Vec<usize> = (0..50).filter(|c| c % 5 != 0).collect();
    // Zero filters and biases give ReLU(0) = 0 after pooling: silenced.
    let w = m.params["conv2.weight"].as_tensor().clone();
    let mask: Vec<f32> = (0..50)
        .map(|c| if c % 5 == 0 { 0.0 } else { 1.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (50, 1, 1, 1), &Device::Cpu).unwrap();
    m.params["conv2.weight"]
        .set(&w.broadcast_mul(&mask).unwrap())
        .unwrap();
    zero_entries(&mut m, "conv2.bias", &drop);
    let x = input(&m, 3);
    let before = m.forward_inference(&x).unwrap();
    m.prune_channels("conv2", &keep).unwrap();
    let after = m.forward_inference(&x).unwrap();
    assert!(max_abs_diff(&before, &after) < 1e-4);
    assert_eq!(m.params["fc1.weight"].dims(), &[500, 40 * 16]);
}

#[test]
fn pruning_through_depthwise_convolutions() {
    let mut m = model("mobilenet_v1", 3, 32, 0.25);
    let c = m.params["block1.pw.conv.weight"].dims()[0];
    let keep: Vec<usize> = (0..c).filter(|i| i % 3 != 1).collect();
    let drop: Vec<usize> = (0..c).filter(|i| i % 3 == 1).collect();
    silence(&mut m, &["block1.pw.bn", "block2.dw.bn"], &drop);
    let x = input(&m, 2);
    let before = m.forward_inference(&x).unwrap();
    m.prune_channels("block1.pw.conv", &keep).unwrap();
    let after = m.forward_inference(&x).unwrap();
    assert!(max_abs_diff(&before, &after) < 1e-4);
    assert_eq!(
        m.params["block2.dw.conv.weight"].dims(),
        &[keep.len(), 1, 3, 3]
    );
    assert_eq!(m.params["block2.pw.conv.weight"].dims()[1], keep.len());
}

#[test]
fn a_pruned_model_saves_loads_and_trains() {
    let d = tempdir();
    let mut m = model("resnet20", 1, 8, 1.0);
    let mask = Tensor::ones((16, 16, 3, 3), DType::F32, &Device::Cpu).unwrap();
    m.set_mask("layer1.1.b.conv", mask).unwrap();
    m.prune_channels("layer1.1.a.conv", &[0, 3, 5]).unwrap();
    assert_eq!(m.masks["layer1.1.b.conv"].dims(), &[16, 3, 3, 3]);
    let path = d.path().join("pruned.pf");
    model::save(&m, &path).unwrap();
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.graph, m.graph);
    let x = input(&back, 4);
    let out = back.forward(&x, true, &[]).unwrap();
    let grads = out
        .output
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        grads
            .get(back.params["layer1.1.a.conv.weight"].as_tensor())
            .unwrap()
            .dims(),
        &[3, 16, 3, 3]
    );
}

#[test]
fn fixed_groups_and_bad_channel_lists_are_refused() {
    let mut m = model("resnet20", 3, 32, 1.0);
    let e = m.prune_channels("stem.conv", &[0]).unwrap_err().to_string();
    assert!(e.contains("cannot be pruned") && e.contains("pad"), "{e}");
    let e = m.prune_channels("fc", &[0]).unwrap_err().to_string();
    assert!(e.contains("number of classes"), "{e}");
    assert!(m.prune_channels("layer1.0.a.conv", &[]).is_err());
    assert!(m.prune_channels("layer1.0.a.conv", &[3, 2]).is_err());
    assert!(m.prune_channels("layer1.0.a.conv", &[16]).is_err());
    assert!(m
        .prune_channels("nope", &[0])
        .unwrap_err()
        .to_string()
        .contains("no layer `nope`"));
    // Nothing changed.
    assert_eq!(m.graph.cost().unwrap().macs, 40_551_040);
}

#[test]
fn batch_norm_reestimation_gives_a_pruned_network_its_own_statistics() {
    use pf::graph::Op;
    let (mut model, data) = pf::conformance::digits_baseline(4, 150).unwrap();
    // Prune half of every prunable group physically: the running statistics
    // now describe channels and inputs that are gone.
    crate::tflite::prune_all(&mut model, 0.5);
    let params = |m: &Model| -> Vec<(String, Vec<f32>)> {
        m.params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap(),
                )
            })
            .collect()
    };
    let weights = params(&model);
    let before = pf::train::evaluate(&model, &data.val, &data.norm, 256, false).unwrap();
    let mut re = model.try_clone().unwrap();
    // One batch holding the whole sample: the running mean becomes exactly
    // the mean of the batch norm's input over that sample.
    let n = data.train.len();
    let used = pf::train::batchnorm::reestimate(&mut re, &data.train, &data.norm, n, n, 1).unwrap();
    assert_eq!(used, n);
    assert!(params(&re) == weights, "weights changed");
    let bn = re
        .graph
        .layers
        .iter()
        .find(|l| matches!(l.op, Op::BatchNorm { .. }))
        .unwrap()
        .clone();
    let batcher = pf::data::Batcher::new(&data.train, data.norm.clone(), &candle_core::Device::Cpu);
    let all: Vec<usize> = (0..n).collect();
    let x = batcher
        .batch(
            &all,
            pf::data::Augment::None,
            &mut pf::rng::stream(0, &["t"]),
        )
        .unwrap()
        .images;
    let input = &bn.inputs[0];
    let captured =
        re.forward(&x, false, &[input.as_str()]).unwrap().captured[input.as_str()].clone();
    let want = captured
        .mean_keepdim(3)
        .unwrap()
        .mean_keepdim(2)
        .unwrap()
        .mean_keepdim(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = re.buffers[&format!("{}.running_mean", bn.name)]
        .to_vec1::<f32>()
        .unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "running mean {a} vs batch mean {b}"
        );
    }
    // The momentum is the graph's own again.
    assert_eq!(re.graph, model.graph);
    // And the pruned network scores better with statistics of its own.
    let after = pf::train::evaluate(&re, &data.val, &data.norm, 256, false).unwrap();
    assert!(
        after.loss < before.loss,
        "loss {} before re-estimation, {} after",
        before.loss,
        after.loss
    );
    // A model without batch norms is left alone.
    let mut lenet = crate::surgery::model("lenet", 1, 28, 1.0);
    let hash = lenet.weights_sha256().unwrap();
    // (Here the hash covers everything: nothing at all may change.)
    let used =
        pf::train::batchnorm::reestimate(&mut lenet, &data.train, &data.norm, 64, 64, 1).unwrap();
    assert_eq!(used, 0);
    assert_eq!(lenet.weights_sha256().unwrap(), hash);
}
