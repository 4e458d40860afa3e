//! Turning samples into normalised, optionally augmented batch tensors.

use super::Dataset;
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Per-channel normalisation `(x − mean) / std` applied after scaling pixels
/// to `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The normalisation a model's inputs need: the model's own (an
    /// imported model's mean and std), else the statistics of `train`, the
    /// training split of the data it runs on.
    pub fn for_model(graph: &crate::graph::Graph, train: &Dataset) -> Normalization {
        match &graph.preprocessing {
            Some(p) => Normalization {
                mean: p.mean.clone(),
                std: p.std.clone(),
            },
            None => Normalization::of(train),
        }
    }

    /// Statistics of a data set (normally its training split).
    pub fn of(data: &Dataset) -> Normalization {
        let [c, h, w] = data.shape;
        let plane = h * w;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for i in 0..data.len() {
            let s = data.sample(i);
            for ch in 0..c {
                for &v in &s[ch * plane..(ch + 1) * plane] {
                    let x = v as f64 / data.max_value as f64;
                    sum[ch] += x;
                    sq[ch] += x * x;
                }
            }
        }
        let n = (data.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt().max(1e-3)) as f32)
            .collect();
        Normalization {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }
}

/// Training-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Augment {
    /// None.
    None,
    /// PocketFlow's CIFAR augmentation: a random crop after zero-padding by 4
    /// pixels, and a random horizontal flip.
    CropFlip,
}

/// A batch of images and labels on a device.
pub struct Batch {
    /// `(N, C, H, W)` f32 images.
    pub images: Tensor,
    /// `(N)` u32 labels.
    pub labels: Tensor,
}

/// Builds batches from a data set.
pub struct Batcher<'a> {
    data: &'a Dataset,
    norm: Normalization,
    device: Device,
}

impl<'a> Batcher<'a> {
    /// A batcher over `data` with the given normalisation.
    pub fn new(data: &'a Dataset, norm: Normalization, device: &Device) -> Self {
        Batcher {
            data,
            norm,
            device: device.clone(),
        }
    }

    /// The data set.
    pub fn data(&self) -> &Dataset {
        self.data
    }

    /// The samples at `indices`; with an augmentation and a generator, each
    /// sample is augmented with draws from `rng` in order.
    pub fn batch(&self, indices: &[usize], augment: Augment, rng: &mut impl Rng) -> Result<Batch> {
        let [c, h, w] = self.data.shape;
        let plane = h * w;
        let mut out = vec![0f32; indices.len() * c * plane];
        let scale = 1.0 / self.data.max_value;
        for (b, &i) in indices.iter().enumerate() {
            let s = self.data.sample(i);
            let dst = &mut out[b * c * plane..(b + 1) * c * plane];
            let (dy, dx, flip) = match augment {
                Augment::None => (0isize, 0isize, false),
                Augment::CropFlip => (
                    rng.random_range(-4..=4i32) as isize,
                    rng.random_range(-4..=4i32) as isize,
                    rng.random::<bool>(),
                ),
            };
            for ch in 0..c {
                let (m, sd) = (self.norm.mean[ch], self.norm.std[ch]);
                // Padding is zero in pixel space, i.e. normalised -m/sd.
                let pad = -m / sd;
                for y in 0..h {
                    for x in 0..w {
                        let sy = y as isize + dy;
                        let sx0 = if flip {
                            (w - 1 - x) as isize
                        } else {
                            x as isize
                        };
                        let sx = sx0 + dx;
                        let v = if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                            pad
                        } else {
                            (s[ch * plane + sy as usize * w + sx as usize] as f32 * scale - m) / sd
                        };
                        dst[ch * plane + y * w + x] = v;
                    }
                }
            }
        }
        let images = Tensor::from_vec(out, (indices.len(), c, h, w), &self.device)?;
        let labels: Vec<u32> = indices.iter().map(|&i| self.data.labels[i]).collect();
        let labels = Tensor::from_vec(labels, indices.len(), &self.device)?;
        Ok(Batch { images, labels })
    }
}
