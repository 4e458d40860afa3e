//! CIFAR-10 binary batches: records of one label byte and 3×32×32 pixels.

use super::{read_file, Dataset};
use anyhow::{bail, Result};
use std::path::Path;

/// Bytes in one record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Parses one binary batch file.
pub fn parse(path: &Path) -> Result<Dataset> {
    parse_bytes(&read_file(path)?, &path.display().to_string())
}

/// Parses the bytes of one binary batch, with errors that name `source` and
/// what is wrong.
pub fn parse_bytes(bytes: &[u8], source: &str) -> Result<Dataset> {
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        bail!(
            "{source} is {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records; the file is truncated or not a CIFAR-10 binary batch",
            bytes.len()
        );
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            bail!(
                "{source}: record {i} has label {}, but CIFAR-10 labels are 0–9 (10 classes). The \
                 file is corrupt or not a CIFAR-10 binary batch (CIFAR-100's files are another \
                 format): fetch cifar-10-binary.tar.gz again, or give a data set with other \
                 classes as an image folder (folder:DIR, one subfolder of images per class).",
                rec[0]
            );
        }
        labels.push(u32::from(rec[0]));
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(Dataset {
        pixels,
        max_value: 255.0,
        shape: [3, 32, 32],
        labels,
        classes: 10,
    })
}

/// Loads `data_batch_1..5.bin` (those present, at least one) and
/// `test_batch.bin` from a folder.
pub(super) fn load(dir: &Path) -> Result<(Dataset, Dataset)> {
    let mut parts = Vec::new();
    for i in 1..=5 {
        let p = dir.join(format!("data_batch_{i}.bin"));
        if p.is_file() {
            parts.push(parse(&p)?);
        }
    }
    if parts.is_empty() {
        bail!(
            "{} has no data_batch_N.bin files; point --data at the cifar-10-batches-bin folder",
            dir.display()
        );
    }
    let test_path = dir.join("test_batch.bin");
    if !test_path.is_file() {
        bail!(
            "{} has no test_batch.bin; the CIFAR-10 folder is incomplete",
            dir.display()
        );
    }
    Ok((Dataset::concat(parts), parse(&test_path)?))
}
