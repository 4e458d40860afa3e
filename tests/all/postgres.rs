//! Studies in PostgreSQL, against a real server (scripts/postgres.sh, which
//! scripts/test.sh starts; `PF_TEST_POSTGRES` names it): `pf study copy`
//! between SQLite and PostgreSQL, `pf report` on either, several studies
//! in one database, and the errors of bad URLs, unreachable servers and
//! databases without pf's tables.

use crate::support::{pg_database, run_pf, stderr, tempdir};
use pf::search::study::{self, StudyLocation};
use pf::search::{SqliteStudy, StudyStore, TrialRecord};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// A finished SQLite study of 4 trials (weight_sparse × random on a small
/// digits baseline, with a final result), made once and shared: tests copy
/// the file before they use it.
fn sqlite_study() -> &'static Path {
    static STUDY: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = STUDY.get_or_init(|| {
        let dir = tempdir();
        let (model, _) = pf::conformance::digits_baseline(3, 150).expect("baseline");
        let base = dir.path().join("base.pf");
        pf::model::save(&model, &base).expect("baseline saved");
        let study = dir.path().join("study.db");
        let model = dir.path().join("model.pf");
        let args = [
            "compress",
            "--plugin",
            "weight_sparse",
            "--optimizer",
            "random",
            "--model",
            base.to_str().unwrap(),
            "--trials",
            "4",
            "--finetune-steps",
            "30",
            "--retrain-epochs",
            "1",
            "--study",
            study.to_str().unwrap(),
            "--export",
            model.to_str().unwrap(),
            "--no-report",
            "--seed",
            "3",
        ];
        let out = run_pf(dir.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        (dir, study)
    });
    path
}

/// The shared study copied to `dir/name`.
fn sqlite_copy(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(sqlite_study(), &path).expect("study copied");
    path
}

fn pf(dir: &Path, args: &[&str]) -> Output {
    run_pf(dir, args)
}

fn ok(o: &Output) {
    assert!(o.status.success(), "pf failed: {}", stderr(o));
}

/// Asserts that pf failed (non-zero, no panic) with an error saying each
/// of `what`, and that `secret` appears nowhere in what it printed.
fn refused(o: &Output, what: &[&str], secret: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "accepted: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for w in what {
        assert!(e.contains(w), "`{w}` not in: {e}");
    }
    let printed = format!("{e}{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        !printed.contains(secret),
        "the password was printed: {printed}"
    );
}

/// The trials table of a report: its `<tbody>`.
fn report_rows(dir: &Path, study: &str, name: &str) -> String {
    let html = dir.join(name);
    ok(&pf(dir, &["report", study, "-o", html.to_str().unwrap()]));
    let page = std::fs::read_to_string(&html).expect("report written");
    let start = page.find("<tbody>").expect("a trials table");
    let end = page.find("</tbody>").expect("a trials table");
    page[start..end].to_string()
}

fn trials_at(at: &str) -> Vec<TrialRecord> {
    let at = StudyLocation::parse(at).unwrap();
    study::open_read(&at).unwrap().trials().unwrap()
}

