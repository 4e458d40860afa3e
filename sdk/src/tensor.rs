//! Host-owned tensors and shorthands for their operations.
//!
//! A [`Tensor`] is a handle: the data lives in the host, every operation runs
//! there and returns a new handle, and dropping the handle frees the tensor.
//! The host caps how many handles may be live at once (see
//! [`limits`](crate::limits)), so let intermediate results go out of scope.
//!
//! The contract's operations are generic (`unary(op)`, `binary(op, other)`,
//! `compare-scalar(op, value)`, ...); this module adds one method per case so
//! that plugin code reads like arithmetic:
//!
//! ```ignore
//! let kept = w.abs()?.gt_scalar(threshold)?;   // 1.0 where |w| > threshold
//! let pruned = w.mul(&kept)?;
//! let zeros = kept.numel() as f32 - kept.sum_all()?;
//! ```

pub use crate::bindings::types::{BinaryOp, CompareOp, ReduceOp, Tensor, UnaryOp};
use crate::Result;

/// Shorthands for the contract's generic tensor operations.
#[allow(clippy::should_implement_trait)]
impl Tensor {
    /// A tensor of the given shape filled with zeros.
    pub fn zeros(shape: &[u32]) -> Result<Tensor> {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of the given shape filled with ones.
    pub fn ones(shape: &[u32]) -> Result<Tensor> {
        Tensor::full(shape, 1.0)
    }

    /// A one-dimensional tensor holding `data`.
    pub fn from_slice(data: &[f32]) -> Result<Tensor> {
        let len = u32::try_from(data.len())
            .map_err(|_| crate::Error::invalid_argument("more than 2^32 elements"))?;
        Tensor::from_data(&[len], data)
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    // Element-wise functions.

    /// |x|
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// -x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// x²
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqr)
    }
    /// √x
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// eˣ
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// ln x
    pub fn ln(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// max(x, 0)
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// -1, 0 or 1
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }
    /// Rounds half away from zero.
    pub fn round(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Round)
    }
    /// Largest integer ≤ x.
    pub fn floor(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Floor)
    }
    /// Smallest integer ≥ x.
    pub fn ceil(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Ceil)
    }
    /// 1 / x
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }

    // Element-wise functions of two tensors (broadcasting).

    /// self + other
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, other)
    }
    /// self - other
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, other)
    }
    /// self · other (element-wise; see [`Tensor::matmul`] for the matrix product)
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, other)
    }
    /// self / other
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, other)
    }
    /// The element-wise larger of the two.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, other)
    }
    /// The element-wise smaller of the two.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, other)
    }

    // With a scalar.

    /// self + value
    pub fn add_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Add, value)
    }
    /// self - value
    pub fn sub_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Sub, value)
    }
    /// self · value
    pub fn mul_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Mul, value)
    }
    /// self / value
    pub fn div_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Div, value)
    }
    /// max(self, value)
    pub fn maximum_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Maximum, value)
    }
    /// min(self, value)
    pub fn minimum_scalar(&self, value: f32) -> Result<Tensor> {
        self.binary_scalar(BinaryOp::Minimum, value)
    }

    // Comparisons: masks of 1.0 (true) and 0.0.

    /// 1.0 where self == other.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Eq, other)
    }
    /// 1.0 where self != other.
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Ne, other)
    }
    /// 1.0 where self < other.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Lt, other)
    }
    /// 1.0 where self ≤ other.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Le, other)
    }
    /// 1.0 where self > other.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Gt, other)
    }
    /// 1.0 where self ≥ other.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Ge, other)
    }
    /// 1.0 where self == value.
    pub fn eq_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Eq, value)
    }
    /// 1.0 where self != value.
    pub fn ne_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Ne, value)
    }
    /// 1.0 where self < value.
    pub fn lt_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Lt, value)
    }
    /// 1.0 where self ≤ value.
    pub fn le_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Le, value)
    }
    /// 1.0 where self > value.
    pub fn gt_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Gt, value)
    }
    /// 1.0 where self ≥ value.
    pub fn ge_scalar(&self, value: f32) -> Result<Tensor> {
        self.compare_scalar(CompareOp::Ge, value)
    }

    // Reductions.

    /// Sums over `dims`, keeping them as size 1 when `keep_dims`.
    pub fn sum(&self, dims: &[u32], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, dims, keep_dims)
    }
    /// Means over `dims`, keeping them as size 1 when `keep_dims`.
    pub fn mean(&self, dims: &[u32], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, dims, keep_dims)
    }
    /// Maxima over `dims`, keeping them as size 1 when `keep_dims`.
    pub fn max(&self, dims: &[u32], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, dims, keep_dims)
    }
    /// Minima over `dims`, keeping them as size 1 when `keep_dims`.
    pub fn min(&self, dims: &[u32], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, dims, keep_dims)
    }

    /// The sum of all elements (as the host computes it, in float32).
    pub fn sum_all(&self) -> Result<f32> {
        self.reduce_all(ReduceOp::Sum)
    }
    /// The mean of all elements.
    pub fn mean_all(&self) -> Result<f32> {
        self.reduce_all(ReduceOp::Mean)
    }
    /// The largest element.
    pub fn max_all(&self) -> Result<f32> {
        self.reduce_all(ReduceOp::Max)
    }
    /// The smallest element.
    pub fn min_all(&self) -> Result<f32> {
        self.reduce_all(ReduceOp::Min)
    }

    fn reduce_all(&self, op: ReduceOp) -> Result<f32> {
        let dims: Vec<u32> = (0..self.rank() as u32).collect();
        self.reduce(op, &dims, true)?.item()
    }

    // Shapes and selections.

    /// The same data as one dimension of `numel` elements.
    pub fn flatten(&self) -> Result<Tensor> {
        let n = u32::try_from(self.numel())
            .map_err(|_| crate::Error::unsupported("tensor has more than 2^32 elements"))?;
        self.reshape(&[n])
    }

    /// The number of elements that are not zero. Counted by the host as a
    /// float32 sum of a mask, so exact below 2^24 elements.
    pub fn count_nonzero(&self) -> Result<u64> {
        Ok(self.ne_scalar(0.0)?.sum_all()?.round() as u64)
    }

    /// The `k`-th smallest element (1-based: `k = 1` is the minimum) of the
    /// flattened tensor, found by sorting in the host; only the one value
    /// is copied out.
    pub fn kth_smallest(&self, k: u64) -> Result<f32> {
        let n = self.numel();
        if k == 0 || k > n {
            return Err(crate::Error::invalid_argument(format!(
                "kth_smallest: k = {k} is not in [1, {n}]"
            )));
        }
        let sorted = self.flatten()?.sort(0, false)?;
        sorted.narrow(0, (k - 1) as u32, 1)?.item()
    }
}
