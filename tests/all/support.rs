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

/// A database of its own on the test PostgreSQL server, so that tests run
/// in parallel without seeing each other's studies; dropped with it.
pub struct PgDatabase {
    /// The server's base URL (`PF_TEST_POSTGRES`).
    base: String,
    /// The database's name.
    pub name: String,
}

impl PgDatabase {
    /// The URL of study `study` in this database.
    pub fn url(&self, study: &str) -> String {
        format!("{}/{}?study={study}", self.base, self.name)
    }

    /// A client connected to this database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&format!("{}/{}", self.base, self.name), postgres::NoTls)
            .expect("test database reachable")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_admin_url(&self.base), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The base URL of the test PostgreSQL server: `PF_TEST_POSTGRES`, which
/// scripts/test.sh sets. Without it the test fails and says how to start a
/// server; it is never skipped.
pub fn pg_base_url() -> String {
    match std::env::var("PF_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "PF_TEST_POSTGRES is not set: the PostgreSQL study tests need a real server. Run \
             them through scripts/test.sh (which starts and stops one), or start one yourself:\n  \
             export PF_TEST_POSTGRES=\"$(bash scripts/postgres.sh start /tmp/pf-pg)\"\n  \
             cargo test -p pf --test all -- postgres\n  \
             bash scripts/postgres.sh stop /tmp/pf-pg"
        ),
    }
}

/// The URL of the server's `postgres` database, for creating and dropping
/// test databases.
fn pg_admin_url(base: &str) -> String {
    format!("{base}/postgres")
}

/// Creates a database with a name no other test uses.
pub fn pg_database() -> PgDatabase {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = pg_base_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "pf_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(&pg_admin_url(&base), postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test server PF_TEST_POSTGRES={base}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("test database created");
    PgDatabase { base, name }
}
