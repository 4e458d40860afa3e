//! `pf plugin test` as a plugin author (or a hostile plugin) meets it: its
//! steps, seeds and targets come from a host seed that changes every run
//! and is printed, so a plugin cannot recognise the suite, and a failure
//! can be reproduced; `--set` fixes parameters as `pf compress` does.

use crate::support::{json, plugin_file, run_pf, stderr, tempdir};
use pf::conformance::{LearnerSuite, MAX_STEPS, MIN_STEPS};

/// The line `pf plugin test` prints first: the seed and what it drew.
fn seed_line(err: &str) -> &str {
    err.lines()
        .find(|l| l.starts_with("seed "))
        .unwrap_or_else(|| panic!("no seed line in: {err}"))
}

fn seed_of(err: &str) -> u64 {
    seed_line(err)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seed in: {err}"))
}

#[test]
fn the_suite_settings_vary_with_the_seed() {
    let suites: Vec<LearnerSuite> = (0..64).map(LearnerSuite::from_seed).collect();
    let steps: std::collections::BTreeSet<u64> = suites.iter().map(|s| s.finetune_steps).collect();
    let ratios: std::collections::BTreeSet<u64> = suites
        .iter()
        .map(|s| (s.target_ratio * 100.0).round() as u64)
        .collect();
    assert!(steps.len() >= 10, "steps drawn: {steps:?}");
    assert!(ratios.len() >= 10, "ratios drawn: {ratios:?}");
    assert!(suites
        .iter()
        .all(|s| (MIN_STEPS..=MAX_STEPS).contains(&s.finetune_steps)));
    assert!(suites
        .iter()
        .all(|s| (0.25..=0.6).contains(&s.target_ratio)));
    // The same seed draws the same suite.
    let again = LearnerSuite::from_seed(5);
    assert_eq!(again.finetune_steps, suites[5].finetune_steps);
    assert_eq!(again.target_ratio, suites[5].target_ratio);
}

#[test]
fn pf_plugin_test_draws_a_fresh_printed_seed_and_reproduces_a_run_from_it() {
    let dir = tempdir();
    let plugin = plugin_file("weight_sparse");
    let test = |extra: &[&str]| {
        let mut args = vec!["plugin", "test", plugin.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = run_pf(dir.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        (stderr(&out), json(&out))
    };
    let (first_err, first) = test(&[]);
    let (second_err, _) = test(&[]);
    let (a, b) = (seed_of(&first_err), seed_of(&second_err));
    assert_ne!(a, b, "two runs drew one seed");
    assert!(
        seed_line(&first_err).contains(&format!("rerun with --seed {a}")),
        "{first_err}"
    );
    // The printed seed gives the same run: the same drawn settings and the
    // same results, down to the weights' digest.
    let seed = a.to_string();
    let (again_err, again) = test(&["--seed", &seed]);
    assert_eq!(seed_line(&again_err), seed_line(&first_err));
    assert_eq!(again["checks"], first["checks"]);
}

#[test]
fn pf_plugin_test_takes_set_and_catches_a_learner_that_stalls_only_in_finish() {
    let dir = tempdir();
    let hostile = plugin_file("hostile_learner");
    let hostile = hostile.to_str().unwrap();
    // Fixed to behave, every trial runs `none`: the random points draw
    // nothing else. (It still fails the targets it claims and misses.)
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "test",
            hostile,
            "--set",
            "attack=none",
            "--json",
            "--no-cache",
        ],
    );
    assert!(!out.status.success(), "the missed targets fail it");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report as JSON");
    let checks = v["checks"].as_array().unwrap();
    let points: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("random point"))
        .collect();
    assert!(points.len() >= 2, "{v}");
    for c in checks {
        let name = c["name"].as_str().unwrap();
        if !name.starts_with("a declared") {
            assert_eq!(c["passed"], true, "{c}");
        }
    }
    for p in points {
        assert!(
            p["detail"].as_str().unwrap().starts_with("attack=none →"),
            "{p}"
        );
    }
    // A learner that floods the host only in `finish` fails the suite at
    // the trial deadline instead of holding it forever.
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "test",
            hostile,
            "--set",
            "attack=slow_finish",
            // Room for compress and two fine-tuning steps on a busy machine:
            // the stall must be what the deadline catches.
            "--finetune-steps",
            "2",
            "--trial-timeout",
            "8",
            "--no-cache",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("fails the learner conformance suite"), "{err}");
    assert!(err.contains("failed in `finish`"), "{err}");
    assert!(err.contains("exceeded its time budget (8 s)"), "{err}");
    // A name the learner does not have is refused as `pf compress` refuses it.
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "test",
            hostile,
            "--set",
            "atack=none",
            "--no-cache",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("atack"), "{}", stderr(&out));
    // Optimizers take no --set.
    let random = plugin_file("random");
    let out = run_pf(
        dir.path(),
        &["plugin", "test", random.to_str().unwrap(), "--set", "x=1"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--set fixes a learner's parameters"),
        "{}",
        stderr(&out)
    );
}
