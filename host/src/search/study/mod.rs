//! Study storage. A study holds its settings, one record per finished
//! trial (each committed in its own transaction, so a `kill -9` loses at
//! most the trials that were running) and the final result.
//!
//! Two stores implement [`StudyStore`]:
//! - [`SqliteStudy`]: one SQLite file, the embedded default (`--study
//!   runs/a.db`);
//! - [`PgStudy`]: a study in a PostgreSQL database shared by many machines
//!   (`--study postgres://USER@HOST/DB?study=NAME`), where any number of
//!   studies live side by side, each under its own name.
//!
//! [`StudyLocation`] is what a `--study` argument names; [`open_read`],
//! [`open_write`] and [`create`] open either store, and [`copy`] moves a
//! whole study from one to the other (`pf study copy`).

mod location;
mod pgpass;
mod postgres;
mod shared;
mod sqlite;

pub use postgres::{PgLocation, PgStudy};
pub use shared::{require_parts, Claim, Heartbeat, Past, Progress, RunningTrial, SharedParts};
pub use sqlite::{record_interruption, SqliteStudy};

use super::record::{FinalRecord, StudyMeta, TrialRecord};
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Version of the study format this build writes and reads (the settings'
/// `format`; each store versions its own tables besides).
pub const STUDY_FORMAT: u32 = 1;

/// Where a search keeps its study.
pub trait StudyStore {
    /// The study's settings.
    fn meta(&self) -> &StudyMeta;
    /// Where the study is, as error messages and `pf` print it (a path, or
    /// a URL without its password).
    fn location(&self) -> String;
    /// Every finished trial, by number.
    fn trials(&self) -> Result<Vec<TrialRecord>>;
    /// Adds a finished trial, durably, in one transaction.
    fn record(&mut self, trial: &TrialRecord) -> Result<()>;
    /// Replaces the settings (when a resumed study is extended).
    fn update_meta(&mut self, meta: &StudyMeta) -> Result<()>;
    /// The final result, once there is one.
    fn final_result(&self) -> Result<Option<FinalRecord>>;
    /// Stores the final result (replacing an earlier one).
    fn set_final(&mut self, result: &FinalRecord) -> Result<()>;
}

/// What a `--study` argument names: a SQLite file, or a study in a
/// PostgreSQL database.
#[derive(Debug, Clone)]
pub enum StudyLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A named study in a PostgreSQL database.
    Postgres(Box<PgLocation>),
}

impl StudyLocation {
    /// Reads a `--study` argument: a `postgres://` or `postgresql://` URL
    /// with a `study=NAME` query parameter, or else a path. A malformed URL
    /// is an error that names it (without its password) and says what a
    /// good one looks like.
    pub fn parse(arg: &str) -> Result<StudyLocation> {
        if arg.trim().is_empty() {
            bail!("--study is empty: give a file name (runs/a.db) or a postgres:// URL");
        }
        match PgLocation::parse(arg)? {
            Some(pg) => Ok(StudyLocation::Postgres(Box::new(pg))),
            None => Ok(StudyLocation::Sqlite(PathBuf::from(arg))),
        }
    }

    /// What a study's outputs are named after by default: the SQLite file
    /// itself, or a PostgreSQL study's name in the current folder (its
    /// characters other than letters, digits, `-` and `_` made `_`), with
    /// an extension to be replaced.
    pub fn output_base(&self) -> PathBuf {
        match self {
            StudyLocation::Sqlite(p) => p.clone(),
            StudyLocation::Postgres(pg) => {
                let name: String = pg
                    .study()
                    .chars()
                    .map(|c| match c {
                        'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
                        _ => '_',
                    })
                    .collect();
                PathBuf::from(format!("{name}.db"))
            }
        }
    }

    /// The location as pf prints it (a URL without its password).
    pub fn display(&self) -> String {
        match self {
            StudyLocation::Sqlite(p) => p.display().to_string(),
            StudyLocation::Postgres(pg) => pg.display(),
        }
    }
}

impl std::fmt::Display for StudyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&StudyLocation::display(self))
    }
}

/// Opens an existing study to read it (`pf report`): writes nothing, takes
/// no lock, and refuses a database without pf's tables.
pub fn open_read(at: &StudyLocation) -> Result<Box<dyn StudyStore>> {
    Ok(match at {
        StudyLocation::Sqlite(p) => Box::new(SqliteStudy::open_read_only(p)?),
        StudyLocation::Postgres(pg) => Box::new(PgStudy::open(pg, false)?),
    })
}

/// Opens an existing study to continue it (older tables are brought up to
/// date first).
pub fn open_write(at: &StudyLocation) -> Result<Box<dyn StudyStore>> {
    Ok(match at {
        StudyLocation::Sqlite(p) => Box::new(SqliteStudy::open(p)?),
        StudyLocation::Postgres(pg) => Box::new(PgStudy::open(pg, true)?),
    })
}

/// Creates a new study, which must not exist yet.
pub fn create(at: &StudyLocation, meta: &StudyMeta) -> Result<Box<dyn StudyStore>> {
    create_filled(at, meta, &[], None)
}

/// Creates a new study holding `trials` and the final result `last`, all
/// or nothing; refused when the study exists.
fn create_filled(
    at: &StudyLocation,
    meta: &StudyMeta,
    trials: &[TrialRecord],
    last: Option<&FinalRecord>,
) -> Result<Box<dyn StudyStore>> {
    Ok(match at {
        StudyLocation::Sqlite(p) => Box::new(SqliteStudy::create_filled(p, meta, trials, last)?),
        StudyLocation::Postgres(pg) => Box::new(PgStudy::create_filled(pg, meta, trials, last)?),
    })
}

/// What [`copy`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Finished trials.
    pub trials: usize,
    /// Whether the study had a final result.
    pub final_result: bool,
}

/// Copies the study at `from` (settings, every finished trial and the final
/// result) into a new study at `to`, in one transaction: `to` holds all of
/// it or nothing. Refused when `to` exists. Either side may be a SQLite
/// file or a PostgreSQL study, so an older pf's SQLite study can be moved
/// into a shared database (its tables are brought up to date on the way).
pub fn copy(from: &StudyLocation, to: &StudyLocation) -> Result<Copied> {
    if let (StudyLocation::Sqlite(a), StudyLocation::Sqlite(b)) = (from, to) {
        if a == b {
            bail!(
                "pf study copy: {} is both the source and the destination",
                a.display()
            );
        }
    }
    let source = open_read(from)?;
    let trials = source.trials()?;
    let last = source.final_result()?;
    create_filled(to, source.meta(), &trials, last.as_ref())?;
    Ok(Copied {
        trials: trials.len(),
        final_result: last.is_some(),
    })
}
