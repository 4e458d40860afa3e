//! How many channels each group keeps, and what the model then costs.
//!
//! Pruning a group's channels shrinks every layer that writes them (its
//! output channels) and every layer that reads them (its input channels), so
//! a layer's MACs scale with the kept fraction of its output group and of its
//! input group. A depthwise convolution's inputs and outputs are the same
//! channels: it scales once. Integer arithmetic, as the host counts.

use pf_sdk::prelude::*;
use std::collections::BTreeMap;

/// Channels kept out of `n` at preserve ratio `r`: `⌈r·n⌉`, at least 1.
pub fn kept(n: u32, r: f64) -> u32 {
    // The 1e-9 stops float noise from rounding up: 0.7·10 = 7.000000000000001.
    ((r.clamp(0.0, 1.0) * f64::from(n) - 1e-9).ceil() as u32).clamp(1, n.max(1))
}

/// Channels kept per group id, with the group's channel count: `(channels, kept)`.
pub type Keep = BTreeMap<u32, (u32, u32)>;

/// The model's MACs when each group in `keep` keeps its channels.
pub fn macs_after(layers: &[LayerInfo], keep: &Keep) -> u64 {
    let scale = |macs: u64, group: Option<u32>| match group.and_then(|g| keep.get(&g)) {
        Some(&(n, k)) => macs / u64::from(n.max(1)) * u64::from(k),
        None => macs,
    };
    layers
        .iter()
        .map(|l| {
            let macs = scale(l.macs, l.output_group);
            if l.kind == LayerKind::DepthwiseConv2d {
                macs
            } else {
                scale(macs, l.input_group)
            }
        })
        .sum()
}

/// The keep counts when group `i` (of `channels[i]` channels, with id
/// `ids[i]`) keeps `min(1, s·prefs[i])` of them, for the largest common
/// factor `s` whose model costs at most `budget` MACs. With equal
/// preferences this is one uniform preserve ratio for every group.
pub fn allocate(
    layers: &[LayerInfo],
    ids: &[u32],
    channels: &[u32],
    prefs: &[f64],
    budget: u64,
) -> Result<Keep> {
    let at = |s: f64| -> Keep {
        ids.iter()
            .zip(channels)
            .zip(prefs)
            .map(|((&id, &n), &p)| (id, (n, kept(n, (s * p).min(1.0)))))
            .collect()
    };
    let least = macs_after(layers, &at(0.0));
    if least > budget {
        return Err(Error::invalid_argument(format!(
            "the FLOPs target is out of reach: with one channel left in every prunable group \
             the model still costs {least} MACs, more than the {budget} allowed; channel_pruned \
             prunes only the channels of single-producer groups (the inner convolutions of \
             residual blocks), so the rest of the model bounds what it can save"
        )));
    }
    let smallest = prefs
        .iter()
        .copied()
        .filter(|&p| p > 0.0)
        .fold(1.0, f64::min);
    let (mut lo, mut hi) = (0.0, 1.0 / smallest);
    if macs_after(layers, &at(hi)) <= budget {
        return Ok(at(hi));
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if macs_after(layers, &at(mid)) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(at(lo))
}

#[cfg(test)]
mod tests {
    use super::kept;

    #[test]
    fn kept_rounds_up_and_keeps_one() {
        assert_eq!(kept(10, 0.7), 7);
        assert_eq!(kept(10, 0.71), 8);
        assert_eq!(kept(10, 0.0), 1);
        assert_eq!(kept(10, 1.0), 10);
        assert_eq!(kept(64, 0.5), 32);
    }
}
