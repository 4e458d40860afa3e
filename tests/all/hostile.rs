//! Hostile plugins (the `hostile_learner` and `hostile_optimizer` fixtures)
//! handing the host oversized or escape-laden text, oversized spaces and
//! parameter sets, through `pf compress` as users run it: the study stays
//! small, every trial is recorded with a bounded reason, nothing raw reaches
//! the terminal or the report, and over-limit values are typed errors that
//! name the limit.

use crate::support::{digits_model, plugin_file, stderr, tempdir};
use pf::plugin::trial::{run_learner, TrialSpec};
use pf::plugin::{Cause, FineTune, Limits, Param, ParamValue, Runtime, TrialError};
use pf::search::{SqliteStudy, StudyStore, TrialRecord, TrialStatus};
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `pf::plugin::bounds::MAX_ERROR_BYTES` and `MAX_DIMENSIONS`, spelt out so
/// that these tests build (and fail) against a pf without the bounds.
const MAX_ERROR_BYTES: usize = 64 << 10;
const MAX_DIMENSIONS: usize = 1024;

/// A small digits baseline shared by these tests.
fn baseline() -> &'static str {
    static FILE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempdir();
        let path = digits_model(dir.path(), 20);
        (dir, path)
    });
    path
}

/// `pf compress` of `learner` with `optimizer` for `trials` trials in `dir`
/// (study `study.db`, report `report.html`), with `extra` arguments.
fn compress(dir: &Path, learner: &str, optimizer: &str, trials: u32, extra: &[&str]) -> Output {
    let learner = plugin_path(learner);
    let optimizer = plugin_path(optimizer);
    let study = dir.join("study.db");
    let report = dir.join("report.html");
    let trials = trials.to_string();
    let mut args = vec![
        "compress",
        "--plugin",
        &learner,
        "--optimizer",
        &optimizer,
        "--model",
        baseline(),
        "--trials",
        &trials,
        "--finetune-steps",
        "1",
        "--retrain-epochs",
        "1",
        "--seed",
        "3",
        "--study",
        study.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    crate::support::pf()
        .current_dir(dir)
        .env("PF_POLICY", "none")
        .env("PF_AUDIT_LOG", dir.join("audit.jsonl"))
        .args(&args)
        .output()
        .expect("pf runs")
}

/// The fixtures by path, the built-ins by name.
fn plugin_path(name: &str) -> String {
    if name.starts_with("hostile_") {
        plugin_file(name).to_string_lossy().into_owned()
    } else {
        name.to_string()
    }
}

fn trials(dir: &Path) -> Vec<TrialRecord> {
    SqliteStudy::open(&dir.join("study.db"))
        .expect("study opens")
        .trials()
        .expect("trials read")
}

/// Asserts that no raw terminal control reached standard output or error,
/// nor the report if one was written.
fn assert_no_raw_controls(dir: &Path, out: &Output) {
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.iter().any(|&b| b == 0x1b || b == 0x07),
            "a raw ESC or BEL reached {what}:\n{}",
            String::from_utf8_lossy(bytes)
        );
        assert!(
            !String::from_utf8_lossy(bytes).contains('\u{9b}'),
            "a raw CSI reached {what}"
        );
    }
    if let Ok(html) = std::fs::read(dir.join("report.html")) {
        assert!(
            !html.iter().any(|&b| b == 0x1b || b == 0x07),
            "a raw ESC or BEL reached the report"
        );
    }
}

#[test]
fn a_learner_error_of_60_mib_is_recorded_cut_to_the_limit_and_the_study_stays_small() {
    let dir = tempdir();
    let out = compress(
        dir.path(),
        "hostile_learner",
        "random",
        3,
        &["--set", "attack=huge_error", "--plugin-memory", "512"],
    );
    assert!(!out.status.success(), "no trial can complete");
    assert!(
        out.stderr.len() < 1 << 20,
        "{} bytes of standard error",
        out.stderr.len()
    );
    let trials = trials(dir.path());
    assert_eq!(trials.len(), 3, "{}", stderr(&out));
    for t in &trials {
        assert_eq!(t.status, TrialStatus::Failed, "{t:?}");
        let e = t.error.as_deref().unwrap();
        assert!(
            e.len() <= MAX_ERROR_BYTES + 1024,
            "{} bytes stored",
            e.len()
        );
        assert!(
            e.contains("62914560 bytes, cut to the 64 KiB limit"),
            "{}",
            &e[..200]
        );
    }
    let db = std::fs::metadata(dir.path().join("study.db"))
        .unwrap()
        .len();
    assert!(db < 4 << 20, "the study grew to {db} bytes");
}

