//! `pf plugin bench`: what going through WebAssembly costs. The
//! measurements are [`pf::devtools::bench`]; this parses the arguments,
//! gives it the runtime, model and data, and prints the figures.

use super::common::{print_json, DataArgs, ModelArgs};
use super::plugin::LimitArgs;
use anyhow::Result;
use clap::Args;
use pf::devtools::bench::{self, BenchRequest};
use pf::plugin::TrialData;
use pf::source::input_of;
use std::sync::Arc;

/// Arguments of `pf plugin bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// The learner to measure (a weight-sparse learner for the overhead
    /// comparison).
    #[arg(long, short = 'p', default_value = "weight_sparse")]
    plugin: String,
    /// A learner whose `compress` makes `calls` host calls (the
    /// `hostile_learner` fixture with attack=host_calls), for the per-call cost.
    #[arg(long, value_name = "PLUGIN")]
    host_call_plugin: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Fine-tuning steps per round.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Rounds of each measurement (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Final sparsity of the schedule.
    #[arg(long, default_value_t = 0.8)]
    sparsity: f64,
    /// Steps between mask updates.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `pf plugin bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    let req = BenchRequest {
        plugin: &a.plugin,
        host_call_plugin: a.host_call_plugin.as_deref(),
        steps: a.steps,
        rounds: a.rounds,
        sparsity: a.sparsity,
        interval: a.interval,
    };
    let result = bench::run(
        &req,
        || a.limits.runtime("plugin bench"),
        || {
            let splits = a.data.load()?;
            let base = a.model.source().build(
                input_of(&splits),
                splits.train.classes,
                0,
                &candle_core::Device::Cpu,
            )?;
            let data = Arc::new(TrialData {
                train: splits.train.clone(),
                val: splits.val.clone(),
                norm: pf::data::Normalization::for_model(&base.graph, &splits.train),
            });
            Ok((base, data))
        },
    )?;
    if a.json {
        return print_json(&result);
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
