//! `pf compress` and `pf report`: the search end to end, its study, a kill
//! and resume, parallel trials, the report's Pareto front in a browser, and
//! arguments that must fail without touching the disk.

use crate::support::{path_str, pf, run_pf, sha256_file, stderr, tempdir};
use pf::model::Measure;
use pf::search::{SqliteStudy, StudyStore, TrialRecord, TrialStatus};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A small trained digits baseline as a .pf file, shared by the tests.
fn baseline_file() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempdir();
        let (model, _) = pf::conformance::digits_baseline(3, 150).expect("baseline");
        let path = dir.path().join("baseline.pf");
        pf::model::save(&model, &path).expect("save");
        (dir, path)
    });
    path
}

/// Arguments of a short search on the shared baseline, writing into `dir`:
/// weight_sparse × random, named (the defaults are channel_pruned × tpe),
/// under the target weight_sparse is made for, params=0.25.
fn search_args(dir: &Path, trials: u32, finetune_steps: u32) -> Vec<String> {
    [
        "compress",
        "--plugin",
        "weight_sparse",
        "--optimizer",
        "random",
        "--model",
        baseline_file().to_str().unwrap(),
        "--trials",
        &trials.to_string(),
        "--finetune-steps",
        &finetune_steps.to_string(),
        "--retrain-epochs",
        "1",
        "--study",
        &path_str(dir, "study.db"),
        "--export",
        &path_str(dir, "model.pf"),
        "--report",
        &path_str(dir, "report.html"),
        "--seed",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Replaces the value of `flag` in `args`, or adds both.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
}

fn run(dir: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_pf(dir, &args)
}

fn trials_of(dir: &Path) -> Vec<TrialRecord> {
    SqliteStudy::open(&dir.join("study.db"))
        .expect("study opens")
        .trials()
        .expect("trials read")
}

/// The trial table without timings and workers (which differ from run to
/// run).
fn table(trials: &[TrialRecord]) -> Vec<TrialRecord> {
    trials
        .iter()
        .cloned()
        .map(|mut t| {
            t.timings = Default::default();
            (t.worker_host, t.worker_pid) = (None, None);
            t
        })
        .collect()
}

#[test]
fn a_search_exports_a_model_that_meets_its_target() {
    let dir = tempdir();
    let mut args = search_args(dir.path(), 3, 40);
    // Re-train the best with the baseline as the teacher.
    args.extend(["--distill", "--json"].map(String::from));
    // The names resolve to the built components first (not to a copy the
    // user installed), whose digests the study must record.
    let learner = crate::support::plugin_file("weight_sparse");
    let optimizer = crate::support::plugin_file("random");
    let out = pf()
        .current_dir(dir.path())
        .args(&args)
        .env("PF_PLUGIN_PATH", learner.parent().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trials"], 3);

    let study = SqliteStudy::open(&dir.path().join("study.db")).unwrap();
    // Trials are judged with batch-norm statistics of their own.
    assert_eq!(study.meta().bn_images, 512);
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 3);
    let plugins = [sha256_file(&learner), sha256_file(&optimizer)];
    for t in &trials {
        assert_eq!(
            [&t.learner_sha256, &t.optimizer_sha256],
            [&plugins[0], &plugins[1]]
        );
        assert!(!t.params.is_empty());
        if t.status == TrialStatus::Complete {
            assert!(t.target_ratio.unwrap() <= 0.25, "{t:?}");
            assert!(t.reward.is_some());
        }
    }
    // The exported model is the best trial's, re-trained, and really has at
    // most a quarter of the baseline's non-zero parameters.
    let baseline = pf::model::load(baseline_file(), &candle_core::Device::Cpu).unwrap();
    let model = pf::model::load(&dir.path().join("model.pf"), &candle_core::Device::Cpu).unwrap();
    let (b, m) = (baseline.footprint().unwrap(), model.footprint().unwrap());
    assert!(
        m.get(Measure::Params) as f64 <= 0.25 * b.get(Measure::Params) as f64,
        "{m:?} vs {b:?}"
    );
    let fin = study.final_result().unwrap().expect("final result stored");
    assert!(fin.distill && fin.retrain_epochs == 1, "{fin:?}");
    assert!((0.0..=1.0).contains(&fin.test_accuracy));
    assert_eq!(fin.footprint, m);
    assert_eq!(
        Some(fin.trial),
        pf::search::best_of(&trials).map(|t| t.number)
    );
    assert!(dir.path().join("report.html").is_file());
}

#[test]
fn a_killed_search_resumes_and_keeps_every_finished_trial() {
    let dir = tempdir();
    let args = search_args(dir.path(), 5, 150);
    let mut child = pf()
        .current_dir(dir.path())
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL, with no chance to clean up, as soon as the study holds two
    // finished trials: the third has started or is about to.
    let db = dir.path().join("study.db");
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut recorded = 0;
    while recorded < 2 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pf compress ended ({status}) before it could be killed");
        }
        assert!(
            Instant::now() < deadline,
            "{} recorded {recorded} finished trials within 300 s; the test waits for 2",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(50));
        if db.is_file() {
            if let Ok(s) = SqliteStudy::open_read_only(&db) {
                recorded = s.trials().map(|t| t.len()).unwrap_or(0);
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = trials_of(dir.path());
    assert!(before.len() >= 2 && before.len() < 5, "{}", before.len());

    // --resume alone runs to the study's own number of trials.
    let at = args.iter().position(|a| a == "--trials").unwrap();
    let mut resume = args.clone();
    resume.drain(at..at + 2);
    resume.push("--resume".into());
    let out = run(dir.path(), &resume);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = trials_of(dir.path());
    assert_eq!(after.len(), 5);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "finished trials changed"
    );
    assert_eq!(
        after.iter().map(|t| t.number).collect::<Vec<_>>(),
        (0..5).collect::<Vec<_>>()
    );
    // A resumed study continues as an uninterrupted one would have.
    let whole = tempdir();
    let out = run(whole.path(), &search_args(whole.path(), 5, 150));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table(&trials_of(whole.path())), table(&after));
}

