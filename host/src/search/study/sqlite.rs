//! The embedded study store: one SQLite file holding the study's settings,
//! one row per finished trial, each committed in its own transaction, and
//! the final result. A `kill -9` loses at most the trials that were
//! running, never a finished one.
//!
//! One process writes a study at a time: opening it to write takes an
//! exclusive advisory lock (`flock`) on the file, held until the study is
//! dropped, so a second `pf compress` on the same study is refused at once
//! with a clear message instead of interleaving its trials. Readers (`pf
//! report`) take no such lock. Opening to write also proves that the study
//! can be written (a read-only folder is reported before any work is
//! done), and every failed write (a full disk, a file-size limit, a folder
//! made read-only mid-study) is reported with the file, the cause and what
//! to do; trials committed before it are kept. Trials that were running
//! when pf was interrupted (Ctrl-C) are listed in the `interruptions` table
//! ([`record_interruption`]); they are run again on `--resume`.
//!
//! Columns added after the first release (`latency_ms`, `worker_host`,
//! `worker_pid`) are added to an older study when it is opened to write;
//! opened read-only, an older study reads them as empty.

use super::{StudyStore, STUDY_FORMAT};
use crate::model::Footprint;
use crate::search::record::{
    FinalRecord, ParamRecord, StudyMeta, Timings, TrialRecord, TrialStatus,
};
use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE trials (
    number           INTEGER PRIMARY KEY,
    status           TEXT NOT NULL CHECK (status IN ('complete', 'failed')),
    params           TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    accuracy         REAL,
    loss             REAL,
    macs             INTEGER,
    params_total     INTEGER,
    nonzero_params   INTEGER,
    bytes            INTEGER,
    target_ratio     REAL,
    latency_ms       REAL,
    reward           REAL,
    error            TEXT,
    timings          TEXT NOT NULL,
    learner_sha256   TEXT NOT NULL,
    optimizer_sha256 TEXT NOT NULL,
    worker_host      TEXT,
    worker_pid       INTEGER
);
";

/// Columns that studies written by an older pf may lack, each with the SQL
/// that adds it (run when such a study is opened to write).
const LATER_COLUMNS: [(&str, &str); 3] = [
    (
        "latency_ms",
        "ALTER TABLE trials ADD COLUMN latency_ms REAL",
    ),
    (
        "worker_host",
        "ALTER TABLE trials ADD COLUMN worker_host TEXT",
    ),
    (
        "worker_pid",
        "ALTER TABLE trials ADD COLUMN worker_pid INTEGER",
    ),
];

/// A study in a SQLite file.
pub struct SqliteStudy {
    /// Declared before `writer_lock`, so that it is closed first: closing
    /// any descriptor of the file drops the process's POSIX locks on it,
    /// which SQLite relies on.
    conn: Connection,
    meta: StudyMeta,
    path: PathBuf,
    /// Which of [`LATER_COLUMNS`] the trials table has (a study from an
    /// older pf, opened read-only, may lack some).
    later_columns: [bool; LATER_COLUMNS.len()],
    /// The open file holding the exclusive `flock` of the one process
    /// writing this study (none when opened read-only).
    _writer_lock: Option<std::fs::File>,
}

/// Takes the exclusive advisory lock that marks the one process writing the
/// study at `path`, or explains that another holds it.
fn lock_for_writing(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open study {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // shared with the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                bail!(
                    "study {} is in use: another `pf compress` is writing it right now. Wait for \
                     it to finish (or stop it), then continue with --resume; or give this run \
                     another --study",
                    path.display()
                );
            }
            return Err(err)
                .with_context(|| format!("cannot lock study {} for writing", path.display()));
        }
    }
    Ok(file)
}

