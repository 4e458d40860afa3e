//! The headline path as a new user meets it: `pf --plugin P --optimizer O`
//! is the search, every learner runs on the target it is made for, the
//! search always has something to search, outputs land beside their study
//! and never replace anything, and output formats follow file names.

use crate::support::{path_str, pf, run_pf, sha256_file, stderr, tempdir};
use pf::model::Measure;
use pf::search::{SqliteStudy, StudyStore, TrialStatus};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A small trained digits baseline, shared by the tests.
fn baseline() -> &'static str {
    static FILE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempdir();
            let path = crate::support::digits_model(dir.path(), 150);
            (dir, path)
        })
        .1
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn run(dir: &Path, a: &[String]) -> std::process::Output {
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_pf(dir, &a)
}

/// Every file under `dir` with its hash.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let h = sha256_file(&p);
            (p, h)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_headline_form_searches_the_per_layer_allocation_and_the_fine_tuning() {
    let dir = tempdir();
    // No `compress`, no --target: channel_pruned runs at the FLOPs budget it
    // is made for, and the outputs are named after the study.
    let a = args(&[
        "--plugin",
        "channel_pruned",
        "--optimizer",
        "tpe",
        "--model",
        baseline(),
        "--trials",
        "3",
        "--finetune-steps",
        "10",
        "--retrain-epochs",
        "0",
        "--study",
        "runs/a.db",
    ]);
    let out = run(dir.path(), &a);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for name in ["a.db", "a.tflite", "a.pf", "a.html"] {
        assert!(
            dir.path().join("runs").join(name).is_file(),
            "{name}: {err}"
        );
    }
    // TPE scales its random start-up to the 3-trial budget and says so.
    assert!(
        err.contains("tpe: 2 of 3 trials are random start-up"),
        "{err}"
    );
    // stderr is not a terminal here: one plain line per finished trial.
    for n in 0..3 {
        assert!(err.contains(&format!("trial {n:>3}  ")), "trial {n}: {err}");
    }
    let study = SqliteStudy::open(&dir.path().join("runs/a.db")).unwrap();
    let meta = study.meta();
    assert_eq!(
        (meta.learner.as_str(), meta.optimizer.as_str()),
        ("channel_pruned", "tpe")
    );
    assert_eq!(meta.target.measure, Measure::Flops);
    assert_eq!(meta.target.ratio, 0.5);
    assert!(!meta.no_target);
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 3);
    // Per-layer preserve ratios and the fine-tuning learning rate are
    // searched, and no two trials ran the same parameters.
    let names: Vec<&str> = trials[0].params.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.iter().filter(|n| n.starts_with("preserve.")).count() >= 2,
        "{names:?}"
    );
    assert!(names.contains(&"finetune.lr"), "{names:?}");
    for (i, t) in trials.iter().enumerate() {
        for u in &trials[i + 1..] {
            assert_ne!(t.params, u.params, "trials {} and {}", t.number, u.number);
        }
        if t.status == TrialStatus::Complete {
            assert!(t.target_ratio.unwrap() <= 0.5, "{t:?}");
        }
    }
    // The TFLite file holds the pruned model: smaller than the baseline's.
    let base_tflite = dir.path().join("base.tflite");
    let o = run_pf(
        dir.path(),
        &["export", baseline(), "-o", base_tflite.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&dir.path().join("runs/a.tflite")) < size(&base_tflite),
        "the compressed TFLite file is not smaller"
    );
    // `pf --help` leads with the headline form.
    let help = pf().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("pf --plugin LEARNER --optimizer OPTIMIZER"),
        "{text}"
    );
}

