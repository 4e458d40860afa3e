//! Image folders: one subfolder per class, named by the class. If the folder
//! holds `train/` and `test/` (and optionally `val/`) subfolders, those are the
//! splits; otherwise pf holds out a fixed, stratified 20% for test and the
//! validation fraction of the rest.

use super::{hold_out, Dataset, LoadOptions};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Reads one class-per-subfolder tree with the given class names (or
/// discovers them).
fn read_tree(
    dir: &Path,
    classes: Option<&[String]>,
    size: usize,
) -> Result<(Dataset, Vec<String>)> {
    let found: Vec<String> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let classes: Vec<String> = match classes {
        Some(c) => {
            if let Some(extra) = found.iter().find(|f| !c.contains(f)) {
                bail!(
                    "{} has class folder `{extra}` that the training split does not have",
                    dir.display()
                );
            }
            c.to_vec()
        }
        None => found,
    };
    if classes.len() < 2 {
        bail!(
            "{} needs at least two class subfolders of images, found {}",
            dir.display(),
            classes.len()
        );
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        for path in sorted_entries(&class_dir)? {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if !EXTENSIONS.contains(&ext.as_str()) {
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            pixels.extend(decode_image(&bytes, &path.display().to_string(), size)?);
            labels.push(label as u32);
        }
    }
    if labels.is_empty() {
        bail!(
            "{} holds no .png or .jpg images in its class folders",
            dir.display()
        );
    }
    Ok((
        Dataset {
            pixels,
            max_value: 255.0,
            shape: [3, size, size],
            labels,
            classes: classes.len(),
        },
        classes,
    ))
}

/// The largest image pf decodes, in pixels per side.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most memory one image may take while it is decoded.
pub const MAX_IMAGE_DECODE_BYTES: u64 = 512 << 20;

/// Decodes one PNG or JPEG image and resizes it to `size`×`size` RGB,
/// channels first (3·size² bytes). Errors name `source` and what is wrong; a
/// header that declares an image too large to decode is refused before its
/// pixels are allocated.
pub fn decode_image(bytes: &[u8], source: &str, size: usize) -> Result<Vec<u8>> {
    if size == 0 || size > MAX_IMAGE_SIDE as usize {
        bail!("image size {size} is out of range: give 1 to {MAX_IMAGE_SIDE} pixels");
    }
    let unreadable = || format!("{source} is not a readable image (corrupt or truncated?)");
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(unreadable)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().with_context(unreadable)?.to_rgb8();
    let img = image::imageops::resize(
        &img,
        size as u32,
        size as u32,
        image::imageops::FilterType::Triangle,
    );
    // Interleaved RGB to channels-first.
    let raw = img.as_raw();
    let mut out = Vec::with_capacity(raw.len());
    for c in 0..3 {
        out.extend(raw.iter().skip(c).step_by(3));
    }
    Ok(out)
}

pub(super) fn load(dir: &Path, opts: &LoadOptions) -> Result<(Dataset, Dataset, Dataset)> {
    if !dir.is_dir() {
        bail!("image folder {} does not exist", dir.display());
    }
    let size = opts.image_size;
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        let (train, classes) = read_tree(&dir.join("train"), None, size)?;
        let (test, _) = read_tree(&dir.join("test"), Some(&classes), size)?;
        let (train, val) = if dir.join("val").is_dir() {
            (train, read_tree(&dir.join("val"), Some(&classes), size)?.0)
        } else {
            hold_out(&train, opts.val_fraction)
        };
        return Ok((train, val, test));
    }
    let (all, _) = read_tree(dir, None, size)?;
    let (rest, test) = hold_out(&all, 0.2);
    let (train, val) = hold_out(&rest, opts.val_fraction);
    Ok((train, val, test))
}
