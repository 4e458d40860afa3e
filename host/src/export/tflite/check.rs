//! Reading back a `.tflite` file's structure, to refuse a damaged file with
//! a clear message before handing it to an interpreter.

use super::schema::tflite as fb;
use anyhow::{bail, Result};

/// What a `.tflite` file holds, in brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Operator names in execution order.
    pub ops: Vec<String>,
    /// Tensors in the (first) subgraph.
    pub tensors: usize,
    /// Buffers.
    pub buffers: usize,
}

/// Checks that `bytes` is a TFLite FlatBuffer and summarises it.
pub fn read(bytes: &[u8]) -> Result<Summary> {
    if bytes.len() < 8 {
        bail!(
            "it is {} bytes long, too short for a TFLite file",
            bytes.len()
        );
    }
    if &bytes[4..8] != b"TFL3" {
        bail!("it lacks TFLite's file identifier `TFL3` (bytes 4 to 8): it is not a TFLite file");
    }
    let bad = |e: planus::Error| {
        anyhow::anyhow!("it is not a valid TFLite FlatBuffer (truncated or damaged?): {e}")
    };
    let model = <fb::ModelRef as planus::ReadAsRoot>::read_as_root(bytes).map_err(bad)?;
    let codes: Vec<String> = match model.operator_codes().map_err(bad)? {
        Some(codes) => codes
            .iter()
            .map(|c| {
                let c = c.map_err(bad)?;
                Ok(match c.builtin_code() {
                    Ok(code) => op_name(code).to_string(),
                    Err(_) => "an operator pf does not know".to_string(),
                })
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let subgraphs = model
        .subgraphs()
        .map_err(bad)?
        .ok_or_else(|| anyhow::anyhow!("it has no subgraph"))?;
    let sg = subgraphs
        .get(0)
        .ok_or_else(|| anyhow::anyhow!("it has no subgraph"))?
        .map_err(bad)?;
    let mut ops = Vec::new();
    if let Some(list) = sg.operators().map_err(bad)? {
        for op in list.iter() {
            let op = op.map_err(bad)?;
            let i = op.opcode_index().map_err(bad)? as usize;
            ops.push(codes.get(i).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "an operator names operator code {i}, but the file has {}",
                    codes.len()
                )
            })?);
        }
    }
    let tensors = sg.tensors().map_err(bad)?.map_or(0, |t| t.len());
    let buffers = model.buffers().map_err(bad)?.map_or(0, |b| b.len());
    // Touch every buffer, so that a file cut inside the weights is caught.
    if let Some(list) = model.buffers().map_err(bad)? {
        for b in list.iter() {
            let b = b.map_err(bad)?;
            let _ = b.data().map_err(bad)?;
        }
    }
    Ok(Summary {
        ops,
        tensors,
        buffers,
    })
}

/// TFLite's name of an operator (`CONV_2D`).
pub fn op_name(code: fb::BuiltinOperator) -> &'static str {
    use fb::BuiltinOperator as B;
    match code {
        B::Add => "ADD",
        B::AveragePool2d => "AVERAGE_POOL_2D",
        B::Concatenation => "CONCATENATION",
        B::Conv2d => "CONV_2D",
        B::DepthwiseConv2d => "DEPTHWISE_CONV_2D",
        B::Dequantize => "DEQUANTIZE",
        B::FullyConnected => "FULLY_CONNECTED",
        B::Logistic => "LOGISTIC",
        B::MaxPool2d => "MAX_POOL_2D",
        B::Mul => "MUL",
        B::Reshape => "RESHAPE",
        B::Softmax => "SOFTMAX",
        B::Pad => "PAD",
        B::Padv2 => "PADV2",
        B::Gather => "GATHER",
        B::Slice => "SLICE",
        B::Mean => "MEAN",
        B::Quantize => "QUANTIZE",
        B::HardSwish => "HARD_SWISH",
        B::Densify => "DENSIFY",
    }
}
