//! The zoo matches the published MAC and parameter counts.

use pf::graph::InputSpec;
use pf::zoo::{self, ZooConfig};

fn cost(name: &str, size: usize, classes: usize, width: f64) -> (u64, u64) {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 3,
            height: size,
            width: size,
        },
        num_classes: classes,
        width,
    };
    let c = zoo::build(name, &cfg).unwrap().cost().unwrap();
    (c.macs, c.params)
}

fn within(actual: u64, expected: f64, tolerance: f64) -> bool {
    ((actual as f64 - expected) / expected).abs() <= tolerance
}

#[test]
fn resnet20_matches_the_option_a_figures() {
    // He et al. (2016), option-A (zero-padding) shortcuts: 40.55M MACs, 0.27M parameters.
    let (macs, params) = cost("resnet20", 32, 10, 1.0);
    assert!(within(macs, 40.55e6, 0.01), "resnet20 MACs {macs}");
    assert!(within(params, 0.27e6, 0.01), "resnet20 params {params}");
}

#[test]
fn resnet56_matches_the_option_a_figures() {
    let (macs, params) = cost("resnet56", 32, 10, 1.0);
    assert!(within(macs, 125e6, 0.01), "resnet56 MACs {macs}");
    assert!(within(params, 0.85e6, 0.01), "resnet56 params {params}");
}

#[test]
fn deeper_cifar_resnets_grow_as_expected() {
    let (m32, p32) = cost("resnet32", 32, 10, 1.0);
    let (m44, p44) = cost("resnet44", 32, 10, 1.0);
    // Published: ResNet-32 0.46M params / ~69M MACs, ResNet-44 0.66M / ~97M (option A).
    assert!(
        within(p32, 0.46e6, 0.02) && within(m32, 69e6, 0.01),
        "{m32} {p32}"
    );
    assert!(
        within(p44, 0.66e6, 0.02) && within(m44, 97e6, 0.01),
        "{m44} {p44}"
    );
}

#[test]
fn mobilenet_v1_matches_the_paper() {
    // Howard et al. (2017): 569M multiply-adds, 4.2M parameters at 224, width 1.0.
    let (macs, params) = cost("mobilenet_v1", 224, 1000, 1.0);
    assert!(within(macs, 569e6, 0.01), "mobilenet_v1 MACs {macs}");
    assert!(within(params, 4.2e6, 0.01), "mobilenet_v1 params {params}");
}

#[test]
fn mobilenet_v2_matches_the_paper() {
    // Sandler et al. (2018): 300M multiply-adds; 3.4M parameters in the paper's
    // table, 3,504,872 in the reference implementation (torchvision), which
    // pf reproduces exactly.
    let (macs, params) = cost("mobilenet_v2", 224, 1000, 1.0);
    assert!(within(macs, 300e6, 0.01), "mobilenet_v2 MACs {macs}");
    assert_eq!(params, 3_504_872);
}

#[test]
fn width_multiplier_and_input_size_scale_mobilenet() {
    let (full, _) = cost("mobilenet_v1", 224, 1000, 1.0);
    let (half, _) = cost("mobilenet_v1", 224, 1000, 0.5);
    let (small, _) = cost("mobilenet_v1", 128, 1000, 1.0);
    // MACs scale roughly with width² and with the input area.
    assert!(within(half, 149e6, 0.02), "0.5 width: {half}");
    assert!(
        within(small, full as f64 * (128.0f64 / 224.0).powi(2), 0.02),
        "128 px: {small}"
    );
}

#[test]
fn lenet_is_the_caffe_variant() {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 1,
            height: 28,
            width: 28,
        },
        num_classes: 10,
        width: 1.0,
    };
    let c = zoo::build("lenet", &cfg).unwrap().cost().unwrap();
    assert_eq!(c.params, 431_080);
    assert_eq!(c.macs, 2_293_000);
}

#[test]
fn every_zoo_model_builds_and_runs_a_forward_pass() {
    let dev = candle_core::Device::Cpu;
    for name in zoo::NAMES {
        let size = if name.starts_with("mobilenet") {
            32
        } else if *name == "digits_cnn" {
            8
        } else {
            28
        };
        let cfg = ZooConfig {
            input: InputSpec {
                channels: 1,
                height: size,
                width: size,
            },
            num_classes: 7,
            width: 0.25,
        };
        let g = zoo::build(name, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = pf::model::Model::init(g, 1, &dev).unwrap();
        let x =
            candle_core::Tensor::zeros((2, 1, size, size), candle_core::DType::F32, &dev).unwrap();
        let y = model.forward_inference(&x).unwrap();
        assert_eq!(y.dims(), &[2, 7], "{name}");
    }
}

#[test]
fn an_input_too_small_for_the_model_is_a_clear_error() {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        num_classes: 10,
        width: 1.0,
    };
    let err = zoo::build("lenet", &cfg).unwrap_err().to_string();
    assert!(
        err.contains("lenet") && err.contains("--input-size"),
        "{err}"
    );
    let err = zoo::build("alexnet", &cfg).unwrap_err().to_string();
    assert!(err.contains("unknown model `alexnet`"), "{err}");
}
