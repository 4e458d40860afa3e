//! Studies in a PostgreSQL database, shared by many machines: `--study
//! postgres://USER@HOST/DB?study=NAME`.
//!
//! One database holds any number of studies, each a row of `studies` (a
//! unique name, its settings as JSON, its final result, when it was
//! created); trials are keyed by (study, number), so studies never see each
//! other's trials. The tables are those of a SQLite study otherwise, and
//! the same guarantees hold: every trial is committed in a transaction of
//! its own, a new or copied study appears whole or not at all.
//!
//! The tables are versioned: `schema_version` lists the numbered
//! [`MIGRATIONS`] applied, and a writer applies the missing ones in one
//! transaction under an advisory lock (`pg_advisory_xact_lock`), so that
//! workers starting at once migrate exactly once. Readers (`pf report`)
//! change nothing and refuse a database without pf's tables.
//!
//! The URL is libpq's, read by the `postgres` crate, with pf's own `study=`
//! query parameter taken out first; a Unix socket is `host=/folder` in the
//! query or a percent-encoded folder as the host. Without a password in the
//! URL, `PGPASSWORD` or the password file gives it ([`super::pgpass`]).
//! Errors name the URL with its password removed.

pub use super::location::PgLocation;
use super::{StudyStore, STUDY_FORMAT};
use crate::model::Footprint;
use crate::search::record::{FinalRecord, StudyMeta, TrialRecord, TrialStatus};
use anyhow::{anyhow, bail, Context, Result};
use postgres::{Client, GenericClient};
use std::cell::RefCell;

/// The key of the advisory lock under which migrations run (`pf_study` in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x7066_5f73_7475_6479;

/// The migrations, in order: migration `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[&str] = &[
    // 1: studies, each under its name, and their finished trials.
    "CREATE TABLE studies (
        id      BIGSERIAL PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        meta    JSONB NOT NULL,
        final   JSONB,
        created TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE trials (
        study            BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
        number           INTEGER NOT NULL CHECK (number >= 0),
        status           TEXT NOT NULL CHECK (status IN ('complete', 'failed')),
        params           JSONB NOT NULL,
        seed             BIGINT NOT NULL,
        accuracy         DOUBLE PRECISION,
        loss             DOUBLE PRECISION,
        macs             BIGINT,
        params_total     BIGINT,
        nonzero_params   BIGINT,
        bytes            BIGINT,
        target_ratio     DOUBLE PRECISION,
        latency_ms       DOUBLE PRECISION,
        reward           DOUBLE PRECISION,
        error            TEXT,
        timings          JSONB NOT NULL,
        learner_sha256   TEXT NOT NULL,
        optimizer_sha256 TEXT NOT NULL,
        worker_host      TEXT,
        worker_pid       INTEGER,
        PRIMARY KEY (study, number)
    );",
    // 2: shared studies: what workers rebuild the search from (the job,
    // the baseline's bytes and digest), and trials that are running (with
    // their heartbeat) or were lost with their worker.
    "ALTER TABLE studies ADD COLUMN job JSONB;
    ALTER TABLE studies ADD COLUMN model BYTEA;
    ALTER TABLE studies ADD COLUMN model_sha256 TEXT;
    ALTER TABLE trials DROP CONSTRAINT trials_status_check;
    ALTER TABLE trials ADD CONSTRAINT trials_status_check
        CHECK (status IN ('complete', 'failed', 'running'));
    ALTER TABLE trials ADD COLUMN lost BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE trials ADD COLUMN started TIMESTAMPTZ;
    ALTER TABLE trials ADD COLUMN heartbeat TIMESTAMPTZ;",
];

/// A failed statement on a study, with the URL and what pf was doing.
pub(super) fn db_error(shown: &str, doing: &str, e: postgres::Error) -> anyhow::Error {
    let cause = match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None if e.is_closed() => "the connection to the database was lost".to_string(),
        None => e.to_string(),
    };
    anyhow!(
        "study {shown}: failed while {doing}: {cause}. Every trial committed before this is kept"
    )
}

