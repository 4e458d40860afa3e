//! Seeded parameter initialisation. Each tensor draws from its own stream,
//! derived from the seed and the tensor's name, so adding a layer does not
//! change the others' initial values.

use crate::graph::Op;
use crate::rng;
use rand::Rng;

/// Initial values of one parameter tensor.
pub(super) fn parameter(op: &Op, name: &str, shape: &[usize], seed: u64, key: &str) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut r = rng::stream(seed, &["init", key]);
    match (op, name) {
        (Op::BatchNorm { .. }, "weight") => vec![1.0; n],
        (Op::BatchNorm { .. }, _) | (Op::Conv2d { .. }, "bias") => vec![0.0; n],
        (Op::Conv2d { .. }, _) => {
            // He et al. (2015), fan-out mode as in torchvision's ResNets.
            let fan_out = shape[0] * shape[2] * shape[3];
            let std = (2.0 / fan_out as f64).sqrt();
            (0..n).map(|_| (rng::normal(&mut r) * std) as f32).collect()
        }
        (Op::Linear { in_features, .. }, _) => {
            // PyTorch's default: U(−1/√fan_in, 1/√fan_in) for weight and bias.
            let bound = 1.0 / (*in_features as f64).sqrt();
            (0..n)
                .map(|_| r.random_range(-bound..bound) as f32)
                .collect()
        }
        _ => vec![0.0; n],
    }
}