#[test]
fn every_built_in_learner_runs_on_the_target_it_is_made_for() {
    let expected = [
        ("channel_pruned", Some((Measure::Flops, 0.5))),
        ("dis_chn_pruned", Some((Measure::Flops, 0.5))),
        ("weight_sparse", Some((Measure::Params, 0.25))),
        ("uniform_quant", Some((Measure::Size, 0.25))),
        ("non_uniform_quant", Some((Measure::Size, 0.25))),
        ("full_prec", None),
    ];
    for (learner, target) in expected {
        let dir = tempdir();
        let a = args(&[
            "compress",
            "--plugin",
            learner,
            "--optimizer",
            "random",
            "--model",
            baseline(),
            "--trials",
            "1",
            "--finetune-steps",
            "5",
            "--retrain-epochs",
            "0",
            "--study",
            "s.db",
            "--no-report",
        ]);
        let out = run(dir.path(), &a);
        assert!(out.status.success(), "{learner}: {}", stderr(&out));
        let study = SqliteStudy::open(&dir.path().join("s.db")).unwrap();
        let meta = study.meta();
        match target {
            Some((measure, ratio)) => {
                assert!(!meta.no_target, "{learner}");
                assert_eq!(
                    (meta.target.measure, meta.target.ratio),
                    (measure, ratio),
                    "{learner}"
                );
            }
            // A learner that meets no target runs as a control, for accuracy.
            None => {
                assert!(meta.no_target, "{learner}");
                assert_eq!(meta.reward, pf::search::Reward::Accuracy);
            }
        }
        let trials = study.trials().unwrap();
        assert_eq!(
            trials[0].status,
            TrialStatus::Complete,
            "{learner}: {:?}",
            trials[0]
        );
        assert!(dir.path().join("s.tflite").is_file(), "{learner}");
    }
}

