//! Data sets: the embedded digits, CIFAR-10 binary batches, MNIST-style IDX
//! files and image folders, all loaded into one in-memory form, split into
//! train / validation / test, and batched with preprocessing.

mod batch;
mod cifar;
mod digits;
mod folder;
mod idx;

pub use batch::{Augment, Batch, Batcher, Normalization};

/// The readers of each data set file format, from bytes: what `load` runs on
/// every file, exposed so that the fuzzers (tests/fuzz) and their corpus
/// replay drive exactly the code users run.
pub mod parse {
    pub use super::cifar::parse_bytes as cifar_batch;
    pub use super::folder::decode_image as folder_image;
    pub use super::idx::pair_from_bytes as idx_pair;
}

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Images (8-bit, channels first) with integer labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixel values, sample after sample, each `C×H×W`.
    pub pixels: Vec<u8>,
    /// The pixel value that means full intensity (255, or 16 for the digits).
    pub max_value: f32,
    /// Channels, height, width of every sample.
    pub shape: [usize; 3],
    /// Class of every sample.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values in one sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of sample `i`.
    pub fn sample(&self, i: usize) -> &[u8] {
        let n = self.sample_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.sample_len());
        for &i in indices {
            pixels.extend_from_slice(self.sample(i));
        }
        Dataset {
            pixels,
            max_value: self.max_value,
            shape: self.shape,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }

    /// Concatenates data sets of the same shape.
    fn concat(parts: Vec<Dataset>) -> Dataset {
        let mut it = parts.into_iter();
        let mut first = it.next().expect("at least one part");
        for p in it {
            first.pixels.extend(p.pixels);
            first.labels.extend(p.labels);
            first.classes = first.classes.max(p.classes);
        }
        first
    }

    /// Resizes every sample to `h×w` (bilinear).
    pub fn resized(&self, h: usize, w: usize) -> Dataset {
        if [h, w] == [self.shape[1], self.shape[2]] {
            return self.clone();
        }
        let [c, sh, sw] = self.shape;
        let mut pixels = Vec::with_capacity(self.len() * c * h * w);
        for i in 0..self.len() {
            let s = self.sample(i);
            for ch in 0..c {
                let plane = &s[ch * sh * sw..(ch + 1) * sh * sw];
                let img = image::GrayImage::from_raw(sw as u32, sh as u32, plane.to_vec())
                    .expect("plane size");
                let out = image::imageops::resize(
                    &img,
                    w as u32,
                    h as u32,
                    image::imageops::FilterType::Triangle,
                );
                pixels.extend_from_slice(out.as_raw());
            }
        }
        Dataset {
            pixels,
            max_value: self.max_value,
            shape: [c, h, w],
            labels: self.labels.clone(),
            classes: self.classes,
        }
    }

    /// Checks that every label is below the class count. `source` names the
    /// file, `what` the data set's classes ("MNIST labels") and `fix` says
    /// what to do about a label out of range.
    fn check_labels(&self, source: &str, what: &str, fix: &str) -> Result<()> {
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= self.classes)
        {
            bail!(
                "{source}: label {l} at index {i} is out of range: {what} are 0–{} ({} classes), \
                 and {l} would make a {} class. {fix}",
                self.classes.saturating_sub(1),
                self.classes,
                ordinal(l as u64 + 1)
            );
        }
        Ok(())
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, …, `11th`, …, `201st`.
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Train, validation and test splits of one source.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Name of the source (`digits`, `mnist:/path`, ...).
    pub name: String,
    /// Training samples.
    pub train: Dataset,
    /// Validation samples (used by the search).
    pub val: Dataset,
    /// Test samples (final figures only).
    pub test: Dataset,
}

/// A summary of the splits, for `--json` output.
#[derive(Debug, Serialize)]
pub struct SplitSummary {
    /// Source name.
    pub name: String,
    /// Sample shape.
    pub shape: [usize; 3],
    /// Classes.
    pub classes: usize,
    /// Train / val / test sizes.
    pub sizes: [usize; 3],
}

impl Splits {
    /// SHA-256 over every split's pixels, labels and shape: the data's
    /// identity, which a study records and a resumed one must match.
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for d in [&self.train, &self.val, &self.test] {
            h.update((d.pixels.len() as u64).to_le_bytes());
            h.update(&d.pixels);
            for l in &d.labels {
                h.update(l.to_le_bytes());
            }
            for s in d.shape {
                h.update((s as u64).to_le_bytes());
            }
        }
        crate::io::hex(&h.finalize())
    }

    /// A summary for reports.
    pub fn summary(&self) -> SplitSummary {
        SplitSummary {
            name: self.name.clone(),
            shape: self.train.shape,
            classes: self.train.classes,
            sizes: [self.train.len(), self.val.len(), self.test.len()],
        }
    }

    /// The split with the given name.
    pub fn get(&self, split: &str) -> Result<&Dataset> {
        match split {
            "train" => Ok(&self.train),
            "val" => Ok(&self.val),
            "test" => Ok(&self.test),
            other => bail!("unknown split `{other}`; use train, val or test"),
        }
    }

    /// Resizes every split.
    pub fn resized(self, h: usize, w: usize) -> Splits {
        Splits {
            name: self.name,
            train: self.train.resized(h, w),
            val: self.val.resized(h, w),
            test: self.test.resized(h, w),
        }
    }
}

