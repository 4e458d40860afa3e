//! 2-D convolution (NCHW) forward, input gradient and weight gradient.
//!
//! General convolutions lower each sample and group to one matrix product:
//! the input patches are unfolded into a `K × P` matrix (im2col; `K = C/g·kh·kw`,
//! `P = OH·OW`) and multiplied by the `O/g × K` weight. Pointwise (1×1,
//! stride 1, no padding) convolutions skip the unfolding. Depthwise
//! convolutions (one filter per channel) run as direct loops, which beat a
//! product of one-row matrices. Work is spread over samples when there are
//! enough of them, otherwise inside the matrix kernel.

use super::{ranges, threads, Element};
use gemm::Parallelism;
use rayon::prelude::*;

/// Sizes and hyper-parameters of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height and width.
    pub k: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding (rows, columns).
    pub padding: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl ConvGeometry {
    /// Output height.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.padding[0] - self.k[0]) / self.stride[0] + 1
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.padding[1] - self.k[1]) / self.stride[1] + 1
    }
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the unfolded patch matrix per group.
    fn kdim(&self) -> usize {
        self.cg() * self.k[0] * self.k[1]
    }
    fn p(&self) -> usize {
        self.oh() * self.ow()
    }
    fn pointwise(&self) -> bool {
        self.k == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
    /// One filter per channel.
    pub fn depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.c && self.c == self.o
    }
    /// Elements of the input, weight and output.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.n * self.c * self.h * self.w,
            self.o * self.kdim(),
            self.n * self.o * self.p(),
        )
    }
    /// Checks that the geometry describes a valid convolution.
    pub fn check(&self) -> Result<(), String> {
        let ok = self.groups > 0
            && self.c % self.groups == 0
            && self.o % self.groups == 0
            && self.stride[0] > 0
            && self.stride[1] > 0
            && self.h + 2 * self.padding[0] >= self.k[0]
            && self.w + 2 * self.padding[1] >= self.k[1];
        if ok {
            Ok(())
        } else {
            Err(format!("invalid convolution geometry {self:?}"))
        }
    }
}

/// Whether the output has the input's size with stride 1 ("same"
/// padding), where each patch row is the input plane shifted by a constant
/// offset and can be moved as one block.
fn same_size(s: &ConvGeometry) -> bool {
    s.stride == [1, 1] && s.oh() == s.h && s.ow() == s.w
}

/// For a same-size convolution and kernel offset `(ky, kx)`: the output rows
/// `a..b` that read inside the input, the flat shift from output to input
/// index, and the output columns `c0..c1` that read inside the input.
fn shift_block(s: &ConvGeometry, ky: usize, kx: usize) -> (usize, usize, isize, usize, usize) {
    let dy = ky as isize - s.padding[0] as isize;
    let dx = kx as isize - s.padding[1] as isize;
    let (h, w) = (s.h as isize, s.w as isize);
    let a = (-dy).clamp(0, h) as usize;
    let b = (h - dy).clamp(0, h) as usize;
    let c0 = (-dx).clamp(0, w) as usize;
    let c1 = (w - dx).clamp(0, w) as usize;
    (a, b.max(a), dy * w + dx, c0, c1.max(c0))
}

/// Zeroes a slice; most padding bands are empty, and skipping the call for
/// those saves a million `memset` calls per training step.
#[inline]
fn zero<T: Element>(s: &mut [T]) {
    if !s.is_empty() {
        s.fill(T::zero());
    }
}

/// Zeroes columns `..c0` and `c1..` of every `w`-wide row of `band` (at most
/// a few elements per row, so plain stores beat a `fill` call each).
#[inline]
fn zero_borders<T: Element>(band: &mut [T], w: usize, c0: usize, c1: usize) {
    if c0 == 0 && c1 == w {
        return;
    }
    for r in band.chunks_exact_mut(w) {
        for v in &mut r[..c0] {
            *v = T::zero();
        }
        for v in &mut r[c1..] {
            *v = T::zero();
        }
    }
}

