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
//!
//! A float weight with enough zeros (a pruned one) is stored sparse
//! (version 3): `<layer>.weight.nonzero`, one bit per entry set where the
//! entry is not zero, `<layer>.weight.values`, the non-zero entries in
//! order as f32, and, only when some zero is `-0.0`, `<layer>.weight.negzero`,
//! one bit per zero entry set where it is negative, so that loading gives
//! back the same bits. Dense storage is kept where it is smaller. A mask
//! made of zeros and ones is stored at one bit per entry
//! (`<layer>.mask.bits`), or, when it is exactly "the weight is not zero",
//! as the empty `<layer>.mask.from_weight`.
//!
//! A graph with its own input preprocessing (an imported model's mean and
//! std) is written as version 4, so that a pf too old to apply it refuses
//! the file rather than evaluate the model on wrongly normalised inputs.
//! A graph with a pooling layer that rounds its output size up
//! (`ceil_mode`) is version 5, for the same reason: an older pf would
//! read it without the flag and compute smaller feature maps. Every other
//! file keeps the lowest version that can hold it.

use super::Model;
use crate::graph::{Graph, Op, Quantizer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "pf-model";
/// The newest version of the format, which this pf writes for a model with
/// pooling that rounds its output size up (`ceil_mode`). A model with its
/// own input preprocessing is written as version 4, one with sparse
/// weights or bit masks as version 3, one whose only packed tensors are
/// codebook codes (and their masks) as version 2, one with nothing packed
/// as version 1, and this pf reads all five. Each file takes the lowest
/// version that has everything it holds.
pub const FORMAT_VERSION: &str = "5";

/// The version of files with a model's own input preprocessing.
const PREPROCESSING_VERSION: &str = "4";

/// The version of files with sparse weights or bit masks.
const SPARSE_VERSION: &str = "3";

/// The version of files without packed weights, which every pf reads.
const PLAIN_VERSION: &str = "1";

/// The version of files whose packed tensors are codebook codes and their
/// masks only.
const CODEBOOK_VERSION: &str = "2";

/// Name suffix of a weight stored as packed codebook indices.
const CODES_SUFFIX: &str = ".weight.codes";

/// Name suffix of a mask stored one bit per entry.
const MASK_BITS_SUFFIX: &str = ".mask.bits";

/// Name suffix of a sparse weight's bitmap of non-zero entries.
const NONZERO_SUFFIX: &str = ".weight.nonzero";

/// Name suffix of a sparse weight's non-zero values (f32).
const VALUES_SUFFIX: &str = ".weight.values";

/// Name suffix of a sparse weight's signs of its zeros, one bit per zero.
const NEGZERO_SUFFIX: &str = ".weight.negzero";

/// Name suffix of an empty tensor that says a layer's mask is "the weight is
/// not zero".
const MASK_FROM_WEIGHT_SUFFIX: &str = ".mask.from_weight";

/// The `u8` tensors of a version 3 file, beyond version 2's codes and bits.
const SPARSE_SUFFIXES: [&str; 3] = [NONZERO_SUFFIX, NEGZERO_SUFFIX, MASK_FROM_WEIGHT_SUFFIX];

/// Bytes a tensor's entry takes in the safetensors header (name, dtype,
/// shape, offsets), roughly: what an extra tensor costs beyond its data.
const ENTRY_BYTES: usize = 96;

/// The metadata key that holds pf's header.
const META_KEY: &str = "pf";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: String,
    graph: serde_json::Value,
}

/// Whether a pooling layer of `graph` rounds its output size up: an older
/// pf would read the file without the flag and compute other shapes.
fn uses_ceil_mode(graph: &Graph) -> bool {
    graph.layers.iter().any(|l| {
        matches!(
            l.op,
            Op::MaxPool {
                ceil_mode: true,
                ..
            } | Op::AvgPool {
                ceil_mode: true,
                ..
            }
        )
    })
}

