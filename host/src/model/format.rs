//! The pf model format: one safetensors file whose header metadata holds the
//! graph as JSON. Weights, batch-norm statistics, activation ranges and masks
//! are its tensors. One file keeps the graph and its weights from ever
//! drifting apart, and any safetensors reader can open it.
//!
//! All of pf's metadata sits under the single key `pf` (a JSON object with
//! `format`, `version` and `graph`): safetensors keeps metadata in a hash map,
//! and one key is what makes the file bytes deterministic.

use super::Model;
use crate::graph::Graph;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "pf-model";
/// Version of the format this pf writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// The metadata key that holds pf's header.
const META_KEY: &str = "pf";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: String,
    graph: serde_json::Value,
}

/// Serialises a model to the bytes of a pf model file.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION.into(),
        graph: serde_json::to_value(&model.graph)?,
    };
    tensors_to_bytes(&model.named_tensors(), &header)
}

/// Serialises named f32 tensors with a header stored as JSON metadata.
pub(crate) fn tensors_to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    header: &impl Serialize,
) -> Result<Vec<u8>> {
    let mut metadata = HashMap::new();
    metadata.insert(META_KEY.to_string(), serde_json::to_string(header)?);
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, s, b)| Ok((n.as_str(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Reads named tensors and pf's JSON header from safetensors bytes.
pub(crate) fn tensors_from_bytes(
    bytes: &[u8],
    device: &Device,
    source: &str,
) -> Result<(HashMap<String, Tensor>, serde_json::Value)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow::anyhow!("{source} is not a pf model file (its safetensors header cannot be read: {e}); is it truncated?")
    })?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{source} is corrupt ({e}); is it truncated?"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!(
                "{source}: tensor `{name}` is {:?}; pf model files store f32",
                view.dtype()
            );
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, Tensor::from_vec(values, view.shape(), device)?);
    }
    let header = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .with_context(|| {
            format!(
                "{source} is a safetensors file but not written by pf (no `{META_KEY}` metadata)"
            )
        })?;
    let header = serde_json::from_str(header)
        .with_context(|| format!("{source}: pf's metadata is not valid JSON"))?;
    Ok((out, header))
}

/// Writes a model to `path` atomically.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    crate::io::atomic_write(path, &to_bytes(model)?)
}

/// Loads a model file, with errors that name the file and what is wrong.
pub fn load(path: &Path, device: &Device) -> Result<Model> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {source}"))?;
    let (tensors, header) = tensors_from_bytes(&bytes, device, &source)?;
    let header: Header = serde_json::from_value(header)
        .with_context(|| format!("{source}: pf's metadata lacks format, version or graph"))?;
    if header.format != FORMAT_NAME {
        bail!("{source} is a `{}` file, not a pf model", header.format);
    }
    if header.version != FORMAT_VERSION {
        bail!(
            "{source} is pf model format version {}, this pf reads version {FORMAT_VERSION}",
            header.version
        );
    }
    let graph: Graph = serde_json::from_value(header.graph)
        .with_context(|| format!("{source}: the graph JSON is malformed"))?;
    Model::from_tensors(graph, tensors, device, &source)
}
