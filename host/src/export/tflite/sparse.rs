//! Sparse weights in TFLite's own sparse tensor encoding, so that a sparse
//! model's file really shrinks.
//!
//! A weight with enough zeros is stored compressed: every dimension but the
//! last dense, the last as CSR (per row, where its values start; per value,
//! its column), indices in the narrowest of u8, u16 and i32 that holds them.
//! A `DENSIFY` operator in front of the layer turns it back into the dense
//! tensor once, when the interpreter prepares the model; the arithmetic
//! stays dense. So the file and the download shrink, while latency and the
//! interpreter's memory are those of the dense model (LiteRT's kernels for
//! sparse arithmetic cover only some block patterns of fully connected
//! layers, not convolutions).

use super::lower::{Csr, DType, Lowered, OpDef, OpKind, TensorDef};

fn element_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 => 4,
        DType::I8 => 1,
    }
}

/// Whether a stored value is zero; -0.0 (a masked negative weight) counts,
/// and comes back as +0.0, which computes the same.
fn is_zero(d: DType, v: &[u8]) -> bool {
    match d {
        DType::F32 => f32::from_le_bytes([v[0], v[1], v[2], v[3]]) == 0.0,
        DType::I32 | DType::I8 => v.iter().all(|&b| b == 0),
    }
}

fn index_width(max: usize) -> usize {
    if max <= u8::MAX as usize {
        1
    } else if max <= u16::MAX as usize {
        2
    } else {
        4
    }
}

/// The CSR form of a constant and its stored values, if it is smaller than
/// the dense bytes by more than the cost of the extra operator and tensor.
pub fn encode(t: &TensorDef) -> Option<(Csr, Vec<u8>)> {
    let data = t.data.as_ref()?;
    // Float weights only: LiteRT's XNNPACK cannot prepare an int8 layer
    // whose weights come from DENSIFY.
    if t.dtype != DType::F32 || t.sparse.is_some() || t.shape.len() < 2 {
        return None;
    }
    let size = element_size(t.dtype);
    let cols = *t.shape.last()? as usize;
    if cols == 0 || data.len() % (size * cols) != 0 {
        return None;
    }
    let rows = data.len() / size / cols;
    let mut segments = Vec::with_capacity(rows + 1);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    segments.push(0u32);
    for r in 0..rows {
        for c in 0..cols {
            let v = &data[(r * cols + c) * size..(r * cols + c + 1) * size];
            if !is_zero(t.dtype, v) {
                indices.push(c as u32);
                values.extend_from_slice(v);
            }
        }
        segments.push(indices.len() as u32);
    }
    let sparse_bytes = values.len()
        + index_width(indices.len()) * segments.len()
        + index_width(cols.saturating_sub(1)) * indices.len();
    // A DENSIFY operator and the dense tensor cost about this much.
    const OVERHEAD: usize = 256;
    (sparse_bytes + OVERHEAD < data.len()).then_some((Csr { segments, indices }, values))
}

/// The dense bytes of a constant, whether it is stored dense or sparse.
pub fn dense_data(t: &TensorDef) -> Option<Vec<u8>> {
    let data = t.data.as_ref()?;
    let Some(csr) = &t.sparse else {
        return Some(data.clone());
    };
    let size = element_size(t.dtype);
    let cols = *t.shape.last()? as usize;
    let rows = csr.segments.len().checked_sub(1)?;
    let mut out = vec![0u8; rows * cols * size];
    for r in 0..rows {
        for k in csr.segments[r] as usize..csr.segments[r + 1] as usize {
            let c = *csr.indices.get(k)? as usize;
            if c >= cols {
                return None;
            }
            let dst = (r * cols + c) * size;
            out[dst..dst + size].copy_from_slice(data.get(k * size..(k + 1) * size)?);
        }
    }
    Some(out)
}

/// Stores the float weights of convolutions and fully connected layers
/// sparse where that makes them smaller, each behind a `DENSIFY`. Returns the new
/// graph and how many weights were stored sparse.
pub fn sparsify(g: &Lowered) -> (Lowered, usize) {
    let mut out = Lowered {
        tensors: g.tensors.clone(),
        ops: Vec::with_capacity(g.ops.len()),
        input: g.input,
        output: g.output,
    };
    let mut count = 0;
    for op in &g.ops {
        let weights = matches!(
            op.kind,
            OpKind::Conv2d { .. } | OpKind::DepthwiseConv2d { .. } | OpKind::FullyConnected { .. }
        );
        let mut op = op.clone();
        if weights {
            let w = op.inputs[1];
            if let Some((csr, values)) = encode(&out.tensors[w]) {
                let dense = TensorDef {
                    name: format!("{}/dense", out.tensors[w].name),
                    data: None,
                    sparse: None,
                    ..out.tensors[w].clone()
                };
                let t = &mut out.tensors[w];
                t.data = Some(values);
                t.sparse = Some(csr);
                out.tensors.push(dense);
                let d = out.tensors.len() - 1;
                out.ops.push(OpDef {
                    kind: OpKind::Densify,
                    inputs: vec![w],
                    outputs: vec![d],
                    layer: op.layer.clone(),
                });
                op.inputs[1] = d;
                count += 1;
            }
        }
        out.ops.push(op);
    }
    (out, count)
}
