//! Constants: initializers and `Constant` node values, read from
//! `TensorProto`s.

use crate::onnx::proto::{self, tensor_proto::DataType, TensorProto};
use anyhow::{anyhow, bail, Result};

/// A constant tensor: an initializer or a `Constant` node's value.
#[derive(Debug, Clone)]
pub(super) struct Constant {
    pub(super) dims: Vec<usize>,
    pub(super) values: Values,
}

#[derive(Debug, Clone)]
pub(super) enum Values {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

impl Constant {
    pub(super) fn numel(&self) -> usize {
        match &self.values {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }

    pub(super) fn floats(&self) -> Vec<f32> {
        match &self.values {
            Values::Float(v) => v.clone(),
            Values::Int(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub(super) fn ints(&self) -> Option<Vec<i64>> {
        match &self.values {
            Values::Int(v) => Some(v.clone()),
            Values::Float(_) => None,
        }
    }
}

/// Reads a `TensorProto` into a constant.
pub(super) fn constant(t: &TensorProto) -> Result<Constant> {
    if t.data_location() == proto::tensor_proto::DataLocation::External {
        bail!("its data is stored in an external file, which pf reads only when it imports the model from its file (the data file beside it)");
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("has a negative dimension {d}")))
        .collect::<Result<Vec<_>>>()?;
    let numel = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 8)
        .ok_or_else(|| anyhow!("has an impossibly large shape {dims:?}"))?;
    let raw = t.raw_data.as_deref();
    let le = |width: usize| -> Result<Vec<&[u8]>> {
        let raw = raw.unwrap_or_default();
        if raw.len() != numel * width {
            bail!(
                "holds {} bytes of raw data but its shape {dims:?} needs {}",
                raw.len(),
                numel * width
            );
        }
        Ok(raw.chunks_exact(width).collect())
    };
    let values = match DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined) {
        DataType::Float => Values::Float(if raw.is_some() {
            le(4)?
                .into_iter()
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        } else {
            t.float_data.clone()
        }),
        DataType::Double => Values::Float(if raw.is_some() {
            le(8)?
                .into_iter()
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect()
        } else {
            t.double_data.iter().map(|&v| v as f32).collect()
        }),
        DataType::Int64 => Values::Int(if raw.is_some() {
            le(8)?
                .into_iter()
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        } else {
            t.int64_data.clone()
        }),
        DataType::Int32 => Values::Int(if raw.is_some() {
            le(4)?
                .into_iter()
                .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64)
                .collect()
        } else {
            t.int32_data.iter().map(|&v| v as i64).collect()
        }),
        other => bail!(
            "has element type {} ({}); pf reads float, double, int32 and int64 constants",
            other.as_str_name(),
            t.data_type()
        ),
    };
    let c = Constant { dims, values };
    if c.numel() != numel {
        bail!(
            "holds {} values but its shape {:?} needs {numel}",
            c.numel(),
            c.dims
        );
    }
    Ok(c)
}

/// Turns a float attribute, stored as f32, into the f64 a person would
/// have written: `1e-5f32` becomes `1e-5`, not `9.99999974e-6`.
pub(super) fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}