/// Turns a failed write to the study at `path` (while `doing` something)
/// into an error that names the file, the likely cause and what to do.
fn write_error(path: &Path, doing: &str, err: rusqlite::Error) -> anyhow::Error {
    use rusqlite::ErrorCode;
    let folder = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
        _ => ".".to_string(),
    };
    let cause = match err.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk is full: free some space".to_string(),
        Some(ErrorCode::SystemIoFailure) => "the disk could not take the write (it may be full, \
             the file may be over a size limit such as `ulimit -f`, or the storage is failing): \
             free some space or move the study to healthy storage"
            .to_string(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            format!(
                "the study or its folder {folder} is read-only (SQLite writes a journal file \
                 beside the study): make both writable, or copy the study to a writable folder"
            )
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds the study's lock: wait for it to finish".to_string()
        }
        _ => "check the file and its folder".to_string(),
    };
    anyhow::Error::new(err).context(format!(
        "cannot write study {} while {doing}: {cause}. Every trial committed before this is \
         kept; once fixed, continue the study with --resume",
        path.display()
    ))
}

fn sql_u64(x: u64) -> i64 {
    // Stored as the same 64 bits; read back with `as u64`.
    x as i64
}

impl SqliteStudy {
    /// Creates a new study at `path`, which must not exist. The file appears
    /// complete or not at all: it is built under a temporary name and moved
    /// into place without replacing anything.
    pub fn create(path: &Path, meta: &StudyMeta) -> Result<SqliteStudy> {
        Self::create_filled(path, meta, &[], None)
    }

    /// Creates a new study at `path` (which must not exist) holding
    /// `trials` and the final result `last`, all or nothing: how `pf study
    /// copy` writes a SQLite study.
    pub fn create_filled(
        path: &Path,
        meta: &StudyMeta,
        trials: &[TrialRecord],
        last: Option<&FinalRecord>,
    ) -> Result<SqliteStudy> {
        if path.exists() {
            bail!(
                "study {} already exists: pass --resume to continue it, or choose another --study",
                path.display()
            );
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder of study {}", path.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".pf-study-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "cannot create study {}: its folder {} cannot be written (read-only, or the \
                     disk is full); make it writable or give another --study",
                    path.display(),
                    dir.display()
                )
            })?;
        {
            let mut conn = Connection::open(tmp.path())?;
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('format', ?1), ('study', ?2)",
                params![STUDY_FORMAT.to_string(), serde_json::to_string(meta)?],
            )?;
            for t in trials {
                insert_trial(&tx, t)?;
            }
            if let Some(last) = last {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('final', ?1)",
                    [serde_json::to_string(last)?],
                )?;
            }
            tx.commit()?;
        }
        // Readable like any file the user writes (temporary files are 0600).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.persist_noclobber(path)
            .map_err(|e| anyhow::anyhow!("cannot create study {}: {}", path.display(), e.error))?;
        Self::open(path)
    }

    /// Opens an existing study to continue it.
    pub fn open(path: &Path) -> Result<SqliteStudy> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Opens an existing study to read it (a report of a study on read-only
    /// storage, or one another process is writing).
    pub fn open_read_only(path: &Path) -> Result<SqliteStudy> {
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<SqliteStudy> {
        if !path.is_file() {
            bail!("study {} does not exist", path.display());
        }
        let read_only = flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
        let writer_lock = match read_only {
            true => None,
            false => Some(lock_for_writing(path)?),
        };
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening study {}", path.display()))?;
        let not_a_study = || {
            format!(
                "{} is not a pf study (or it is damaged): it has no readable study settings",
                path.display()
            )
        };
        let get = |key: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let format = get("format").with_context(not_a_study)?;
        match format.as_deref().map(str::parse::<u32>) {
            Some(Ok(STUDY_FORMAT)) => {}
            Some(Ok(v)) => bail!(
                "study {} has format {v}; this pf reads format {STUDY_FORMAT}",
                path.display()
            ),
            _ => bail!(not_a_study()),
        }
        let meta: StudyMeta = serde_json::from_str(&get("study")?.with_context(not_a_study)?)
            .with_context(not_a_study)?;
        if !read_only {
            // A write that changes nothing, so that a study pf cannot
            // write is reported now, not after the baseline and a trial.
            probe_write(&conn).map_err(|e| write_error(path, "opening it", e))?;
        }
        // Studies written by an older pf lack later columns: add them (an
        // empty column changes nothing), or, read-only, read NULLs.
        let mut later_columns = [false; LATER_COLUMNS.len()];
        for (has, (name, add)) in later_columns.iter_mut().zip(LATER_COLUMNS) {
            *has = conn
                .prepare(&format!("SELECT {name} FROM trials LIMIT 0"))
                .is_ok();
            if !*has && !read_only {
                conn.execute_batch(add)
                    .map_err(|e| write_error(path, "updating it", e))?;
                *has = true;
            }
        }
        Ok(SqliteStudy {
            conn,
            meta,
            path: path.to_path_buf(),
            later_columns,
            _writer_lock: writer_lock,
        })
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawTrial> {
        Ok(RawTrial {
            number: r.get(0)?,
            status: r.get(1)?,
            params: r.get(2)?,
            seed: r.get(3)?,
            accuracy: r.get(4)?,
            loss: r.get(5)?,
            footprint: [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
            target_ratio: r.get(10)?,
            reward: r.get(11)?,
            error: r.get(12)?,
            timings: r.get(13)?,
            learner_sha256: r.get(14)?,
            optimizer_sha256: r.get(15)?,
            latency_ms: r.get(16)?,
            worker_host: r.get(17)?,
            worker_pid: r.get(18)?,
        })
    }
}

/// Rewrites the study's format row unchanged in a transaction of its own:
/// SQLite creates its journal beside the study and writes the page back.
fn probe_write(conn: &Connection) -> rusqlite::Result<()> {
    let result = conn.execute_batch(
        "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'format'; COMMIT;",
    );
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Records in the study at `path` that the trials `numbers` were running
/// when pf was interrupted (Ctrl-C), in its `interruptions` table (made on
/// first use; the trials table is left as it is, so the interrupted trials
/// are simply run again on `--resume`). A trial committed meanwhile is not
/// recorded. Returns the trials recorded as interrupted and how many
/// finished trials the study holds. Opens a connection of its own, so that
/// it can run while the search's connection is in use.
pub fn record_interruption(path: &Path, numbers: &[u32]) -> Result<(Vec<u32>, usize)> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening study {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let at = pf_registry::audit::now_rfc3339();
    let write = || -> rusqlite::Result<(Vec<u32>, usize)> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.execute_batch(INTERRUPTIONS)?;
        let mut recorded = Vec::new();
        for &n in numbers {
            let added = conn.execute(
                "INSERT INTO interruptions (number, at) SELECT ?1, ?2 \
                 WHERE NOT EXISTS (SELECT 1 FROM trials WHERE number = ?1)",
                params![n, at],
            )?;
            if added > 0 {
                recorded.push(n);
            }
        }
        let finished: i64 = conn.query_row("SELECT count(*) FROM trials", [], |r| r.get(0))?;
        conn.execute_batch("COMMIT")?;
        Ok((recorded, finished as usize))
    };
    write().map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        write_error(path, "recording the interrupted trials", e)
    })
}

/// The table of trials that were running when pf was interrupted.
const INTERRUPTIONS: &str = "CREATE TABLE IF NOT EXISTS interruptions (
    number INTEGER NOT NULL,
    at     TEXT NOT NULL
);";

