//! The pf model format: one safetensors file whose header metadata holds the
//! graph as JSON. Weights, batch-norm statistics, activation ranges and masks
//! are its tensors. One file keeps the graph and its weights from ever
//! drifting apart, and any safetensors reader can open it.
//!
//! All of pf's metadata sits under the single key `pf` (a JSON object with
//! `format`, `version` and `graph`): safetensors keeps metadata in a hash map,
//! and one key is what makes the file bytes deterministic.
//!
//! A weight with a codebook quantizer (non-uniform quantization) is stored
//! compressed: `<layer>.weight.codes`, a `u8` tensor of its centroid indices
//! packed at the codebook's bit width (least significant bits first), with
//! the centroids in the graph. Such a file is format version 2 (version 1
//! files, without packed weights, still load); loading unpacks each weight
//! to its centroid values, which the quantizer maps to themselves, so the
//! model computes exactly what it did when saved.

use super::Model;
use crate::graph::{Graph, Quantizer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "pf-model";
/// Version of the format this pf writes for a model with packed
/// (codebook-quantized) weights; others are written as version 1.
pub const FORMAT_VERSION: &str = "2";

/// The version of files without packed weights, which every pf reads.
const PLAIN_VERSION: &str = "1";

/// Name suffix of a weight stored as packed codebook indices.
const CODES_SUFFIX: &str = ".weight.codes";

/// Name suffix of the mask of a packed weight, stored one bit per entry.
const MASK_BITS_SUFFIX: &str = ".mask.bits";

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
    let mut tensors = model.named_tensors();
    let mut packed = BTreeMap::new();
    for layer in &model.graph.layers {
        let Some(Quantizer::Codebook { centroids }) =
            layer.quant.as_ref().and_then(|q| q.weight.as_ref())
        else {
            continue;
        };
        let key = format!("{}.weight", layer.name);
        let Some(w) = tensors.remove(&key) else {
            continue;
        };
        // What the layer computes with: masked, then mapped to a centroid.
        let w = match model.masks.get(&layer.name) {
            Some(m) => w.mul(m)?,
            None => w,
        };
        let values = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bits = Quantizer::Codebook {
            centroids: centroids.clone(),
        }
        .bits();
        packed.insert(
            format!("{}{CODES_SUFFIX}", layer.name),
            pack(&nearest(&values, centroids), bits),
        );
        // Its mask, if any, at one bit per entry rather than a float.
        if let Some(mask) = tensors.remove(&format!("{}.mask", layer.name)) {
            let keep: Vec<u32> = mask
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|&m| u32::from(m != 0.0))
                .collect();
            packed.insert(format!("{}{MASK_BITS_SUFFIX}", layer.name), pack(&keep, 1));
        }
    }
    let header = Header {
        format: FORMAT_NAME.into(),
        version: if packed.is_empty() {
            PLAIN_VERSION
        } else {
            FORMAT_VERSION
        }
        .into(),
        graph: serde_json::to_value(&model.graph)?,
    };
    serialize(&tensors, &packed, &header)
}

/// The index of the centroid the host's codebook quantizer maps each value
/// to: the number of midpoints (rounded to f32, as the quantizer compares)
/// that the value is above.
fn nearest(values: &[f32], centroids: &[f32]) -> Vec<u32> {
    let mids: Vec<f32> = centroids
        .windows(2)
        .map(|p| ((f64::from(p[0]) + f64::from(p[1])) / 2.0) as f32)
        .collect();
    values
        .iter()
        .map(|&x| mids.partition_point(|&m| x > m) as u32)
        .collect()
}

/// Packs `codes` at `bits` each, least significant bits first.
fn pack(codes: &[u32], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; (codes.len() * bits as usize).div_ceil(8)];
    for (i, &c) in codes.iter().enumerate() {
        for b in 0..bits as usize {
            if c >> b & 1 == 1 {
                let at = i * bits as usize + b;
                out[at / 8] |= 1 << (at % 8);
            }
        }
    }
    out
}

