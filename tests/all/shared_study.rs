//! Shared studies against a real PostgreSQL (`PF_TEST_POSTGRES`, started
//! by scripts/test.sh): real `pf worker` processes claim, run and commit
//! the trials of one study; a worker killed mid-trial loses its trial to
//! the heartbeat timeout and the study still completes its budget; workers
//! run one at a time make exactly the trials of `pf compress --jobs 1`.

use crate::support::{digits_model, pf, pg_database, run_pf, stderr, tempdir, PgDatabase};
use pf::search::study::{self, StudyLocation};
use pf::search::TrialRecord;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// `pf compress` arguments of a short weight_sparse × random search on the
/// digits baseline `model`, into `study`.
fn compress_args(model: &str, study: &str, trials: u32, steps: u32, out: &Path) -> Vec<String> {
    [
        "compress",
        "--plugin",
        "weight_sparse",
        "--optimizer",
        "random",
        "--model",
        model,
        "--trials",
        &trials.to_string(),
        "--finetune-steps",
        &steps.to_string(),
        "--retrain-epochs",
        "1",
        "--threads-per-trial",
        "1",
        "--study",
        study,
        "--export",
        out.join("model.pf").to_str().unwrap(),
        "--no-report",
        "--seed",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(dir: &Path, args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_pf(dir, &args)
}

fn ok(o: &Output) {
    assert!(o.status.success(), "pf failed: {}", stderr(o));
}

/// Creates the shared study `url` without running a trial.
fn create_study(dir: &Path, model: &str, url: &str, trials: u32, steps: u32, heartbeat: &str) {
    let mut args = compress_args(model, url, trials, steps, dir);
    args.extend(["--max-trials", "0", "--heartbeat", heartbeat].map(String::from));
    ok(&run(dir, &args));
}

/// Starts a `pf worker` on `url`.
fn spawn_worker(dir: &Path, url: &str, extra: &[&str]) -> Child {
    pf().current_dir(dir)
        .args(["worker", "--study", url, "--threads-per-trial", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pf worker starts")
}

/// Waits for a worker, at most `limit`: one still running then is killed
/// and the test fails (a worker waiting forever is a bug, not a hang).
fn wait_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("pf worker still running after {limit:?}: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How long a worker of these tests may take.
const WORKER_LIMIT: Duration = Duration::from_secs(300);

/// The trial numbers a worker printed it ran (`trial N  …` lines).
fn trials_run(o: &Output) -> Vec<u32> {
    stderr(o)
        .lines()
        .filter_map(|l| l.strip_prefix("trial "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// A row of the study's trials: number, status, lost, worker pid, error.
type Row = (i32, String, bool, Option<i32>, Option<String>);

/// Every row of the study's trials.
fn rows(db: &PgDatabase) -> Vec<Row> {
    db.client()
        .query(
            "SELECT number, status, lost, worker_pid, error FROM trials ORDER BY number",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The trial table without timings and workers, which differ between runs.
fn table(trials: Vec<TrialRecord>) -> Vec<TrialRecord> {
    trials
        .into_iter()
        .map(|mut t| {
            t.timings = Default::default();
            (t.worker_host, t.worker_pid) = (None, None);
            t
        })
        .collect()
}

fn trials_at(url: &str) -> Vec<TrialRecord> {
    let at = StudyLocation::parse(url).unwrap();
    study::open_read(&at).unwrap().trials().unwrap()
}

#[test]
fn shared_three_workers_finish_a_12_trial_study_and_no_trial_runs_twice() {
    let db = pg_database();
    let dir = tempdir();
    let model = digits_model(dir.path(), 150);
    let url = db.url("three");
    create_study(dir.path(), &model, &url, 12, 30, "1");
    let workers: Vec<Child> = (0..3)
        .map(|_| spawn_worker(dir.path(), &url, &["--heartbeat", "1"]))
        .collect();
    let pids: BTreeSet<i32> = workers.iter().map(|w| w.id() as i32).collect();
    let outputs: Vec<Output> = workers
        .into_iter()
        .map(|w| wait_within(w, WORKER_LIMIT))
        .collect();
    let mut ran = Vec::new();
    for o in &outputs {
        ok(o);
        ran.extend(trials_run(o));
    }
    ran.sort();
    assert_eq!(
        ran,
        (0..12).collect::<Vec<u32>>(),
        "each trial ran exactly once"
    );
    let rows = rows(&db);
    assert_eq!(rows.len(), 12);
    for (i, (number, status, lost, pid, _)) in rows.iter().enumerate() {
        assert_eq!(*number, i as i32);
        assert_ne!(status, "running");
        assert!(!lost);
        assert!(
            pids.contains(&pid.unwrap()),
            "trial {number} by an unknown worker"
        );
    }
    // The last step, from "another machine": re-train and export the best.
    let mut finish = compress_args(&model, &url, 12, 30, dir.path());
    finish.push("--finish".into());
    ok(&run(dir.path(), &finish));
    assert!(dir.path().join("model.pf").is_file());
    let at = StudyLocation::parse(&url).unwrap();
    assert!(study::open_read(&at)
        .unwrap()
        .final_result()
        .unwrap()
        .is_some());
}

#[test]
fn shared_a_killed_workers_trial_is_failed_as_lost_and_the_study_still_completes() {
    let db = pg_database();
    let dir = tempdir();
    let model = digits_model(dir.path(), 150);
    let url = db.url("killed");
    // Heartbeats every 0.5 s: a trial silent for 3 s is lost.
    create_study(dir.path(), &model, &url, 12, 150, "0.5");
    let mut victim = spawn_worker(dir.path(), &url, &["--heartbeat", "0.5"]);
    let pid = victim.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut client = db.client();
    let running = loop {
        let row = client
            .query_opt(
                "SELECT number FROM trials WHERE status = 'running' AND worker_pid = $1",
                &[&pid],
            )
            .unwrap();
        if let Some(r) = row {
            break r.get::<_, i32>(0);
        }
        assert!(
            Instant::now() < deadline,
            "the worker never claimed a trial"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    victim.kill().unwrap(); // SIGKILL: no clean-up, no last heartbeat.
    victim.wait().unwrap();
    let others: Vec<Child> = (0..2)
        .map(|_| spawn_worker(dir.path(), &url, &["--heartbeat", "0.5"]))
        .collect();
    for w in others {
        ok(&wait_within(w, WORKER_LIMIT));
    }
    let rows = rows(&db);
    let lost: Vec<_> = rows.iter().filter(|r| r.2).collect();
    assert_eq!(lost.len(), 1, "{rows:?}");
    let (number, status, _, lost_pid, error) = lost[0];
    assert_eq!(
        (*number, status.as_str(), *lost_pid),
        (running, "failed", Some(pid))
    );
    let error = error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("worker lost (host ") && error.contains(&format!("pid {pid}")),
        "{error}"
    );
    assert!(error.contains("last heartbeat 20"), "{error}");
    let counted = rows.iter().filter(|r| !r.2 && r.1 != "running").count();
    assert_eq!(counted, 12, "the lost trial's budget came back: {rows:?}");
    assert_eq!(rows.len(), 13);
    assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as i32));
    // pf report shows the lost trial with its reason.
    let html = dir.path().join("r.html");
    ok(&run_pf(
        dir.path(),
        &["report", &url, "-o", html.to_str().unwrap()],
    ));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("worker lost (host "));
}

#[test]
fn shared_workers_one_at_a_time_make_the_trials_of_compress_jobs_1() {
    let db = pg_database();
    let dir = tempdir();
    let model = digits_model(dir.path(), 150);
    // The SQLite study, as one `pf compress --jobs 1` makes it.
    let sqlite = dir.path().join("one.db");
    let mut args = compress_args(&model, sqlite.to_str().unwrap(), 4, 30, dir.path());
    args.extend(["--jobs", "1"].map(String::from));
    ok(&run(dir.path(), &args));
    let expected = table(trials_at(sqlite.to_str().unwrap()));
    assert_eq!(expected.len(), 4);
    // The shared study: pf compress runs one trial, then three workers
    // one after the other, each one trial.
    let url = db.url("sequential");
    let shared = tempdir();
    let mut args = compress_args(&model, &url, 4, 30, shared.path());
    args.extend(["--max-trials", "1"].map(String::from));
    let first = run(shared.path(), &args);
    ok(&first);
    assert_eq!(trials_run(&first), [0]);
    for n in 1..4 {
        let w = spawn_worker(shared.path(), &url, &["--max-trials", "1"]);
        let o = wait_within(w, WORKER_LIMIT);
        ok(&o);
        assert_eq!(trials_run(&o), [n]);
    }
    assert_eq!(
        table(trials_at(&url)),
        expected,
        "the same params and results"
    );
}