#[test]
fn parallel_trials_with_the_same_seed_give_the_same_table() {
    let tables: Vec<Vec<TrialRecord>> = (0..2)
        .map(|_| {
            let dir = tempdir();
            let mut args = search_args(dir.path(), 4, 30);
            args.extend(
                ["--jobs", "2", "--threads-per-trial", "1", "--no-report"].map(String::from),
            );
            let out = run(dir.path(), &args);
            assert!(out.status.success(), "{}", stderr(&out));
            table(&trials_of(dir.path()))
        })
        .collect();
    assert_eq!(tables[0].len(), 4);
    assert_eq!(tables[0], tables[1]);
}

/// Dominance recomputed here, independently of the report's code: a
/// complete trial is on the front unless another complete trial is at least
/// as cheap and as accurate, and strictly better in one.
fn front_from_study(trials: &[TrialRecord], measure: Measure) -> Vec<u32> {
    let points: Vec<(u32, f64, f64)> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .map(|t| {
            (
                t.number,
                t.footprint.unwrap().get(measure) as f64,
                t.accuracy.unwrap(),
            )
        })
        .collect();
    let mut front: Vec<u32> = points
        .iter()
        .filter(|(_, c, a)| {
            !points
                .iter()
                .any(|(_, c2, a2)| c2 <= c && a2 >= a && (c2 < c || a2 > a))
        })
        .map(|p| p.0)
        .collect();
    front.sort_unstable();
    front
}