/// Serialises a model to the bytes of a pf model file.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let mut tensors = model.named_tensors();
    let mut packed = BTreeMap::new();
    let mut version = PLAIN_VERSION;
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
        version = CODEBOOK_VERSION;
        // Its mask, if any, at one bit per entry rather than a float.
        let mask_key = format!("{}.mask", layer.name);
        if let Some(mask) = tensors.get(&mask_key) {
            if let Some(bits) = mask_bits(&f32_values(mask)?) {
                tensors.remove(&mask_key);
                packed.insert(format!("{}{MASK_BITS_SUFFIX}", layer.name), bits);
            }
        }
    }
    // Float weights with enough zeros, sparse; their masks as bits, or not at
    // all when the zeros are the mask.
    for layer in model.graph.layers.iter().filter(|l| l.op.has_weight()) {
        let key = format!("{}.weight", layer.name);
        let Some(w) = tensors.get(&key) else {
            continue; // packed as codes above
        };
        let w = f32_values(w)?;
        let mask_key = format!("{}.mask", layer.name);
        if let Some(mask) = tensors.get(&mask_key) {
            let mask = f32_values(mask)?;
            if let Some(bits) = mask_bits(&mask) {
                let from_weight = mask.len() == w.len()
                    && mask.iter().zip(&w).all(|(&m, &v)| (m != 0.0) == (v != 0.0));
                tensors.remove(&mask_key);
                if from_weight {
                    packed.insert(format!("{}{MASK_FROM_WEIGHT_SUFFIX}", layer.name), vec![]);
                } else {
                    packed.insert(format!("{}{MASK_BITS_SUFFIX}", layer.name), bits);
                }
                version = SPARSE_VERSION;
            }
        }
        if let Some(sparse) = Sparse::of(&w) {
            tensors.remove(&key);
            let n = sparse.values.len();
            tensors.insert(
                format!("{}{VALUES_SUFFIX}", layer.name),
                Tensor::from_vec(sparse.values, n, model.device())?,
            );
            packed.insert(format!("{}{NONZERO_SUFFIX}", layer.name), sparse.nonzero);
            if let Some(neg) = sparse.negzero {
                packed.insert(format!("{}{NEGZERO_SUFFIX}", layer.name), neg);
            }
            version = SPARSE_VERSION;
        }
    }
    if model.graph.preprocessing.is_some() {
        version = PREPROCESSING_VERSION;
    }
    if uses_ceil_mode(&model.graph) {
        version = FORMAT_VERSION;
    }
    let header = Header {
        format: FORMAT_NAME.into(),
        version: version.into(),
        graph: serde_json::to_value(&model.graph)?,
    };
    serialize(&tensors, &packed, &header)
}

/// A tensor's values as f32, in order.
fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A mask packed at one bit per entry, if it holds only `0.0` and `1.0`
/// (bit for bit, so that unpacking gives back the same tensor).
fn mask_bits(mask: &[f32]) -> Option<Vec<u8>> {
    let keep = mask
        .iter()
        .map(|m| match m.to_bits() {
            0 => Some(0),
            b if b == 1f32.to_bits() => Some(1),
            _ => None,
        })
        .collect::<Option<Vec<u32>>>()?;
    Some(pack(&keep, 1))
}

/// A float weight in sparse form.
struct Sparse {
    /// One bit per entry, set where the entry is not zero.
    nonzero: Vec<u8>,
    /// The non-zero entries, in order.
    values: Vec<f32>,
    /// One bit per zero entry, set where it is `-0.0`; absent when no zero
    /// is negative.
    negzero: Option<Vec<u8>>,
}

