//! `pf train`.

use super::common::{print_json, DataArgs, DeviceArgs, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pf::data::{Augment, DataSource, Normalization};
use pf::source::input_of;
use pf::train::{
    self, CheckpointOptions, DistillConfig, OptimizerKind, Schedule, ScheduleKind, TrainConfig,
    Trainer,
};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum OptimizerName {
    Sgd,
    Adam,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum ScheduleName {
    Constant,
    Step,
    Cosine,
}

/// Arguments of `pf train`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pf train                                   # small CNN on the embedded digits\n  pf train --model lenet --data mnist:data/mnist --epochs 12\n  pf train --model resnet20 --data cifar10:DIR --augment crop-flip\n  pf train --teacher big.pf --model digits_cnn --width 0.5   # distillation"
)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Passes over the training split.
    #[arg(long, default_value_t = 30)]
    epochs: u64,
    /// Stop after this many steps.
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,
    /// Samples per step.
    #[arg(long, short = 'b', default_value_t = 32)]
    batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Update rule.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerName,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Use Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleName,
    /// Milestones of the step schedule, as fractions of the run.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.75")]
    milestones: Vec<f64>,
    /// Factor of the step schedule.
    #[arg(long, default_value_t = 0.1)]
    gamma: f64,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    /// Label smoothing ε.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Training augmentation (default: crop-flip for CIFAR-10, none otherwise).
    #[arg(long, value_enum)]
    augment: Option<Augment>,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Distil from this teacher model (a .pf file, or an .onnx model with a
    /// fixed input shape).
    #[arg(long, value_name = "FILE")]
    teacher: Option<PathBuf>,
    /// Distillation temperature.
    #[arg(long, default_value_t = 4.0)]
    temperature: f64,
    /// Weight of the distillation loss.
    #[arg(long, default_value_t = 0.5)]
    distill_weight: f64,
    /// Save a checkpoint every N steps.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<u64>,
    /// Folder of the checkpoint (default: OUTPUT with `.ckpt` appended).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint if there is one.
    #[arg(long)]
    resume: bool,
    /// Where to write the trained model (default: out/MODEL-DATA.pf).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 256)]
    eval_batch_size: usize,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    model: String,
    data: pf::data::SplitSummary,
    output: PathBuf,
    config: TrainConfig,
    train: train::TrainReport,
    val: Option<train::Metrics>,
    test: train::Metrics,
    macs: u64,
    params: u64,
    weights_sha256: String,
    total_seconds: f64,
}

pub fn run(a: TrainArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let device = a.device.device.open()?;
    let splits = a.data.load()?;
    let input = input_of(&splits);
    let mut model = a
        .model
        .source()
        .build(input, splits.train.classes, a.seed, &device)?;
    let cost = model.graph.cost()?;
    let output = a.output.clone().unwrap_or_else(|| {
        let data = match &a.data.data {
            DataSource::Digits => "digits".to_string(),
            other => other
                .to_string()
                .split(':')
                .next()
                .unwrap_or("data")
                .to_string(),
        };
        let stem = std::path::Path::new(&a.model.model)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        PathBuf::from(format!("out/{stem}-{data}.pf"))
    });
    pf::io::check_writable(&output)?;
    let teacher = match &a.teacher {
        Some(p) => Some(
            pf::source::load_model_file(p, &device, None)
                .with_context(|| format!("loading teacher {}", p.display()))?,
        ),
        None => None,
    };
    if let Some(t) = &teacher {
        if t.graph.input != model.graph.input {
            bail!(
                "teacher {} takes different inputs from the student",
                a.teacher.as_ref().expect("set").display()
            );
        }
    }
    let config = TrainConfig {
        epochs: a.epochs,
        max_steps: a.max_steps,
        batch_size: a.batch_size,
        optimizer: match a.optimizer {
            OptimizerName::Sgd => OptimizerKind::Sgd {
                momentum: a.momentum,
                nesterov: a.nesterov,
            },
            OptimizerName::Adam => OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        },
        weight_decay: a.weight_decay,
        schedule: Schedule {
            base: a.lr,
            kind: match a.schedule {
                ScheduleName::Constant => ScheduleKind::Constant,
                ScheduleName::Step => ScheduleKind::Step {
                    milestones: a.milestones.clone(),
                    gamma: a.gamma,
                },
                ScheduleName::Cosine => ScheduleKind::Cosine,
            },
            warmup_steps: a.warmup_steps,
        },
        label_smoothing: a.label_smoothing,
        augment: a.augment.unwrap_or(match a.data.data {
            DataSource::Cifar10(_) => Augment::CropFlip,
            _ => Augment::None,
        }),
        seed: a.seed,
        distill: match &teacher {
            Some(t) => Some(DistillConfig {
                temperature: a.temperature,
                weight: a.distill_weight,
                teacher_sha256: t.weights_sha256()?,
            }),
            None => None,
        },
    };
    config.validate()?;
    let checkpoint = match (a.checkpoint_every, a.resume) {
        (None, false) => None,
        (every, _) => Some(CheckpointOptions {
            dir: a.checkpoint_dir.clone().unwrap_or_else(|| {
                let mut s = output.clone().into_os_string();
                s.push(".ckpt");
                PathBuf::from(s)
            }),
            every: every.unwrap_or(u64::MAX),
            resume: a.resume,
        }),
    };
    let norm = Normalization::for_model(&model.graph, &splits.train);
    if !a.json {
        eprintln!(
            "training {} ({} MACs, {} params) on {} ({} train / {} val / {} test), {} steps",
            model.graph.name,
            super::common::si(cost.macs),
            super::common::si(cost.params),
            splits.name,
            splits.train.len(),
            splits.val.len(),
            splits.test.len(),
            config.total_steps(splits.train.len())
        );
    }
    let trainer = Trainer {
        config: config.clone(),
        data: &splits.train,
        norm: norm.clone(),
        teacher: teacher.as_ref(),
        checkpoint,
        progress: !a.json,
        auxiliary: &[],
    };
    let report = trainer.run(&mut model, None)?;
    pf::model::save(&model, &output)
        .with_context(|| format!("saving the model to {}", output.display()))?;
    let val = if splits.val.is_empty() {
        None
    } else {
        Some(train::evaluate(
            &model,
            &splits.val,
            &norm,
            a.eval_batch_size,
            !a.json,
        )?)
    };
    let test = train::evaluate(&model, &splits.test, &norm, a.eval_batch_size, !a.json)?;
    let summary = Summary {
        model: model.graph.name.clone(),
        data: splits.summary(),
        output: output.clone(),
        config,
        train: report,
        val,
        test,
        macs: cost.macs,
        params: cost.params,
        weights_sha256: model.weights_sha256()?,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    if a.json {
        return print_json(&summary);
    }
    println!("model      {} -> {}", summary.model, output.display());
    println!(
        "training   {} steps in {:.1} s ({:.0} images/s){}",
        summary.train.steps,
        summary.train.seconds,
        summary.train.images_per_second,
        if summary.train.resumed_from > 0 {
            format!(", resumed from step {}", summary.train.resumed_from)
        } else {
            String::new()
        }
    );
    if let Some(v) = &summary.val {
        println!(
            "val        accuracy {:.2}%  loss {:.4}  ({} images)",
            v.accuracy * 100.0,
            v.loss,
            v.samples
        );
    }
    println!(
        "test       accuracy {:.2}%  loss {:.4}  ({} images)",
        test.accuracy * 100.0,
        test.loss,
        test.samples
    );
    println!("weights    sha256 {}", summary.weights_sha256);
    println!("total      {:.1} s", summary.total_seconds);
    Ok(())
}