#[test]
fn the_report_marks_exactly_the_pareto_front_and_opens_in_chromium() {
    let dir = tempdir();
    let mut args = search_args(dir.path(), 6, 20);
    // Searching the per-layer allocation spreads the candidates' accuracies.
    args.extend(["--set", "per_layer=true", "--no-report"].map(String::from));
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = dir.path().join("r.html");
    let out = run_pf(
        dir.path(),
        &[
            "report",
            &path_str(dir.path(), "study.db"),
            "-o",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&html).unwrap();
    let open = r#"<script type="application/json" id="pf-data">"#;
    let start = text.find(open).expect("embedded data") + open.len();
    let end = start + text[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&text[start..end]).unwrap();
    let mut marked: Vec<u32> = data["scatter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["on_front"] == true)
        .map(|p| p["trial"].as_u64().unwrap() as u32)
        .collect();
    marked.sort_unstable();
    let trials = trials_of(dir.path());
    let expected = front_from_study(&trials, Measure::Params);
    assert!(!expected.is_empty());
    assert_eq!(marked, expected);

    // The page loads in a real browser without console errors.
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|c| which(c));
    let chromium = chromium.unwrap_or_else(|| {
        panic!(
            "the report test needs Chromium and found none on PATH (chromium, \
             chromium-browser or google-chrome): install it (Debian: `apt-get install \
             chromium`); scripts/test.sh installs it"
        )
    });
    let profile = tempdir();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<svg"), "the rendered page has no plot");
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every file under `dir` with its hash: what "nothing changed on disk"
/// compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), sha256_file(&p)));
        }
    }
    out.sort();
    out
}

fn fails_cleanly(dir: &Path, args: &[String], expect: &[&str]) {
    let before = snapshot(dir);
    let out = run(dir, args);
    let err = stderr(&out);
    assert!(!out.status.success(), "succeeded: {args:?}");
    assert!(!err.contains("panicked"), "{err}");
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in: {err}");
    }
    assert_eq!(snapshot(dir), before, "{args:?} changed files");
}

#[test]
fn bad_arguments_fail_clearly_and_change_nothing() {
    let dir = tempdir();
    let base = search_args(dir.path(), 2, 10);
    // The base arguments with some flags added or their values replaced.
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = base.clone();
        let mut i = 0;
        while i < extra.len() {
            let flag = extra[i].to_string();
            let value = extra.get(i + 1).filter(|v| !v.starts_with("--"));
            match (a.iter().position(|x| *x == flag), value) {
                (Some(at), Some(v)) => a[at + 1] = v.to_string(),
                (None, Some(v)) => a.extend([flag, v.to_string()]),
                (_, None) => a.push(flag),
            }
            i += if value.is_some() { 2 } else { 1 };
        }
        a
    };
    fails_cleanly(
        dir.path(),
        &with(&["--plugin", "no_such_learner"]),
        &["no_such_learner"],
    );
    fails_cleanly(
        dir.path(),
        &with(&["--optimizer", "weight_sparse"]),
        &["is a learner, not an optimizer"],
    );
    // Masking weights cannot reduce dense MACs.
    fails_cleanly(
        dir.path(),
        &with(&["--target", "flops=0.5"]),
        &["cannot meet a flops target", "params, size"],
    );
    fails_cleanly(dir.path(), &with(&["--target", "params=1.5"]), &["(0, 1]"]);
    fails_cleanly(
        dir.path(),
        &with(&["--export", "/proc/pf-cannot-write/model.pf"]),
        &["--export"],
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    fails_cleanly(
        dir.path(),
        &with(&["--report", &format!("{}/report.html", file.display())]),
        &["--report", "is a file"],
    );
    fails_cleanly(
        dir.path(),
        &with(&["--export", &path_str(dir.path(), "model.h5")]),
        &[".pf", ".tflite", ".onnx"],
    );
    fails_cleanly(dir.path(), &with(&["--resume"]), &["does not exist"]);
    fails_cleanly(dir.path(), &with(&["--batch-size", "0"]), &["--batch-size"]);
    fails_cleanly(dir.path(), &with(&["--lr", "0"]), &["--lr"]);
    fails_cleanly(
        dir.path(),
        &with(&["--report", &path_str(dir.path(), "report.png")]),
        &["--report", ".html", ".svg"],
    );

    // A study made for one model cannot be resumed with another.
    let out = run(dir.path(), &base);
    assert!(out.status.success(), "{}", stderr(&out));
    let other = dir.path().join("other.pf");
    let (m, _) = pf::conformance::digits_baseline(4, 10).unwrap();
    pf::model::save(&m, &other).unwrap();
    let mut resume = with(&["--resume"]);
    let i = resume.iter().position(|a| a == "--model").unwrap();
    resume[i + 1] = other.display().to_string();
    fails_cleanly(dir.path(), &resume, &["different search", "model"]);
    // Without --resume an existing study is never overwritten.
    fails_cleanly(dir.path(), &base, &["already exists", "--resume"]);
}

