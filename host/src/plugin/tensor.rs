//! The host side of the `tensor` resource: float32 tensors owned by the host
//! and run by Candle, reached by the plugin only through handles.
//!
//! Every handle is checked against the instance's table; every result size
//! is checked against the limits, and every operation's work charged to the
//! trial's budget ([`super::budget`]), *before* the host computes it, so a
//! plugin cannot make the host allocate or compute without bound.

use super::bindings::types::{self, BinaryOp, CompareOp, Error, ReduceOp, UnaryOp};
use super::state::PluginState;
use candle_core::{DType, Device, Tensor};
use wasmtime::component::Resource;

/// A tensor held for a plugin.
pub struct HostTensorData(pub Tensor);

/// The outcome of a fallible tensor call: a trap (`Err`) or a value or
/// WIT error.
type Call<T> = wasmtime::Result<Result<T, Error>>;
type Handle = Resource<HostTensorData>;

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(e.to_string())
}

fn dims(shape: &[u32]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}

fn elements(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

/// The work of sorting `n` elements: n·log2(n) comparisons.
fn sort_work(n: u64) -> u64 {
    n.saturating_mul(u64::from(64 - n.leading_zeros()).max(1))
}

/// The shape two tensors broadcast to, if they do.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

impl PluginState {
    fn device(&self) -> Device {
        self.model
            .as_ref()
            .map(|m| m.model.device().clone())
            .unwrap_or(Device::Cpu)
    }

    /// Checks that a result of `shape` may be created.
    fn check_size(&mut self, shape: &[usize]) -> Result<(), Error> {
        match elements(shape) {
            Some(n) if n <= self.limits.max_tensor_elements => Ok(()),
            _ => Err(Error::LimitExceeded(format!(
                "a tensor of shape {shape:?} is larger than the {} elements allowed",
                self.limits.max_tensor_elements
            ))),
        }
    }

    /// Stores the result of a computation, mapping Candle errors to
    /// `invalid-argument` and non-float results to float32.
    fn finish(&mut self, r: candle_core::Result<Tensor>) -> Call<Handle> {
        match r.and_then(|t| t.to_dtype(DType::F32)) {
            Ok(t) => Ok(Ok(self.push_tensor(t)?)),
            Err(e) => Ok(Err(invalid(e))),
        }
    }

    /// The tensors behind two handles, if they broadcast to a shape within
    /// the size limit.
    fn broadcast_pair(&mut self, a: &Handle, b: &Handle) -> Call<(Tensor, Tensor)> {
        let (a, b) = (self.tensor(a)?, self.tensor(b)?);
        let Some(shape) = broadcast(a.dims(), b.dims()) else {
            return Ok(Err(Error::InvalidArgument(format!(
                "shapes {:?} and {:?} do not broadcast",
                a.dims(),
                b.dims()
            ))));
        };
        if let Err(e) = self.check_size(&shape) {
            return Ok(Err(e));
        }
        self.charge_op(
            "an element-wise operation",
            elements(&shape).unwrap_or(u64::MAX),
        )?;
        Ok(Ok((a, b)))
    }

    fn unary_op(t: &Tensor, op: UnaryOp) -> candle_core::Result<Tensor> {
        match op {
            UnaryOp::Abs => t.abs(),
            UnaryOp::Neg => t.neg(),
            UnaryOp::Sqr => t.sqr(),
            UnaryOp::Sqrt => t.sqrt(),
            UnaryOp::Exp => t.exp(),
            UnaryOp::Log => t.log(),
            UnaryOp::Relu => t.relu(),
            UnaryOp::Sign => {
                t.gt(0f32)?.to_dtype(DType::F32)? - t.lt(0f32)?.to_dtype(DType::F32)?
            }
            UnaryOp::Round => t.round(),
            UnaryOp::Floor => t.floor(),
            UnaryOp::Ceil => t.ceil(),
            UnaryOp::Recip => t.recip(),
        }
    }

    fn binary_op(a: &Tensor, b: &Tensor, op: BinaryOp) -> candle_core::Result<Tensor> {
        match op {
            BinaryOp::Add => a.broadcast_add(b),
            BinaryOp::Sub => a.broadcast_sub(b),
            BinaryOp::Mul => a.broadcast_mul(b),
            BinaryOp::Div => a.broadcast_div(b),
            BinaryOp::Maximum => a.broadcast_maximum(b),
            BinaryOp::Minimum => a.broadcast_minimum(b),
        }
    }

    fn compare_op(a: &Tensor, b: &Tensor, op: CompareOp) -> candle_core::Result<Tensor> {
        let m = match op {
            CompareOp::Eq => a.broadcast_eq(b)?,
            CompareOp::Ne => a.broadcast_ne(b)?,
            CompareOp::Lt => a.broadcast_lt(b)?,
            CompareOp::Le => a.broadcast_le(b)?,
            CompareOp::Gt => a.broadcast_gt(b)?,
            CompareOp::Ge => a.broadcast_ge(b)?,
        };
        m.to_dtype(DType::F32)
    }

    fn check_dim(t: &Tensor, dim: u32) -> Result<usize, Error> {
        let d = dim as usize;
        if d >= t.rank() {
            return Err(Error::InvalidArgument(format!(
                "dimension {dim} is out of range for a tensor of shape {:?}",
                t.dims()
            )));
        }
        Ok(d)
    }

    /// Sorts along `dim` (moved to the last position and back).
    fn sort_along(
        t: &Tensor,
        dim: usize,
        descending: bool,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let last = t.rank() - 1;
        let moved = if dim == last {
            t.contiguous()?
        } else {
            t.transpose(dim, last)?.contiguous()?
        };
        let idx = moved.arg_sort_last_dim(!descending)?;
        let values = moved.gather(&idx, last)?;
        let back = |x: Tensor| -> candle_core::Result<Tensor> {
            if dim == last {
                Ok(x)
            } else {
                x.transpose(dim, last)?.contiguous()
            }
        };
        Ok((back(values)?, back(idx.to_dtype(DType::F32)?)?))
    }

    /// Why `t` cannot be sorted along `dim`, if it cannot: NaN has no place
    /// in an order (candle's sort would panic on it).
    fn check_sortable(t: &Tensor) -> Result<(), Error> {
        let nan = t
            .ne(t)
            .and_then(|m| m.to_dtype(DType::F32))
            .and_then(|m| m.sum_all())
            .and_then(|s| s.to_scalar::<f32>())
            .map_err(invalid)?;
        if nan > 0.0 {
            return Err(Error::Numerical(format!(
                "cannot sort a tensor holding {nan} NaN values"
            )));
        }
        Ok(())
    }

    /// The flattened tensor sorted ascending.
    fn sorted_flat(t: &Tensor) -> candle_core::Result<Tensor> {
        let flat = t.flatten_all()?.contiguous()?;
        let idx = flat.arg_sort_last_dim(true)?;
        flat.gather(&idx, 0)
    }
}

impl types::Host for PluginState {}

impl types::HostTensor for PluginState {
    fn from_data(&mut self, shape: Vec<u32>, data: Vec<f32>) -> Call<Handle> {
        let shape = dims(&shape);
        if let Err(e) = self.check_size(&shape) {
            return Ok(Err(e));
        }
        self.charge_op("a tensor from data", data.len() as u64)?;
        if elements(&shape) != Some(data.len() as u64) {
            return Ok(Err(Error::InvalidArgument(format!(
                "shape {shape:?} needs {} values but {} were given",
                elements(&shape).unwrap_or(0),
                data.len()
            ))));
        }
        let device = self.device();
        self.finish(Tensor::from_vec(data, shape, &device))
    }

    fn full(&mut self, shape: Vec<u32>, value: f32) -> Call<Handle> {
        let shape = dims(&shape);
        if let Err(e) = self.check_size(&shape) {
            return Ok(Err(e));
        }
        self.charge_op("a filled tensor", elements(&shape).unwrap_or(u64::MAX))?;
        let device = self.device();
        self.finish(Tensor::full(value, shape, &device))
    }

    fn concat(&mut self, parts: Vec<Handle>, dim: u32) -> Call<Handle> {
        if parts.len() > self.limits.max_tensors as usize {
            return Ok(Err(Error::LimitExceeded(format!(
                "concat of {} parts; at most {} (the tensor handle cap)",
                parts.len(),
                self.limits.max_tensors
            ))));
        }
        let mut tensors = Vec::with_capacity(parts.len());
        for p in &parts {
            tensors.push(self.tensor(p)?);
        }
        if tensors.is_empty() {
            return Ok(Err(Error::InvalidArgument(
                "concat needs at least one tensor".into(),
            )));
        }
        let total: u64 = tensors.iter().map(|t| t.elem_count() as u64).sum();
        if total > self.limits.max_tensor_elements {
            return Ok(Err(Error::LimitExceeded(format!(
                "the joined tensor would have {total} elements, above the {} allowed",
                self.limits.max_tensor_elements
            ))));
        }
        self.charge_op("a concat", total)?;
        self.finish(Tensor::cat(&tensors, dim as usize))
    }

    fn shape(&mut self, this: Handle) -> wasmtime::Result<Vec<u32>> {
        let t = self.tensor(&this)?;
        Ok(t.dims().iter().map(|&d| d as u32).collect())
    }

    fn numel(&mut self, this: Handle) -> wasmtime::Result<u64> {
        Ok(self.tensor(&this)?.elem_count() as u64)
    }

    fn to_vec(&mut self, this: Handle) -> Call<Vec<f32>> {
        let t = self.tensor(&this)?;
        if t.elem_count() as u64 > self.limits.max_copy_elements {
            return Ok(Err(Error::LimitExceeded(format!(
                "copying {} elements out exceeds the cap of {}; reduce on the host first",
                t.elem_count(),
                self.limits.max_copy_elements
            ))));
        }
        self.charge_op("a copy out", t.elem_count() as u64)?;
        Ok(t.flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(invalid))
    }

    fn item(&mut self, this: Handle) -> Call<f32> {
        let t = self.tensor(&this)?;
        if t.elem_count() != 1 {
            return Ok(Err(Error::InvalidArgument(format!(
                "item needs a tensor with one element, not shape {:?}",
                t.dims()
            ))));
        }
        Ok(t.flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map(|v| v[0])
            .map_err(invalid))
    }

    fn unary(&mut self, this: Handle, op: UnaryOp) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("an element-wise operation", t.elem_count() as u64)?;
        self.finish(Self::unary_op(&t, op))
    }

    fn binary(&mut self, this: Handle, op: BinaryOp, other: Handle) -> Call<Handle> {
        match self.broadcast_pair(&this, &other)? {
            Ok((a, b)) => self.finish(Self::binary_op(&a, &b, op)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn binary_scalar(&mut self, this: Handle, op: BinaryOp, value: f32) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("an element-wise operation", t.elem_count() as u64)?;
        let s = Tensor::new(value, t.device()).and_then(|s| s.to_dtype(t.dtype()));
        self.finish(s.and_then(|s| Self::binary_op(&t, &s, op)))
    }

    fn powf(&mut self, this: Handle, exponent: f32) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("an element-wise operation", t.elem_count() as u64)?;
        self.finish(t.powf(f64::from(exponent)))
    }

    fn clamp(&mut self, this: Handle, low: f32, high: f32) -> Call<Handle> {
        if low.is_nan() || high.is_nan() || low > high {
            return Ok(Err(Error::InvalidArgument(format!(
                "clamp needs low ≤ high, got [{low}, {high}]"
            ))));
        }
        let t = self.tensor(&this)?;
        self.charge_op("an element-wise operation", t.elem_count() as u64)?;
        self.finish(t.clamp(low, high))
    }

    fn compare(&mut self, this: Handle, op: CompareOp, other: Handle) -> Call<Handle> {
        match self.broadcast_pair(&this, &other)? {
            Ok((a, b)) => self.finish(Self::compare_op(&a, &b, op)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn compare_scalar(&mut self, this: Handle, op: CompareOp, value: f32) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("an element-wise operation", t.elem_count() as u64)?;
        let s = Tensor::new(value, t.device()).and_then(|s| s.to_dtype(t.dtype()));
        self.finish(s.and_then(|s| Self::compare_op(&t, &s, op)))
    }

    fn where_else(&mut self, this: Handle, on_true: Handle, on_false: Handle) -> Call<Handle> {
        let (m, a, b) = (
            self.tensor(&this)?,
            self.tensor(&on_true)?,
            self.tensor(&on_false)?,
        );
        if m.dims() != a.dims() || m.dims() != b.dims() {
            return Ok(Err(Error::InvalidArgument(format!(
                "where-else needs equal shapes, got mask {:?}, on-true {:?}, on-false {:?}",
                m.dims(),
                a.dims(),
                b.dims()
            ))));
        }
        self.charge_op("an element-wise operation", m.elem_count() as u64)?;
        self.finish(m.ne(0f32).and_then(|c| c.where_cond(&a, &b)))
    }

    fn matmul(&mut self, this: Handle, other: Handle) -> Call<Handle> {
        let (a, b) = (self.tensor(&this)?, self.tensor(&other)?);
        let (ad, bd) = (a.dims(), b.dims());
        if ad.len() < 2 || bd.len() < 2 || ad[ad.len() - 1] != bd[bd.len() - 2] {
            return Ok(Err(Error::InvalidArgument(format!(
                "matmul needs [.., m, k] × [.., k, n], got {ad:?} × {bd:?}"
            ))));
        }
        let batch = match broadcast(&ad[..ad.len() - 2], &bd[..bd.len() - 2]) {
            Some(b) => b,
            None => {
                return Ok(Err(Error::InvalidArgument(format!(
                    "matmul batch dimensions of {ad:?} and {bd:?} do not broadcast"
                ))))
            }
        };
        // Broadcasting copies each operand to the full batch first: those
        // copies must fit the limit as well as the result.
        let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
        for tail in [[m, n], [m, k], [k, n]] {
            let mut shape = batch.clone();
            shape.extend(tail);
            if let Err(e) = self.check_size(&shape) {
                return Ok(Err(e));
            }
        }
        // Charged by its multiply-adds before it starts: one large product
        // costs what it costs, whatever its fuel.
        let mut product = batch.clone();
        product.extend([m, k, n]);
        let work = elements(&product).unwrap_or(u64::MAX);
        self.charge_op(&format!("a matmul of {ad:?} × {bd:?}"), work)?;
        self.finish(a.contiguous().and_then(|a| {
            let b = b.contiguous()?;
            if ad.len() == 2 && bd.len() == 2 {
                a.matmul(&b)
            } else {
                a.broadcast_matmul(&b)
            }
        }))
    }

    fn transpose(&mut self, this: Handle, dim0: u32, dim1: u32) -> Call<Handle> {
        let t = self.tensor(&this)?;
        if let Err(e) = Self::check_dim(&t, dim0).and(Self::check_dim(&t, dim1)) {
            return Ok(Err(e));
        }
        self.charge_op("a transpose", t.elem_count() as u64)?;
        self.finish(
            t.transpose(dim0 as usize, dim1 as usize)
                .and_then(|x| x.contiguous()),
        )
    }

    fn reshape(&mut self, this: Handle, shape: Vec<u32>) -> Call<Handle> {
        let t = self.tensor(&this)?;
        let shape = dims(&shape);
        if elements(&shape) != Some(t.elem_count() as u64) {
            return Ok(Err(Error::InvalidArgument(format!(
                "cannot reshape {:?} ({} elements) to {shape:?}",
                t.dims(),
                t.elem_count()
            ))));
        }
        self.charge_op("a reshape", t.elem_count() as u64)?;
        self.finish(t.reshape(shape))
    }

    fn narrow(&mut self, this: Handle, dim: u32, start: u32, len: u32) -> Call<Handle> {
        let t = self.tensor(&this)?;
        let d = match Self::check_dim(&t, dim) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if start as u64 + len as u64 > t.dims()[d] as u64 {
            return Ok(Err(Error::InvalidArgument(format!(
                "narrow [{start}, {}) is out of range for dimension {dim} of size {}",
                start as u64 + len as u64,
                t.dims()[d]
            ))));
        }
        self.charge_op("a narrow", u64::from(len))?;
        self.finish(
            t.narrow(d, start as usize, len as usize)
                .and_then(|x| x.contiguous()),
        )
    }

    fn index_select(&mut self, this: Handle, dim: u32, indices: Vec<u32>) -> Call<Handle> {
        let t = self.tensor(&this)?;
        let d = match Self::check_dim(&t, dim) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(bad) = indices.iter().find(|&&i| i as usize >= t.dims()[d]) {
            return Ok(Err(Error::InvalidArgument(format!(
                "index {bad} is out of range for dimension {dim} of size {}",
                t.dims()[d]
            ))));
        }
        let mut out = t.dims().to_vec();
        out[d] = indices.len();
        if let Err(e) = self.check_size(&out) {
            return Ok(Err(e));
        }
        self.charge_op("an index-select", elements(&out).unwrap_or(u64::MAX))?;
        let n = indices.len();
        self.finish(
            Tensor::from_vec(indices, n, t.device()).and_then(|idx| t.index_select(&idx, d)),
        )
    }

    fn reduce(
        &mut self,
        this: Handle,
        op: ReduceOp,
        dims_: Vec<u32>,
        keep_dims: bool,
    ) -> Call<Handle> {
        let t = self.tensor(&this)?;
        let mut ds = Vec::with_capacity(dims_.len());
        for &d in &dims_ {
            match Self::check_dim(&t, d) {
                Ok(d) if !ds.contains(&d) => ds.push(d),
                Ok(_) => {
                    return Ok(Err(Error::InvalidArgument(format!(
                        "dimension {d} is listed twice"
                    ))))
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        if ds.is_empty() {
            return Ok(Err(Error::InvalidArgument(
                "reduce needs at least one dimension".into(),
            )));
        }
        ds.sort_unstable();
        self.charge_op("a reduction", t.elem_count() as u64)?;
        let r = (|| -> candle_core::Result<Tensor> {
            let mut x = match op {
                ReduceOp::Sum => t.sum_keepdim(ds.clone())?,
                ReduceOp::Mean => t.mean_keepdim(ds.clone())?,
                ReduceOp::Max | ReduceOp::Min => {
                    let mut x = t.clone();
                    for &d in &ds {
                        x = if op == ReduceOp::Max {
                            x.max_keepdim(d)?
                        } else {
                            x.min_keepdim(d)?
                        };
                    }
                    x
                }
            };
            if !keep_dims {
                for &d in ds.iter().rev() {
                    x = x.squeeze(d)?;
                }
            }
            Ok(x)
        })();
        self.finish(r)
    }

    fn sort(&mut self, this: Handle, dim: u32, descending: bool) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("a sort", sort_work(t.elem_count() as u64))?;
        let d = match Self::check_dim(&t, dim).and_then(|d| Self::check_sortable(&t).map(|_| d)) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if t.elem_count() == 0 {
            return self.finish(Ok(t));
        }
        self.finish(Self::sort_along(&t, d, descending).map(|(v, _)| v))
    }

    fn argsort(&mut self, this: Handle, dim: u32, descending: bool) -> Call<Handle> {
        let t = self.tensor(&this)?;
        self.charge_op("a sort", sort_work(t.elem_count() as u64))?;
        let d = match Self::check_dim(&t, dim).and_then(|d| Self::check_sortable(&t).map(|_| d)) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if t.elem_count() == 0 {
            return self.finish(Ok(t));
        }
        self.finish(Self::sort_along(&t, d, descending).map(|(_, i)| i))
    }

    fn top_k(&mut self, this: Handle, k: u32, largest: bool) -> Call<(Vec<f32>, Vec<u32>)> {
        let t = self.tensor(&this)?;
        self.charge_op("a top-k", sort_work(t.elem_count() as u64))?;
        if k as usize > t.elem_count() {
            return Ok(Err(Error::InvalidArgument(format!(
                "top-k of {k} from a tensor of {} elements",
                t.elem_count()
            ))));
        }
        if u64::from(k) > self.limits.max_copy_elements {
            return Ok(Err(Error::LimitExceeded(format!(
                "top-k of {k} exceeds the copy-out cap of {}",
                self.limits.max_copy_elements
            ))));
        }
        if let Err(e) = Self::check_sortable(&t) {
            return Ok(Err(e));
        }
        if k == 0 {
            return Ok(Ok((Vec::new(), Vec::new())));
        }
        let r = (|| -> candle_core::Result<(Vec<f32>, Vec<u32>)> {
            let flat = t.flatten_all()?.contiguous()?;
            let idx = flat.arg_sort_last_dim(!largest)?.narrow(0, 0, k as usize)?;
            let values = flat.gather(&idx, 0)?;
            Ok((values.to_vec1::<f32>()?, idx.to_vec1::<u32>()?))
        })();
        Ok(r.map_err(invalid))
    }

    fn quantile(&mut self, this: Handle, q: f64) -> Call<f32> {
        let t = self.tensor(&this)?;
        self.charge_op("a quantile", sort_work(t.elem_count() as u64))?;
        if !(0.0..=1.0).contains(&q) {
            return Ok(Err(Error::InvalidArgument(format!(
                "quantile needs 0 ≤ q ≤ 1, got {q}"
            ))));
        }
        let n = t.elem_count();
        if n == 0 {
            return Ok(Err(Error::InvalidArgument(
                "quantile of an empty tensor".into(),
            )));
        }
        if let Err(e) = Self::check_sortable(&t) {
            return Ok(Err(e));
        }
        let r = (|| -> candle_core::Result<f32> {
            let sorted = Self::sorted_flat(&t)?;
            let pos = q * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let pair = sorted.narrow(0, lo, hi - lo + 1)?.to_vec1::<f32>()?;
            let frac = (pos - lo as f64) as f32;
            let a = pair[0];
            let b = *pair.last().unwrap_or(&a);
            Ok(a + (b - a) * frac)
        })();
        Ok(r.map_err(invalid))
    }

    fn drop(&mut self, rep: Handle) -> wasmtime::Result<()> {
        self.drop_tensor(rep)
    }
}