impl Sparse {
    /// The sparse form of `w`, if it is smaller than the dense one (4 bytes
    /// an entry).
    fn of(w: &[f32]) -> Option<Sparse> {
        let n = w.len();
        let zeros = w.iter().filter(|&&v| v == 0.0).count();
        let negative = w.iter().any(|&v| v == 0.0 && v.is_sign_negative());
        let size = 4 * (n - zeros)
            + n.div_ceil(8)
            + ENTRY_BYTES
            + if negative {
                zeros.div_ceil(8) + ENTRY_BYTES
            } else {
                0
            };
        if size >= 4 * n {
            return None;
        }
        let nonzero: Vec<u32> = w.iter().map(|&v| u32::from(v != 0.0)).collect();
        let values = w.iter().copied().filter(|&v| v != 0.0).collect();
        let negzero = negative.then(|| {
            let signs: Vec<u32> = w
                .iter()
                .filter(|&&v| v == 0.0)
                .map(|v| u32::from(v.is_sign_negative()))
                .collect();
            pack(&signs, 1)
        });
        Some(Sparse {
            nonzero: pack(&nonzero, 1),
            values,
            negzero,
        })
    }
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
            Dtype::F32 if name.ends_with(VALUES_SUFFIX) => {
                packed.insert(name, view.data().to_vec());
            }
            Dtype::F32 => {
                let values: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                out.insert(name, Tensor::from_vec(values, view.shape(), device)?);
            }
            Dtype::U8
                if [CODES_SUFFIX, MASK_BITS_SUFFIX]
                    .iter()
                    .chain(&SPARSE_SUFFIXES)
                    .any(|s| name.ends_with(s)) =>
            {
                packed.insert(name, view.data().to_vec());
            }
            other => bail!(
                "{source}: tensor `{name}` is {other:?}; pf model files store f32 (and packed \
                 weights, bitmaps and masks as u8)"
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

/// The layer `layer_name` and the shape of its weight, for the packed
/// tensor `name`.
fn weight_shape<'g>(
    graph: &'g Graph,
    layer_name: &str,
    name: &str,
    source: &str,
) -> Result<(&'g crate::graph::Layer, Vec<usize>)> {
    let layer = graph.layer(layer_name).with_context(|| {
        format!("{source}: packed tensor `{name}` belongs to no layer of the graph")
    })?;
    let shape = layer
        .op
        .parameters()
        .into_iter()
        .find(|(p, _)| *p == "weight")
        .map(|(_, s)| s)
        .with_context(|| format!("{source}: layer `{layer_name}` has no weight"))?;
    Ok((layer, shape))
}

/// The number of entries of a weight of `shape`, or an error when the graph
/// claims more than can exist.
fn entries(shape: &[usize], name: &str, source: &str) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .with_context(|| {
            format!("{source}: `{name}` belongs to a weight of shape {shape:?}, whose size overflows; the file is corrupt")
        })
}

/// Unpacks a bitmap of `n` bits, checking its length and that the bits past
/// the end are clear.
fn bitmap(bytes: &[u8], n: usize, name: &str, what: &str, source: &str) -> Result<Vec<bool>> {
    let want = n.div_ceil(8);
    if bytes.len() != want {
        bail!(
            "{source}: `{name}` holds {} bytes, not the {want} that {n} bits of {what} take; the \
             file is corrupt",
            bytes.len()
        );
    }
    if n % 8 != 0 && bytes[want - 1] >> (n % 8) != 0 {
        bail!("{source}: `{name}` has bits set past its {n} entries; the file is corrupt");
    }
    Ok(unpack(bytes, n, 1).into_iter().map(|b| b == 1).collect())
}

