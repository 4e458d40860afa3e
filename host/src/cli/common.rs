//! Arguments and helpers shared by several commands.

use anyhow::{bail, Context, Result};
use clap::Args;
use pf::data::{self, DataSource, LoadOptions, Normalization, Splits};
use pf::device::DeviceSpec;
use pf::graph::InputSpec;
use pf::model::Model;
use pf::zoo::{self, ZooConfig};
use std::path::Path;

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set: `digits` (embedded), or a folder: `cifar10:DIR`,
    /// `mnist:DIR`, `folder:DIR` (the kind is detected if omitted).
    #[arg(long, default_value = "digits", value_name = "SOURCE")]
    pub data: DataSource,
    /// Fraction of the training files held out for validation (sources
    /// without a validation split of their own).
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub val_fraction: f64,
    /// Side length images of an image folder are resized to.
    #[arg(long, default_value_t = 32, value_name = "PX")]
    pub image_size: usize,
    /// Resize every image to this side length before use (for example to run
    /// a 32×32 architecture on 8×8 digits).
    #[arg(long, value_name = "PX")]
    pub input_size: Option<usize>,
}

impl DataArgs {
    /// Loads and (if asked) resizes the splits.
    pub fn load(&self) -> Result<Splits> {
        let opts = LoadOptions {
            val_fraction: self.val_fraction,
            image_size: self.image_size,
        };
        let splits = data::load(&self.data, &opts)
            .with_context(|| format!("loading data `{}`", self.data))?;
        Ok(match self.input_size {
            Some(s) => splits.resized(s, s),
            None => splits,
        })
    }
}

/// Which model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A zoo architecture (digits_cnn, lenet, resnet20/32/44/56,
    /// mobilenet_v1, mobilenet_v2), a .pf model file, or an .onnx model
    /// (imported on the fly).
    #[arg(
        long,
        short = 'm',
        default_value = "digits_cnn",
        value_name = "NAME|FILE"
    )]
    pub model: String,
    /// Width multiplier for zoo architectures.
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub width: f64,
    /// Shape of one input sample of an ONNX model whose input is dynamic
    /// (symbolic channels, height or width), as CxHxW.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input_shape)]
    pub input_shape: Option<InputSpec>,
}

/// The device flag.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Compute device: cpu or cuda:N (CUDA needs the `cuda` build feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: DeviceSpec,
}

/// How a zoo architecture named on the command line is instantiated.
#[derive(Args, Debug, Clone)]
pub struct ZooArgs {
    /// Input side length for zoo architectures (default: 32, 224 for MobileNets).
    #[arg(long, value_name = "PX")]
    pub input_size: Option<usize>,
    /// Input channels for zoo architectures.
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Classes for zoo architectures (default: 10, 1000 for MobileNets).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Width multiplier for zoo architectures.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Shape of one input sample of an ONNX model whose input is dynamic
    /// (symbolic channels, height or width), as CxHxW.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input_shape)]
    pub input_shape: Option<InputSpec>,
}

impl ZooArgs {
    /// The configuration of zoo architecture `name`.
    pub fn config(&self, name: &str) -> ZooConfig {
        let mobile = name.starts_with("mobilenet");
        let size = self.input_size.unwrap_or(if mobile { 224 } else { 32 });
        ZooConfig {
            input: InputSpec {
                channels: self.in_channels,
                height: size,
                width: size,
            },
            num_classes: self.num_classes.unwrap_or(if mobile { 1000 } else { 10 }),
            width: self.width,
        }
    }

    /// A model file, or zoo architecture `spec` with fresh weights from
    /// `seed`.
    pub fn load_or_init(&self, spec: &str, seed: u64) -> Result<Model> {
        let device = candle_core::Device::Cpu;
        if is_model_file(spec) {
            return load_model_file(Path::new(spec), &device, self.input_shape);
        }
        Model::init(zoo::build(spec, &self.config(spec))?, seed, &device)
    }
}

/// Whether `s` names a model file (pf or ONNX) rather than a zoo
/// architecture.
pub fn is_model_file(s: &str) -> bool {
    s.ends_with(".pf") || s.ends_with(".onnx") || Path::new(s).is_file()
}

/// Parses `--input-shape CxHxW`.
pub fn parse_input_shape(s: &str) -> std::result::Result<InputSpec, String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let dims: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .filter(|d: &Vec<usize>| d.len() == 3)
        .ok_or_else(|| {
            format!("`{s}` is not CxHxW with three positive sizes (for example 3x32x32)")
        })?;
    Ok(InputSpec {
        channels: dims[0],
        height: dims[1],
        width: dims[2],
    })
}

/// Loads a model file: a pf model, or an ONNX model imported on the fly
/// (`input_shape` fills in a dynamic input shape).
pub fn load_model_file(
    path: &Path,
    device: &candle_core::Device,
    input_shape: Option<InputSpec>,
) -> Result<Model> {
    if pf::onnx::is_onnx_path(path) {
        let opts = pf::onnx::ImportOptions { input_shape };
        return Ok(pf::onnx::import_file(path, &opts, device)?.model);
    }
    if input_shape.is_some() {
        bail!(
            "--input-shape applies to ONNX models; {} is a pf model file, whose input shape is fixed",
            path.display()
        );
    }
    pf::model::load(path, device)
}