#[test]
fn an_optimizer_error_of_60_mib_is_cut_to_the_limit() {
    let dir = tempdir();
    let out = compress(
        dir.path(),
        "weight_sparse",
        "hostile_optimizer",
        2,
        &[
            "--optimizer-set",
            "attack=huge_error",
            "--plugin-memory",
            "512",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.len() < 1 << 20, "{} bytes of standard error", err.len());
    assert!(
        err.contains("cut to the 64 KiB limit"),
        "{}",
        &err[..err.len().min(4000)]
    );
    if dir.path().join("study.db").exists() {
        let db = std::fs::metadata(dir.path().join("study.db"))
            .unwrap()
            .len();
        assert!(db < 4 << 20, "the study grew to {db} bytes");
    }
}

#[test]
fn terminal_escapes_in_a_learners_error_and_report_never_reach_the_terminal_or_report() {
    for attack in ["escape_error", "escape_report"] {
        let dir = tempdir();
        let set = format!("attack={attack}");
        let out = compress(dir.path(), "hostile_learner", "random", 2, &["--set", &set]);
        assert_no_raw_controls(dir.path(), &out);
        let trials = trials(dir.path());
        assert_eq!(trials.len(), 2, "{attack}: {}", stderr(&out));
        for t in &trials {
            assert_eq!(t.status, TrialStatus::Failed, "{attack}: {t:?}");
            let e = t.error.as_deref().unwrap();
            assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
            assert!(e.contains("\\u{1b}"), "{attack}: the escape is shown: {e}");
        }
        if attack == "escape_report" {
            let e = trials[0].error.as_deref().unwrap();
            assert!(e.contains("holds control characters"), "{e}");
        }
    }
}

#[test]
fn terminal_escapes_in_a_space_or_suggestion_are_refused_with_an_escaped_quote() {
    let dir = tempdir();
    let out = compress(
        dir.path(),
        "hostile_learner",
        "random",
        1,
        &["--set", "attack=escape_space"],
    );
    assert_no_raw_controls(dir.path(), &out);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("holds control characters") && err.contains("evil\\u{1b}]52"),
        "{err}"
    );

    for attack in ["escape_error", "escape_names"] {
        let dir = tempdir();
        let set = format!("attack={attack}");
        let out = compress(
            dir.path(),
            "weight_sparse",
            "hostile_optimizer",
            2,
            &["--optimizer-set", &set],
        );
        assert_no_raw_controls(dir.path(), &out);
        assert!(!out.status.success(), "{attack}");
        let err = stderr(&out);
        assert!(err.contains("evil\\u{1b}]52"), "{attack}: {err}");
        if attack == "escape_names" {
            assert!(err.contains("holds control characters"), "{err}");
        }
    }
}

#[test]
fn a_space_or_suggestion_over_the_dimension_cap_is_refused_quickly_naming_the_cap() {
    let dir = tempdir();
    let began = Instant::now();
    let out = compress(
        dir.path(),
        "hostile_learner",
        "random",
        1,
        &["--set", "attack=huge_space"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    let cap = format!("over the limit of {MAX_DIMENSIONS}");
    assert!(
        err.contains("the search space has 100001 entries") && err.contains(&cap),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "took {:?}",
        began.elapsed()
    );

    let dir = tempdir();
    let out = compress(
        dir.path(),
        "weight_sparse",
        "hostile_optimizer",
        2,
        &["--optimizer-set", "attack=many_params"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the parameter set has 100000 entries") && err.contains(&cap),
        "{err}"
    );
}

/// A runtime with a small fuel budget, so that spinning ends quickly.
fn low_fuel_runtime() -> Runtime {
    Runtime::new(
        Limits {
            fuel_per_call: 50_000_000,
            ..Limits::default()
        },
        None,
    )
    .expect("runtime")
}

#[test]
fn fuel_spent_while_the_host_copies_into_the_plugin_is_not_reported_as_its_own_loop() {
    let rt = low_fuel_runtime();
    let learner = rt.load(&plugin_file("hostile_learner")).unwrap();
    let (base, data) = pf::conformance::digits_baseline(1, 0).unwrap();
    let trial = |attack: &str| {
        let spec = TrialSpec {
            params: vec![Param {
                name: "attack".into(),
                value: ParamValue::Choice(attack.into()),
            }],
            finetune_steps: 1,
            finetune: FineTune::default(),
            seed: 1,
            target: None,
        };
        match run_learner(&rt, &learner, &base, data.clone(), &spec) {
            Err(TrialError::Plugin(e)) => e,
            Err(TrialError::Host(e)) => panic!("{attack}: a host error: {e:#}"),
            Ok(_) => panic!("{attack}: the attack succeeded"),
        }
    };
    let copy = trial("fuel_in_host_call");
    assert!(matches!(copy.cause, Cause::OutOfFuelInHostCopy), "{copy}");
    assert!(copy.to_string().contains("cabi_realloc"), "{copy}");
    // Its own loop still reads as its own.
    let own = trial("infinite_loop");
    assert!(matches!(own.cause, Cause::OutOfFuel), "{own}");
    assert!(own.to_string().contains("an endless loop"), "{own}");

    let optimizer = rt.load(&plugin_file("hostile_optimizer")).unwrap();
    let suggest = |options: &[Param]| {
        let mut inst = rt.optimizer(&optimizer, 0).unwrap();
        inst.create(&pf::conformance::test_space(), 5, options)
            .unwrap();
        inst.suggest().expect_err("the attack fails")
    };
    let copy = suggest(&[Param {
        name: "attack".into(),
        value: ParamValue::Choice("fuel_in_host_call".into()),
    }]);
    assert!(matches!(copy.cause, Cause::OutOfFuelInHostCopy), "{copy}");
}