/// Applies the migrations this database lacks, in one transaction under the
/// migration lock; returns the version it is at.
pub(super) fn migrate(client: &mut Client, shown: &str) -> Result<usize> {
    let fail = |e| db_error(shown, "creating or updating pf's tables", e);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(fail)?;
    let version = schema_version(&mut tx).map_err(fail)?;
    too_new(version, shown)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql).map_err(fail)?;
        let v = i as i32 + 1;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    Ok(MIGRATIONS.len())
}

/// The highest migration applied (0 for none).
fn schema_version(client: &mut impl GenericClient) -> Result<usize, postgres::Error> {
    let v: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    Ok(v.unwrap_or(0).max(0) as usize)
}

/// Refuses tables written by a newer pf.
fn too_new(version: usize, shown: &str) -> Result<()> {
    if version > MIGRATIONS.len() {
        bail!(
            "study {shown}: the database's pf tables are at version {version}, newer than this \
             pf knows ({}); use a newer pf",
            MIGRATIONS.len()
        );
    }
    Ok(())
}

/// Checks, changing nothing, that the database has pf's tables at this
/// pf's version.
fn check_schema(client: &mut Client, at: &PgLocation) -> Result<()> {
    let fail = |e| db_error(&at.shown, "reading pf's tables", e);
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('schema_version')::text", &[])
        .map_err(fail)?
        .get(0);
    if exists.is_none() {
        bail!(
            "study {}: database `{}` has no pf studies (pf's tables are not there): check the \
             database in the URL, or put a study there with `pf study copy STUDY URL`",
            at.shown,
            at.database()
        );
    }
    let version = schema_version(client).map_err(fail)?;
    too_new(version, &at.shown)?;
    if version < MIGRATIONS.len() {
        bail!(
            "study {}: the database's pf tables are at version {version}, older than this pf's \
             ({}); open the study once to write (`pf compress --resume`) to update them",
            at.shown,
            MIGRATIONS.len()
        );
    }
    Ok(())
}

/// A study in a PostgreSQL database.
pub struct PgStudy {
    /// The connection (statements need it mutably; the store is used from
    /// one thread).
    pub(super) client: RefCell<Client>,
    /// The study's row in `studies`.
    pub(super) id: i64,
    meta: StudyMeta,
    /// The URL without its password.
    pub(super) shown: String,
}

/// The columns of a trial, in the order [`read_trial`] reads them.
pub(super) const TRIAL_COLUMNS: &str = "number, status, params::text, seed, accuracy, loss, macs, \
     params_total, nonzero_params, bytes, target_ratio, latency_ms, reward, error, \
     timings::text, learner_sha256, optimizer_sha256, worker_host, worker_pid";

impl PgStudy {
    /// Opens an existing study: to write (`write`; pf's tables are brought
    /// up to date first), or to read (nothing is changed, and a database
    /// without pf's tables is refused).
    pub fn open(at: &PgLocation, write: bool) -> Result<PgStudy> {
        let mut client = at.connect()?;
        match write {
            true => migrate(&mut client, &at.shown).map(drop)?,
            false => check_schema(&mut client, at)?,
        }
        let row = client
            .query_opt(
                "SELECT id, meta::text FROM studies WHERE name = $1",
                &[&at.study],
            )
            .map_err(|e| db_error(&at.shown, "looking the study up", e))?;
        let Some(row) = row else {
            return Err(no_such_study(&mut client, at));
        };
        let meta_json: String = row.get(1);
        let meta: StudyMeta = serde_json::from_str(&meta_json).with_context(|| {
            format!("study {}: its settings cannot be read (damaged?)", at.shown)
        })?;
        if meta.format != STUDY_FORMAT {
            bail!(
                "study {} has format {}; this pf reads format {STUDY_FORMAT}",
                at.shown,
                meta.format
            );
        }
        Ok(PgStudy {
            client: RefCell::new(client),
            id: row.get(0),
            meta,
            shown: at.shown.clone(),
        })
    }