/// Unpacks `n` codes of `bits` each.
fn unpack(bytes: &[u8], n: usize, bits: u32) -> Vec<u32> {
    (0..n)
        .map(|i| {
            (0..bits as usize).fold(0u32, |c, b| {
                let at = i * bits as usize + b;
                c | (u32::from(bytes[at / 8] >> (at % 8) & 1) << b)
            })
        })
        .collect()
}

/// Serialises named f32 tensors with a header stored as JSON metadata.
pub(crate) fn tensors_to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    header: &impl Serialize,
) -> Result<Vec<u8>> {
    serialize(tensors, &BTreeMap::new(), header)
}

/// Serialises f32 tensors, packed `u8` blobs and a header.
fn serialize(
    tensors: &BTreeMap<String, Tensor>,
    packed: &BTreeMap<String, Vec<u8>>,
    header: &impl Serialize,
) -> Result<Vec<u8>> {
    let mut metadata = HashMap::new();
    metadata.insert(META_KEY.to_string(), serde_json::to_string(header)?);
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        Vec::with_capacity(tensors.len() + packed.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((name.clone(), Dtype::F32, t.dims().to_vec(), bytes));
    }
    for (name, bytes) in packed {
        data.push((name.clone(), Dtype::U8, vec![bytes.len()], bytes.clone()));
    }
    let views = data
        .iter()
        .map(|(n, d, s, b)| Ok((n.as_str(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Reads named tensors and pf's JSON header from safetensors bytes.
pub(crate) fn tensors_from_bytes(
    bytes: &[u8],
    device: &Device,
    source: &str,
) -> Result<(HashMap<String, Tensor>, serde_json::Value)> {
    let (tensors, packed, header) = deserialize(bytes, device, source)?;
    if let Some(name) = packed.keys().next() {
        bail!("{source}: tensor `{name}` is packed; only pf model files hold packed weights");
    }
    Ok((tensors, header))
}

/// Reads f32 tensors, packed weights and pf's JSON header.
#[allow(clippy::type_complexity)]
fn deserialize(
    bytes: &[u8],
    device: &Device,
    source: &str,
) -> Result<(
    HashMap<String, Tensor>,
    HashMap<String, Vec<u8>>,
    serde_json::Value,
)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow::anyhow!("{source} is not a pf model file (its safetensors header cannot be read: {e}); is it truncated?")
    })?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{source} is corrupt ({e}); is it truncated?"))?;
    let mut out = HashMap::new();
    let mut packed = HashMap::new();
    for (name, view) in st.tensors() {
        match view.dtype() {
            Dtype::F32 => {
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                out.insert(name, Tensor::from_vec(values, view.shape(), device)?);
            }
            Dtype::U8 if name.ends_with(CODES_SUFFIX) || name.ends_with(MASK_BITS_SUFFIX) => {
                packed.insert(name, view.data().to_vec());
            }
            other => bail!(
                "{source}: tensor `{name}` is {other:?}; pf model files store f32 (and packed \
                 `{CODES_SUFFIX}` weights as u8)"
            ),
        }
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
    Ok((out, packed, header))
}

/// Turns each packed weight back into f32 values (its centroids), and each
/// packed mask into a 0/1 mask.
fn unpack_weights(
    graph: &Graph,
    tensors: &mut HashMap<String, Tensor>,
    packed: HashMap<String, Vec<u8>>,
    device: &Device,
    source: &str,
) -> Result<()> {
    let mut packed: Vec<(String, Vec<u8>)> = packed.into_iter().collect();
    packed.sort();
    for (name, bytes) in packed {
        let (layer_name, is_mask) = match name.strip_suffix(CODES_SUFFIX) {
            Some(l) => (l, false),
            None => match name.strip_suffix(MASK_BITS_SUFFIX) {
                Some(l) => (l, true),
                None => bail!("{source}: `{name}` is not a packed weight or mask"),
            },
        };
        let layer = graph.layer(layer_name).with_context(|| {
            format!("{source}: packed tensor `{name}` belongs to no layer of the graph")
        })?;
        let Some(Quantizer::Codebook { centroids }) =
            layer.quant.as_ref().and_then(|q| q.weight.as_ref())
        else {
            bail!("{source}: `{name}` is packed but layer `{layer_name}` has no codebook");
        };
        let shape = layer
            .op
            .parameters()
            .into_iter()
            .find(|(p, _)| *p == "weight")
            .map(|(_, s)| s)
            .with_context(|| format!("{source}: layer `{layer_name}` has no weight"))?;
        let n: usize = shape.iter().product();
        let bits = if is_mask {
            1
        } else {
            Quantizer::Codebook {
                centroids: centroids.clone(),
            }
            .bits()
        };
        let want = (n * bits as usize).div_ceil(8);
        if bytes.len() != want {
            bail!(
                "{source}: `{name}` holds {} bytes, not the {want} that {n} codes of {bits} \
                 bits take; the file is corrupt",
                bytes.len(),
            );
        }
        let codes = unpack(&bytes, n, bits);
        let (key, values) = if is_mask {
            let values: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
            (format!("{layer_name}.mask"), values)
        } else {
            let values = codes
                .iter()
                .map(|&c| centroids.get(c as usize).copied())
                .collect::<Option<Vec<f32>>>()
                .with_context(|| {
                    format!(
                        "{source}: `{name}` has a code beyond its {} centroids; the file is \
                         corrupt",
                        centroids.len()
                    )
                })?;
            (format!("{layer_name}.weight"), values)
        };
        if tensors.contains_key(&key) {
            bail!("{source}: `{key}` is stored both packed and as floats; the file is corrupt");
        }
        tensors.insert(key, Tensor::from_vec(values, shape.as_slice(), device)?);
    }
    Ok(())
}

/// Writes a model to `path` atomically.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    crate::io::atomic_write(path, &to_bytes(model)?)
}

/// Loads a model file, with errors that name the file and what is wrong.
pub fn load(path: &Path, device: &Device) -> Result<Model> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {source}"))?;
    let (mut tensors, packed, header) = deserialize(&bytes, device, &source)?;
    let header: Header = serde_json::from_value(header)
        .with_context(|| format!("{source}: pf's metadata lacks format, version or graph"))?;
    if header.format != FORMAT_NAME {
        bail!("{source} is a `{}` file, not a pf model", header.format);
    }
    if header.version != FORMAT_VERSION && header.version != PLAIN_VERSION {
        bail!(
            "{source} is pf model format version {}, this pf reads versions {PLAIN_VERSION} and \
             {FORMAT_VERSION}",
            header.version
        );
    }
    if header.version == PLAIN_VERSION && !packed.is_empty() {
        bail!(
            "{source} says it is format version {PLAIN_VERSION}, which has no packed weights, \
             but holds some; the file is corrupt"
        );
    }
    let graph: Graph = serde_json::from_value(header.graph)
        .with_context(|| format!("{source}: the graph JSON is malformed"))?;
    unpack_weights(&graph, &mut tensors, packed, device, &source)?;
    Model::from_tensors(graph, tensors, device, &source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_pack_and_unpack_at_every_width() {
        for bits in 1..=8u32 {
            let codes: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % (1 << bits)).collect();
            let bytes = pack(&codes, bits);
            assert_eq!(bytes.len(), (37 * bits as usize).div_ceil(8));
            assert_eq!(unpack(&bytes, 37, bits), codes);
        }
    }

    #[test]
    fn nearest_follows_the_midpoints() {
        let c = [-1.0, 0.0, 2.0];
        assert_eq!(
            nearest(&[-3.0, -0.5, -0.4, 1.0, 1.1, 5.0], &c),
            vec![0, 0, 1, 1, 2, 2]
        );
    }
}