/// Where data comes from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The embedded 8×8 digits.
    Digits,
    /// A folder of CIFAR-10 binary batches.
    Cifar10(PathBuf),
    /// A folder of MNIST / Fashion-MNIST IDX files (raw or gzip).
    Mnist(PathBuf),
    /// A folder with one subfolder of images per class (optionally inside
    /// `train/`, `val/`, `test/`).
    Folder(PathBuf),
}

impl std::str::FromStr for DataSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "digits" {
            return Ok(DataSource::Digits);
        }
        let (kind, path) = match s.split_once(':') {
            Some((k, p)) if ["cifar10", "mnist", "folder"].contains(&k) => (Some(k), p),
            _ => (None, s),
        };
        let path = PathBuf::from(path);
        match kind {
            Some("cifar10") => Ok(DataSource::Cifar10(path)),
            Some("mnist") => Ok(DataSource::Mnist(path)),
            Some(_) => Ok(DataSource::Folder(path)),
            None if !path.exists() => Err(format!(
                "data `{s}` is neither `digits` nor an existing folder; use digits, cifar10:DIR, mnist:DIR or folder:DIR"
            )),
            None if path.join("data_batch_1.bin").exists() || path.join("test_batch.bin").exists() => {
                Ok(DataSource::Cifar10(path))
            }
            None if idx::find(&path, "train-images-idx3-ubyte").is_some() => Ok(DataSource::Mnist(path)),
            None => Ok(DataSource::Folder(path)),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Digits => write!(f, "digits"),
            DataSource::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
            DataSource::Mnist(p) => write!(f, "mnist:{}", p.display()),
            DataSource::Folder(p) => write!(f, "folder:{}", p.display()),
        }
    }
}

/// Options for loading.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Fraction of the training files held out for validation when a source
    /// has no validation split of its own.
    pub val_fraction: f64,
    /// Side length image folders are resized to.
    pub image_size: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            val_fraction: 0.1,
            image_size: 32,
        }
    }
}

/// Loads a source and splits it.
pub fn load(source: &DataSource, opts: &LoadOptions) -> Result<Splits> {
    if !(0.0..1.0).contains(&opts.val_fraction) {
        bail!(
            "validation fraction {} must be in [0, 1)",
            opts.val_fraction
        );
    }
    let name = source.to_string();
    let (train, val, test) = match source {
        DataSource::Digits => digits::load()?,
        DataSource::Cifar10(dir) => {
            let (train, test) = cifar::load(dir)?;
            let (train, val) = hold_out(&train, opts.val_fraction);
            (train, val, test)
        }
        DataSource::Mnist(dir) => {
            let (train, test) = idx::load_mnist(dir)?;
            let (train, val) = hold_out(&train, opts.val_fraction);
            (train, val, test)
        }
        DataSource::Folder(dir) => folder::load(dir, opts)?,
    };
    for (split, d) in [("train", &train), ("test", &test)] {
        if d.is_empty() {
            bail!("{name}: the {split} split is empty");
        }
    }
    // Each format checks its own files; this is the last word: every split
    // has the same classes, and every label is one of them, so a model is
    // never sized by a stray label.
    for (split, d) in [("validation", &val), ("test", &test)] {
        if d.classes != train.classes {
            bail!(
                "{name}: the {split} split has {} classes but the train split has {}; train \
                 and test must have the same classes",
                d.classes,
                train.classes
            );
        }
    }
    for (split, d) in [("train", &train), ("validation", &val), ("test", &test)] {
        d.check_labels(
            &format!("{name} ({split} split)"),
            "its labels",
            "The data set is inconsistent; check its files.",
        )?;
    }
    Ok(Splits {
        name,
        train,
        val,
        test,
    })
}

/// Splits `indices` into `(rest, picked)` with `count` picked by systematic
/// sampling over the indices ordered by class, then by index: a stratified
/// sample that depends on nothing but the labels. Both parts come back in
/// index order.
fn stratified_pick(labels: &[u32], indices: &[usize], count: usize) -> (Vec<usize>, Vec<usize>) {
    let mut order = indices.to_vec();
    order.sort_by_key(|&i| (labels[i], i));
    let n = order.len();
    let (mut rest, mut picked) = (Vec::new(), Vec::new());
    for (pos, &i) in order.iter().enumerate() {
        if count > 0 && ((pos + 1) * count) / n > (pos * count) / n {
            picked.push(i);
        } else {
            rest.push(i);
        }
    }
    rest.sort_unstable();
    picked.sort_unstable();
    (rest, picked)
}

/// Splits off a stratified, seed-independent hold-out of `fraction` of the
/// samples.
fn hold_out(data: &Dataset, fraction: f64) -> (Dataset, Dataset) {
    let all: Vec<usize> = (0..data.len()).collect();
    let count = (data.len() as f64 * fraction).round() as usize;
    let (keep, held) = stratified_pick(&data.labels, &all, count);
    (data.subset(&keep), data.subset(&held))
}

/// Reads a whole file, naming it in the error.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
