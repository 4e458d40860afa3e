//! ONNX external data: tensors whose bytes live in files beside the model
//! (PyTorch's default exporter writes `model.onnx.data`; any exporter does
//! for models over protobuf's 2 GB).
//!
//! A tensor stored this way names a `location`, a path relative to the
//! model's folder, and optionally the `offset` and `length` of its bytes
//! there. [`resolve`] reads them into the tensor's `raw_data`, so that the
//! rest of the importer sees an ordinary tensor. A model is untrusted input,
//! so a location may not leave the model's folder: absolute paths, `..`
//! components and symbolic links that point outside are errors, and so are
//! ranges the file does not hold or that do not match the tensor's shape.

use crate::onnx::proto::{
    tensor_proto::DataLocation, tensor_proto::DataType, ModelProto, TensorProto,
};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Reads every external tensor of `model` (initializers and `Constant`
/// values) from beside `model_path` into the tensor itself.
pub(super) fn resolve(model: &mut ModelProto, model_path: &Path) -> Result<()> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    let folder = match model_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut files = DataFiles {
        folder,
        model: model_path.display().to_string(),
        open: HashMap::new(),
    };
    for t in &mut graph.initializer {
        if is_external(t) {
            let name = t.name().to_string();
            files
                .read_into(t)
                .with_context(|| format!("{}: initializer `{name}`", files.model))?;
        }
    }
    for node in &mut graph.node {
        let node_name = node.name().to_string();
        for a in &mut node.attribute {
            let attribute = a.name().to_string();
            for t in a.t.iter_mut().chain(a.tensors.iter_mut()) {
                if is_external(t) {
                    files.read_into(t).with_context(|| {
                        format!(
                            "{}: attribute `{attribute}` of node `{node_name}`",
                            files.model
                        )
                    })?;
                }
            }
        }
    }
    Ok(())
}

fn is_external(t: &TensorProto) -> bool {
    t.data_location() == DataLocation::External
}

/// The data files of one model, each opened once.
struct DataFiles {
    folder: PathBuf,
    model: String,
    open: HashMap<PathBuf, (File, u64)>,
}

impl DataFiles {
    fn read_into(&mut self, t: &mut TensorProto) -> Result<()> {
        let mut location = None;
        let mut offset = None;
        let mut length = None;
        for kv in &t.external_data {
            match kv.key() {
                "location" => location = Some(kv.value().to_string()),
                "offset" => offset = Some(number("offset", kv.value())?),
                "length" => length = Some(number("length", kv.value())?),
                // "checksum" (SHA-1) and keys of later versions: not needed
                // to read the bytes.
                _ => {}
            }
        }
        let location = location.ok_or_else(|| {
            anyhow!("its data is marked external but names no `location`; the file is damaged")
        })?;
        let path = self.checked_path(&location)?;
        let Some(expected) = expected_bytes(t) else {
            // A type or shape pf does not read: nothing to load; the
            // constant reader names what is wrong with it.
            t.raw_data = Some(Vec::new());
            t.set_data_location(DataLocation::Default);
            return Ok(());
        };
        if let Some(length) = length {
            if length != expected {
                bail!(
                    "its external data is {length} bytes long, but its shape {:?} needs {expected}; the data file and the model do not belong together",
                    t.dims
                );
            }
        }
        let (file, size) = match self.open.get_mut(&path) {
            Some(f) => f,
            None => {
                let file = File::open(&path).with_context(|| {
                    format!(
                        "its data file {} cannot be opened; keep the model's data file (`{location}`) in the folder of the model",
                        path.display()
                    )
                })?;
                let size = file
                    .metadata()
                    .with_context(|| format!("cannot read the size of {}", path.display()))?
                    .len();
                self.open.entry(path.clone()).or_insert((file, size))
            }
        };
        let start = offset.unwrap_or(0);
        let length = expected;
        let end = start.checked_add(length).filter(|&e| e <= *size).ok_or_else(|| {
            anyhow!(
                "its data is bytes {start}..{} of {}, which holds only {size} bytes; the data file is truncated or belongs to another model",
                start.saturating_add(length),
                path.display()
            )
        })?;
        let mut bytes = vec![0u8; usize::try_from(end - start)?];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut bytes))
            .with_context(|| format!("cannot read bytes {start}..{end} of {}", path.display()))?;
        t.raw_data = Some(bytes);
        t.external_data.clear();
        t.set_data_location(DataLocation::Default);
        Ok(())
    }

    /// `location` inside the model's folder, or an error saying why not.
    fn checked_path(&self, location: &str) -> Result<PathBuf> {
        let relative = Path::new(location);
        let escapes = relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if location.is_empty() || escapes {
            bail!(
                "its data file `{}` is not a path inside the model's folder (absolute paths and `..` are refused); keep the data file beside the model and name it relative to it",
                location.escape_debug()
            );
        }
        let path = self.folder.join(relative);
        // A symbolic link may still point elsewhere: compare the real paths.
        let (Ok(real), Ok(root)) = (path.canonicalize(), self.folder.canonicalize()) else {
            bail!(
                "its data file {} does not exist; keep the model's data file (`{}`) in the folder of the model",
                path.display(),
                location.escape_debug()
            );
        };
        if !real.starts_with(&root) {
            bail!(
                "its data file {} leads outside the model's folder (to {}); copy the data file beside the model instead of linking it",
                path.display(),
                real.display()
            );
        }
        Ok(real)
    }
}

fn number(key: &str, value: &str) -> Result<u64> {
    value.trim().parse().map_err(|_| {
        anyhow!(
            "its external data `{key}` is `{}`, not a whole number of bytes; the file is damaged",
            value.escape_debug()
        )
    })
}

/// The bytes a tensor of a type pf reads needs, when its shape is sane.
fn expected_bytes(t: &TensorProto) -> Option<u64> {
    let width = match DataType::try_from(t.data_type()).ok()? {
        DataType::Float | DataType::Int32 => 4,
        DataType::Double | DataType::Int64 => 8,
        _ => return None,
    };
    t.dims
        .iter()
        .try_fold(width, |n: u64, &d| n.checked_mul(u64::try_from(d).ok()?))
}