#[test]
fn postgres_a_study_copied_from_sqlite_and_back_keeps_every_trial_and_reports_the_same_table() {
    let db = pg_database();
    let dir = tempdir();
    let sqlite = sqlite_copy(dir.path(), "study.db");
    let url = db.url("digits-halved");
    ok(&pf(
        dir.path(),
        &["study", "copy", sqlite.to_str().unwrap(), &url],
    ));

    let source = SqliteStudy::open_read_only(&sqlite).unwrap();
    let copied = study::open_read(&StudyLocation::parse(&url).unwrap()).unwrap();
    assert_eq!(copied.meta(), source.meta());
    let trials = source.trials().unwrap();
    assert_eq!(trials.len(), 4);
    assert!(trials
        .iter()
        .all(|t| t.worker_pid.is_some() && t.worker_host.is_some()));
    assert_eq!(
        copied.trials().unwrap(),
        trials,
        "every field of every trial"
    );
    let fin = source.final_result().unwrap();
    assert!(fin.is_some());
    assert_eq!(copied.final_result().unwrap(), fin);

    // pf report reads either store and shows the same trials table.
    let from_sqlite = report_rows(dir.path(), sqlite.to_str().unwrap(), "a.html");
    let from_pg = report_rows(dir.path(), &url, "b.html");
    assert_eq!(from_pg, from_sqlite);
    assert_eq!(from_pg.matches("<tr").count(), 4);

    // And back to a new SQLite file: the same study again.
    let back = dir.path().join("back.db");
    ok(&pf(
        dir.path(),
        &["study", "copy", &url, back.to_str().unwrap()],
    ));
    let back = SqliteStudy::open_read_only(&back).unwrap();
    assert_eq!(back.meta(), source.meta());
    assert_eq!(back.trials().unwrap(), trials);
    assert_eq!(back.final_result().unwrap(), fin);

    // A copy never replaces a study, in either store.
    let again = pf(
        dir.path(),
        &["study", "copy", sqlite.to_str().unwrap(), &url],
    );
    refused(&again, &["already exists", "digits-halved"], "\u{0}");
    let again = pf(
        dir.path(),
        &["study", "copy", &url, sqlite.to_str().unwrap()],
    );
    refused(&again, &["already exists"], "\u{0}");
    assert_eq!(trials_at(&url), trials);
}

#[test]
fn postgres_two_studies_in_one_database_do_not_see_each_other() {
    let db = pg_database();
    let dir = tempdir();
    let sqlite = sqlite_copy(dir.path(), "study.db");
    let (a, b) = (db.url("a"), db.url("b"));
    ok(&pf(
        dir.path(),
        &["study", "copy", sqlite.to_str().unwrap(), &a],
    ));
    // Study b: other settings, two trials of its own, recorded one by one.
    let all = SqliteStudy::open_read_only(&sqlite)
        .unwrap()
        .trials()
        .unwrap();
    let mut meta = SqliteStudy::open_read_only(&sqlite).unwrap().meta().clone();
    meta.seed = 99;
    meta.trials = 2;
    {
        let mut store = study::create(&StudyLocation::parse(&b).unwrap(), &meta).unwrap();
        for t in &all[1..3] {
            store.record(t).unwrap();
        }
    }
    assert_eq!(trials_at(&a), all);
    assert_eq!(trials_at(&b), all[1..3].to_vec());
    let b_store = study::open_read(&StudyLocation::parse(&b).unwrap()).unwrap();
    assert_eq!(b_store.meta().seed, 99);
    assert_eq!(
        b_store.final_result().unwrap(),
        None,
        "a's result is not b's"
    );
    let rows = report_rows(dir.path(), &b, "b.html");
    assert_eq!(rows.matches("<tr").count(), 2);
    // Trial numbers are per study: b may hold a trial 0 beside a's.
    let mut store = study::open_write(&StudyLocation::parse(&b).unwrap()).unwrap();
    store.record(&all[0]).unwrap();
    assert_eq!(trials_at(&b).len(), 3);
    assert_eq!(trials_at(&a), all);
    // A name the database does not hold is an error listing those it does.
    let out = pf(dir.path(), &["report", &db.url("c"), "-o", "c.html"]);
    refused(&out, &["no study named `c`", "a, b", "study="], "\u{0}");
}

