//! Study storage. A study is a SQLite database (one file, the embedded
//! default): its settings, one row per finished trial, each committed in
//! its own transaction, and the final result. A `kill -9` loses at most the
//! trials that were running, never a finished one.
//!
//! The search loop only sees [`StudyStore`], so another backend (a server
//! shared by machines running trials) can slot in later.

use super::record::{FinalRecord, ParamRecord, StudyMeta, Timings, TrialRecord, TrialStatus};
use crate::model::Footprint;
use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// Version of the study schema this build writes and reads.
pub const STUDY_FORMAT: u32 = 1;

/// Where a search keeps its study.
pub trait StudyStore {
    /// The study's settings.
    fn meta(&self) -> &StudyMeta;
    /// Every finished trial, by number.
    fn trials(&self) -> Result<Vec<TrialRecord>>;
    /// Adds a finished trial, durably, in one transaction.
    fn record(&mut self, trial: &TrialRecord) -> Result<()>;
    /// Replaces the settings (when a resumed study is extended).
    fn update_meta(&mut self, meta: &StudyMeta) -> Result<()>;
    /// Stores the final result (replacing an earlier one).
    fn set_final(&mut self, result: &FinalRecord) -> Result<()>;
    /// The final result, once there is one.
    fn final_result(&self) -> Result<Option<FinalRecord>>;
}

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
    optimizer_sha256 TEXT NOT NULL
);
";

/// A study in a SQLite file.
pub struct SqliteStudy {
    conn: Connection,
    meta: StudyMeta,
    path: PathBuf,
    /// Whether the trials table has the `latency_ms` column (a study from
    /// before latency targets, opened read-only, does not).
    latency_column: bool,
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
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        {
            let conn = Connection::open(tmp.path())?;
            conn.execute_batch(SCHEMA)?;
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('format', ?1), ('study', ?2)",
                params![STUDY_FORMAT.to_string(), serde_json::to_string(meta)?],
            )?;
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
        // Studies written before latency targets lack the column: add it
        // (an empty column changes nothing), or, read-only, read NULLs.
        let has_latency = conn
            .prepare("SELECT latency_ms FROM trials LIMIT 0")
            .is_ok();
        if !has_latency && !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            conn.execute_batch("ALTER TABLE trials ADD COLUMN latency_ms REAL")
                .with_context(|| format!("updating study {}", path.display()))?;
        }
        Ok(SqliteStudy {
            conn,
            meta,
            path: path.to_path_buf(),
            latency_column: has_latency || !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY),
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
        })
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
        })
    }
}

/// SQLite stores NaN as NULL; keep only finite numbers.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

impl StudyStore for SqliteStudy {
    fn meta(&self) -> &StudyMeta {
        &self.meta
    }

    fn trials(&self) -> Result<Vec<TrialRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT number, status, params, seed, accuracy, loss, macs, params_total, \
                 nonzero_params, bytes, target_ratio, reward, error, timings, learner_sha256, \
                 optimizer_sha256, {} FROM trials ORDER BY number",
            if self.latency_column {
                "latency_ms"
            } else {
                "NULL"
            }
        ))?;
        let rows = stmt.query_map([], Self::row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.decode()?);
        }
        Ok(out)
    }

    fn record(&mut self, t: &TrialRecord) -> Result<()> {
        let f = t.footprint.as_ref();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO trials (number, status, params, seed, accuracy, loss, macs, \
             params_total, nonzero_params, bytes, target_ratio, reward, error, timings, \
             learner_sha256, optimizer_sha256, latency_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                t.number,
                t.status.name(),
                serde_json::to_string(&t.params)?,
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
                serde_json::to_string(&t.timings)?,
                t.learner_sha256,
                t.optimizer_sha256,
                finite(t.latency_ms),
            ],
        )
        .with_context(|| format!("recording trial {} in {}", t.number, self.path.display()))?;
        tx.commit()?;
        Ok(())
    }

    fn update_meta(&mut self, meta: &StudyMeta) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'study'",
            [serde_json::to_string(meta)?],
        )?;
        tx.commit()?;
        self.meta = meta.clone();
        Ok(())
    }

    fn set_final(&mut self, result: &FinalRecord) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('final', ?1)",
            [serde_json::to_string(result)?],
        )?;
        tx.commit()?;
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
