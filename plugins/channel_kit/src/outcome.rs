//! What a channel pruner did, for the report after `compress` and again
//! after the host's fine-tuning.

use pf_sdk::prelude::*;

/// The summary and figures of one compression.
pub struct Outcome {
    /// The baseline's MACs, to report the ratio against.
    pub baseline_macs: u64,
    /// One line for the user.
    pub summary: String,
    /// Named figures (reconstruction errors, channels removed, ...).
    pub values: Vec<(String, f64)>,
}

impl Outcome {
    /// The summary and figures, with the MACs ratio of `model` as it is now
    /// (`macs_ratio`, the measure `pf plugin test` checks against the host's
    /// count).
    pub fn report(&self, model: &Model) -> Report {
        let macs_ratio = model.cost().macs as f64 / self.baseline_macs.max(1) as f64;
        let mut report = Report::new(self.summary.clone()).with("macs_ratio", macs_ratio);
        for (name, value) in &self.values {
            report = report.with(name.clone(), *value);
        }
        report
    }
}
