//! `pf bench`: training and evaluation throughput on synthetic data (median
//! step time), the figure the PyTorch comparison in `benches/` reads.

use super::common::{print_json, DeviceArgs};
use anyhow::{bail, Result};
use clap::Args;
use pf::graph::InputSpec;
use pf::model::Model;
use pf::nn::loss;
use pf::train::{Optimizer, OptimizerKind};
use pf::zoo::{self, ZooConfig};
use serde::Serialize;
use std::time::Instant;

/// Arguments of `pf bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Zoo architecture.
    #[arg(long, short = 'm', default_value = "resnet20")]
    model: String,
    /// Samples per step.
    #[arg(long, short = 'b', default_value_t = 128)]
    batch_size: usize,
    /// Input side length.
    #[arg(long, default_value_t = 32)]
    input_size: usize,
    /// Input channels.
    #[arg(long, default_value_t = 3)]
    in_channels: usize,
    /// Classes.
    #[arg(long, default_value_t = 10)]
    num_classes: usize,
    /// Width multiplier.
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Timed training steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed evaluation batches.
    #[arg(long, default_value_t = 10)]
    eval_batches: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct BenchReport {
    model: String,
    batch_size: usize,
    input: [usize; 3],
    threads: usize,
    train_images_per_second: f64,
    eval_images_per_second: f64,
    train_step_ms: f64,
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.steps == 0 || a.batch_size == 0 {
        bail!("--steps and --batch-size must be at least 1");
    }
    let device = a.device.device.open()?;
    let input = InputSpec {
        channels: a.in_channels,
        height: a.input_size,
        width: a.input_size,
    };
    let graph = zoo::build(
        &a.model,
        &ZooConfig {
            input,
            num_classes: a.num_classes,
            width: a.width,
        },
    )?;
    let mut model = Model::init(graph, 0, &device)?;
    let mut r = pf::rng::stream(0, &["bench"]);
    let n = a.batch_size * a.in_channels * a.input_size * a.input_size;
    let x: Vec<f32> = (0..n).map(|_| pf::rng::normal(&mut r) as f32).collect();
    let x = candle_core::Tensor::from_vec(
        x,
        (a.batch_size, a.in_channels, a.input_size, a.input_size),
        &device,
    )?;
    let y: Vec<u32> = (0..a.batch_size)
        .map(|i| (i % a.num_classes) as u32)
        .collect();
    let y = candle_core::Tensor::from_vec(y, a.batch_size, &device)?;
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        5e-4,
    );
    let bar = pf::progress::bar(
        (a.warmup + a.steps + a.eval_batches) as u64,
        "bench",
        !a.json,
    );
    let mut step = |model: &mut Model| -> Result<()> {
        let out = model.forward(&x, true, &[])?;
        let l = loss::cross_entropy(&out.output, &y, 0.0)?;
        let grads = l.backward()?;
        opt.step(&model.params, &grads, 0.01)?;
        model.apply_updates(out.updates);
        device.synchronize()?;
        Ok(())
    };
    for _ in 0..a.warmup {
        step(&mut model)?;
        bar.inc(1);
    }
    // Medians of per-step times: this machine's neighbours make single
    // timings vary by 10-25%.
    let mut train_times = Vec::with_capacity(a.steps);
    for _ in 0..a.steps {
        let t = Instant::now();
        step(&mut model)?;
        train_times.push(t.elapsed().as_secs_f64());
        bar.inc(1);
    }
    model.forward_inference(&x)?;
    let mut eval_times = Vec::with_capacity(a.eval_batches);
    for _ in 0..a.eval_batches {
        let t = Instant::now();
        model.forward_inference(&x)?;
        device.synchronize()?;
        eval_times.push(t.elapsed().as_secs_f64());
        bar.inc(1);
    }
    let train_s = median(&mut train_times);
    let eval_s = median(&mut eval_times);
    bar.finish_and_clear();
    let report = BenchReport {
        model: a.model.clone(),
        batch_size: a.batch_size,
        input: [a.in_channels, a.input_size, a.input_size],
        threads: candle_core::utils::get_num_threads(),
        train_images_per_second: a.batch_size as f64 / train_s,
        eval_images_per_second: if a.eval_batches == 0 {
            0.0
        } else {
            a.batch_size as f64 / eval_s.max(1e-9)
        },
        train_step_ms: train_s * 1000.0,
    };
    if a.json {
        return print_json(&report);
    }
    println!(
        "{} batch {} on {} threads: train {:.1} images/s ({:.0} ms/step), eval {:.1} images/s",
        report.model,
        report.batch_size,
        report.threads,
        report.train_images_per_second,
        report.train_step_ms,
        report.eval_images_per_second
    );
    Ok(())
}

/// Median of a list of timings (0 if empty).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