/// Loads a model file, or builds a zoo model for the given input shape and
/// class count.
pub fn model_for(
    args: &ModelArgs,
    input: InputSpec,
    classes: usize,
    seed: u64,
    device: &candle_core::Device,
) -> Result<Model> {
    if is_model_file(&args.model) {
        let model = load_model_file(Path::new(&args.model), device, args.input_shape)?;
        let want = model.graph.input;
        if want != input {
            anyhow::bail!(
                "model {} expects {}×{}×{} inputs but the data is {}×{}×{}; pass --input-size or other data",
                args.model,
                want.channels,
                want.height,
                want.width,
                input.channels,
                input.height,
                input.width
            );
        }
        return Ok(model);
    }
    let graph = zoo::build(
        &args.model,
        &ZooConfig {
            input,
            num_classes: classes,
            width: args.width,
        },
    )?;
    Model::init(graph, seed, device)
}

/// The input shape of a data set's samples.
pub fn input_of(splits: &Splits) -> InputSpec {
    let [c, h, w] = splits.train.shape;
    InputSpec {
        channels: c,
        height: h,
        width: w,
    }
}

/// Prints a value as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Formats a count with SI suffixes (`40.55M`).
pub fn si(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.2}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Fails early, before any training and without creating anything, if the
/// output cannot be written.
pub fn check_writable(path: &std::path::Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "output {} is a folder; give a file name such as model.pf",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("."));
    if !existing.is_dir() {
        bail!(
            "cannot create output folder {}: {} is a file",
            dir.display(),
            existing.display()
        );
    }
    tempfile::tempfile_in(existing)
        .with_context(|| format!("output folder {} is not writable", existing.display()))?;
    Ok(())
}

/// How a zoo baseline is trained before it is compressed: SGD with momentum
/// and a cosine schedule from 0.05, batch 32.
pub fn baseline_config(epochs: u64, seed: u64) -> pf::train::TrainConfig {
    pf::train::TrainConfig {
        epochs,
        max_steps: None,
        batch_size: 32,
        optimizer: pf::train::OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        weight_decay: 5e-4,
        schedule: pf::train::Schedule {
            base: 0.05,
            kind: pf::train::ScheduleKind::Cosine,
            warmup_steps: 0,
        },
        label_smoothing: 0.0,
        augment: pf::data::Augment::None,
        seed,
        distill: None,
    }
}
/// SHA-256 over every split's pixels and labels: the data's identity.
pub fn data_sha256(splits: &Splits) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for d in [&splits.train, &splits.val, &splits.test] {
        h.update((d.pixels.len() as u64).to_le_bytes());
        h.update(&d.pixels);
        for l in &d.labels {
            h.update(l.to_le_bytes());
        }
        for s in d.shape {
            h.update((s as u64).to_le_bytes());
        }
    }
    pf::io::hex(&h.finalize())
}

/// The baseline of a search or a plugin run: a model file as it is, or a
/// zoo architecture trained for `epochs` on the training split, cached (in
/// pf's cache folder) by everything that determines its weights, so that
/// `pf compress` and `pf plugin apply` train it once. `quiet` hides the
/// progress and the notes on standard error.
pub fn cached_baseline(
    model: &ModelArgs,
    splits: &Splits,
    epochs: u64,
    seed: u64,
    device: &candle_core::Device,
    quiet: bool,
) -> Result<Model> {
    let input = input_of(splits);
    if is_model_file(&model.model) || epochs == 0 {
        return model_for(model, input, splits.train.classes, seed, device);
    }
    let data_hash = data_sha256(splits);
    let config = baseline_config(epochs, seed);
    let key = pf::io::sha256_hex(
        serde_json::json!({
            "model": model.model,
            "width": model.width,
            "data": data_hash,
            "config": config,
            // Baselines are plain (version 1) model files.
            "format": "1",
        })
        .to_string()
        .as_bytes(),
    );
    let cached = pf::io::cache_root().map(|d| {
        d.join("baselines")
            .join(format!("{}-{}.pf", model.model, &key[..16]))
    });
    if let Some(path) = &cached {
        if path.is_file() {
            match pf::model::load(path, device) {
                Ok(m) => {
                    if !quiet {
                        eprintln!("baseline: cached {}", path.display());
                    }
                    return Ok(m);
                }
                Err(e) => eprintln!("warning: ignoring a damaged cached baseline: {e:#}"),
            }
        }
    }
    let name = &model.model;
    let mut model = model_for(model, input, splits.train.classes, seed, device)?;
    if !quiet {
        eprintln!("baseline: training {name} for {epochs} epochs (cached afterwards)");
    }
    pf::train::Trainer {
        config,
        data: &splits.train,
        norm: Normalization::of(&splits.train),
        teacher: None,
        checkpoint: None,
        progress: !quiet,
        auxiliary: &[],
    }
    .run(&mut model, None)
    .context("training the baseline")?;
    if let Some(path) = &cached {
        if let Err(e) = pf::model::save(&model, path) {
            eprintln!("warning: could not cache the baseline: {e:#}");
        }
    }
    Ok(model)
}