/// im2col for same-size convolutions: one block copy per patch row, then the
/// few positions that fall into the padding are zeroed.
fn im2col_same<T: Element>(x: &[T], s: &ConvGeometry, g: usize, col: &mut [T]) {
    let (w, plane) = (s.w, s.h * s.w);
    for ci in 0..s.cg() {
        let src = &x[(g * s.cg() + ci) * plane..][..plane];
        for ky in 0..s.k[0] {
            for kx in 0..s.k[1] {
                let row = &mut col[((ci * s.k[0] + ky) * s.k[1] + kx) * plane..][..plane];
                let (a, b, shift, c0, c1) = shift_block(s, ky, kx);
                zero(&mut row[..a * w]);
                zero(&mut row[b * w..]);
                if a < b {
                    // Copy the whole band, clipped to the plane; positions that
                    // wrapped across a row edge are zeroed below.
                    let lo = ((a * w) as isize + shift).max(0) as usize;
                    let hi = (((b * w) as isize + shift) as usize).min(plane);
                    let dst_lo = (lo as isize - shift) as usize;
                    row[dst_lo..dst_lo + (hi - lo)].copy_from_slice(&src[lo..hi]);
                    zero(&mut row[a * w..dst_lo]);
                    let end = dst_lo + (hi - lo);
                    zero(&mut row[end..b * w]);
                    zero_borders(&mut row[a * w..b * w], w, c0, c1);
                }
            }
        }
    }
}

