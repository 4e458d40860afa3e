//! The `pf` binary: training, evaluation, checkpoint resume after a crash,
//! and clear errors for bad input.

use crate::support::{json, path_str, pf, run_pf, sha256_file, stderr, tempdir};
use std::path::Path;
use std::time::{Duration, Instant};

/// A short digits run shared by the checkpoint tests (about 200 steps).
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--width",
        "0.5",
        "--epochs",
        "6",
        "--batch-size",
        "32",
        "--seed",
        "11",
        "--json",
        "-o",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn train_then_eval_agree() {
    let d = tempdir();
    let out = path_str(d.path(), "m.pf");
    let t = json(&run_pf(
        d.path(),
        &[
            "train",
            "--max-steps",
            "150",
            "--width",
            "0.5",
            "--json",
            "-o",
            &out,
        ],
    ));
    assert_eq!(t["train"]["steps"], 150);
    assert_eq!(t["data"]["sizes"], serde_json::json!([1257, 180, 360]));
    let acc = t["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "accuracy after 150 steps {acc}");
    let e = json(&run_pf(d.path(), &["eval", &out, "--json"]));
    assert_eq!(e["metrics"]["accuracy"].as_f64().unwrap(), acc);
    assert_eq!(e["metrics"]["samples"], 360);
    let info = run_pf(d.path(), &["info", &out]);
    assert!(info.status.success());
    assert!(String::from_utf8_lossy(&info.stdout).contains("total"));
}

fn final_sha(dir: &Path, out: &str) -> (String, String) {
    let t = json(&run_pf(
        dir,
        &train_args(out, &["--checkpoint-every", "10", "--resume"]),
    ));
    (
        t["weights_sha256"].as_str().unwrap().to_string(),
        sha256_file(Path::new(out)),
    )
}

#[test]
fn a_run_aborted_mid_way_resumes_to_bit_identical_weights() {
    let d = tempdir();
    let reference = path_str(d.path(), "reference.pf");
    let (want, want_file) = final_sha(d.path(), &reference);

    let out = path_str(d.path(), "resumed.pf");
    let crashed = pf()
        .current_dir(d.path())
        .args(train_args(&out, &["--checkpoint-every", "10"]))
        .env(pf::train::FAULT_ENV, "25")
        .output()
        .unwrap();
    assert!(
        !crashed.status.success(),
        "the fault injection did not stop the run"
    );
    assert!(!Path::new(&out).exists());
    assert!(d
        .path()
        .join("resumed.pf.ckpt/checkpoint.safetensors")
        .exists());
    let t = json(&run_pf(
        d.path(),
        &train_args(&out, &["--checkpoint-every", "10", "--resume"]),
    ));
    assert_eq!(t["train"]["resumed_from"], 20);
    assert_eq!(t["weights_sha256"].as_str().unwrap(), want);
    assert_eq!(sha256_file(Path::new(&out)), want_file);
}

/// The step a training checkpoint was saved after, read from its header;
/// `None` while there is none (checkpoints are written atomically, so one
/// that exists is whole).
fn checkpoint_step(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("a safetensors file");
    let header = meta.metadata().as_ref()?.get("pf")?;
    let header: serde_json::Value = serde_json::from_str(header).expect("a JSON header");
    Some(header["step"].as_u64().expect("the header has a step"))
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_bit_identical_weights() {
    let d = tempdir();
    let reference = path_str(d.path(), "reference.pf");
    let (want, _) = final_sha(d.path(), &reference);

    let out = path_str(d.path(), "killed.pf");
    let mut child = pf()
        .current_dir(d.path())
        .args(train_args(&out, &["--checkpoint-every", "10"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a checkpoint has replaced an earlier one, well before the
    // run's end (about 200 steps).
    let ckpt = d.path().join("killed.pf.ckpt/checkpoint.safetensors");
    let deadline = Instant::now() + Duration::from_secs(300);
    let killed_after = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pf train ended ({status}) before it could be killed");
        }
        match checkpoint_step(&ckpt) {
            Some(step) if step >= 20 => break step,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of step 20 or later in {} within 300 s (last: {:?})",
            ckpt.display(),
            checkpoint_step(&ckpt)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let t = json(&run_pf(
        d.path(),
        &train_args(&out, &["--checkpoint-every", "10", "--resume"]),
    ));
    assert!(
        t["train"]["resumed_from"].as_u64().unwrap() >= killed_after,
        "resumed from {} after a checkpoint of step {killed_after}",
        t["train"]["resumed_from"]
    );
    assert_eq!(t["weights_sha256"].as_str().unwrap(), want);
}

#[test]
fn resuming_with_other_settings_is_refused() {
    let d = tempdir();
    let out = path_str(d.path(), "m.pf");
    let first = pf()
        .current_dir(d.path())
        .args(train_args(&out, &["--checkpoint-every", "10"]))
        .env(pf::train::FAULT_ENV, "10")
        .output()
        .unwrap();
    assert!(!first.status.success());
    let o = run_pf(
        d.path(),
        &train_args(
            &out,
            &["--checkpoint-every", "10", "--resume", "--lr", "0.2"],
        ),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("different settings"), "{}", stderr(&o));
}

#[test]
fn distillation_from_a_teacher() {
    let d = tempdir();
    let teacher = path_str(d.path(), "teacher.pf");
    json(&run_pf(
        d.path(),
        &["train", "--max-steps", "80", "--json", "-o", &teacher],
    ));
    let student = path_str(d.path(), "student.pf");
    let t = json(&run_pf(
        d.path(),
        &[
            "train",
            "--width",
            "0.5",
            "--max-steps",
            "80",
            "--teacher",
            &teacher,
            "--temperature",
            "3",
            "--distill-weight",
            "0.7",
            "--json",
            "-o",
            &student,
        ],
    ));
    assert_eq!(t["config"]["distill"]["temperature"], 3.0);
    assert!(t["train"]["final_train_loss"].as_f64().unwrap().is_finite());
    assert!(t["test"]["accuracy"].as_f64().unwrap() > 0.5);
}

fn fails_with(dir: &Path, args: &[&str], needle: &str) {
    let o = run_pf(dir, args);
    assert!(!o.status.success(), "{args:?} should fail");
    let e = stderr(&o);
    assert!(e.contains(needle), "{args:?}: expected `{needle}` in: {e}");
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
}

#[test]
fn bad_input_gives_clear_errors_and_writes_nothing() {
    let d = tempdir();
    let p = d.path();
    fails_with(
        p,
        &["train", "--model", "alexnet"],
        "unknown model `alexnet`",
    );
    fails_with(p, &["train", "--device", "tpu"], "unknown device `tpu`");
    fails_with(p, &["train", "--device", "cuda:0"], "built without CUDA");
    fails_with(
        p,
        &["train", "--data", "mnist:/no/such/folder"],
        "train-images-idx3-ubyte",
    );
    fails_with(p, &["train", "--model", "lenet"], "--input-size");
    fails_with(
        p,
        &["train", "--batch-size", "0", "--max-steps", "1"],
        "--batch-size",
    );
    fails_with(p, &["train", "--lr=-1", "--max-steps", "1"], "--lr");
    std::fs::write(p.join("file"), b"x").unwrap();
    fails_with(
        p,
        &[
            "train",
            "--max-steps",
            "1",
            "-o",
            &path_str(p, "file/sub/m.pf"),
        ],
        "cannot create output folder",
    );
    fails_with(p, &["eval", &path_str(p, "missing.pf")], "missing.pf");
    std::fs::write(p.join("junk.pf"), b"junk").unwrap();
    fails_with(p, &["eval", &path_str(p, "junk.pf")], "not a pf model file");
    fails_with(
        p,
        &["info", "lenet", "--input-size", "8"],
        "choose a larger --input-size",
    );
    fails_with(p, &["train", "--nonsense"], "unexpected argument");
    // Nothing but the two files the test wrote.
    let mut names: Vec<String> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["file", "junk.pf"]);
}

#[test]
fn prune_shrinks_a_trained_model_that_still_evaluates_and_fine_tunes() {
    let d = tempdir();
    let p = d.path();
    let base = path_str(p, "base.pf");
    json(&run_pf(
        p,
        &["train", "--max-steps", "100", "--json", "-o", &base],
    ));
    let pruned = path_str(p, "pruned.pf");
    let r = json(&run_pf(
        p,
        &["prune", &base, "--keep", "0.5", "--json", "-o", &pruned],
    ));
    assert_eq!(r["groups"].as_array().unwrap().len(), 3);
    let (before, after) = (
        r["macs_before"].as_f64().unwrap(),
        r["macs_after"].as_f64().unwrap(),
    );
    assert!(after < 0.4 * before, "MACs {before} -> {after}");
    let info = json(&run_pf(p, &["info", &pruned, "--json"]));
    assert_eq!(info["cost"]["macs"].as_f64().unwrap(), after);
    // Half of every layer gone without fine-tuning: it still runs.
    let e = json(&run_pf(p, &["eval", &pruned, "--json"]));
    assert_eq!(e["metrics"]["samples"], 360);
    let tuned = path_str(p, "tuned.pf");
    let t = json(&run_pf(
        p,
        &[
            "train",
            "--model",
            &pruned,
            "--max-steps",
            "100",
            "--lr",
            "0.02",
            "--json",
            "-o",
            &tuned,
        ],
    ));
    assert!(t["test"]["accuracy"].as_f64().unwrap() > 0.85);
    assert_eq!(t["macs"].as_f64().unwrap(), after);
    // Only the groups asked for; a fixed group is refused by name.
    let one = json(&run_pf(
        p,
        &[
            "prune",
            &base,
            "--layers",
            "block2.conv",
            "--json",
            "-o",
            &path_str(p, "one.pf"),
        ],
    ));
    assert_eq!(one["groups"].as_array().unwrap().len(), 1);
    fails_with(
        p,
        &["prune", &base, "--layers", "fc", "-o", &path_str(p, "x.pf")],
        "number of classes",
    );
    fails_with(
        p,
        &["prune", &base, "--keep", "0", "-o", &path_str(p, "x.pf")],
        "--keep",
    );
}

#[test]
fn zoo_architectures_prune_and_export_from_fresh_weights() {
    let dir = tempdir();
    let out = run_pf(
        dir.path(),
        &[
            "prune",
            "resnet20",
            "--layers",
            "layer1.0.a.conv,layer2.0.a.conv",
            "--keep",
            "0.5",
            "-o",
            "r.pf",
            "--json",
        ],
    );
    let v = json(&out);
    assert!(v["macs_after"].as_u64().unwrap() < v["macs_before"].as_u64().unwrap());
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
    // The same architecture and seed as `pf export resnet20`, smaller.
    let full = json(&run_pf(
        dir.path(),
        &["export", "resnet20", "-o", "full.tflite", "--json"],
    ));
    let pruned = json(&run_pf(
        dir.path(),
        &["export", "r.pf", "-o", "r.tflite", "--json"],
    ));
    assert!(pruned["bytes"].as_u64().unwrap() < full["bytes"].as_u64().unwrap());
    let bad = run_pf(dir.path(), &["export", "resnet21", "-o", "x.tflite"]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("resnet20"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("x.tflite").exists());
}
