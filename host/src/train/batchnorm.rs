//! Batch-norm re-estimation: after a structural change (channels pruned,
//! quantizers inserted) the running statistics describe a network that no
//! longer exists. Re-estimating them is forward passes on training images
//! in training mode, with no weight updates: each batch norm's running mean
//! and variance become the plain average of its batch statistics over the
//! sample (as PyTorch does with `momentum=None`), not a moving average that
//! still remembers the old network.

use crate::data::{Augment, Batcher, Dataset, Normalization};
use crate::graph::Op;
use crate::model::Model;
use crate::rng;
use anyhow::{bail, Result};

/// Re-estimates every batch norm's running statistics of `model` on `images`
/// training images of `data` (a seeded sample, in batches of `batch_size`).
/// Weights, masks, quantizer ranges and everything else stay as they are.
/// Returns the number of images used (0 if the model has no batch norm).
pub fn reestimate(
    model: &mut Model,
    data: &Dataset,
    norm: &Normalization,
    images: usize,
    batch_size: usize,
    seed: u64,
) -> Result<usize> {
    let bn: Vec<usize> = model
        .graph
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l.op, Op::BatchNorm { .. }))
        .map(|(i, _)| i)
        .collect();
    if bn.is_empty() || images == 0 {
        return Ok(0);
    }
    if data.is_empty() {
        bail!("batch-norm re-estimation needs training images, and the split is empty");
    }
    let mut order = rng::permutation(&mut rng::stream(seed, &["bn re-estimation"]), data.len());
    order.truncate(images.min(data.len()));
    // The running statistics this changes, and nothing else.
    let keys: Vec<String> = bn
        .iter()
        .flat_map(|&i| {
            let name = &model.graph.layers[i].name;
            [
                format!("{name}.running_mean"),
                format!("{name}.running_var"),
            ]
        })
        .collect();
    let momenta: Vec<f64> = bn
        .iter()
        .map(|&i| match model.graph.layers[i].op {
            Op::BatchNorm { momentum, .. } => momentum,
            _ => unreachable!("filtered above"),
        })
        .collect();
    let batcher = Batcher::new(data, norm.clone(), model.device());
    let mut unused = rng::stream(seed, &["unused"]);
    let result = (|| -> Result<()> {
        for (k, idx) in order.chunks(batch_size.max(1)).enumerate() {
            // Momentum 1/(k+1): after batch k the running value is the mean
            // of the k+1 batch statistics so far.
            for &i in &bn {
                if let Op::BatchNorm { momentum, .. } = &mut model.graph.layers[i].op {
                    *momentum = 1.0 / (k as f64 + 1.0);
                }
            }
            let b = batcher.batch(idx, Augment::None, &mut unused)?;
            let out = model.forward(&b.images, true, &[])?;
            let updates = out
                .updates
                .into_iter()
                .filter(|(key, _)| keys.contains(key))
                .collect();
            model.apply_updates(updates);
        }
        Ok(())
    })();
    for (&i, &m) in bn.iter().zip(&momenta) {
        if let Op::BatchNorm { momentum, .. } = &mut model.graph.layers[i].op {
            *momentum = m;
        }
    }
    result?;
    Ok(order.len())
}
