//! A model's own input preprocessing: the per-channel mean and standard
//! deviation its inputs were normalised with where it was trained.
//!
//! pf normalises a data set with the statistics of its training split. A
//! model trained elsewhere (a PyTorch model with torchvision's
//! `Normalize(mean, std)`) expects its own statistics instead, and gives
//! worse results under any other. Such a model carries them in its graph,
//! so that they travel with it through pf's model file, pruning, training,
//! evaluation and export.

use serde::{Deserialize, Serialize};

/// Per-channel normalisation `(x − mean) / std` of pixels scaled to
/// `[0, 1]` (torchvision's convention: `ToTensor` then `Normalize`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Mean of each input channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each input channel.
    pub std: Vec<f32>,
}

impl Preprocessing {
    /// Checks that there is one finite mean and one finite, positive
    /// standard deviation per input channel.
    pub fn validate(&self, channels: usize) -> Result<(), String> {
        for (what, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != channels {
                return Err(format!(
                    "the input preprocessing has {} {what} value(s) but the input has {channels} channel(s)",
                    values.len()
                ));
            }
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!(
                "the input preprocessing has mean {m}, which is not a number"
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!(
                "the input preprocessing has std {s}; a standard deviation must be above 0"
            ));
        }
        Ok(())
    }
}