    /// Creates the study (pf's tables first, when the database has none)
    /// holding `trials` and the final result `last`, in one transaction;
    /// refused when a study of that name exists in the database.
    pub fn create_filled(
        at: &PgLocation,
        meta: &StudyMeta,
        trials: &[TrialRecord],
        last: Option<&FinalRecord>,
    ) -> Result<PgStudy> {
        Self::create_with(at, meta, trials, last, None)
    }

    /// [`PgStudy::create_filled`], storing also what workers rebuild the
    /// search from (`shared`), in the same transaction.
    pub(super) fn create_with(
        at: &PgLocation,
        meta: &StudyMeta,
        trials: &[TrialRecord],
        last: Option<&FinalRecord>,
        shared: Option<&super::shared::SharedParts>,
    ) -> Result<PgStudy> {
        let mut client = at.connect()?;
        migrate(&mut client, &at.shown)?;
        let fail = |e| db_error(&at.shown, "creating it", e);
        let mut tx = client.transaction().map_err(fail)?;
        let last = last.map(serde_json::to_string).transpose()?;
        let row = tx
            .query_opt(
                "INSERT INTO studies (name, meta, final) VALUES ($1, ($2::text)::jsonb, \
                 ($3::text)::jsonb) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&at.study, &serde_json::to_string(meta)?, &last],
            )
            .map_err(fail)?;
        let Some(row) = row else {
            bail!(
                "study {} already exists (database `{}` has a study named `{}`): continue it \
                 with --resume, or choose another `study=` name",
                at.shown,
                at.database(),
                crate::plugin::bounds::printable(&at.study, super::location::MAX_STUDY_NAME)
            );
        };
        let id: i64 = row.get(0);
        if let Some(shared) = shared {
            tx.execute(
                "UPDATE studies SET job = ($2::text)::jsonb, model = $3, model_sha256 = $4 \
                 WHERE id = $1",
                &[&id, &shared.job, &shared.model, &shared.model_sha256],
            )
            .map_err(fail)?;
        }
        for t in trials {
            insert_trial(&mut tx, id, t)
                .map_err(|e| db_error(&at.shown, &format!("copying trial {}", t.number), e))?;
        }
        tx.commit().map_err(fail)?;
        Ok(PgStudy {
            client: RefCell::new(client),
            id,
            meta: meta.clone(),
            shown: at.shown.clone(),
        })
    }

    fn fail(&self, doing: &str) -> impl Fn(postgres::Error) -> anyhow::Error + '_ {
        let doing = doing.to_string();
        move |e| db_error(&self.shown, &doing, e)
    }
}

/// The error for a study name the database does not hold, listing (some of)
/// the names it does.
fn no_such_study(client: &mut Client, at: &PgLocation) -> anyhow::Error {
    let names: Vec<String> = client
        .query("SELECT name FROM studies ORDER BY name LIMIT 11", &[])
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .unwrap_or_default();
    let mut listed: Vec<String> = names
        .iter()
        .take(10)
        .map(|n| crate::plugin::bounds::printable(n, 60))
        .collect();
    if names.len() > 10 {
        listed.push("…".into());
    }
    let has = match listed.is_empty() {
        true => "it holds no study yet".to_string(),
        false => format!("it holds: {}", listed.join(", ")),
    };
    anyhow!(
        "study {}: database `{}` has no study named `{}` ({has}); check `study=` in the URL",
        at.shown,
        at.database(),
        crate::plugin::bounds::printable(&at.study, super::location::MAX_STUDY_NAME)
    )
}

