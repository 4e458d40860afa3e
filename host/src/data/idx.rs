//! MNIST / Fashion-MNIST IDX files, raw or gzip-compressed.

use super::{read_file, Dataset};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The classes of the MNIST-style data sets pf reads (MNIST, Fashion-MNIST,
/// KMNIST): labels are 0–9.
pub const CLASSES: usize = 10;

/// Finds `name` or `name.gz` in `dir` (also the `train-images.idx3-ubyte`
/// spelling some mirrors use).
pub(super) fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// The most bytes a gzip-compressed IDX file may expand to: far above any
/// MNIST-style set (MNIST's training images are 47 MB), far below what would
/// exhaust memory, so a gzip bomb is refused instead of filling the machine.
pub const MAX_GUNZIPPED_BYTES: u64 = 4 << 30;

/// The bytes of an IDX file, gunzipped when they are gzip.
fn maybe_gunzip<'a>(raw: &'a [u8], source: &str) -> Result<std::borrow::Cow<'a, [u8]>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(MAX_GUNZIPPED_BYTES + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("{source} is not a valid gzip file (truncated or corrupt)"))?;
    if out.len() as u64 > MAX_GUNZIPPED_BYTES {
        bail!(
            "{source} expands to more than {} GiB when gunzipped; it is not an MNIST-style IDX              file (or a gzip bomb)",
            MAX_GUNZIPPED_BYTES >> 30
        );
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Parses the bytes of an IDX file of unsigned bytes (raw or gzip), with
/// errors that name `source` and what is wrong; returns its dimensions and
/// data.
pub fn parse_bytes(
    raw: &[u8],
    source: &str,
    expected_rank: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = maybe_gunzip(raw, source)?;
    let p = source;
    if bytes.len() < 4 {
        bail!("{p} is too short to be an IDX file ({} bytes)", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "{p} is not an IDX file (bad magic number {:02x}{:02x}{:02x}{:02x})",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    if bytes[2] != 0x08 {
        bail!(
            "{p} holds IDX type {:#04x}; pf reads unsigned-byte (0x08) IDX files",
            bytes[2]
        );
    }
    let rank = bytes[3] as usize;
    if rank != expected_rank {
        bail!("{p} has {rank} dimensions but {expected_rank} were expected (are images and labels swapped?)");
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        bail!("{p} is truncated inside its header");
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    // The header's sizes are checked against the file before anything is
    // allocated; a product past `usize` is a damaged header.
    let want = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_add(header));
    let Some(want) = want else {
        bail!("{p} has header dimensions {dims:?}, whose product overflows; the file is corrupt");
    };
    if bytes.len() != want {
        bail!(
            "{p} is {} bytes but its header {dims:?} needs {want}; the file is {}",
            bytes.len(),
            if bytes.len() < want {
                "truncated"
            } else {
                "longer than its header says"
            }
        );
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an images file and a labels file into one data set.
pub fn load_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    pair_from_bytes(
        &read_file(images)?,
        &images.display().to_string(),
        &read_file(labels)?,
        &labels.display().to_string(),
    )
}

/// Builds one data set from the bytes of an images IDX file and a labels IDX
/// file (each raw or gzip), with errors that name `images_source` or
/// `labels_source` and what is wrong.
pub fn pair_from_bytes(
    images: &[u8],
    images_source: &str,
    labels: &[u8],
    labels_source: &str,
) -> Result<Dataset> {
    let (dims, pixels) = parse_bytes(images, images_source, 3)?;
    let (ldims, labels_raw) = parse_bytes(labels, labels_source, 1)?;
    if dims[1] == 0 || dims[2] == 0 {
        bail!(
            "{images_source} holds {}×{} images; an image needs at least one pixel, so the file \
             is corrupt",
            dims[1],
            dims[2]
        );
    }
    if dims[0] != ldims[0] {
        bail!(
            "{images_source} has {} images but {labels_source} has {} labels; they do not \
             belong together",
            dims[0],
            ldims[0]
        );
    }
    let values: Vec<u32> = labels_raw.into_iter().map(u32::from).collect();
    // MNIST, Fashion-MNIST and KMNIST have 10 classes; a label beyond them
    // is a damaged or foreign file, never a reason for a bigger model.
    let data = Dataset {
        pixels,
        max_value: 255.0,
        shape: [1, dims[1], dims[2]],
        labels: values,
        classes: CLASSES,
    };
    data.check_labels(
        labels_source,
        "MNIST labels",
        "The file is corrupt or not an MNIST / Fashion-MNIST label file: fetch it again \
         (scripts/fetch-mnist.sh puts MNIST in data/mnist), or give a data set with other \
         classes as an image folder (folder:DIR, one subfolder of images per class).",
    )?;
    Ok(data)
}

/// Loads `train-*` and `t10k-*` IDX files from a folder.
pub(super) fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    let need = |name: &str| {
        find(dir, name).with_context(|| {
            format!("{} has no {name}[.gz]; an MNIST folder needs the four IDX files (scripts/fetch-mnist.sh puts them in data/mnist)", dir.display())
        })
    };
    let train = load_pair(
        &need("train-images-idx3-ubyte")?,
        &need("train-labels-idx1-ubyte")?,
    )?;
    let test = load_pair(
        &need("t10k-images-idx3-ubyte")?,
        &need("t10k-labels-idx1-ubyte")?,
    )?;
    if train.shape != test.shape {
        bail!(
            "{}: train images are {:?} but test images are {:?}",
            dir.display(),
            train.shape,
            test.shape
        );
    }
    Ok((train, test))
}
