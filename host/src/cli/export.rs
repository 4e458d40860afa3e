//! `pf export`.

use super::common::{print_json, ZooArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pf::data::{DataSource, LoadOptions, Normalization};
use pf::export::tflite::{self, litert, quantize, verify};
use std::path::PathBuf;

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// TensorFlow Lite FlatBuffers (float32, or int8 with --int8).
    Tflite,
    /// ONNX, opset 13 (float32, or int8 QDQ with --int8), for ONNX Runtime.
    Onnx,
}

/// Arguments of `pf export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A .pf model file, an .onnx model (imported on the fly), or a zoo
    /// architecture (exported with freshly initialised weights: for
    /// checking a deployment path, not for use).
    model: String,
    /// Output format [default: from the output's extension, .tflite or
    /// .onnx]. A format that contradicts the extension is an error.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Where to write the file (written atomically): NAME.tflite or
    /// NAME.onnx.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Full-integer export: int8 weights (symmetric, per channel), int32
    /// biases and int8 activations (asymmetric, per tensor). Activation
    /// ranges come from the model's quantization-aware training where it
    /// has activation quantizers, otherwise from --calibration-images
    /// training images of --data.
    #[arg(long)]
    int8: bool,
    /// With --int8: int8 input and output tensors (the caller quantizes
    /// with the file's scale and zero point), instead of float ones wrapped
    /// in QUANTIZE and DEQUANTIZE.
    #[arg(long, requires = "int8")]
    int8_io: bool,
    /// With --int8 --format onnx: 7-bit weights, as ONNX Runtime advises
    /// for x86 CPUs without VNNI (its u8×s8 kernels saturate on full-range
    /// 8-bit weights). Not needed on ARM or VNNI CPUs.
    #[arg(long, requires = "int8")]
    reduce_range: bool,
    /// Store weights with enough zeros (from weight_sparse, say) in
    /// TFLite's sparse tensor encoding, each behind a DENSIFY operator that
    /// restores it once at load: the file shrinks, the arithmetic stays
    /// dense (so does latency). Float32 only: LiteRT's XNNPACK cannot
    /// prepare int8 layers whose weights come from DENSIFY.
    #[arg(long, conflicts_with = "int8")]
    sparse: bool,
    /// Data for calibration (training split) and --verify (test split):
    /// `digits`, `mnist:DIR`, `cifar10:DIR` or `folder:DIR`. Images are
    /// normalised with the training split's statistics, as in training.
    #[arg(long, value_name = "SOURCE", default_value = "digits")]
    data: DataSource,
    /// Fraction of the training files held out for validation (as in
    /// training; calibration draws from the rest).
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    val_fraction: f64,
    /// Side length images of an image folder are resized to.
    #[arg(long, default_value_t = 32, value_name = "PX")]
    image_size: usize,
    /// Training images whose activations set the int8 ranges.
    #[arg(long, default_value_t = 512, value_name = "N")]
    calibration_images: usize,
    /// After writing, run the file in LiteRT (TFLite) or ONNX Runtime
    /// (ONNX) on the test split and compare it with pf: accuracies, top-1
    /// agreement and the largest output difference.
    #[arg(long)]
    verify: bool,
    /// Test images --verify uses [default: all].
    #[arg(long, value_name = "N")]
    verify_images: Option<usize>,
    /// LiteRT kernels --verify runs with.
    #[arg(long, value_enum, default_value = "xnnpack")]
    kernels: litert::Kernels,
    /// Python with the `ai-edge-litert` package (TFLite) or `onnxruntime`
    /// (ONNX), for --verify [default:
    /// $PF_LITERT_PYTHON, else target/litert-venv of this pf's checkout,
    /// else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    #[command(flatten)]
    zoo: ZooArgs,
    /// Seed of a zoo architecture's initial weights, and of the choice of
    /// calibration images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Format {
    /// The format an extension names, if any.
    fn of_path(p: &std::path::Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "tflite" => Some(Format::Tflite),
            "onnx" => Some(Format::Onnx),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Tflite => "tflite",
            Format::Onnx => "onnx",
        }
    }
}

/// The format to write: `--format`, else the output's extension; the two
/// must agree when both say something.
fn output_format(given: Option<Format>, output: &std::path::Path) -> Result<Format> {
    match (given, Format::of_path(output)) {
        (Some(f), Some(e)) if f.name() != e.name() => bail!(
            "--format {} but the output {} is named as {}: rename the output to .{} or drop --format",
            f.name(),
            output.display(),
            e.name(),
            f.name()
        ),
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => bail!(
            "-o {}: name the output .tflite (TensorFlow Lite) or .onnx (ONNX), or give --format",
            output.display()
        ),
    }
}

