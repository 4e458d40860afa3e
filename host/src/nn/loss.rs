//! Losses: cross-entropy with label smoothing, and the distillation loss.

use super::log_softmax;
use candle_core::{DType, Result, Tensor, D};

/// Mean cross-entropy of `logits` `(N, K)` against integer `labels` `(N)`.
/// With `smoothing = ε > 0` the target puts `1 − ε + ε/K` on the label and
/// `ε/K` elsewhere.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    let (n, k) = logits.dims2()?;
    let logp = log_softmax(logits)?;
    let picked = logp
        .gather(&labels.to_dtype(DType::U32)?.reshape((n, 1))?, 1)?
        .squeeze(1)?;
    let nll = picked.neg()?.mean_all()?;
    if smoothing <= 0.0 {
        return Ok(nll);
    }
    let uniform = (logp.sum(D::Minus1)?.neg()?.mean_all()? / k as f64)?;
    (nll * (1.0 - smoothing))? + (uniform * smoothing)?
}

/// Knowledge-distillation loss (Hinton et al. 2015):
/// `T² · KL(softmax(teacher/T) ‖ softmax(student/T))`, averaged over the batch.
/// The teacher's logits carry no gradient.
pub fn distillation(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    let n = student.dim(0)? as f64;
    let t = temperature;
    let log_q = log_softmax(&(student / t)?)?;
    let log_p = log_softmax(&(teacher.detach() / t)?)?;
    let p = log_p.exp()?;
    let kl = (p * (log_p - log_q)?)?.sum_all()?;
    kl * (t * t / n)
}

/// Number of rows whose arg-max equals the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    let hits = pred
        .eq(&labels.to_dtype(DType::U32)?)?
        .to_dtype(DType::F32)?
        .sum_all()?;
    Ok(hits.to_scalar::<f32>()? as usize)
}
