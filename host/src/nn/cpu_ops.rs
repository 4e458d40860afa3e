//! Candle custom ops that run [`crate::kernels`] on the CPU and carry their
//! own backward passes. The functions in [`crate::nn`] use them for `f32` and
//! `f64` tensors on the CPU and fall back to Candle's ops elsewhere.

use crate::kernels::{batchnorm, conv, conv::ConvGeometry, from_f64, to_f64, Element};
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
    WithDType,
};
use std::sync::{Arc, Mutex};

/// Whether the custom CPU kernels can run on this tensor.
pub fn supported(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The contiguous elements of a CPU tensor argument.
fn data<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let all = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

/// Runs `$body` with `T` bound to the storage's element type (f32 or f64).
macro_rules! by_dtype {
    ($s:expr, $name:expr, |$t:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            _ => bail!("{}: only f32 and f64 are supported", $name),
        }
    };
}

fn geometry(
    x: &[usize],
    w: &[usize],
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
) -> Result<ConvGeometry> {
    let (&[n, c, h, wd], &[o, _, kh, kw]) = (x, w) else {
        bail!("conv2d expects 4-D input and weight")
    };
    let g = ConvGeometry {
        n,
        c,
        h,
        w: wd,
        o,
        k: [kh, kw],
        stride,
        padding,
        groups,
    };
    g.check().map_err(candle_core::Error::msg)?;
    if w[1] * groups != c {
        bail!("conv2d weight has {} input channels per group, input has {c} channels in {groups} groups", w[1]);
    }
    Ok(g)
}

/// Convolution: `(x, w) → y`.
struct Conv2d {
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "pf-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geometry(l1.dims(), l2.dims(), self.stride, self.padding, self.groups)?;
        by_dtype!(s1, self.name(), |T| {
            let y = conv::forward::<T>(
                data(s1, l1, "conv2d input")?,
                data(s2, l2, "conv2d weight")?,
                &g,
            );
            Ok((
                T::to_cpu_storage_owned(y),
                Shape::from((g.n, g.o, g.oh(), g.ow())),
            ))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = geometry(x.dims(), w.dims(), self.stride, self.padding, self.groups)?;
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &ConvInputGrad(g))?;
        let dw = x.apply_op2_no_bwd(&dy, &ConvWeightGrad(g))?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `(dy, w) → dx`.
struct ConvInputGrad(ConvGeometry);

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "pf-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        by_dtype!(s1, self.name(), |T| {
            let dx = conv::backward_input::<T>(
                data(s1, l1, "conv2d output gradient")?,
                data(s2, l2, "conv2d weight")?,
                g,
            );
            Ok((
                T::to_cpu_storage_owned(dx),
                Shape::from((g.n, g.c, g.h, g.w)),
            ))
        })
    }
}

/// `(x, dy) → dw`.
struct ConvWeightGrad(ConvGeometry);

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "pf-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        by_dtype!(s1, self.name(), |T| {
            let dw = conv::backward_weight::<T>(
                data(s1, l1, "conv2d input")?,
                data(s2, l2, "conv2d output gradient")?,
                g,
            );
            Ok((
                T::to_cpu_storage_owned(dw),
                Shape::from((g.o, g.c / g.groups, g.k[0], g.k[1])),
            ))
        })
    }
}

/// 2-D convolution on the CPU kernels (any padding and strides, groups).
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Conv2d {
            stride,
            padding,
            groups,
        },
    )
}

/// Per-channel statistics kept between the forward and backward passes, in
/// f64 whatever the tensor type.
#[derive(Debug, Clone, Default)]
struct Stats {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    batch_var: Vec<f64>,
}

impl Stats {
    fn saved<T: Element>(&self) -> batchnorm::Saved<T> {
        let cv = |v: &[f64]| v.iter().map(|&a| from_f64(a)).collect();
        batchnorm::Saved {
            mean: cv(&self.mean),
            inv_std: cv(&self.inv_std),
        }
    }
}

fn ncp(dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [n, c] => Ok((*n, *c, 1)),
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => bail!("batch norm expects at least 2 dimensions"),
    }
}

