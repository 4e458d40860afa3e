//! Resuming a study: a study continues only under the arguments that made
//! it, so that its trial table stays a function of its settings and seed.

use super::StudyMeta;
use anyhow::{bail, Result};

/// The first 12 characters of a hash (all of a short or damaged one).
fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Checks that a resumed study is the one these arguments describe.
pub fn check(old: &StudyMeta, new: &StudyMeta, study: &str) -> Result<()> {
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: the study has {a}, this run {b}"));
        }
    };
    cmp(
        "model",
        format!(
            "{} (weights {})",
            old.baseline.model,
            short(&old.baseline.weights_sha256)
        ),
        format!(
            "{} (weights {})",
            new.baseline.model,
            short(&new.baseline.weights_sha256)
        ),
    );
    cmp("data", old.data.clone(), new.data.clone());
    cmp(
        "data contents",
        short(&old.data_sha256).to_string(),
        short(&new.data_sha256).to_string(),
    );
    cmp(
        "learner",
        format!("{} ({})", old.learner, short(&old.learner_sha256)),
        format!("{} ({})", new.learner, short(&new.learner_sha256)),
    );
    cmp(
        "optimizer",
        format!("{} ({})", old.optimizer, short(&old.optimizer_sha256)),
        format!("{} ({})", new.optimizer, short(&new.optimizer_sha256)),
    );
    let target = |m: &StudyMeta| match m.no_target {
        true => "none".to_string(),
        false => m.target.to_string(),
    };
    cmp("target", target(old), target(new));
    cmp(
        "latency target",
        format!("{:?}", old.latency.map(|l| l.to_string())),
        format!("{:?}", new.latency.map(|l| l.to_string())),
    );
    cmp("reward", old.reward.to_string(), new.reward.to_string());
    cmp("seed", old.seed.to_string(), new.seed.to_string());
    cmp("--jobs", old.jobs.to_string(), new.jobs.to_string());
    cmp(
        "--finetune-steps",
        old.finetune_steps.to_string(),
        new.finetune_steps.to_string(),
    );
    cmp(
        "--batch-size",
        old.batch_size.to_string(),
        new.batch_size.to_string(),
    );
    cmp("--lr", old.lr.to_string(), new.lr.to_string());
    let searched = |m: &StudyMeta| {
        format!(
            "learning rate {}, steps {}",
            if m.finetune_search.lr {
                "searched"
            } else {
                "fixed"
            },
            if m.finetune_search.steps {
                "searched"
            } else {
                "fixed"
            }
        )
    };
    cmp(
        "fine-tuning (--lr, --finetune-steps)",
        searched(old),
        searched(new),
    );
    cmp(
        "--bn-images",
        old.bn_images.to_string(),
        new.bn_images.to_string(),
    );
    cmp(
        "plugin limits (memory, fuel, tensors)",
        format!("{:?}", old.limits),
        format!("{:?}", new.limits),
    );
    cmp(
        "--optimizer-set",
        format!("{:?}", old.optimizer_options),
        format!("{:?}", new.optimizer_options),
    );
    cmp(
        "--set",
        format!("{:?}", old.fixed),
        format!("{:?}", new.fixed),
    );
    if !diffs.is_empty() {
        bail!(
            "study {} belongs to a different search, so it cannot be resumed with these arguments:\n  {}\nrun with the study's arguments, or start a new study with another --study",
            study,
            diffs.join("\n  ")
        );
    }
    Ok(())
}