/// Turns each packed weight back into f32 values (a codebook weight into its
/// centroids, a sparse weight into its zeros and values) and each packed
/// mask into a 0/1 mask.
fn unpack_weights(
    graph: &Graph,
    tensors: &mut HashMap<String, Tensor>,
    packed: HashMap<String, Vec<u8>>,
    device: &Device,
    source: &str,
) -> Result<()> {
    let mut packed: BTreeMap<String, Vec<u8>> = packed.into_iter().collect();
    let insert = |tensors: &mut HashMap<String, Tensor>,
                  key: String,
                  values: Vec<f32>,
                  shape: &[usize]|
     -> Result<()> {
        if tensors.contains_key(&key) {
            bail!("{source}: `{key}` is stored twice (packed and as floats, or packed two ways); the file is corrupt");
        }
        tensors.insert(key, Tensor::from_vec(values, shape, device)?);
        Ok(())
    };
    let names: Vec<String> = packed.keys().cloned().collect();
    // Codebook weights.
    for name in &names {
        let Some(layer_name) = name.strip_suffix(CODES_SUFFIX) else {
            continue;
        };
        let bytes = packed.remove(name).expect("listed");
        let (layer, shape) = weight_shape(graph, layer_name, name, source)?;
        let Some(Quantizer::Codebook { centroids }) =
            layer.quant.as_ref().and_then(|q| q.weight.as_ref())
        else {
            bail!("{source}: `{name}` is packed but layer `{layer_name}` has no codebook");
        };
        let n = entries(&shape, name, source)?;
        let bits = Quantizer::Codebook {
            centroids: centroids.clone(),
        }
        .bits();
        let want = n
            .checked_mul(bits as usize)
            .with_context(|| format!("{source}: `{name}` has too many codes; the file is corrupt"))?
            .div_ceil(8);
        if bytes.len() != want {
            bail!(
                "{source}: `{name}` holds {} bytes, not the {want} that {n} codes of {bits} \
                 bits take; the file is corrupt",
                bytes.len(),
            );
        }
        let values = unpack(&bytes, n, bits)
            .iter()
            .map(|&c| centroids.get(c as usize).copied())
            .collect::<Option<Vec<f32>>>()
            .with_context(|| {
                format!(
                    "{source}: `{name}` has a code beyond its {} centroids; the file is corrupt",
                    centroids.len()
                )
            })?;
        insert(tensors, format!("{layer_name}.weight"), values, &shape)?;
    }
    // Sparse weights: the bitmap of non-zeros, their values and the signs
    // of the zeros.
    for name in &names {
        let Some(layer_name) = name.strip_suffix(NONZERO_SUFFIX) else {
            continue;
        };
        let bytes = packed.remove(name).expect("listed");
        let (_, shape) = weight_shape(graph, layer_name, name, source)?;
        let n = entries(&shape, name, source)?;
        let nonzero = bitmap(&bytes, n, name, "non-zero flags", source)?;
        let values_name = format!("{layer_name}{VALUES_SUFFIX}");
        let raw = packed.remove(&values_name).with_context(|| {
            format!("{source}: `{name}` has no `{values_name}` beside it; the file is corrupt")
        })?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let count = nonzero.iter().filter(|&&b| b).count();
        if values.len() != count || raw.len() % 4 != 0 {
            bail!(
                "{source}: `{values_name}` holds {} values but `{name}` marks {count} entries \
                 as non-zero; the file is corrupt",
                values.len()
            );
        }
        if let Some(v) = values.iter().find(|v| **v == 0.0) {
            bail!(
                "{source}: `{values_name}` holds a zero ({v}), which the bitmap should have \
                 marked; the file is corrupt"
            );
        }
        let negzero_name = format!("{layer_name}{NEGZERO_SUFFIX}");
        let negative = match packed.remove(&negzero_name) {
            Some(b) => bitmap(&b, n - count, &negzero_name, "zero signs", source)?,
            None => vec![false; n - count],
        };
        let (mut values, mut negative) = (values.into_iter(), negative.into_iter());
        let weight: Vec<f32> = nonzero
            .iter()
            .map(|&nz| {
                if nz {
                    values.next().expect("counted")
                } else if negative.next().expect("counted") {
                    -0.0
                } else {
                    0.0
                }
            })
            .collect();
        insert(tensors, format!("{layer_name}.weight"), weight, &shape)?;
    }
    // Values or signs without their bitmap are orphans.
    if let Some(name) = packed
        .keys()
        .find(|n| n.ends_with(VALUES_SUFFIX) || n.ends_with(NEGZERO_SUFFIX))
    {
        bail!(
            "{source}: `{name}` belongs to no sparse weight (its `{NONZERO_SUFFIX}` bitmap is \
             missing); the file is corrupt"
        );
    }
    // Masks, as bits or as "the weight is not zero".
    for name in &names {
        let (layer_name, from_weight) = match name.strip_suffix(MASK_BITS_SUFFIX) {
            Some(l) => (l, false),
            None => match name.strip_suffix(MASK_FROM_WEIGHT_SUFFIX) {
                Some(l) => (l, true),
                None => continue,
            },
        };
        let bytes = packed.remove(name).expect("listed");
        let (_, shape) = weight_shape(graph, layer_name, name, source)?;
        let n = entries(&shape, name, source)?;
        let keep = if from_weight {
            if !bytes.is_empty() {
                bail!(
                    "{source}: `{name}` should be empty but holds {} bytes; the file is corrupt",
                    bytes.len()
                );
            }
            let key = format!("{layer_name}.weight");
            let w = tensors.get(&key).with_context(|| {
                format!(
                    "{source}: `{name}` takes the mask from `{key}`, which is missing; the file \
                     is incomplete"
                )
            })?;
            if w.elem_count() != n {
                bail!(
                    "{source}: tensor `{key}` has shape {:?} but layer `{layer_name}` needs \
                     {shape:?}",
                    w.dims()
                );
            }
            f32_values(w)?.iter().map(|&v| v != 0.0).collect()
        } else {
            bitmap(&bytes, n, name, "mask", source)?
        };
        let values = keep.iter().map(|&k| f32::from(u8::from(k))).collect();
        insert(tensors, format!("{layer_name}.mask"), values, &shape)?;
    }
    if let Some(name) = packed.keys().next() {
        bail!("{source}: packed tensor `{name}` is of no kind this pf reads; the file is corrupt");
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
    from_bytes(&bytes, device, &source)
}

/// Reads a model from the bytes of a pf model file, with errors that name
/// `source` and what is wrong.
pub fn from_bytes(bytes: &[u8], device: &Device, source: &str) -> Result<Model> {
    let source = source.to_string();
    let (mut tensors, packed, header) = deserialize(bytes, device, &source)?;
    let header: Header = serde_json::from_value(header)
        .with_context(|| format!("{source}: pf's metadata lacks format, version or graph"))?;
    if header.format != FORMAT_NAME {
        bail!("{source} is a `{}` file, not a pf model", header.format);
    }
    if ![
        PLAIN_VERSION,
        CODEBOOK_VERSION,
        SPARSE_VERSION,
        PREPROCESSING_VERSION,
        FORMAT_VERSION,
    ]
    .contains(&header.version.as_str())
    {
        bail!(
            "{source} is pf model format version {}, this pf reads versions {PLAIN_VERSION} to \
             {FORMAT_VERSION}; a newer pf wrote it",
            header.version
        );
    }
    if header.version == PLAIN_VERSION && !packed.is_empty() {
        bail!(
            "{source} says it is format version {PLAIN_VERSION}, which has no packed weights, \
             but holds some; the file is corrupt"
        );
    }
    if header.version == CODEBOOK_VERSION {
        if let Some(name) = packed
            .keys()
            .find(|n| !n.ends_with(CODES_SUFFIX) && !n.ends_with(MASK_BITS_SUFFIX))
        {
            bail!(
                "{source} says it is format version {CODEBOOK_VERSION}, which has no sparse \
                 weights, but holds `{name}`; the file is corrupt"
            );
        }
    }
    let graph: Graph = serde_json::from_value(header.graph)
        .with_context(|| format!("{source}: the graph JSON is malformed"))?;
    // The versions are "1" to "5", checked above, so they order as text.
    if graph.preprocessing.is_some() && header.version.as_str() < PREPROCESSING_VERSION {
        bail!(
            "{source} says it is format version {}, which has no input preprocessing, but its \
             graph holds some; the file is corrupt",
            header.version
        );
    }
    if uses_ceil_mode(&graph) && header.version.as_str() < FORMAT_VERSION {
        bail!(
            "{source} says it is format version {}, which has no pooling with ceil_mode, but its \
             graph holds some; the file is corrupt",
            header.version
        );
    }
    // Before any shape is read from it: a layer's shapes are only
    // meaningful (and computable) once the graph is known to be valid.
    graph
        .validate()
        .with_context(|| format!("{source}: the model graph is invalid"))?;
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
    fn sparse_form_keeps_every_bit_and_is_chosen_only_when_smaller() {
        let mut w = vec![0.0f32; 400];
        w[3] = 1.5;
        w[10] = -0.0;
        w[77] = f32::NAN;
        w[399] = -2.0;
        let s = Sparse::of(&w).expect("sparse is smaller");
        assert_eq!(s.values.len(), 3);
        assert_eq!(s.nonzero.len(), 50);
        let nonzero = bitmap(&s.nonzero, 400, "t", "flags", "f").unwrap();
        assert_eq!(nonzero.iter().filter(|&&b| b).count(), 3);
        let signs = bitmap(s.negzero.as_ref().unwrap(), 397, "t", "signs", "f").unwrap();
        // w[10] is the tenth zero (w[3] is not one), and NaN is a value.
        assert_eq!(signs.iter().filter(|&&b| b).count(), 1);
        assert!(signs[9]);
        assert!(s.values[1].is_nan());
        // No negative zero, no sign bits.
        w[10] = 0.0;
        assert!(Sparse::of(&w).unwrap().negzero.is_none());
        // A dense weight stays dense.
        assert!(Sparse::of(&[1.0; 400]).is_none());
        assert!(Sparse::of(&[0.0; 8]).is_none());
    }

    #[test]
    fn bitmaps_check_their_length_and_padding() {
        assert_eq!(
            bitmap(&[0b101], 3, "t", "flags", "f").unwrap(),
            [true, false, true]
        );
        let e = bitmap(&[0b1101], 3, "t", "flags", "f").unwrap_err();
        assert!(e.to_string().contains("past its 3 entries"), "{e}");
        let e = bitmap(&[0, 0], 3, "t", "flags", "f").unwrap_err();
        assert!(e.to_string().contains("holds 2 bytes, not the 1"), "{e}");
    }

    #[test]
    fn masks_are_bits_only_when_exactly_zero_or_one() {
        assert_eq!(mask_bits(&[1.0, 0.0, 1.0]), Some(vec![0b101]));
        assert_eq!(mask_bits(&[1.0, -0.0]), None);
        assert_eq!(mask_bits(&[0.5]), None);
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