/// Batch norm with optional fused ReLU: `(x, γ, β) → y`.
struct BatchNorm {
    eps: f64,
    relu: bool,
    /// Running (mean, variance) in evaluation mode; `None` in training.
    running: Option<(Vec<f64>, Vec<f64>)>,
    stats: Arc<Mutex<Stats>>,
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "pf-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l1.dims())?;
        by_dtype!(s1, self.name(), |T| {
            let x = data::<T>(s1, l1, "batch norm input")?;
            let (mean, var): (Vec<f64>, Vec<f64>) = match &self.running {
                Some((m, v)) => (m.clone(), v.clone()),
                None => {
                    let (m, v) = batchnorm::statistics(x, n, c, p);
                    let f = |v: Vec<T>| v.into_iter().map(to_f64).collect::<Vec<f64>>();
                    (f(m), f(v))
                }
            };
            let stats = Stats {
                inv_std: var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect(),
                mean,
                batch_var: var,
            };
            let saved = stats.saved::<T>();
            let y = batchnorm::forward::<T>(
                x,
                data(s2, l2, "batch norm weight")?,
                data(s3, l3, "batch norm bias")?,
                &saved.mean,
                &saved.inv_std,
                c,
                p,
                self.relu,
            );
            *self.stats.lock().expect("batch-norm statistics lock") = stats;
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self
            .stats
            .lock()
            .expect("batch-norm statistics lock")
            .clone();
        let gamma_values = gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let op = BatchNormGrad {
            relu: self.relu,
            train: self.running.is_none(),
            stats,
            gamma: gamma_values,
        };
        let c = gamma.elem_count();
        let packed = dy
            .contiguous()?
            .apply_op3_no_bwd(&x.contiguous()?, &y.contiguous()?, &op)?;
        // Packed as dγ (C), dβ (C), dx.
        let dgamma = packed.narrow(0, 0, c)?;
        let dbeta = packed.narrow(0, c, c)?;
        let dx = packed
            .narrow(0, 2 * c, x.elem_count())?
            .reshape(x.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// `(dy, x, y) → [dγ, dβ, dx]` packed in one vector (γ travels in the op).
struct BatchNormGrad {
    relu: bool,
    train: bool,
    stats: Stats,
    gamma: Vec<f64>,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "pf-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, p) = ncp(l2.dims())?;
        by_dtype!(s1, self.name(), |T| {
            let gamma: Vec<T> = self.gamma.iter().map(|&g| from_f64(g)).collect();
            let (dx, dgamma, dbeta) = batchnorm::backward::<T>(
                data(s1, l1, "batch norm output gradient")?,
                data(s2, l2, "batch norm input")?,
                data(s3, l3, "batch norm output")?,
                &gamma,
                &self.stats.saved::<T>(),
                n,
                c,
                p,
                self.relu,
                self.train,
            );
            let mut packed = dgamma;
            packed.extend(dbeta);
            packed.extend(dx);
            let len = packed.len();
            Ok((T::to_cpu_storage_owned(packed), Shape::from(len)))
        })
    }
}

/// What a batch-norm call computed, for the running averages.
pub struct BatchNormOutput {
    /// Normalised (and possibly rectified) output.
    pub y: Tensor,
    /// Batch mean and biased batch variance per channel (training mode).
    pub batch_stats: Option<(Vec<f64>, Vec<f64>)>,
}

/// Batch norm (optionally fused with ReLU) on the CPU kernels. In training
/// mode `running` is `None` and the batch statistics come back; in
/// evaluation mode the running mean and variance are used.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    running: Option<(Vec<f64>, Vec<f64>)>,
) -> Result<BatchNormOutput> {
    let train = running.is_none();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BatchNorm {
        eps,
        relu,
        running,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let batch_stats = if train {
        let s = stats.lock().expect("batch-norm statistics lock");
        Some((s.mean.clone(), s.batch_var.clone()))
    } else {
        None
    };
    Ok(BatchNormOutput { y, batch_stats })
}

/// ReLU whose backward pass is one fused pass (`dy · [y > 0]`), instead of
/// Candle's comparison, conversion and product.
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "pf-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        by_dtype!(s, self.name(), |T| {
            let x = data::<T>(s, l, "relu input")?;
            let y: Vec<T> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
            Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            dy.contiguous()?
                .apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)?,
        ))
    }
}

/// `(dy, y) → dy · [y > 0]`.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "pf-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        by_dtype!(s1, self.name(), |T| {
            let dy = data::<T>(s1, l1, "relu output gradient")?;
            let y = data::<T>(s2, l2, "relu output")?;
            let dx: Vec<T> = dy
                .iter()
                .zip(y)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect();
            Ok((T::to_cpu_storage_owned(dx), l1.shape().clone()))
        })
    }
}

/// `max(x, 0)` on the CPU kernels.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// Inference-only convolution with bias and optional ReLU fused into the
/// kernel: `(x, w, b) → relu?(conv(x, w) + b)`. No backward pass.
struct Conv2dBiasAct {
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    relu: bool,
}

impl CustomOp3 for Conv2dBiasAct {
    fn name(&self) -> &'static str {
        "pf-conv2d-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geometry(l1.dims(), l2.dims(), self.stride, self.padding, self.groups)?;
        by_dtype!(s1, self.name(), |T| {
            let bias = data::<T>(s3, l3, "conv2d bias")?;
            if bias.len() != g.o {
                bail!(
                    "conv2d bias has {} values for {} output channels",
                    bias.len(),
                    g.o
                );
            }
            let y = conv::forward_with::<T>(
                data(s1, l1, "conv2d input")?,
                data(s2, l2, "conv2d weight")?,
                &g,
                Some(bias),
                self.relu,
            );
            Ok((
                T::to_cpu_storage_owned(y),
                Shape::from((g.n, g.o, g.oh(), g.ow())),
            ))
        })
    }
}

/// `relu?(conv2d(x, w) + b)` in one kernel, for inference.
pub fn conv2d_bias_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    relu: bool,
) -> Result<Tensor> {
    let op = Conv2dBiasAct {
        stride,
        padding,
        groups,
        relu,
    };
    x.contiguous()?
        .apply_op3_no_bwd(&w.contiguous()?, &b.contiguous()?, &op)
}
