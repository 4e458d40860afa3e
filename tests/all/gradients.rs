//! Analytic gradients agree with central finite differences, in f64.

use candle_core::{DType, Device, Result, Tensor, Var};
use pf::nn::{self, batchnorm::BatchNormParams, loss, pool::Pool};
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Checks d(f)/d(inputs) against central differences on up to 24 entries of
/// each input. `f` must return a scalar.
fn check(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = f(&ts).unwrap().backward().unwrap();
    let eps = 1e-6;
    for (i, input) in inputs.iter().enumerate() {
        let analytic = grads
            .get(vars[i].as_tensor())
            .expect("gradient exists")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = input.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let n = base.len();
        let step = (n / 24).max(1);
        for j in (0..n).step_by(step) {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[j] += delta;
                let mut args = inputs.to_vec();
                args[i] = Tensor::from_vec(v, input.dims(), &Device::Cpu).unwrap();
                f(&args).unwrap().to_scalar::<f64>().unwrap()
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let a = analytic[j];
            assert!(
                (a - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs(),
                "input {i} element {j}: analytic {a} vs numeric {numeric}"
            );
        }
    }
}

/// A scalar that depends on every output element differently.
fn project(y: &Tensor, seed: u64) -> Result<Tensor> {
    (y * random(y.dims(), seed))?.sum_all()
}

#[allow(clippy::too_many_arguments)] // mirrors the conv2d signature
fn conv_case(
    n: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    k: usize,
    stride: usize,
    pad: [usize; 2],
    groups: usize,
) {
    let x = random(&[n, cin, hw[0], hw[1]], 1);
    let w = random(&[cout, cin / groups, k, k], 2);
    let b = random(&[cout], 3);
    check(&[x, w, b], |t| {
        project(
            &nn::conv2d(&t[0], &t[1], Some(&t[2]), [stride, stride], pad, groups)?,
            4,
        )
    });
}

#[test]
fn conv2d_plain() {
    conv_case(2, 3, 4, [5, 5], 3, 1, [1, 1], 1);
}

#[test]
fn conv2d_strided_padded_odd_sizes() {
    conv_case(2, 3, 5, [7, 6], 3, 2, [1, 1], 1);
    conv_case(1, 2, 3, [5, 7], 1, 2, [0, 0], 1);
    conv_case(2, 2, 3, [6, 6], 3, 2, [1, 1], 1);
    conv_case(1, 2, 2, [8, 7], 3, 3, [1, 1], 1);
}

#[test]
fn conv2d_grouped() {
    conv_case(2, 4, 6, [5, 5], 3, 1, [1, 1], 2);
}

#[test]
fn conv2d_depthwise() {
    conv_case(2, 4, 4, [6, 6], 3, 2, [1, 1], 4);
}

#[test]
fn conv2d_rectangular_padding() {
    conv_case(1, 2, 3, [5, 5], 3, 1, [0, 1], 1);
}

#[test]
fn linear_layer() {
    let x = random(&[3, 5], 1);
    let w = random(&[4, 5], 2);
    let b = random(&[4], 3);
    check(&[x, w, b], |t| {
        project(&nn::linear(&t[0], &t[1], Some(&t[2]))?, 4)
    });
}

#[test]
fn batch_norm_in_training_mode() {
    let x = random(&[4, 3, 3, 3], 1);
    let g = (random(&[3], 2) + 1.5).unwrap();
    let b = random(&[3], 3);
    let rm = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
    let rv = Tensor::ones(3, DType::F64, &Device::Cpu).unwrap();
    check(&[x, g, b], |t| {
        let p = BatchNormParams {
            weight: &t[1],
            bias: &t[2],
            running_mean: &rm,
            running_var: &rv,
            eps: 1e-5,
            momentum: 0.1,
        };
        project(&nn::batchnorm::batch_norm(&t[0], &p, true, false)?.0, 4)
    });
}

#[test]
fn batch_norm_fused_with_relu() {
    let x = random(&[4, 3, 3, 3], 11);
    let g = (random(&[3], 12) + 1.5).unwrap();
    let b = random(&[3], 13);
    let rm = Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap();
    let rv = Tensor::ones(3, DType::F64, &Device::Cpu).unwrap();
    for train in [true, false] {
        check(&[x.clone(), g.clone(), b.clone()], |t| {
            let p = BatchNormParams {
                weight: &t[1],
                bias: &t[2],
                running_mean: &rm,
                running_var: &rv,
                eps: 1e-5,
                momentum: 0.1,
            };
            project(&nn::batchnorm::batch_norm(&t[0], &p, train, true)?.0, 14)
        });
    }
}

#[test]
fn batch_norm_in_evaluation_mode_uses_running_statistics() {
    let x = random(&[2, 3, 2, 2], 1);
    let g = Tensor::new(&[1.0f64, 2.0, 0.5], &Device::Cpu).unwrap();
    let b = Tensor::new(&[0.0f64, 1.0, -1.0], &Device::Cpu).unwrap();
    let rm = Tensor::new(&[0.5f64, -0.5, 0.0], &Device::Cpu).unwrap();
    let rv = Tensor::new(&[4.0f64, 1.0, 0.25], &Device::Cpu).unwrap();
    let p = BatchNormParams {
        weight: &g,
        bias: &b,
        running_mean: &rm,
        running_var: &rv,
        eps: 0.0,
        momentum: 0.1,
    };
    let (y, update) = nn::batchnorm::batch_norm(&x, &p, false, false).unwrap();
    assert!(update.is_none());
    let xv = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let yv = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    // channel 1 of sample 0 starts at index 4: (x + 0.5) / 1 * 2 + 1
    assert!((yv[4] - ((xv[4] + 0.5) * 2.0 + 1.0)).abs() < 1e-12);
    check(&[x], |t| {
        project(&nn::batchnorm::batch_norm(&t[0], &p, false, false)?.0, 5)
    });
}

#[test]
fn running_statistics_follow_pytorch() {
    let x = random(&[8, 2, 3, 3], 7);
    let ones = Tensor::ones(2, DType::F64, &Device::Cpu).unwrap();
    let zeros = Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap();
    let p = BatchNormParams {
        weight: &ones,
        bias: &zeros,
        running_mean: &zeros,
        running_var: &ones,
        eps: 1e-5,
        momentum: 0.1,
    };
    let (_, u) = nn::batchnorm::batch_norm(&x, &p, true, false).unwrap();
    let u = u.unwrap();
    let v = x
        .transpose(0, 1)
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let n = v[0].len() as f64;
    let mean: f64 = v[0].iter().sum::<f64>() / n;
    let var_unbiased: f64 = v[0].iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let m = u.mean.to_vec1::<f64>().unwrap();
    let s = u.var.to_vec1::<f64>().unwrap();
    assert!((m[0] - 0.1 * mean).abs() < 1e-12);
    assert!((s[0] - (0.9 + 0.1 * var_unbiased)).abs() < 1e-12);
}

#[test]
fn distillation_loss() {
    let s = random(&[3, 5], 1);
    let t = random(&[3, 5], 2);
    check(std::slice::from_ref(&s), |x| {
        loss::distillation(&x[0], &t, 3.0)
    });
    // Identical logits give zero loss; the loss is never negative.
    let zero = loss::distillation(&t, &t, 3.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(zero.abs() < 1e-12);
    assert!(
        loss::distillation(&s, &t, 3.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            > 0.0
    );
}

#[test]
fn cross_entropy_with_label_smoothing() {
    let x = random(&[4, 6], 1);
    let labels = Tensor::new(&[0u32, 5, 2, 2], &Device::Cpu).unwrap();
    check(std::slice::from_ref(&x), |t| {
        loss::cross_entropy(&t[0], &labels, 0.0)
    });
    check(std::slice::from_ref(&x), |t| {
        loss::cross_entropy(&t[0], &labels, 0.1)
    });
    // Uniform logits: loss is ln K regardless of smoothing.
    let u = Tensor::zeros((4, 6), DType::F64, &Device::Cpu).unwrap();
    let l = loss::cross_entropy(&u, &labels, 0.1)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((l - 6f64.ln()).abs() < 1e-12);
}

#[test]
fn pooling_with_overlap_padding_and_odd_sizes() {
    // Perturb-friendly input: distinct values so max pooling has no ties.
    let x = (random(&[2, 2, 7, 6], 1)
        + Tensor::arange(0f64, 168.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 2, 7, 6))
            .unwrap()
            * 0.01)
        .unwrap();
    check(std::slice::from_ref(&x), |t| {
        project(
            &nn::pool::pool2d(&t[0], Pool::Max, [3, 3], [2, 2], [1; 4])?,
            2,
        )
    });
    check(std::slice::from_ref(&x), |t| {
        project(
            &nn::pool::pool2d(&t[0], Pool::Avg, [3, 3], [2, 2], [1; 4])?,
            3,
        )
    });
    check(std::slice::from_ref(&x), |t| {
        project(
            &nn::pool::pool2d(&t[0], Pool::Max, [1, 1], [2, 2], [0; 4])?,
            4,
        )
    });
    // ceil_mode: the last column of windows overhangs the right edge.
    let pads = pf::graph::pool_padding([7, 6], [3, 3], [2, 2], [1, 1], true).unwrap();
    assert_eq!(pads, [1, 1, 1, 2]);
    for (kind, seed) in [(Pool::Max, 6), (Pool::Avg, 7)] {
        check(std::slice::from_ref(&x), |t| {
            project(&nn::pool::pool2d(&t[0], kind, [3, 3], [2, 2], pads)?, seed)
        });
    }
    check(&[x], |t| project(&nn::pool::global_avg_pool(&t[0])?, 5));
}

#[test]
fn average_pooling_excludes_padding() {
    let x = Tensor::ones((1, 1, 3, 3), DType::F64, &Device::Cpu).unwrap();
    let y = nn::pool::pool2d(&x, Pool::Avg, [3, 3], [1, 1], [1; 4]).unwrap();
    for v in y.flatten_all().unwrap().to_vec1::<f64>().unwrap() {
        assert!((v - 1.0).abs() < 1e-12, "padding counted: {v}");
    }
    // Nor is a ceil_mode overhang.
    let y = nn::pool::pool2d(&x, Pool::Avg, [2, 2], [2, 2], [0, 1, 0, 1]).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    for v in y.flatten_all().unwrap().to_vec1::<f64>().unwrap() {
        assert!((v - 1.0).abs() < 1e-12, "padding counted: {v}");
    }
}

#[test]
fn sigmoid_hard_sigmoid_and_hard_swish() {
    // Inputs over [-5, 5]: both sides of hard-swish's and hard-sigmoid's
    // kinks at ±3, and sigmoid's tails.
    let x = (random(&[2, 3, 4, 4], 91) * 5.0).unwrap();
    check(std::slice::from_ref(&x), |t| {
        project(&nn::sigmoid(&t[0])?, 92)
    });
    check(std::slice::from_ref(&x), |t| {
        project(&nn::hard_sigmoid(&t[0], 1.0 / 6.0, 0.5)?, 93)
    });
    check(&[x], |t| project(&nn::hard_swish(&t[0])?, 94));
}

#[test]
fn channel_shuffle_and_slice() {
    let x = random(&[2, 6, 3, 2], 98);
    check(std::slice::from_ref(&x), |t| {
        project(&nn::channel_shuffle(&t[0], 3)?, 99)
    });
    check(&[x], |t| project(&t[0].narrow(1, 1, 4)?.contiguous()?, 100));
    // The permutation itself: 6 channels in 2 groups, [0 1 2 | 3 4 5] →
    // [0 3 1 4 2 5].
    let ch = Tensor::arange(0f64, 6.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 6, 1, 1))
        .unwrap();
    let y = nn::channel_shuffle(&ch, 2).unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
}

#[test]
fn a_channel_gate_broadcast_over_a_map() {
    // Squeeze-and-excitation's product: a C×1×1 gate times a C×H×W map.
    let gate = random(&[2, 3, 1, 1], 95);
    let map = random(&[2, 3, 4, 5], 96);
    check(&[gate, map], |t| project(&t[0].broadcast_mul(&t[1])?, 97));
}

#[test]
fn maps_joined_along_the_channels() {
    // Inception's and DenseNet's concatenation.
    let a = random(&[2, 3, 4, 4], 98);
    let b = random(&[2, 2, 4, 4], 99);
    check(&[a, b], |t| project(&Tensor::cat(&[&t[0], &t[1]], 1)?, 100));
}
