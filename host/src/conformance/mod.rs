//! The conformance suites: what every learner and every optimizer must do.
//! The built-in plugins pass them in the test suite; a third-party author
//! runs the same checks with `pf plugin test FILE`.
//!
//! - [`learner`]: the learner suite, and the small trained baseline
//!   ([`digits_baseline`]) it runs on, which the tests share;
//! - [`optimizer`]: the optimizer suite and its test space and objective;
//! - here: what both suites report, a [`SuiteReport`] of [`Check`]s.

pub mod learner;
pub mod optimizer;

pub use learner::{
    digits_baseline, random_point, run_learner_suite, LearnerSuite, Measures, MAX_STEPS, MEASURES,
    MIN_STEPS, TARGET_RATIO,
};
pub use optimizer::{budget_from_seed, run_optimizer_suite, test_objective, test_space};

use crate::plugin::{PluginInfo, PluginKind};
use serde::Serialize;

/// One check of a suite.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// The result of running a suite on one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// The plugin's name.
    pub plugin: String,
    /// Learner or optimizer.
    pub kind: PluginKind,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl SuiteReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks, one per line.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(&mut self, name: &str, r: Result<String, String>) -> bool {
        let passed = r.is_ok();
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            detail: r.unwrap_or_else(|e| e),
        });
        passed
    }
}
/// Checks what a plugin says about itself: a name, a semantic version and a
/// parameter schema that is JSON.
fn check_info(info: &PluginInfo) -> Result<String, String> {
    if info.name.is_empty() {
        return Err("the name is empty".into());
    }
    if !semver_ok(&info.version) {
        return Err(format!(
            "version `{}` is not semantic (x.y.z)",
            info.version
        ));
    }
    serde_json::from_str::<serde_json::Value>(&info.params_schema)
        .map(|_| format!("{} {}", info.name, info.version))
        .map_err(|e| format!("params-schema is not JSON: {e}"))
}

fn semver_ok(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}