/// Inserts one trial row of study `id`.
pub(super) fn insert_trial(
    client: &mut impl GenericClient,
    id: i64,
    t: &TrialRecord,
) -> Result<u64, postgres::Error> {
    let f = t.footprint.as_ref();
    let big = |x: u64| x as i64;
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite());
    let json = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "null".into());
    client.execute(
        "INSERT INTO trials (study, number, status, params, seed, accuracy, loss, macs, \
         params_total, nonzero_params, bytes, target_ratio, latency_ms, reward, error, timings, \
         learner_sha256, optimizer_sha256, worker_host, worker_pid) VALUES ($1, $2, $3, \
         ($4::text)::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, ($16::text)::jsonb, \
         $17, $18, $19, $20)",
        &[
            &id,
            &(t.number as i32),
            &t.status.name(),
            &json(serde_json::to_string(&t.params)),
            &big(t.seed),
            &finite(t.accuracy),
            &finite(t.loss),
            &f.map(|f| big(f.macs)),
            &f.map(|f| big(f.params)),
            &f.map(|f| big(f.nonzero_params)),
            &f.map(|f| big(f.bytes)),
            &finite(t.target_ratio),
            &finite(t.latency_ms),
            &finite(t.reward),
            &t.error,
            &json(serde_json::to_string(&t.timings)),
            &t.learner_sha256,
            &t.optimizer_sha256,
            &t.worker_host,
            &t.worker_pid.map(|p| p as i32),
        ],
    )
}

/// A trial from a row of [`TRIAL_COLUMNS`].
pub(super) fn read_trial(r: &postgres::Row) -> Result<TrialRecord> {
    let number = r.get::<_, i32>(0) as u32;
    let status = match r.get::<_, &str>(1) {
        "complete" => TrialStatus::Complete,
        "failed" => TrialStatus::Failed,
        s => bail!("trial {number} has unknown status `{s}`"),
    };
    let footprint = match [6, 7, 8, 9].map(|i| r.get::<_, Option<i64>>(i)) {
        [Some(m), Some(p), Some(nz), Some(b)] => Some(Footprint {
            macs: m as u64,
            params: p as u64,
            nonzero_params: nz as u64,
            bytes: b as u64,
        }),
        _ => None,
    };
    Ok(TrialRecord {
        number,
        status,
        params: serde_json::from_str(r.get(2))
            .with_context(|| format!("trial {number}: parameters"))?,
        seed: r.get::<_, i64>(3) as u64,
        accuracy: r.get(4),
        loss: r.get(5),
        footprint,
        target_ratio: r.get(10),
        latency_ms: r.get(11),
        reward: r.get(12),
        error: r.get(13),
        timings: serde_json::from_str(r.get(14))
            .with_context(|| format!("trial {number}: timings"))?,
        learner_sha256: r.get(15),
        optimizer_sha256: r.get(16),
        worker_host: r.get(17),
        worker_pid: r.get::<_, Option<i32>>(18).map(|p| p as u32),
    })
}

impl StudyStore for PgStudy {
    fn meta(&self) -> &StudyMeta {
        &self.meta
    }

    fn location(&self) -> String {
        self.shown.clone()
    }

    fn trials(&self) -> Result<Vec<TrialRecord>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study = $1 AND status <> 'running' \
                     ORDER BY number"
                ),
                &[&self.id],
            )
            .map_err(self.fail("reading its trials"))?;
        rows.iter().map(read_trial).collect()
    }

    fn record(&mut self, t: &TrialRecord) -> Result<()> {
        let fail = self.fail(&format!("recording trial {}", t.number));
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(&fail)?;
        insert_trial(&mut tx, self.id, t).map_err(&fail)?;
        tx.commit().map_err(&fail)
    }

    fn update_meta(&mut self, meta: &StudyMeta) -> Result<()> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE studies SET meta = ($2::text)::jsonb WHERE id = $1",
                &[&self.id, &serde_json::to_string(meta)?],
            )
            .map_err(self.fail("updating its settings"))?;
        self.meta = meta.clone();
        Ok(())
    }

    fn final_result(&self) -> Result<Option<FinalRecord>> {
        let json: Option<String> = self
            .client
            .borrow_mut()
            .query_one("SELECT final::text FROM studies WHERE id = $1", &[&self.id])
            .map_err(self.fail("reading its result"))?
            .get(0);
        json.map(|s| serde_json::from_str(&s).context("the study's final result"))
            .transpose()
    }

    fn set_final(&mut self, result: &FinalRecord) -> Result<()> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE studies SET final = ($2::text)::jsonb WHERE id = $1",
                &[&self.id, &serde_json::to_string(result)?],
            )
            .map_err(self.fail("storing its result"))?;
        Ok(())
    }
}