impl SqliteStudy {
    /// The trials that were running when pf was interrupted (Ctrl-C), by
    /// number, each with the time (RFC 3339), oldest first. A trial run
    /// again after `--resume` stays listed.
    pub fn interruptions(&self) -> Result<Vec<(u32, String)>> {
        let exists: bool = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'interruptions'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT number, at FROM interruptions ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A trial row before its JSON columns are decoded.
struct RawTrial {
    number: u32,
    status: String,
    params: String,
    seed: i64,
    accuracy: Option<f64>,
    loss: Option<f64>,
    footprint: [Option<i64>; 4],
    target_ratio: Option<f64>,
    reward: Option<f64>,
    error: Option<String>,
    timings: String,
    learner_sha256: String,
    optimizer_sha256: String,
    latency_ms: Option<f64>,
    worker_host: Option<String>,
    worker_pid: Option<i64>,
}

impl RawTrial {
    fn decode(self) -> Result<TrialRecord> {
        let n = self.number;
        let status = match self.status.as_str() {
            "complete" => TrialStatus::Complete,
            "failed" => TrialStatus::Failed,
            s => bail!("trial {n} has unknown status `{s}`"),
        };
        let params: Vec<ParamRecord> =
            serde_json::from_str(&self.params).with_context(|| format!("trial {n}: parameters"))?;
        let timings: Timings =
            serde_json::from_str(&self.timings).with_context(|| format!("trial {n}: timings"))?;
        let footprint = match self.footprint {
            [Some(m), Some(p), Some(nz), Some(b)] => Some(Footprint {
                macs: m as u64,
                params: p as u64,
                nonzero_params: nz as u64,
                bytes: b as u64,
            }),
            _ => None,
        };
        Ok(TrialRecord {
            number: n,
            status,
            params,
            seed: self.seed as u64,
            accuracy: self.accuracy,
            loss: self.loss,
            footprint,
            target_ratio: self.target_ratio,
            latency_ms: self.latency_ms,
            reward: self.reward,
            error: self.error,
            timings,
            learner_sha256: self.learner_sha256,
            optimizer_sha256: self.optimizer_sha256,
            worker_host: self.worker_host,
            worker_pid: self.worker_pid.and_then(|p| u32::try_from(p).ok()),
        })
    }
}

/// SQLite stores NaN as NULL; keep only finite numbers.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// Inserts one trial row.
fn insert_trial(conn: &Connection, t: &TrialRecord) -> rusqlite::Result<usize> {
    let f = t.footprint.as_ref();
    let json = |v: serde_json::Result<String>| {
        v.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    conn.execute(
        "INSERT INTO trials (number, status, params, seed, accuracy, loss, macs, \
         params_total, nonzero_params, bytes, target_ratio, reward, error, timings, \
         learner_sha256, optimizer_sha256, latency_ms, worker_host, worker_pid) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19)",
        params![
            t.number,
            t.status.name(),
            json(serde_json::to_string(&t.params))?,
            sql_u64(t.seed),
            finite(t.accuracy),
            finite(t.loss),
            f.map(|f| sql_u64(f.macs)),
            f.map(|f| sql_u64(f.params)),
            f.map(|f| sql_u64(f.nonzero_params)),
            f.map(|f| sql_u64(f.bytes)),
            finite(t.target_ratio),
            finite(t.reward),
            t.error,
            json(serde_json::to_string(&t.timings))?,
            t.learner_sha256,
            t.optimizer_sha256,
            finite(t.latency_ms),
            t.worker_host,
            t.worker_pid,
        ],
    )
}

impl StudyStore for SqliteStudy {
    fn meta(&self) -> &StudyMeta {
        &self.meta
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn trials(&self) -> Result<Vec<TrialRecord>> {
        let later: Vec<&str> = LATER_COLUMNS
            .iter()
            .zip(self.later_columns)
            .map(|((name, _), has)| if has { *name } else { "NULL" })
            .collect();
        let mut stmt = self.conn.prepare(&format!(
            "SELECT number, status, params, seed, accuracy, loss, macs, params_total, \
                 nonzero_params, bytes, target_ratio, reward, error, timings, learner_sha256, \
                 optimizer_sha256, {} FROM trials ORDER BY number",
            later.join(", ")
        ))?;
        let rows = stmt.query_map([], Self::row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.decode()?);
        }
        Ok(out)
    }

    fn record(&mut self, t: &TrialRecord) -> Result<()> {
        let doing = format!("recording trial {}", t.number);
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| write_error(&path, &doing, e))?;
        insert_trial(&tx, t).map_err(|e| write_error(&path, &doing, e))?;
        tx.commit().map_err(|e| write_error(&path, &doing, e))?;
        Ok(())
    }

    fn update_meta(&mut self, meta: &StudyMeta) -> Result<()> {
        let json = serde_json::to_string(meta)?;
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'study'", [json])?;
            tx.commit()
        };
        write(&mut self.conn).map_err(|e| write_error(&self.path, "updating its settings", e))?;
        self.meta = meta.clone();
        Ok(())
    }

    fn set_final(&mut self, result: &FinalRecord) -> Result<()> {
        let json = serde_json::to_string(result)?;
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('final', ?1)",
                [json],
            )?;
            tx.commit()
        };
        write(&mut self.conn).map_err(|e| write_error(&self.path, "storing its result", e))?;
        Ok(())
    }

    fn final_result(&self) -> Result<Option<FinalRecord>> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'final'", [], |r| {
                r.get(0)
            })
            .optional()?;
        v.map(|s| serde_json::from_str(&s).context("the study's final result"))
            .transpose()
    }
}
