//! The contract is frozen per version: a released `sdk/wit/VERSION/` folder
//! never changes (its files' SHA-256 are committed in `sdk/wit/SHA256SUMS`),
//! the host keeps loading every frozen version, and components built against
//! one (committed under `tests/plugins/frozen/VERSION/`) still load and pass
//! the conformance suites with the current host. See `docs/plugins.md`
//! ("Versioning").

use crate::support::sha256_file;
use pf::conformance::{self, LearnerSuite, SuiteReport};
use pf::plugin::runtime::SUPPORTED_CONTRACTS;
use pf::plugin::{Limits, Plugin, PluginKind, Runtime};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(sha256, path relative to sdk/wit)` for every line of `SHA256SUMS`.
fn frozen_sums() -> Vec<(String, String)> {
    let sums = std::fs::read_to_string(repo().join("sdk/wit/SHA256SUMS")).unwrap();
    sums.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (digest, path) = l.split_once("  ").expect("`DIGEST  PATH` lines");
            (digest.to_string(), path.to_string())
        })
        .collect()
}

/// The versions `SHA256SUMS` freezes (the first folder of each path).
fn frozen_versions() -> Vec<String> {
    let mut versions: Vec<String> = frozen_sums()
        .iter()
        .map(|(_, p)| p.split('/').next().unwrap().to_string())
        .collect();
    versions.dedup();
    versions
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn frozen_contracts_are_unchanged() {
    let wit = repo().join("sdk/wit");
    let sums = frozen_sums();
    assert!(
        sums.iter().any(|(_, p)| p == "0.1.0/plugin.wit"),
        "0.1.0 is frozen: {sums:?}"
    );
    for (digest, path) in &sums {
        assert_eq!(
            &sha256_file(&wit.join(path)),
            digest,
            "sdk/wit/{path} is frozen and must not change: put the change in a new version \
             folder (docs/plugins.md, \"Versioning\")"
        );
    }
    // Nothing is added to a frozen folder either.
    for version in frozen_versions() {
        let mut files = Vec::new();
        files_under(&wit.join(&version), &mut files);
        for f in files {
            let rel = f.strip_prefix(&wit).unwrap().to_string_lossy().into_owned();
            assert!(
                sums.iter().any(|(_, p)| *p == rel),
                "sdk/wit/{rel} was added to the frozen version {version}"
            );
        }
        // The host keeps bindings for every frozen version.
        assert!(
            SUPPORTED_CONTRACTS.contains(&version.as_str()),
            "frozen contract {version} is not among the supported {SUPPORTED_CONTRACTS:?}"
        );
    }
}

/// Loads every committed component of `kind` built against a frozen
/// contract with the current host and runs `suite` on it; 0.1.0 must have
/// one of each kind.
fn frozen_components_pass(
    kind: PluginKind,
    suite: impl Fn(&Runtime, &Plugin) -> anyhow::Result<SuiteReport>,
) {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let mut tested = Vec::new();
    for version in frozen_versions() {
        let dir = repo().join("tests/plugins/frozen").join(&version);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        for file in files {
            let plugin = rt
                .load(&file)
                .unwrap_or_else(|e| panic!("{} no longer loads: {e:#}", file.display()));
            assert_eq!(plugin.inspection.contract, version, "{}", file.display());
            if plugin.kind() != kind {
                continue;
            }
            let report = suite(&rt, &plugin).unwrap();
            assert!(
                report.passed(),
                "{} (contract {version}): {}",
                file.display(),
                report.failures()
            );
            tested.push(version.clone());
        }
    }
    assert!(
        tested.iter().any(|v| v == "0.1.0"),
        "no 0.1.0 {kind:?} is committed"
    );
}

#[test]
fn frozen_learners_load_and_pass_the_learner_suite() {
    frozen_components_pass(PluginKind::Learner, |rt, plugin| {
        conformance::run_learner_suite(rt, plugin, &LearnerSuite::default())
    });
}

#[test]
fn frozen_optimizers_load_and_pass_the_optimizer_suite() {
    frozen_components_pass(PluginKind::Optimizer, |rt, plugin| {
        conformance::run_optimizer_suite(rt, plugin, 30, 3)
    });
}
