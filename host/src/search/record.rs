//! What a study stores: its settings and baseline, and one record per
//! finished trial. Plain data, shared by the study storage, the search loop,
//! the summary and `pf report`.

use crate::model::{Footprint, Target};
use serde::{Deserialize, Serialize};

/// How a finished trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Evaluated, and the model meets the target: a candidate result.
    Complete,
    /// A plugin error or trap, a non-finite metric, or a missed target (see
    /// [`TrialRecord::error`]). Metrics are kept when there are any.
    Failed,
}

impl TrialStatus {
    /// The name stored in the study.
    pub fn name(self) -> &'static str {
        match self {
            TrialStatus::Complete => "complete",
            TrialStatus::Failed => "failed",
        }
    }
}

/// A hyper-parameter value as a study stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueRecord {
    /// A float.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A switch.
    Boolean(bool),
    /// One of a set of strings.
    Choice(String),
}

impl std::fmt::Display for ValueRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueRecord::Float(x) => f.write_str(&compact(*x)),
            ValueRecord::Int(i) => write!(f, "{i}"),
            ValueRecord::Boolean(b) => write!(f, "{b}"),
            ValueRecord::Choice(s) => f.write_str(s),
        }
    }
}

/// A float in at most four significant decimals, for tables.
pub fn compact(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if (1e-3..1e6).contains(&x.abs()) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.3e}")
    }
}

/// A named hyper-parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamRecord {
    /// The dimension.
    pub name: String,
    /// Its value.
    pub value: ValueRecord,
}

/// Seconds spent in each phase of a trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// The optimizer's `suggest` for this trial.
    pub suggest: f64,
    /// The learner's `compress`.
    pub compress: f64,
    /// The host's fine-tuning (with the learner's `on-train-step`).
    pub finetune: f64,
    /// The learner's `finish`.
    pub finish: f64,
    /// Evaluation on the validation split.
    pub evaluate: f64,
    /// The whole trial, wall clock.
    pub total: f64,
}

/// One finished trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 0, 1, 2, … in the order the optimizer suggested them.
    pub number: u32,
    /// How it ended.
    pub status: TrialStatus,
    /// The learner's parameters (the optimizer's suggestion plus the
    /// user's fixed settings).
    pub params: Vec<ParamRecord>,
    /// The trial's seed.
    pub seed: u64,
    /// Validation accuracy, when the model was evaluated.
    pub accuracy: Option<f64>,
    /// Validation loss, when the model was evaluated.
    pub loss: Option<f64>,
    /// The compressed model's footprint, when it was measured.
    pub footprint: Option<Footprint>,
    /// The target's measure as a fraction of the baseline's, when measured.
    pub target_ratio: Option<f64>,
    /// Median latency of the exported model in milliseconds, when the study
    /// has a latency target and the trial got that far.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// The reward given to the optimizer (complete trials only).
    pub reward: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Where the time went.
    pub timings: Timings,
    /// SHA-256 of the learner component that ran it.
    pub learner_sha256: String,
    /// SHA-256 of the optimizer component that suggested it.
    pub optimizer_sha256: String,
    /// The host name of the machine that ran it (none in studies written
    /// before pf recorded it).
    #[serde(default)]
    pub worker_host: Option<String>,
    /// The process id of the `pf` that ran it (none in older studies).
    #[serde(default)]
    pub worker_pid: Option<u32>,
}

/// The most characters of a host name a study keeps.
pub const MAX_HOST_CHARS: usize = 255;

/// This machine's host name, printable and bounded (`unknown` when the
/// system gives none), and this process's id: the worker a trial run here
/// is recorded with.
pub fn this_worker() -> (String, u32) {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into a buffer
    // this function owns.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = match rc {
        0 => {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        }
        _ => String::new(),
    };
    let name = crate::plugin::bounds::printable(name.trim(), MAX_HOST_CHARS);
    let name = if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    };
    (name, std::process::id())
}

/// The uncompressed model a study compresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecord {
    /// What the user named: a zoo architecture or a .pf file.
    pub model: String,
    /// SHA-256 of its weights.
    pub weights_sha256: String,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Validation loss.
    pub loss: f64,
    /// Its footprint.
    pub footprint: Footprint,
}

/// A study's settings: fixed when it is created, checked on `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyMeta {
    /// Format version of the study file.
    pub format: u32,
    /// The baseline.
    pub baseline: BaselineRecord,
    /// The data set, as named on the command line.
    pub data: String,
    /// SHA-256 over the data's splits.
    pub data_sha256: String,
    /// The learner's name.
    pub learner: String,
    /// SHA-256 of the learner component.
    pub learner_sha256: String,
    /// The optimizer's name.
    pub optimizer: String,
    /// SHA-256 of the optimizer component.
    pub optimizer_sha256: String,
    /// The optimizer's own settings (`--optimizer-set`); studies written
    /// before optimizers took options have none.
    #[serde(default)]
    pub optimizer_options: Vec<ParamRecord>,
    /// The budget every result must meet. With a latency target alone,
    /// FLOPs at most the baseline's (each trial's own FLOPs target is its
    /// `flops_ratio` parameter); likewise in a control run.
    pub target: Target,
    /// A control run: the learner is handed no target (`--target none`, or
    /// a learner that meets none).
    #[serde(default)]
    pub no_target: bool,
    /// The bound on measured latency, if the study has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<super::latency::LatencyTarget>,
    /// The reward the optimizer maximises (see [`super::Reward`]).
    pub reward: super::Reward,
    /// The study's seed.
    pub seed: u64,
    /// Parameters the user fixed (not searched).
    pub fixed: Vec<ParamRecord>,
    /// Trials the study is to hold (the optimizer's budget).
    pub trials: u32,
    /// Fine-tuning steps per trial.
    pub finetune_steps: u64,
    /// Training images each trial's batch-norm statistics are re-estimated
    /// on before evaluation; studies from before re-estimation have 0.
    #[serde(default)]
    pub bn_images: u64,
    /// Fine-tuning batch size.
    pub batch_size: u64,
    /// Fine-tuning learning rate (the centre of its range when searched).
    pub lr: f64,
    /// The fine-tuning settings the optimizer searches (the host's
    /// `finetune.lr` and `finetune.steps` dimensions).
    #[serde(default)]
    pub finetune_search: super::host_space::FinetuneSearch,
    /// Sandbox limits of the plugins: memory bytes, fuel per call, tensor
    /// handles.
    pub limits: [u64; 3],
    /// Trials run at once; the trial table depends on it.
    pub jobs: u32,
    /// Unix time the study was created.
    pub created: u64,
}

/// What the study ended with: the best candidate, re-trained and tested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalRecord {
    /// The trial whose model it is.
    pub trial: u32,
    /// Epochs of re-training with the full training data.
    pub retrain_epochs: u64,
    /// Whether the uncompressed model taught the re-training.
    pub distill: bool,
    /// Test accuracy of the baseline.
    pub baseline_test_accuracy: f64,
    /// Test accuracy of the trial's model before re-training.
    pub trial_test_accuracy: f64,
    /// Test accuracy of the final model.
    pub test_accuracy: f64,
    /// The final model's footprint.
    pub footprint: Footprint,
    /// The target's measure as a fraction of the baseline's.
    pub target_ratio: f64,
    /// Median latency of the final model's export in milliseconds, when the
    /// study has a latency target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Where the model was saved.
    pub output: Option<String>,
    /// Seconds of re-training.
    pub retrain_seconds: f64,
}
