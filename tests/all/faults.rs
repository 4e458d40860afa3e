//! Faults on disk and in the process during `pf compress`: a study folder
//! that is read-only, a disk that fills mid-study (a file-size limit, which
//! makes writes fail as a full disk does), two `pf compress` on one study at
//! once, and Ctrl-C during a trial. Each must end with a clear error that
//! names the study and says what to do, keep every committed trial, and
//! leave a study that `--resume` continues.

use crate::support::{path_str, pf, stderr, tempdir};
use pf::search::{SqliteStudy, StudyStore, TrialRecord};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

/// A short search (weight_sparse × random) of `trials` trials of
/// `finetune_steps` steps each, in `dir`.
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
        "--no-report",
        "--seed",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` with `--resume` and `--trials trials`.
fn resume_args(args: &[String], trials: u32) -> Vec<String> {
    let mut args = args.to_vec();
    let at = args.iter().position(|a| a == "--trials").unwrap();
    args[at + 1] = trials.to_string();
    args.push("--resume".into());
    args
}

fn compress(dir: &Path, args: &[String]) -> Command {
    let mut cmd = pf();
    cmd.current_dir(dir).args(args);
    cmd
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("pf runs")
}

fn trials_of(dir: &Path) -> Vec<TrialRecord> {
    SqliteStudy::open_read_only(&dir.join("study.db"))
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

/// Asserts that `out` failed with an error naming the study and telling to
/// continue it with `--resume`, without a panic.
fn assert_clear_failure(out: &Output, dir: &Path, words: &[&str]) {
    let e = stderr(out);
    assert!(!out.status.success(), "pf succeeded:\n{e}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "pf did not exit by itself:\n{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        e.contains(&path_str(dir, "study.db")),
        "the study is not named:\n{e}"
    );
    assert!(e.contains("--resume"), "no word on how to go on:\n{e}");
    for w in words {
        assert!(e.contains(w), "`{w}` is not in:\n{e}");
    }
}

/// Runs the child without the powers that let root write anywhere
/// (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that file modes bind it as
/// they bind any user; a no-op for other users.
fn as_ordinary_user(cmd: &mut Command) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    // SAFETY: prctl is async-signal-safe, and the closure touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (linux/capability.h).
            for cap in [1 as libc::c_ulong, 2] {
                if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_study_folder_is_reported_before_any_work_and_loses_nothing() {
    let dir = tempdir();
    let folder = dir.path().join("runs");
    std::fs::create_dir(&folder).unwrap();
    let mut args = search_args(&folder, 1, 5);
    // The model goes elsewhere: pf checks output folders up front already.
    let at = args.iter().position(|a| a == "--export").unwrap();
    args[at + 1] = path_str(dir.path(), "model.pf");
    let out = output(compress(&folder, &args));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = trials_of(&folder);

    set_mode(&folder, 0o555);
    let mut cmd = compress(&folder, &resume_args(&args, 3));
    as_ordinary_user(&mut cmd);
    let started = Instant::now();
    let out = output(cmd);
    set_mode(&folder, 0o755);
    assert_clear_failure(&out, &folder, &["read-only", "writable"]);
    // Refused when the study is opened, before any trial is run.
    assert!(!stderr(&out).contains("trial 1"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(table(&trials_of(&folder)), table(&before));

    // Writable again, the study continues.
    let out = output(compress(&folder, &resume_args(&args, 3)));
    assert!(out.status.success(), "{}", stderr(&out));
    let after = trials_of(&folder);
    assert_eq!(after.len(), 3);
    assert_eq!(table(&after[..1]), table(&before));
}

#[test]
fn a_disk_that_fills_mid_study_stops_it_clearly_and_resume_finishes_it() {
    let dir = tempdir();
    let args = search_args(dir.path(), 1, 5);
    let out = output(compress(dir.path(), &args));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = trials_of(dir.path());
    let total = 16;
    let mut child = compress(dir.path(), &resume_args(&args, total))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the resumed run has committed a trial, no file of it may grow
    // past the study's present size: the trials that fit in the study's
    // last page are committed, then a write fails with EFBIG, as on a full
    // disk. (The limit is set on the running process, `prlimit`, because
    // wasmtime cannot load a plugin under `ulimit -f`.)
    wait_for_trials(&mut child, dir.path(), before.len() + 1);
    let limit = std::fs::metadata(dir.path().join("study.db"))
        .unwrap()
        .len();
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit on a child this test started and has not waited for,
    // with a valid rlimit and no old-limit pointer.
    let rc = unsafe {
        libc::prlimit(
            child.id() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let out = child.wait_with_output().unwrap();
    assert_clear_failure(&out, dir.path(), &["size limit", "committed", "kept"]);
    let kept = trials_of(dir.path());
    assert!(
        kept.len() > before.len() && kept.len() < total as usize,
        "the disk filled after {} trials of {total}; the test needs it mid-study:\n{}",
        kept.len(),
        stderr(&out)
    );
    assert_eq!(
        table(&kept[..1]),
        table(&before),
        "a committed trial changed"
    );

    // With room again, --resume finishes the study as an uninterrupted run
    // would have.
    let out = output(compress(dir.path(), &resume_args(&args, total)));
    assert!(out.status.success(), "{}", stderr(&out));
    let after = trials_of(dir.path());
    assert_eq!(
        after.iter().map(|t| t.number).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    assert_eq!(table(&after[..kept.len()]), table(&kept));
}

/// Waits until the study in `dir` holds `n` trials, while `child` runs.
fn wait_for_trials(child: &mut std::process::Child, dir: &Path, n: usize) {
    let db = dir.join("study.db");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pf compress ended ({status}) before its study held {n} trials");
        }
        assert!(
            Instant::now() < deadline,
            "{} holds fewer than {n} trials after 300 s",
            db.display()
        );
        if let Ok(s) = SqliteStudy::open_read_only(&db) {
            if s.trials().map(|t| t.len()).unwrap_or(0) >= n {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_compress_on_a_running_study_is_refused_and_the_first_is_unharmed() {
    let dir = tempdir();
    let args = search_args(dir.path(), 1, 5);
    let out = output(compress(dir.path(), &args));
    assert!(out.status.success(), "{}", stderr(&out));

    let total = 8;
    let mut first = compress(dir.path(), &resume_args(&args, total))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_trials(&mut first, dir.path(), 2);
    let started = Instant::now();
    let second = output(compress(dir.path(), &resume_args(&args, total)));
    assert_clear_failure(&second, dir.path(), &["in use", "another `pf compress`"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the second run was refused only after {:?}",
        started.elapsed()
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        trials_of(dir.path())
            .iter()
            .map(|t| t.number)
            .collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    // The lock went with the first run: the study opens to write again.
    SqliteStudy::open(&dir.path().join("study.db")).expect("the study is free again");
}

#[test]
fn ctrl_c_records_the_running_trial_as_interrupted_and_prints_the_resume_command() {
    let dir = tempdir();
    let total = 4;
    let args = search_args(dir.path(), total, 150);
    let mut child = compress(dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_trials(&mut child, dir.path(), 2);
    // SAFETY: kill with the id of a child this test started and has not
    // yet waited for.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let signalled = Instant::now();
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "pf took {:?} to stop after Ctrl-C",
        signalled.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "pf did not stop as interrupted:\n{e}"
    );
    let kept = trials_of(dir.path());
    assert!(
        kept.len() >= 2 && kept.len() < total as usize,
        "{}",
        kept.len()
    );
    let interrupted = SqliteStudy::open_read_only(&dir.path().join("study.db"))
        .unwrap()
        .interruptions()
        .unwrap();
    let numbers: Vec<u32> = interrupted.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        [kept.len() as u32],
        "the running trial is recorded:\n{e}"
    );
    assert!(
        e.contains(&format!("trial {} was running", kept.len())),
        "{e}"
    );
    assert!(
        e.contains(&format!("keeps its {} finished trials", kept.len())),
        "{e}"
    );

    // The printed command continues the study to its end.
    let command = e
        .lines()
        .skip_while(|l| !l.starts_with("Continue the study with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command in:\n{e}"))
        .trim()
        .to_string();
    assert!(command.ends_with("--resume"), "{command}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}:\n{}", stderr(&out));
    let after = trials_of(dir.path());
    assert_eq!(
        after.iter().map(|t| t.number).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    assert_eq!(table(&after[..kept.len()]), table(&kept));
}
