//! `pf worker`: runs trials of a study shared in PostgreSQL, beside any
//! number of other workers on any machines (a Slurm array, a Kubernetes
//! Job with `parallelism: N`, or by hand). The search itself lives in
//! [`pf::search::worker`]; this parses the flags and prints the summary.

use super::common::{print_json, DeviceArgs};
use super::plugin::LimitArgs;
use anyhow::{bail, Result};
use clap::Args;
use pf::search::worker::{self, Joined, WorkerArgs, WorkerOptions};
use pf::search::StudyLocation;
use std::path::PathBuf;

/// Arguments of `pf worker`.
#[derive(Args)]
pub struct WorkerCliArgs {
    /// The shared study: postgres://USER@HOST/DB?study=NAME, created by
    /// `pf compress --study URL` (password from the URL, PGPASSWORD or
    /// ~/.pgpass; a Unix socket folder as host=/folder in the query). The
    /// worker rebuilds the search from the study alone: the baseline is
    /// stored in it, embedded data sets work anywhere, a data path must
    /// exist here with the same contents, and the learner and optimizer are
    /// resolved by name here and must have the study's digests.
    #[arg(long, value_name = "URL")]
    study: String,
    /// Seconds between heartbeats of each running trial. The study's own
    /// timeout (6 heartbeats of the pf compress that created it) decides
    /// when a silent trial is failed as "worker lost".
    #[arg(long, default_value_t = worker::DEFAULT_HEARTBEAT_SECONDS, value_name = "SECS")]
    heartbeat: f64,
    /// Run at most N trials, then exit [default: until the study's budget
    /// is used up].
    #[arg(long, value_name = "N")]
    max_trials: Option<u32>,
    /// Trials run at once in this process, each on its own connection.
    #[arg(long, short = 'j', default_value_t = 1, value_name = "J")]
    jobs: u32,
    /// Threads each trial computes with (default: the cores divided by
    /// --jobs).
    #[arg(long, value_name = "N")]
    threads_per_trial: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Python with the `ai-edge-litert` package, for a study with a latency
    /// target.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// The admission policy and sandbox flags; the sandbox limits (memory,
    /// fuel, tensors) are the study's own, whatever is given here.
    #[command(flatten)]
    limits: LimitArgs,
    /// Print what the worker did as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Runs `pf worker`.
pub fn run(a: WorkerCliArgs) -> Result<()> {
    let StudyLocation::Postgres(study) = StudyLocation::parse(&a.study)? else {
        bail!(
            "--study {}: pf worker works on a study shared in PostgreSQL \
             (postgres://USER@HOST/DB?study=NAME); a SQLite study is run by pf compress",
            a.study
        );
    };
    if !(1..=pf::search::job::MAX_JOBS).contains(&a.jobs) {
        bail!("--jobs must be between 1 and {}", pf::search::job::MAX_JOBS);
    }
    if a.threads_per_trial == Some(0) {
        bail!("--threads-per-trial must be at least 1");
    }
    if a.heartbeat.is_nan() || a.heartbeat < 0.1 {
        bail!("--heartbeat must be at least 0.1 seconds");
    }
    let joined = Joined::read(&study)?;
    // The study's sandbox limits, so that every trial runs as its first did.
    let mut limits = a.limits.clone();
    let [memory, fuel, tensors] = joined.job.limits;
    limits.plugin_memory = memory >> 20;
    limits.plugin_fuel = fuel / 1_000_000;
    limits.plugin_tensors = u32::try_from(tensors).unwrap_or(u32::MAX);
    let runtime = limits.runtime("worker")?;
    let args = WorkerArgs {
        study: *study,
        options: WorkerOptions {
            heartbeat_seconds: a.heartbeat,
            max_trials: a.max_trials,
        },
        jobs: a.jobs,
        threads_per_trial: a.threads_per_trial,
        device: a.device.device,
        python: a.python,
        progress: !a.json,
    };
    let worked = worker::run_worker(&args, &joined, runtime)?;
    if a.json {
        return print_json(&serde_json::json!({
            "study": args.study.display(),
            "ran": worked.ran,
            "complete_or_failed": worked.progress.counted,
            "running": worked.progress.running,
            "lost": worked.progress.lost,
            "trials": worked.budget,
        }));
    }
    println!("{}", worker::summary(&worked));
    Ok(())
}
