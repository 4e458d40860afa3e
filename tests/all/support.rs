//! Helpers shared by the test modules.

use std::path::Path;
use std::process::{Command, Output};

/// The `pf` binary under test.
pub fn pf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pf"))
}

/// Runs `pf` with arguments in `dir` and returns its output.
pub fn run_pf(dir: &Path, args: &[&str]) -> Output {
    pf().current_dir(dir).args(args).output().expect("pf runs")
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output parsed as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "pf failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    pf::io::sha256_hex(&std::fs::read(path).expect("file readable"))
}

/// `dir/name` as a string.
pub fn path_str(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// The built component of a plugin (built-in or test fixture), as
/// `scripts/build-plugins.sh` leaves it in `target/plugins`.
pub fn plugin_file(name: &str) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build-plugins.sh --fixtures first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The conformance suite's digits CNN trained for `steps` steps, saved as
/// `dir/base.pf`; returns its path.
pub fn digits_model(dir: &Path, steps: u64) -> String {
    let (model, _) = pf::conformance::digits_baseline(1, steps).expect("baseline");
    let path = dir.join("base.pf");
    pf::model::save(&model, &path).expect("baseline saved");
    path.to_string_lossy().into_owned()
}

/// Asserts that a pf run failed with an error that names `what`, without a
/// panic.
pub fn assert_refused(o: &Output, what: &str) {
    assert!(!o.status.success(), "`{what}` was accepted");
    let e = stderr(o);
    assert!(e.contains(what) && !e.contains("panicked"), "{e}");
}

/// Runs the learner conformance suite on a built-in learner, which must
/// pass it; returns the report (and the plugin, for further checks).
pub fn passes_learner_suite(
    name: &str,
) -> (
    std::sync::Arc<pf::plugin::runtime::Plugin>,
    pf::conformance::SuiteReport,
) {
    let rt = pf::plugin::Runtime::new(pf::plugin::Limits::default(), None).unwrap();
    let plugin = rt.load(&plugin_file(name)).unwrap();
    let report =
        pf::conformance::run_learner_suite(&rt, &plugin, &pf::conformance::LearnerSuite::default())
            .unwrap();
    assert!(report.passed(), "{name}: {}", report.failures());
    (plugin, report)
}