#[test]
fn postgres_databases_without_pf_and_missing_databases_are_refused_clearly() {
    let db = pg_database();
    let dir = tempdir();
    // A database without pf's tables is not a study, and reading it
    // changes nothing.
    let out = pf(dir.path(), &["report", &db.url("s"), "-o", "r.html"]);
    refused(
        &out,
        &["has no pf studies", &db.name, "pf study copy"],
        "\u{0}",
    );
    let tables: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "pf report created tables");
    assert!(!dir.path().join("r.html").exists());
    // A database that does not exist.
    let url = db.url("s").replace(&db.name, "pf_no_such_database");
    let out = pf(dir.path(), &["report", &url, "-o", "r.html"]);
    refused(
        &out,
        &["`pf_no_such_database` does not exist", "createdb"],
        "\u{0}",
    );
    // A user the server does not know: authentication fails, said so.
    let url = db.url("s").replace("postgres@", "pf_no_such_user:pw-xyz@");
    let out = pf(dir.path(), &["report", &url, "-o", "r.html"]);
    refused(
        &out,
        &[
            "authentication failed for user `pf_no_such_user`",
            "~/.pgpass",
        ],
        "pw-xyz",
    );
}

#[test]
fn postgres_urls_that_cannot_work_fail_with_what_to_do_and_never_print_the_password() {
    let dir = tempdir();
    let secret = "hunter2-secret";
    // No study name.
    let out = pf(
        dir.path(),
        &["report", &format!("postgres://pf:{secret}@127.0.0.1/pf")],
    );
    refused(&out, &["names no study", "study=NAME"], secret);
    // Not a URL the client can read.
    let out = pf(
        dir.path(),
        &[
            "report",
            &format!("postgresql://pf:{secret}@db:notaport/pf?study=s"),
        ],
    );
    refused(&out, &["not a valid PostgreSQL URL", "pf:***@db"], secret);
    // A port nothing listens on: refused, and said so, without a hang.
    let url = format!("postgres://pf:{secret}@127.0.0.1:1/pf?study=s");
    let out = pf(dir.path(), &["report", &url, "-o", "r.html"]);
    refused(
        &out,
        &["connection refused", "127.0.0.1:1", "running"],
        secret,
    );
    let out = pf(dir.path(), &["study", "copy", &url, "x.db"]);
    refused(&out, &["connection refused"], secret);
    assert!(!dir.path().join("x.db").exists());
    // A socket folder without a server.
    let url = format!("postgres:///pf?host={}&study=s", dir.path().display());
    let out = pf(dir.path(), &["report", &url, "-o", "r.html"]);
    refused(&out, &["Unix socket", "connection refused"], secret);
}

#[test]
fn postgres_an_older_sqlite_study_without_worker_columns_opens_reports_and_copies() {
    let db = pg_database();
    let dir = tempdir();
    let old = sqlite_copy(dir.path(), "old.db");
    // The table as pf wrote it before trials recorded their worker.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(
        "ALTER TABLE trials DROP COLUMN worker_host; ALTER TABLE trials DROP COLUMN worker_pid;",
    )
    .unwrap();
    drop(conn);
    let expected: Vec<TrialRecord> = SqliteStudy::open_read_only(sqlite_study())
        .unwrap()
        .trials()
        .unwrap()
        .into_iter()
        .map(|mut t| {
            (t.worker_host, t.worker_pid) = (None, None);
            t
        })
        .collect();
    // Read-only, it reads empty workers and is not changed.
    assert_eq!(
        SqliteStudy::open_read_only(&old).unwrap().trials().unwrap(),
        expected
    );
    let rows = report_rows(dir.path(), old.to_str().unwrap(), "old.html");
    assert_eq!(rows.matches("<tr").count(), 4);
    let url = db.url("old");
    ok(&pf(
        dir.path(),
        &["study", "copy", old.to_str().unwrap(), &url],
    ));
    assert_eq!(trials_at(&url), expected);
    // Opened to write, it gains the columns and records workers again.
    let mut store = SqliteStudy::open(&old).unwrap();
    let mut t = expected[0].clone();
    t.number = 10;
    t.worker_host = Some("node-7".into());
    t.worker_pid = Some(77);
    store.record(&t).unwrap();
    assert_eq!(store.trials().unwrap().last(), Some(&t));
}