#[test]
fn a_second_study_leaves_the_first_runs_files_byte_identical() {
    let dir = tempdir();
    let study = |name: &str, extra: &[&str]| {
        let mut a = args(&[
            "compress",
            "--plugin",
            "weight_sparse",
            "--optimizer",
            "random",
            "--model",
            baseline(),
            "--trials",
            "2",
            "--finetune-steps",
            "5",
            "--retrain-epochs",
            "0",
            "--study",
        ]);
        a.push(path_str(dir.path(), name));
        a.extend(args(extra));
        run(dir.path(), &a)
    };
    let first = study("first.db", &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = files(dir.path());
    assert_eq!(before.len(), 4, "{before:?}");
    let second = study("second.db", &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    let after = files(dir.path());
    for f in &before {
        assert!(after.contains(f), "{} changed", f.0.display());
    }
    assert!(dir.path().join("second.tflite").is_file());
    // An output that exists is never replaced without --force.
    let snapshot = files(dir.path());
    let export = path_str(dir.path(), "first.tflite");
    let refused = study("third.db", &["--export", &export]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(files(dir.path()), snapshot, "a refused run wrote files");
    let forced = study("third.db", &["--export", &export, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
}

#[test]
fn a_search_with_nothing_to_search_is_refused_unless_it_is_one_trial() {
    let dir = tempdir();
    let base = args(&[
        "compress",
        "--plugin",
        "full_prec",
        "--optimizer",
        "random",
        "--model",
        baseline(),
        "--lr",
        "0.01",
        "--finetune-steps",
        "5",
        "--retrain-epochs",
        "0",
        "--study",
        "s.db",
        "--no-report",
    ]);
    let mut three = base.clone();
    three.extend(args(&["--trials", "3"]));
    let out = run(dir.path(), &three);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("nothing to search") && err.contains("--trials 1"),
        "{err}"
    );
    assert!(!dir.path().join("s.db").exists());
    let mut one = base;
    one.extend(args(&["--trials", "1"]));
    let out = run(dir.path(), &one);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn arguments_that_cannot_work_are_refused_before_any_training() {
    let dir = tempdir();
    // A parameter the target decides explains itself.
    let out = run(
        dir.path(),
        &args(&[
            "compress",
            "--plugin",
            "channel_pruned",
            "--model",
            baseline(),
            "--target",
            "flops=0.5",
            "--set",
            "preserve_ratio=0.3",
            "--study",
            "s.db",
        ]),
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("preserve_ratio")
            && err.contains("from the target")
            && !err.contains("panicked"),
        "{err}"
    );
    // A resumed study with another seed is refused before its baseline (a
    // zoo model, trained per seed) is trained.
    let first = args(&[
        "compress",
        "--plugin",
        "weight_sparse",
        "--optimizer",
        "random",
        "--model",
        "digits_cnn",
        "--baseline-epochs",
        "1",
        "--trials",
        "1",
        "--finetune-steps",
        "3",
        "--retrain-epochs",
        "0",
        "--study",
        "z.db",
        "--no-report",
    ]);
    let out = run(dir.path(), &first);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut again = first.clone();
    again.extend(args(&["--resume", "--seed", "9"]));
    let out = run(dir.path(), &again);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("seed") && err.contains("different search"),
        "{err}"
    );
    assert!(
        !err.contains("baseline: training"),
        "trained before refusing: {err}"
    );
}

#[test]
fn output_formats_follow_the_file_names() {
    let dir = tempdir();
    let onnx = path_str(dir.path(), "x.onnx");
    let out = run_pf(dir.path(), &["export", baseline(), "-o", &onnx]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The file is ONNX: pf imports it back.
    let info = run_pf(dir.path(), &["info", &onnx]);
    assert!(info.status.success(), "{}", stderr(&info));
    for (argv, expect) in [
        (vec!["export", baseline(), "-o", "x.bin"], ".tflite"),
        (
            vec!["export", baseline(), "--format", "tflite", "-o", "y.onnx"],
            "--format tflite",
        ),
        (vec!["report", "missing.db", "-o", "x.png"], ".html"),
    ] {
        let out = run_pf(dir.path(), &argv);
        let err = stderr(&out);
        assert!(!out.status.success(), "{argv:?} succeeded");
        assert!(
            err.contains(expect) && !err.contains("panicked"),
            "{argv:?}: {err}"
        );
    }
    assert!(!dir.path().join("x.bin").exists() && !dir.path().join("y.onnx").exists());
}

/// `bytes` with a custom section appended at the component's top level: the
/// same plugin, other bytes (as another compiler's build would be).
fn with_custom_section(bytes: &[u8]) -> Vec<u8> {
    let name = b"pf-test-rebuild";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(b"another toolchain's bytes");
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(payload.len() as u8); // LEB128 of a size below 128
    out.extend(payload);
    out
}

#[test]
fn the_same_seed_gives_the_same_study_with_a_plugin_of_other_bytes() {
    let dir = tempdir();
    let rebuilt = dir.path().join("random.wasm");
    let original = std::fs::read(crate::support::plugin_file("random")).unwrap();
    std::fs::write(&rebuilt, with_custom_section(&original)).unwrap();
    assert_ne!(
        sha256_file(&rebuilt),
        sha256_file(&crate::support::plugin_file("random"))
    );
    let study = |optimizer: &str, name: &str| {
        let a = args(&[
            "compress",
            "--plugin",
            "weight_sparse",
            "--optimizer",
            optimizer,
            "--model",
            baseline(),
            "--trials",
            "3",
            "--finetune-steps",
            "5",
            "--retrain-epochs",
            "0",
            "--seed",
            "11",
            "--study",
            name,
            "--no-report",
        ]);
        let out = run(dir.path(), &a);
        assert!(out.status.success(), "{}", stderr(&out));
        let trials = SqliteStudy::open(&dir.path().join(name))
            .unwrap()
            .trials()
            .unwrap();
        trials
            .into_iter()
            .map(|t| (t.params, t.seed, t.accuracy, t.footprint))
            .collect::<Vec<_>>()
    };
    let built = crate::support::plugin_file("random");
    let a = study(built.to_str().unwrap(), "a.db");
    let b = study(rebuilt.to_str().unwrap(), "b.db");
    // The random optimizer's every draw comes from the host's stream.
    assert_eq!(a, b);
}