/// Unfolds group `g` of one sample into `col` (`K × P`, row-major).
fn im2col<T: Element>(x: &[T], s: &ConvGeometry, g: usize, col: &mut [T]) {
    if same_size(s) {
        return im2col_same(x, s, g, col);
    }
    let (oh, ow, p) = (s.oh(), s.ow(), s.p());
    let plane = s.h * s.w;
    for ci in 0..s.cg() {
        let src = &x[(g * s.cg() + ci) * plane..][..plane];
        for ky in 0..s.k[0] {
            for kx in 0..s.k[1] {
                let row = &mut col[((ci * s.k[0] + ky) * s.k[1] + kx) * p..][..p];
                for oy in 0..oh {
                    let iy = (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                    let dst = &mut row[oy * ow..][..ow];
                    if iy < 0 || iy >= s.h as isize {
                        zero(dst);
                        continue;
                    }
                    let src_row = &src[iy as usize * s.w..][..s.w];
                    gather_row(src_row, dst, kx, s.stride[1], s.padding[1]);
                }
            }
        }
    }
}

/// `dst[ox] = src[ox·stride + kx − pad]`, zero outside the row.
#[inline]
fn gather_row<T: Element>(src: &[T], dst: &mut [T], kx: usize, stride: usize, pad: usize) {
    let w = src.len() as isize;
    let (lo, hi) = valid_span(dst.len(), w, kx, stride, pad);
    zero(&mut dst[..lo]);
    zero(&mut dst[hi..]);
    if stride == 1 {
        let start = (lo + kx) as isize - pad as isize;
        dst[lo..hi].copy_from_slice(&src[start as usize..start as usize + (hi - lo)]);
    } else {
        for (ox, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
            *d = src[ox * stride + kx - pad];
        }
    }
}

/// The output positions `lo..hi` whose input `ox·stride + kx − pad` lies in
/// `0..w`.
#[inline]
fn valid_span(n_out: usize, w: isize, kx: usize, stride: usize, pad: usize) -> (usize, usize) {
    let s = stride as isize;
    let off = kx as isize - pad as isize;
    // smallest ox with ox*s + off >= 0
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    // largest ox with ox*s + off <= w-1, plus one
    let hi = if w - 1 - off < 0 {
        0
    } else {
        (w - 1 - off) / s + 1
    };
    let lo = (lo as usize).min(n_out);
    (lo, (hi as usize).clamp(lo, n_out))
}

/// col2im for same-size convolutions: the padding positions of each patch
/// row are zeroed in the scratch matrix, then the row is added as one block.
fn col2im_add_same<T: Element>(col: &mut [T], s: &ConvGeometry, g: usize, dx: &mut [T]) {
    let (w, plane) = (s.w, s.h * s.w);
    for ci in 0..s.cg() {
        let dst = &mut dx[(g * s.cg() + ci) * plane..][..plane];
        for ky in 0..s.k[0] {
            for kx in 0..s.k[1] {
                let row = &mut col[((ci * s.k[0] + ky) * s.k[1] + kx) * plane..][..plane];
                let (a, b, shift, c0, c1) = shift_block(s, ky, kx);
                if a >= b {
                    continue;
                }
                zero_borders(&mut row[a * w..b * w], w, c0, c1);
                let lo = ((a * w) as isize + shift).max(0) as usize;
                let hi = (((b * w) as isize + shift) as usize).min(plane);
                let src_lo = (lo as isize - shift) as usize;
                for (d, &v) in dst[lo..hi].iter_mut().zip(&row[src_lo..src_lo + (hi - lo)]) {
                    *d += v;
                }
            }
        }
    }
}

/// Adds the unfolded gradient `col` (`K × P`) back into group `g` of one
/// sample's input gradient (col2im). `col` is scratch and may be changed.
fn col2im_add<T: Element>(col: &mut [T], s: &ConvGeometry, g: usize, dx: &mut [T]) {
    if same_size(s) {
        return col2im_add_same(col, s, g, dx);
    }
    let (oh, ow, p) = (s.oh(), s.ow(), s.p());
    let plane = s.h * s.w;
    for ci in 0..s.cg() {
        let dst = &mut dx[(g * s.cg() + ci) * plane..][..plane];
        for ky in 0..s.k[0] {
            for kx in 0..s.k[1] {
                let row = &col[((ci * s.k[0] + ky) * s.k[1] + kx) * p..][..p];
                let (lo, hi) = valid_span(ow, s.w as isize, kx, s.stride[1], s.padding[1]);
                for oy in 0..oh {
                    let iy = (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                    if iy < 0 || iy >= s.h as isize {
                        continue;
                    }
                    let drow = &mut dst[iy as usize * s.w..][..s.w];
                    let srow = &row[oy * ow..][..ow];
                    if s.stride[1] == 1 {
                        let start = lo + kx - s.padding[1];
                        for (d, &v) in drow[start..start + (hi - lo)].iter_mut().zip(&srow[lo..hi])
                        {
                            *d += v;
                        }
                    } else {
                        for ox in lo..hi {
                            drow[ox * s.stride[1] + kx - s.padding[1]] += srow[ox];
                        }
                    }
                }
            }
        }
    }
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, with explicit strides
/// (row stride, column stride) for each operand.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: &[T],
    lhs_strides: (usize, usize),
    rhs: &[T],
    rhs_strides: (usize, usize),
    par: Parallelism,
) {
    let reach = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(
        dst.len() >= reach(m, n, dst_strides),
        "gemm destination too small"
    );
    assert!(
        lhs.len() >= reach(m, k, lhs_strides),
        "gemm left operand too small"
    );
    assert!(
        rhs.len() >= reach(k, n, rhs_strides),
        "gemm right operand too small"
    );
    // SAFETY: the asserts above guarantee that every element the strides
    // address lies inside its slice; `dst` is exclusively borrowed and does not
    // alias `lhs` or `rhs` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.1 as isize,
            dst_strides.0 as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// Pointwise convolutions on small maps (at most 16 positions, as at the end
/// of a MobileNet) run as one matrix product over the whole batch per
/// position (`(N × C) · Wᵀ`), rather than N skinny products per sample.
fn vector_like(s: &ConvGeometry) -> bool {
    s.pointwise() && s.p() <= 16 && s.groups == 1 && s.n > 1
}

fn all_threads() -> Parallelism {
    match threads() {
        1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    }
}

/// How to spread a batch over the threads: over samples when there are at
/// least as many samples as threads, else inside each matrix product.
fn plan(n: usize) -> (bool, Parallelism) {
    let t = threads();
    if t > 1 && n >= t {
        (true, Parallelism::None)
    } else if t > 1 {
        (false, Parallelism::Rayon(t))
    } else {
        (false, Parallelism::None)
    }
}

/// Forward convolution: `x` (N·C·H·W), `w` (O·C/g·kh·kw) → output (N·O·OH·OW).
pub fn forward<T: Element>(x: &[T], w: &[T], s: &ConvGeometry) -> Vec<T> {
    forward_with(x, w, s, None, false)
}

/// Adds a per-channel bias and applies ReLU to one sample's output planes.
fn epilogue<T: Element>(out: &mut [T], p: usize, bias: Option<&[T]>, relu: bool) {
    if bias.is_none() && !relu {
        return;
    }
    for (o, plane) in out.chunks_mut(p).enumerate() {
        let b = bias.map_or(T::zero(), |b| b[o]);
        for v in plane.iter_mut() {
            let t = *v + b;
            *v = if relu && t < T::zero() { T::zero() } else { t };
        }
    }
}

/// Forward convolution with a fused epilogue: a per-output-channel `bias`
/// and a ReLU, applied to each sample while it is still in cache (used for
/// inference, where batch norm is folded into the weights).
pub fn forward_with<T: Element>(
    x: &[T],
    w: &[T],
    s: &ConvGeometry,
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let (_, _, out_len) = s.sizes();
    let mut out = vec![T::zero(); out_len];
    if s.depthwise() {
        depthwise_forward(x, w, s, &mut out);
        out.par_chunks_mut(s.o * s.p())
            .for_each(|o| epilogue(o, s.p(), bias, relu));
        return out;
    }
    if vector_like(s) {
        // For each position p: out[:, :, p] (N × O) = x[:, :, p] (N × C) · Wᵀ.
        let p = s.p();
        for i in 0..p {
            let (dst, lhs) = (&mut out[i..], &x[i..]);
            matmul(
                s.n,
                s.o,
                s.c,
                dst,
                (s.o * p, p),
                false,
                lhs,
                (s.c * p, p),
                w,
                (1, s.c),
                all_threads(),
            );
        }
        out.par_chunks_mut(s.o * p)
            .for_each(|o| epilogue(o, p, bias, relu));
        return out;
    }
    let (xs, os) = (s.c * s.h * s.w, s.o * s.p());
    let (by_sample, par) = plan(s.n);
    let one = |x: &[T], out: &mut [T], col: &mut Vec<T>| {
        for g in 0..s.groups {
            let rhs: &[T] = if s.pointwise() {
                &x[g * s.cg() * s.p()..][..s.cg() * s.p()]
            } else {
                col.resize(s.kdim() * s.p(), T::zero());
                im2col(x, s, g, col);
                col
            };
            matmul(
                s.og(),
                s.p(),
                s.kdim(),
                &mut out[g * s.og() * s.p()..],
                (s.p(), 1),
                false,
                &w[g * s.og() * s.kdim()..],
                (s.kdim(), 1),
                rhs,
                (s.p(), 1),
                par,
            );
        }
        epilogue(out, s.p(), bias, relu);
    };
    if by_sample {
        out.par_chunks_mut(os)
            .zip(x.par_chunks(xs))
            .for_each_init(Vec::new, |col, (o, x)| one(x, o, col));
    } else {
        let mut col = Vec::new();
        for (o, x) in out.chunks_mut(os).zip(x.chunks(xs)) {
            one(x, o, &mut col);
        }
    }
    out
}

/// A stride-1, ungrouped, non-pointwise convolution's input gradient is
/// itself a convolution: of `dy` with the weight flipped in space and with
/// input and output channels swapped, padded by `k − 1 − p`. That product
/// has the well-shaped `C × (O·kh·kw)` form of a forward pass and needs no
/// col2im, so it beats unfolding `Wᵀ·dy`.
fn as_forward_conv<T: Element>(w: &[T], s: &ConvGeometry) -> Option<(Vec<T>, ConvGeometry)> {
    let [kh, kw] = s.k;
    if s.stride != [1, 1]
        || s.groups != 1
        || s.pointwise()
        || s.padding[0] >= kh
        || s.padding[1] >= kw
    {
        return None;
    }
    let mut flipped = vec![T::zero(); w.len()];
    for o in 0..s.o {
        for c in 0..s.c {
            for ky in 0..kh {
                for kx in 0..kw {
                    flipped[((c * s.o + o) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)] =
                        w[((o * s.c + c) * kh + ky) * kw + kx];
                }
            }
        }
    }
    let g = ConvGeometry {
        n: s.n,
        c: s.o,
        h: s.oh(),
        w: s.ow(),
        o: s.c,
        k: s.k,
        stride: [1, 1],
        padding: [kh - 1 - s.padding[0], kw - 1 - s.padding[1]],
        groups: 1,
    };
    Some((flipped, g))
}

/// Input gradient: `dy` (N·O·OH·OW), `w` → `dx` (N·C·H·W).
pub fn backward_input<T: Element>(dy: &[T], w: &[T], s: &ConvGeometry) -> Vec<T> {
    if let Some((flipped, g)) = as_forward_conv(w, s) {
        return forward(dy, &flipped, &g);
    }
    let (in_len, _, _) = s.sizes();
    let mut dx = vec![T::zero(); in_len];
    if s.depthwise() {
        depthwise_backward_input(dy, w, s, &mut dx);
        return dx;
    }
    if vector_like(s) {
        // For each position p: dx[:, :, p] (N × C) = dy[:, :, p] (N × O) · W.
        let p = s.p();
        for i in 0..p {
            let (dst, lhs) = (&mut dx[i..], &dy[i..]);
            matmul(
                s.n,
                s.c,
                s.o,
                dst,
                (s.c * p, p),
                false,
                lhs,
                (s.o * p, p),
                w,
                (s.c, 1),
                all_threads(),
            );
        }
        return dx;
    }
    let (xs, os) = (s.c * s.h * s.w, s.o * s.p());
    let (by_sample, par) = plan(s.n);
    let one = |dy: &[T], dx: &mut [T], col: &mut Vec<T>| {
        for g in 0..s.groups {
            let lhs = &w[g * s.og() * s.kdim()..];
            let rhs = &dy[g * s.og() * s.p()..];
            // dcol (K × P) = Wᵀ (K × O/g, row stride 1, column stride K) · dY_g;
            // a pointwise convolution writes it straight into dx.
            let pointwise = s.pointwise();
            let dst: &mut [T] = if pointwise {
                &mut dx[g * s.cg() * s.p()..]
            } else {
                col.resize(s.kdim() * s.p(), T::zero());
                col
            };
            matmul(
                s.kdim(),
                s.p(),
                s.og(),
                dst,
                (s.p(), 1),
                false,
                lhs,
                (1, s.kdim()),
                rhs,
                (s.p(), 1),
                par,
            );
            if !pointwise {
                col2im_add(col, s, g, dx);
            }
        }
    };
    if by_sample {
        dx.par_chunks_mut(xs)
            .zip(dy.par_chunks(os))
            .for_each_init(Vec::new, |col, (dx, dy)| one(dy, dx, col));
    } else {
        let mut col = Vec::new();
        for (dx, dy) in dx.chunks_mut(xs).zip(dy.chunks(os)) {
            one(dy, dx, &mut col);
        }
    }
    dx
}

/// Weight gradient: `x`, `dy` → `dw` (O·C/g·kh·kw), summed over the batch.
pub fn backward_weight<T: Element>(x: &[T], dy: &[T], s: &ConvGeometry) -> Vec<T> {
    let (_, w_len, _) = s.sizes();
    if s.depthwise() {
        let mut dw = vec![T::zero(); w_len];
        depthwise_backward_weight(x, dy, s, &mut dw);
        return dw;
    }
    if vector_like(s) {
        // dW (O × C) = Σ_p dy[:, :, p]ᵀ (O × N) · x[:, :, p] (N × C)
        let p = s.p();
        let mut dw = vec![T::zero(); w_len];
        for i in 0..p {
            let (lhs, rhs) = (&dy[i..], &x[i..]);
            matmul(
                s.o,
                s.c,
                s.n,
                &mut dw,
                (s.c, 1),
                i > 0,
                lhs,
                (p, s.o * p),
                rhs,
                (s.c * p, p),
                all_threads(),
            );
        }
        return dw;
    }
    let (xs, os) = (s.c * s.h * s.w, s.o * s.p());
    let (by_sample, par) = plan(s.n);
    let accumulate = |samples: std::ops::Range<usize>, dw: &mut [T]| {
        let mut col = Vec::new();
        for (i, n) in samples.enumerate() {
            let x = &x[n * xs..][..xs];
            let dy = &dy[n * os..][..os];
            for g in 0..s.groups {
                let rhs: &[T] = if s.pointwise() {
                    &x[g * s.cg() * s.p()..][..s.cg() * s.p()]
                } else {
                    col.resize(s.kdim() * s.p(), T::zero());
                    im2col(x, s, g, &mut col);
                    &col
                };
                // dW_gᵀ (K × O/g) += col (K × P) · dY_gᵀ (P × O/g), written
                // straight into dW_g's row-major layout through the
                // destination strides: packing the small transposed dY costs
                // far less than packing the transposed patch matrix.
                matmul(
                    s.kdim(),
                    s.og(),
                    s.p(),
                    &mut dw[g * s.og() * s.kdim()..],
                    (1, s.kdim()),
                    i > 0,
                    rhs,
                    (s.p(), 1),
                    &dy[g * s.og() * s.p()..],
                    (1, s.p()),
                    par,
                );
            }
        }
    };
    if by_sample {
        let parts: Vec<Vec<T>> = ranges(s.n, threads())
            .into_par_iter()
            .map(|r| {
                let mut dw = vec![T::zero(); w_len];
                accumulate(r, &mut dw);
                dw
            })
            .collect();
        let mut it = parts.into_iter();
        let mut dw = it.next().unwrap_or_else(|| vec![T::zero(); w_len]);
        for part in it {
            for (a, b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
        dw
    } else {
        let mut dw = vec![T::zero(); w_len];
        accumulate(0..s.n, &mut dw);
        dw
    }
}

/// Depthwise forward, one output plane per (sample, channel).
fn depthwise_forward<T: Element>(x: &[T], w: &[T], s: &ConvGeometry, out: &mut [T]) {
    let (oh, ow, plane, kk) = (s.oh(), s.ow(), s.h * s.w, s.k[0] * s.k[1]);
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(i, dst)| {
            let c = i % s.c;
            let src = &x[i * plane..][..plane];
            let wc = &w[c * kk..][..kk];
            for ky in 0..s.k[0] {
                for kx in 0..s.k[1] {
                    let wv = wc[ky * s.k[1] + kx];
                    let (lo, hi) = valid_span(ow, s.w as isize, kx, s.stride[1], s.padding[1]);
                    for oy in 0..oh {
                        let iy = (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                        if iy < 0 || iy >= s.h as isize {
                            continue;
                        }
                        let srow = &src[iy as usize * s.w..][..s.w];
                        let drow = &mut dst[oy * ow..][..ow];
                        if s.stride[1] == 1 {
                            let base = kx as isize - s.padding[1] as isize;
                            let sl =
                                &srow[(lo as isize + base) as usize..(hi as isize + base) as usize];
                            for (d, &v) in drow[lo..hi].iter_mut().zip(sl) {
                                *d += wv * v;
                            }
                        } else {
                            for ox in lo..hi {
                                drow[ox] += wv * srow[ox * s.stride[1] + kx - s.padding[1]];
                            }
                        }
                    }
                }
            }
        });
}

/// Depthwise input gradient, one input plane per (sample, channel).
fn depthwise_backward_input<T: Element>(dy: &[T], w: &[T], s: &ConvGeometry, dx: &mut [T]) {
    let (oh, ow, plane, kk) = (s.oh(), s.ow(), s.h * s.w, s.k[0] * s.k[1]);
    dx.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
        let c = i % s.c;
        let src = &dy[i * oh * ow..][..oh * ow];
        let wc = &w[c * kk..][..kk];
        for ky in 0..s.k[0] {
            for kx in 0..s.k[1] {
                let wv = wc[ky * s.k[1] + kx];
                let (lo, hi) = valid_span(ow, s.w as isize, kx, s.stride[1], s.padding[1]);
                for oy in 0..oh {
                    let iy = (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                    if iy < 0 || iy >= s.h as isize {
                        continue;
                    }
                    let drow = &mut dst[iy as usize * s.w..][..s.w];
                    let srow = &src[oy * ow..][..ow];
                    for ox in lo..hi {
                        drow[ox * s.stride[1] + kx - s.padding[1]] += wv * srow[ox];
                    }
                }
            }
        }
    });
}

/// Depthwise weight gradient, one filter per channel, summed over samples.
fn depthwise_backward_weight<T: Element>(x: &[T], dy: &[T], s: &ConvGeometry, dw: &mut [T]) {
    let (oh, ow, plane, kk) = (s.oh(), s.ow(), s.h * s.w, s.k[0] * s.k[1]);
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dst)| {
        for n in 0..s.n {
            let i = n * s.c + c;
            let src = &x[i * plane..][..plane];
            let g = &dy[i * oh * ow..][..oh * ow];
            for ky in 0..s.k[0] {
                for kx in 0..s.k[1] {
                    let (lo, hi) = valid_span(ow, s.w as isize, kx, s.stride[1], s.padding[1]);
                    let mut acc = T::zero();
                    for oy in 0..oh {
                        let iy = (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                        if iy < 0 || iy >= s.h as isize {
                            continue;
                        }
                        let srow = &src[iy as usize * s.w..][..s.w];
                        let grow = &g[oy * ow..][..ow];
                        for ox in lo..hi {
                            acc += grow[ox] * srow[ox * s.stride[1] + kx - s.padding[1]];
                        }
                    }
                    dst[ky * s.k[1] + kx] += acc;
                }
            }
        }
    });
}