#[test]
fn a_tflite_export_writes_the_compressed_model_in_both_formats() {
    let dir = tempdir();
    let mut args = search_args(dir.path(), 1, 5);
    let i = args.iter().position(|a| a == "--export").unwrap();
    args[i + 1] = path_str(dir.path(), "small.tflite");
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let model = pf::model::load(&dir.path().join("small.pf"), &candle_core::Device::Cpu).unwrap();
    assert!(dir.path().join("small.tflite").is_file());
    // The .tflite is the exporter's output for the saved model, bit for bit,
    // and LiteRT computes what pf computes.
    assert_eq!(
        std::fs::read(dir.path().join("small.tflite")).unwrap(),
        pf::export::tflite::to_bytes(&model).unwrap()
    );
    crate::tflite::assert_litert_agrees(&model, 2);

    // With --export-int8 the file is what `pf export --int8` writes for the
    // saved model (the same calibration images: same data, same seed).
    let dir = tempdir();
    let mut args = search_args(dir.path(), 1, 5);
    let i = args.iter().position(|a| a == "--export").unwrap();
    args[i + 1] = path_str(dir.path(), "small.tflite");
    args.push("--export-int8".into());
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = dir.path().join("again.tflite");
    let o = pf()
        .args([
            "export",
            &path_str(dir.path(), "small.pf"),
            "--int8",
            "--seed",
            "5",
            "-o",
        ])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(dir.path().join("small.tflite")).unwrap();
    assert_eq!(bytes, std::fs::read(&again).unwrap());
    let ops = pf::export::tflite::check::read(&bytes).unwrap().ops;
    assert_eq!(ops.first().map(String::as_str), Some("QUANTIZE"));
    // --export-int8 needs a .tflite or .onnx name.
    let dir = tempdir();
    let mut args = search_args(dir.path(), 1, 5);
    args.push("--export-int8".into());
    fails_cleanly(dir.path(), &args, &["--export-int8", ".tflite", ".onnx"]);
}

#[test]
fn an_unreachable_target_fails_every_trial_and_says_so() {
    let dir = tempdir();
    let mut args = search_args(dir.path(), 2, 5);
    // Fewer non-zero parameters than the biases and batch norms hold.
    args.extend(["--target", "params=0.001"].map(String::from));
    let out = run(dir.path(), &args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no trial met the target"), "{err}");
    assert!(err.contains("out of reach"), "{err}");
    let trials = trials_of(dir.path());
    assert_eq!(trials.len(), 2);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Failed));
    assert!(!dir.path().join("model.pf").exists());
}

