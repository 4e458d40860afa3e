//! CPU kernels for the training hot path, on plain slices.
//!
//! Candle's stock CPU convolution computes the input gradient through a slow
//! transposed convolution; these kernels compute the forward pass and both
//! gradients with im2col and the `gemm` crate (the matrix kernel Candle itself
//! uses), depthwise convolutions directly, and batch norm with an optional
//! fused ReLU in one pass each way. [`crate::nn`] wraps them as Candle custom
//! ops with their own backward; on other devices it falls back to Candle's ops.
//!
//! Every kernel is generic over `f32` and `f64`, so the finite-difference
//! tests exercise the very code that trains.

pub mod batchnorm;
pub mod conv;

use num_traits::Float;
use std::iter::Sum;
use std::ops::AddAssign;

/// Element types the kernels run on (`f32` and `f64`).
pub trait Element: Float + AddAssign + Sum + Send + Sync + 'static {}
impl Element for f32 {}
impl Element for f64 {}

/// Converts from f64 (exact for f64, rounded for f32).
pub fn from_f64<T: Element>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Converts to f64 (exact).
pub fn to_f64<T: Element>(v: T) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

/// Worker threads for kernels (the same count Candle and rayon use).
pub fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal size.
pub(crate) fn ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}