/// Runs `pf export`.
pub fn run(a: ExportArgs) -> Result<()> {
    let format = output_format(a.format, &a.output)?;
    if a.int8 && a.calibration_images == 0 {
        bail!("--calibration-images must be at least 1");
    }
    let model = a.zoo.load_or_init(&a.model, a.seed)?;
    let needs_data = a.int8 || a.verify;
    let data = if needs_data {
        let splits = pf::data::load(
            &a.data,
            &LoadOptions {
                val_fraction: a.val_fraction,
                image_size: a.image_size,
            },
        )
        .with_context(|| format!("loading data `{}`", a.data))?;
        let [c, h, w] = splits.train.shape;
        let m = model.graph.input;
        if (m.channels, m.height, m.width) != (c, h, w) {
            bail!(
                "{} expects {}×{}×{} inputs but --data {} is {c}×{h}×{w}; pass the data the model was trained on",
                a.model,
                m.channels,
                m.height,
                m.width,
                a.data
            );
        }
        let norm = Normalization::of(&splits.train);
        Some((splits, norm))
    } else {
        None
    };
    let device = model.device().clone();
    if let Format::Onnx = format {
        return run_onnx(&a, &model, data.as_ref());
    }
    if a.reduce_range {
        bail!("--reduce-range applies to ONNX (for ONNX Runtime on x86 without VNNI); LiteRT's int8 kernels take full-range weights");
    }
    let graph = match (format, a.int8, &data) {
        (Format::Tflite, false, _) => tflite::lower::lower(&model),
        (Format::Tflite, true, Some((splits, norm))) => {
            let bar = pf::progress::spinner(
                &format!("calibrating on {} training images", a.calibration_images),
                !a.json,
            );
            let batches = calibration(&a, splits, norm, &device)?;
            let g = quantize::lower_int8(
                &model,
                &batches,
                &quantize::Int8Options { int8_io: a.int8_io },
            );
            bar.finish_and_clear();
            g
        }
        (Format::Tflite, true, None) => unreachable!("data is loaded for --int8"),
        (Format::Onnx, ..) => unreachable!("ONNX is written by run_onnx"),
    }
    .with_context(|| format!("exporting {} to {}", a.model, a.output.display()))?;
    let (graph, sparse_weights) = if a.sparse {
        tflite::sparse::sparsify(&graph)
    } else {
        (graph, 0)
    };
    let bytes = tflite::write::serialize(&graph, &model.graph.name);
    tflite::write_file(&bytes, &a.output)?;
    let precision = if a.int8 { "int8" } else { "float32" };
    let verification = verify_file(&a, data.as_ref(), "LiteRT", &device, |python, batches| {
        verify::verify(python, &a.output, &graph, &model, batches, a.kernels)
    })?;
    if a.json {
        return print_json(&serde_json::json!({
            "model": model.graph.name,
            "format": "tflite",
            "precision": precision,
            "int8_io": a.int8_io,
            "path": a.output,
            "bytes": bytes.len(),
            "operators": graph.ops.len(),
            "sparse_weights": sparse_weights,
            "verification": verification,
        }));
    }
    println!(
        "wrote {} ({} bytes, {precision} TFLite, {} operators{})",
        a.output.display(),
        bytes.len(),
        graph.ops.len(),
        if a.sparse {
            format!(", {sparse_weights} weights stored sparse")
        } else {
            String::new()
        }
    );
    if let Some(v) = verification {
        println!(
            "verified on {} test images of {}: float model {:.2}%, pf ({}) {:.2}%, LiteRT {:.2}%; top-1 agreement {:.2}%, largest output difference {:.3e} (outputs up to {:.3})",
            v.images,
            a.data,
            v.float_accuracy * 100.0,
            if a.int8 { "simulated int8" } else { "this graph" },
            v.pf_accuracy * 100.0,
            v.litert_accuracy * 100.0,
            v.agreement * 100.0,
            v.max_abs_diff,
            v.max_abs_output
        );
    }
    Ok(())
}