#[test]
fn a_latency_target_times_every_candidate_in_litert_and_rejects_slow_ones() {
    let python = crate::tflite::litert_python();
    // A generous bound: every candidate is timed, and all meet it.
    let dir = tempdir();
    let mut args = search_args(dir.path(), 2, 5);
    args.extend(
        [
            "--target",
            "params=0.5",
            "--target",
            "latency=1000ms@1",
            "--json",
        ]
        .map(String::from),
    );
    let out = pf()
        .current_dir(dir.path())
        .args(&args)
        .env("PF_LITERT_PYTHON", &python)
        .output()
        .unwrap();
    let r = crate::support::json(&out);
    let lat = &r["latency"];
    assert_eq!(lat["bound_ms"], 1000.0);
    assert!(lat["baseline_ms"].as_f64().unwrap() > 0.0, "{lat}");
    assert!(lat["final_ms"].as_f64().unwrap() > 0.0, "{lat}");
    let trials = trials_of(dir.path());
    assert!(trials
        .iter()
        .all(|t| t.status == TrialStatus::Complete && t.latency_ms.is_some_and(|ms| ms > 0.0)));
    assert_eq!(
        SqliteStudy::open(&dir.path().join("study.db"))
            .unwrap()
            .meta()
            .latency
            .map(|l| l.ms),
        Some(1000.0)
    );

    // A bound no model can meet: every trial fails, saying by how much.
    let dir = tempdir();
    let mut args = search_args(dir.path(), 2, 5);
    args.extend(["--target", "params=0.5", "--target", "latency=0.00001ms"].map(String::from));
    let out = pf()
        .current_dir(dir.path())
        .args(&args)
        .env("PF_LITERT_PYTHON", &python)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("missed the latency target"), "{err}");
    let trials = trials_of(dir.path());
    assert_eq!(trials.len(), 2);
    assert!(trials
        .iter()
        .all(|t| t.status == TrialStatus::Failed && t.latency_ms.is_some()));
    assert!(!dir.path().join("model.pf").exists());

    // Latency alone needs a learner that takes a FLOPs target; weight_sparse
    // does not, and is told what to add.
    let dir = tempdir();
    let mut args = search_args(dir.path(), 1, 5);
    args.extend(["--target", "latency=5ms"].map(String::from));
    fails_cleanly(dir.path(), &args, &["flops", "params", "--target"]);
    // Two latency bounds, or a malformed one, are refused.
    let mut args = search_args(dir.path(), 1, 5);
    args.extend(["--target", "latency=1ms", "--target", "latency=2ms"].map(String::from));
    fails_cleanly(dir.path(), &args, &["at most one latency"]);
    let mut args = search_args(dir.path(), 1, 5);
    args.extend(["--target", "latency=fast"].map(String::from));
    fails_cleanly(dir.path(), &args, &["latency=MS"]);
}

#[test]
fn hostile_trials_fail_with_their_reason_and_the_study_goes_on() {
    let dir = tempdir();
    let hostile = crate::support::plugin_file("hostile_learner");
    let mut args = search_args(dir.path(), 10, 5);
    set_flag(&mut args, "--plugin", hostile.to_str().unwrap());
    args.extend(
        [
            // Doing nothing meets this target, so well-behaved trials complete.
            "--target",
            "flops=1",
            "--plugin-fuel",
            "300",
            "--plugin-memory",
            "64",
            // Host-work floods end at this deadline.
            "--trial-timeout",
            "5",
            "--no-report",
        ]
        .map(String::from),
    );
    let out = run(dir.path(), &args);
    let trials = trials_of(dir.path());
    assert_eq!(trials.len(), 10, "{}", stderr(&out));
    // The search succeeds when any trial meets the target: here, when the
    // random draws (which follow the seed and the plugins' names and
    // versions) include a harmless attack.
    let complete = trials.iter().any(|t| t.status == TrialStatus::Complete);
    assert_eq!(out.status.success(), complete, "{}", stderr(&out));
    let attack = |t: &TrialRecord| t.params[0].value.to_string();
    for t in &trials {
        match attack(t).as_str() {
            "none" | "host_calls" => assert_eq!(t.status, TrialStatus::Complete, "{t:?}"),
            _ => {
                assert_eq!(t.status, TrialStatus::Failed, "{t:?}");
                assert!(!t.error.as_deref().unwrap_or("").is_empty());
            }
        }
    }
    let kinds: std::collections::BTreeSet<String> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Failed)
        .map(attack)
        .collect();
    assert!(kinds.len() >= 3, "too few kinds of attack drawn: {kinds:?}");

    // A learner that claims a target and misses it fails the trial.
    let dir = tempdir();
    let mut args = search_args(dir.path(), 1, 5);
    set_flag(&mut args, "--plugin", hostile.to_str().unwrap());
    args.extend(["--set", "attack=none", "--target", "params=0.5"].map(String::from));
    let out = run(dir.path(), &args);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missed the target"),
        "{}",
        stderr(&out)
    );
}
