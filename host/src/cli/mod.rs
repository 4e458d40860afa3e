//! Command-line interface: argument parsing and one module per command.

mod bench;
mod bench_tflite;
mod common;
mod compress;
mod doctor;
mod eval;
mod export;
mod import;
mod info;
mod plugin;
mod plugin_bench;
mod plugin_new;
mod plugin_registry;
mod prune;
mod report;
mod study;
mod train;
mod worker;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// pf compresses and accelerates deep neural networks automatically.
///
/// The search is pf's main job: `pf --plugin LEARNER --optimizer OPTIMIZER
/// [OPTIONS]` is `pf compress` (the options below under "Search"). With no
/// options beyond these it prunes the channels of a small CNN on the
/// embedded digits to half its MACs with TPE and writes a smaller TFLite
/// file.
#[derive(Parser)]
#[command(
    name = "pf",
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true,
    override_usage = "pf --plugin LEARNER --optimizer OPTIMIZER [OPTIONS]   (the search, as `pf compress`)\n       pf <COMMAND> [OPTIONS]"
)]
struct Cli {
    /// Worker threads for tensor math (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
    /// The search, when no command is named: `pf --plugin P --optimizer O`.
    #[command(
        flatten,
        next_help_heading = "Search (pf --plugin P --optimizer O ... is pf compress)"
    )]
    search: compress::CompressArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Search compression hyper-parameters under a target and export the
    /// best model (by default: channel_pruned × tpe on the embedded digits,
    /// at most half the MACs). `pf --plugin P --optimizer O ...` is the same.
    Compress(compress::CompressArgs),
    /// Render a study as an HTML report (or SVG plots).
    Report(report::ReportArgs),
    /// Work on whole studies: copy one between SQLite files and PostgreSQL
    /// databases.
    Study(study::StudyArgs),
    /// Run trials of a study shared in PostgreSQL, beside any number of
    /// other workers on any machines (see docs/distributed.md).
    Worker(worker::WorkerCliArgs),
    /// Train a model (by default the small CNN on the embedded 8×8 digits).
    Train(train::TrainArgs),
    /// Evaluate a saved model on a data split.
    Eval(eval::EvalArgs),
    /// Export a model for deployment (TensorFlow Lite or ONNX).
    Export(export::ExportArgs),
    /// Import an ONNX model as a pf model file.
    Import(import::ImportArgs),
    /// Time a .tflite file in the official LiteRT interpreter.
    BenchTflite(bench_tflite::BenchTfliteArgs),
    /// Show a model's layers with shapes, MACs and parameters.
    Info(info::InfoArgs),
    /// Measure training and evaluation throughput on synthetic data.
    Bench(bench::BenchArgs),
    /// Remove the weakest channels of every prunable group (physically).
    Prune(prune::PruneArgs),
    /// Build, inspect, test and apply WebAssembly plugins.
    Plugin(plugin::PluginArgs),
    /// Check what pf finds on this machine (built-in plugins, wasm32
    /// toolchain, LiteRT, ONNX Runtime, Chromium, CUDA) and how to install
    /// what is missing.
    Doctor(doctor::DoctorArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        // Candle's CPU kernels and rayon read this before their pools start.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let Some(command) = cli.command else {
        return compress::run(cli.search);
    };
    match command {
        Command::Compress(a) => compress::run(a),
        Command::Report(a) => report::run(a),
        Command::Study(a) => study::run(a),
        Command::Worker(a) => worker::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::BenchTflite(a) => bench_tflite::run(a),
        Command::Info(a) => info::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Plugin(a) => plugin::run(a),
        Command::Doctor(a) => doctor::run(a),
    }
}
