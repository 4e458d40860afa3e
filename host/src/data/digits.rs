//! The embedded default: the 8×8 handwritten digits (UCI, 1,797 images, 10
//! classes, values 0–16) that smartcore ships, so nothing is downloaded.
//!
//! The split is fixed and never depends on the seed: samples are ordered by
//! class (then by their index), and systematic sampling over that order takes
//! 360 test images, then 180 validation images from the rest; the remaining
//! 1,257 train. Every class is represented in proportion.

use super::{stratified_pick, Dataset};
use anyhow::{ensure, Result};

/// Train / validation / test sizes of the fixed split.
pub const SPLIT: [usize; 3] = [1257, 180, 360];

pub(super) fn load() -> Result<(Dataset, Dataset, Dataset)> {
    let raw = smartcore::dataset::digits::load_dataset();
    ensure!(
        raw.num_samples == 1797 && raw.num_features == 64,
        "the embedded digits have an unexpected size"
    );
    let pixels: Vec<u8> = raw
        .data
        .iter()
        .map(|&v| v.clamp(0.0, 16.0).round() as u8)
        .collect();
    let labels: Vec<u32> = raw.target.iter().map(|&t| t as u32).collect();
    let all = Dataset {
        pixels,
        max_value: 16.0,
        shape: [1, 8, 8],
        labels,
        classes: 10,
    };

    let indices: Vec<usize> = (0..all.len()).collect();
    let (rest, test) = stratified_pick(&all.labels, &indices, SPLIT[2]);
    let (train, val) = stratified_pick(&all.labels, &rest, SPLIT[1]);
    Ok((all.subset(&train), all.subset(&val), all.subset(&test)))
}