/// Calibration batches for int8 export: `--calibration-images` training
/// images.
fn calibration(
    a: &ExportArgs,
    splits: &pf::data::Splits,
    norm: &Normalization,
    device: &candle_core::Device,
) -> Result<Vec<candle_core::Tensor>> {
    Ok(verify::image_batches(
        &splits.train,
        norm,
        Some(a.calibration_images),
        a.seed,
        64,
        device,
    )?
    .into_iter()
    .map(|(x, _)| x)
    .collect())
}

/// `pf export --format onnx`.
fn run_onnx(
    a: &ExportArgs,
    model: &pf::model::Model,
    data: Option<&(pf::data::Splits, Normalization)>,
) -> Result<()> {
    if a.sparse {
        bail!("--sparse stores TFLite's sparse encoding; ONNX has no sparse weight format that ONNX Runtime computes with, so leave it out with --format onnx");
    }
    if a.int8_io {
        bail!("--int8-io applies to TFLite; an int8 ONNX file keeps float32 input and output around its QDQ graph");
    }
    let device = model.device().clone();
    let lowered = match (a.int8, data) {
        (true, Some((splits, norm))) => {
            let bar = pf::progress::spinner(
                &format!("calibrating on {} training images", a.calibration_images),
                !a.json,
            );
            let batches = calibration(a, splits, norm, &device)?;
            let g = quantize::lower_int8(model, &batches, &quantize::Int8Options::default());
            bar.finish_and_clear();
            Some(g.with_context(|| format!("quantizing {}", a.model))?)
        }
        (true, None) => unreachable!("data is loaded for --int8"),
        (false, _) => None,
    };
    let opts = pf::onnx::ExportOptions {
        int8: lowered.as_ref(),
        reduce_range: a.reduce_range,
    };
    let proto = pf::onnx::export::to_proto(model, &opts)
        .with_context(|| format!("exporting {} to {}", a.model, a.output.display()))?;
    let nodes = proto.graph.as_ref().map_or(0, |g| g.node.len());
    let bytes = prost::Message::encode_to_vec(&proto);
    pf::io::atomic_write(&a.output, &bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let precision = if a.int8 { "int8 QDQ" } else { "float32" };
    let verification = verify_file(a, data, "ONNX Runtime", &device, |python, batches| {
        pf::onnx::runtime::verify(python, &a.output, model, lowered.as_ref(), batches)
    })?;
    if a.json {
        return print_json(&serde_json::json!({
            "model": model.graph.name,
            "format": "onnx",
            "precision": if a.int8 { "int8" } else { "float32" },
            "path": a.output,
            "bytes": bytes.len(),
            "nodes": nodes,
            "opset": pf::onnx::OPSET,
            "verification": verification,
        }));
    }
    println!(
        "wrote {} ({} bytes, {precision} ONNX opset {}, {nodes} nodes)",
        a.output.display(),
        bytes.len(),
        pf::onnx::OPSET
    );
    if let Some(v) = verification {
        println!(
            "verified on {} test images of {}: float model {:.2}%, pf ({}) {:.2}%, ONNX Runtime {:.2}%; top-1 agreement {:.2}%, largest output difference {:.3e} (outputs up to {:.3})",
            v.images,
            a.data,
            v.float_accuracy * 100.0,
            if a.int8 { "simulated int8" } else { "float" },
            v.pf_accuracy * 100.0,
            v.onnxruntime_accuracy * 100.0,
            v.agreement * 100.0,
            v.max_abs_diff,
            v.max_abs_output
        );
    }
    Ok(())
}

/// `--verify`: runs `check` (the runtime's comparison with pf) on the test
/// split, behind a spinner; `None` without `--verify`.
fn verify_file<T>(
    a: &ExportArgs,
    data: Option<&(pf::data::Splits, Normalization)>,
    runtime: &str,
    device: &candle_core::Device,
    check: impl FnOnce(&std::path::Path, &[(candle_core::Tensor, Vec<u32>)]) -> anyhow::Result<T>,
) -> Result<Option<T>> {
    let (Some((splits, norm)), true) = (data, a.verify) else {
        return Ok(None);
    };
    let bar = pf::progress::spinner(
        &format!("running {} in {runtime} and pf", a.output.display()),
        !a.json,
    );
    let batches = verify::image_batches(&splits.test, norm, a.verify_images, a.seed, 256, device)?;
    let python = litert::python(a.python.as_deref());
    let v = check(&python, &batches);
    bar.finish_and_clear();
    Ok(Some(v.with_context(|| {
        format!("verifying {}", a.output.display())
    })?))
}
