//! The contract is frozen per version: a released `sdk/wit/VERSION/` folder
//! never changes (its files' SHA-256 are committed in `sdk/wit/SHA256SUMS`),
//! the host keeps loading every frozen version, and components built against
//! one (committed under `tests/plugins/frozen/VERSION/`) still load and pass
//! the conformance suites with the current host. See `docs/plugins.md`
//! ("Versioning").

use crate::support::sha256_file;
use pf::plugin::conformance::{self, LearnerSuite};
use pf::plugin::runtime::SUPPORTED_CONTRACTS;
use pf::plugin::{Limits, Plugin, PluginKind, Runtime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The committed components of `kind` built against frozen contracts, with
/// the version each was built against.
fn frozen_components(rt: &Runtime, kind: PluginKind) -> Vec<(String, Arc<Plugin>)> {
    let mut found = Vec::new();
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
            if plugin.kind() == kind {
                found.push((version.clone(), plugin));
            }
        }
    }
    found
}

#[test]
fn frozen_learners_load_and_pass_the_learner_suite() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let learners = frozen_components(&rt, PluginKind::Learner);
    assert!(
        learners.iter().any(|(v, _)| v == "0.1.0"),
        "no 0.1.0 learner"
    );
    for (version, plugin) in &learners {
        let report = conformance::run_learner_suite(&rt, plugin, &LearnerSuite::default()).unwrap();
        assert!(
            report.passed(),
            "{} (contract {version}): {}",
            plugin.name(),
            report.failures()
        );
    }
}

#[test]
fn frozen_optimizers_load_and_pass_the_optimizer_suite() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let optimizers = frozen_components(&rt, PluginKind::Optimizer);
    assert!(
        optimizers.iter().any(|(v, _)| v == "0.1.0"),
        "no 0.1.0 optimizer"
    );
    for (version, plugin) in &optimizers {
        let report = conformance::run_optimizer_suite(&rt, plugin, 30, 3).unwrap();
        assert!(
            report.passed(),
            "{} (contract {version}): {}",
            plugin.name(),
            report.failures()
        );
    }
}
