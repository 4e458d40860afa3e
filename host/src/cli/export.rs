//! `pf export`.

use super::common::{print_json, ZooArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::data::{DataSource, LoadOptions, Normalization, Splits};
use pf::deploy::{self, Format};
use pf::export::tflite::{litert, verify};
use std::path::PathBuf;

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
    let mut opts = deploy::Options {
        format,
        calibration: None,
        int8_io: a.int8_io,
        reduce_range: a.reduce_range,
        sparse: a.sparse,
    };
    opts.check()?;
    let model = a.zoo.load_or_init(&a.model, a.seed)?;
    let data = if a.int8 || a.verify {
        Some(load_data(&a, &model)?)
    } else {
        None
    };
    let device = model.device().clone();
    let calibration = match (&data, a.int8) {
        (Some((splits, norm)), true) => {
            let bar = pf::progress::spinner(
                &format!("calibrating on {} training images", a.calibration_images),
                !a.json,
            );
            let batches =
                deploy::calibration(&splits.train, norm, a.calibration_images, a.seed, &device)?;
            bar.finish_and_clear();
            Some(batches)
        }
        _ => None,
    };
    opts.calibration = calibration.as_deref();
    let bar = pf::progress::spinner(&format!("writing {}", a.output.display()), !a.json);
    let written = deploy::write(&model, &a.output, &opts)
        .with_context(|| format!("exporting {} to {}", a.model, a.output.display()));
    bar.finish_and_clear();
    let written = written?;
    let verification = match (&data, a.verify) {
        (Some((splits, norm)), true) => {
            let bar = pf::progress::spinner(
                &format!(
                    "running {} in {} and pf",
                    a.output.display(),
                    runtime_name(format)
                ),
                !a.json,
            );
            let batches =
                verify::image_batches(&splits.test, norm, a.verify_images, a.seed, 256, &device)?;
            let python = litert::python(a.python.as_deref());
            let v = match format {
                Format::Tflite => {
                    let graph = written.lowered.as_ref().expect("a TFLite file's lowering");
                    verify::verify(&python, &a.output, graph, &model, &batches, a.kernels)
                        .map(Verification::Tflite)
                }
                Format::Onnx => pf::onnx::runtime::verify(
                    &python,
                    &a.output,
                    &model,
                    written.lowered.as_ref(),
                    &batches,
                )
                .map(Verification::Onnx),
            };
            bar.finish_and_clear();
            Some(v.with_context(|| format!("verifying {}", a.output.display()))?)
        }
        _ => None,
    };
    print(&a, format, &model, &written, verification.as_ref())
}

/// The data for `--int8` and `--verify`, checked against the model's input.
fn load_data(a: &ExportArgs, model: &pf::model::Model) -> Result<(Splits, Normalization)> {
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
    let norm = Normalization::for_model(&model.graph, &splits.train);
    Ok((splits, norm))
}

/// The official runtime that judges a format.
fn runtime_name(format: Format) -> &'static str {
    match format {
        Format::Tflite => "LiteRT",
        Format::Onnx => "ONNX Runtime",
    }
}

/// A runtime's comparison with pf on the test split.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Verification {
    Tflite(verify::Verification),
    Onnx(pf::onnx::runtime::Verification),
}

/// Prints what was written (and how it verified), as text or JSON.
fn print(
    a: &ExportArgs,
    format: Format,
    model: &pf::model::Model,
    written: &deploy::Written,
    verification: Option<&Verification>,
) -> Result<()> {
    let tflite = format == Format::Tflite;
    if a.json {
        let mut out = serde_json::json!({
            "model": model.graph.name,
            "format": format.name(),
            "precision": if a.int8 { "int8" } else { "float32" },
            "path": a.output,
            "bytes": written.bytes,
            "verification": verification,
        });
        if tflite {
            out["int8_io"] = a.int8_io.into();
            out["operators"] = written.operators.into();
            out["sparse_weights"] = written.sparse_weights.into();
        } else {
            out["nodes"] = written.operators.into();
            out["opset"] = pf::onnx::opset_for(&model.graph).into();
        }
        return print_json(&out);
    }
    let precision = match (a.int8, tflite) {
        (false, _) => "float32",
        (true, true) => "int8",
        (true, false) => "int8 QDQ",
    };
    if tflite {
        println!(
            "wrote {} ({} bytes, {precision} TFLite, {} operators{})",
            a.output.display(),
            written.bytes,
            written.operators,
            if a.sparse {
                format!(", {} weights stored sparse", written.sparse_weights)
            } else {
                String::new()
            }
        );
    } else {
        println!(
            "wrote {} ({} bytes, {precision} ONNX opset {}, {} nodes)",
            a.output.display(),
            written.bytes,
            pf::onnx::opset_for(&model.graph),
            written.operators
        );
    }
    if let Some(v) = verification {
        // Both runtimes' comparisons have the same fields but the runtime's
        // accuracy, named after it.
        let v = serde_json::to_value(v)?;
        let x = |key: &str| v[key].as_f64().unwrap_or(f64::NAN);
        let runtime_accuracy = match format {
            Format::Tflite => x("litert_accuracy"),
            Format::Onnx => x("onnxruntime_accuracy"),
        };
        println!(
            "verified on {} test images of {}: float model {:.2}%, pf ({}) {:.2}%, {} {:.2}%; top-1 agreement {:.2}%, largest output difference {:.3e} (outputs up to {:.3})",
            x("images"),
            a.data,
            x("float_accuracy") * 100.0,
            match (a.int8, tflite) {
                (true, _) => "simulated int8",
                (false, true) => "this graph",
                (false, false) => "float",
            },
            x("pf_accuracy") * 100.0,
            runtime_name(format),
            runtime_accuracy * 100.0,
            x("agreement") * 100.0,
            x("max_abs_diff"),
            x("max_abs_output"),
        );
    }
    Ok(())
}
