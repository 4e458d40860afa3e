//! The shared-study half of the PostgreSQL store: what `pf worker` needs
//! to claim trials, keep them alive and commit them.
//!
//! A claim is one transaction holding the study's row lock (`SELECT … FOR
//! UPDATE` on `studies`), so workers claim one at a time: it first fails
//! the running trials whose heartbeat is older than the timeout (reason
//! "worker lost (host H, pid P, last heartbeat T)"; they are marked `lost`
//! and do not count against the budget), then, when the finished trials
//! that count plus the running ones are fewer than the budget, hands the
//! study's history to the caller (who replays it into a fresh optimizer
//! and suggests) and stores the next trial number as `running`, with the
//! worker's host and pid, its start and a first heartbeat. Times are the
//! server's (`now()`), so the workers' clocks do not matter.

use super::postgres::{db_error, insert_trial, read_trial, PgLocation, PgStudy, TRIAL_COLUMNS};
use super::StudyStore;
use crate::search::record::{ParamRecord, Timings, TrialRecord, TrialStatus};
use anyhow::{bail, Result};
use postgres::Client;

/// What a shared study stores besides its settings so that a worker on any
/// machine rebuilds its search: the job (JSON), and the baseline model's
/// `.pf` bytes with their SHA-256.
pub struct SharedParts {
    /// The job, as JSON.
    pub job: String,
    /// The baseline model file's bytes.
    pub model: Vec<u8>,
    /// Their SHA-256, hex.
    pub model_sha256: String,
}

/// A trial of the study's history, as a claim sees it.
#[derive(Debug, Clone)]
pub enum Past {
    /// Finished (complete or failed), and counted.
    Finished(Box<TrialRecord>),
    /// Running on a live worker: suggested, not yet observed.
    Running(u32),
    /// Its worker was lost: failed, and not counted.
    Lost(u32),
}

impl Past {
    /// The trial's number.
    pub fn number(&self) -> u32 {
        match self {
            Past::Finished(t) => t.number,
            Past::Running(n) | Past::Lost(n) => *n,
        }
    }
}

/// What a claim got.
#[derive(Debug)]
pub enum Claim<T> {
    /// Trial `number`, now running here, with what the caller made of the
    /// history.
    Trial {
        /// The trial's number.
        number: u32,
        /// The caller's suggestion.
        suggestion: T,
    },
    /// Every trial of the budget is claimed but some still run: wait, one
    /// of them may be lost and its budget come back.
    Wait,
    /// The budget is used up: the study is finished.
    Done,
}

/// How far a shared study is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Finished trials that count against the budget.
    pub counted: u32,
    /// Trials running now.
    pub running: u32,
    /// Trials failed because their worker was lost.
    pub lost: u32,
}

impl PgStudy {
    /// Creates a shared study: its settings, its job and its baseline, in
    /// one transaction; refused when the name is taken.
    pub fn create_shared(
        at: &PgLocation,
        meta: &crate::search::StudyMeta,
        parts: &SharedParts,
    ) -> Result<PgStudy> {
        Self::create_with(at, meta, &[], None, Some(parts))
    }

    /// Whether the database holds the study (pf's tables are created or
    /// brought up to date first).
    pub fn exists(at: &PgLocation) -> Result<bool> {
        let mut client = at.connect()?;
        super::postgres::migrate(&mut client, &at.display())?;
        let row = client
            .query_opt("SELECT 1 FROM studies WHERE name = $1", &[&at.study()])
            .map_err(|e| db_error(&at.display(), "looking the study up", e))?;
        Ok(row.is_some())
    }

    /// The job and baseline a worker rebuilds the search from; `None` for a
    /// study that was copied rather than created by `pf compress --study`.
    pub fn shared_parts(&self) -> Result<Option<SharedParts>> {
        let row = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT job::text, model, model_sha256 FROM studies WHERE id = $1",
                &[&self.id],
            )
            .map_err(|e| db_error(&self.shown, "reading its job", e))?;
        Ok(match (row.get(0), row.get(1), row.get(2)) {
            (Some(job), Some(model), Some(model_sha256)) => Some(SharedParts {
                job,
                model,
                model_sha256,
            }),
            _ => None,
        })
    }

    /// How far the study is.
    pub fn progress(&self) -> Result<Progress> {
        let mut client = self.client.borrow_mut();
        progress(&mut *client, self.id).map_err(|e| db_error(&self.shown, "counting trials", e))
    }

    /// Claims the next trial, as the module documentation describes, for
    /// the worker `(host, pid)`: trials silent for `timeout_seconds` are
    /// failed as lost first; `suggest` gets the history (in number order)
    /// and the new number, and returns the suggestion and the parameters to
    /// store with the running trial. `budget` is the study's trial count.
    pub fn claim<T>(
        &mut self,
        timeout_seconds: f64,
        budget: u32,
        worker: &(String, u32),
        running: &RunningTrial,
        suggest: impl FnOnce(&[Past], u32) -> Result<(T, Vec<ParamRecord>)>,
    ) -> Result<Claim<T>> {
        let shown = self.shown.clone();
        let fail = |e| db_error(&shown, "claiming a trial", e);
        let id = self.id;
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(fail)?;
        tx.query_one("SELECT id FROM studies WHERE id = $1 FOR UPDATE", &[&id])
            .map_err(fail)?;
        tx.execute(
            "UPDATE trials SET status = 'failed', lost = true, heartbeat = NULL, \
             error = format('worker lost (host %s, pid %s, last heartbeat %s)', \
                 coalesce(worker_host, '?'), coalesce(worker_pid::text, '?'), \
                 to_char(heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) \
             WHERE study = $1 AND status = 'running' \
             AND heartbeat < now() - make_interval(secs => $2)",
            &[&id, &timeout_seconds],
        )
        .map_err(fail)?;
        let p = progress(&mut tx, id).map_err(fail)?;
        if p.counted >= budget {
            tx.commit().map_err(fail)?;
            return Ok(Claim::Done);
        }
        if p.counted + p.running >= budget {
            tx.commit().map_err(fail)?;
            return Ok(Claim::Wait);
        }
        let rows = tx
            .query(
                &format!(
                    "SELECT {TRIAL_COLUMNS}, lost FROM trials WHERE study = $1 ORDER BY number"
                ),
                &[&id],
            )
            .map_err(fail)?;
        let mut past = Vec::with_capacity(rows.len());
        for r in &rows {
            let number = r.get::<_, i32>(0) as u32;
            past.push(match (r.get::<_, &str>(1), r.get::<_, bool>(19)) {
                ("running", _) => Past::Running(number),
                (_, true) => Past::Lost(number),
                _ => Past::Finished(Box::new(read_trial(r)?)),
            });
        }
        let number = past.last().map_or(0, |p| p.number() + 1);
        let (suggestion, params) = suggest(&past, number)?;
        let record = TrialRecord {
            number,
            status: TrialStatus::Failed,
            params,
            seed: running.seed_of(number),
            accuracy: None,
            loss: None,
            footprint: None,
            target_ratio: None,
            latency_ms: None,
            reward: None,
            error: None,
            timings: Timings::default(),
            learner_sha256: running.learner_sha256.clone(),
            optimizer_sha256: running.optimizer_sha256.clone(),
            worker_host: Some(worker.0.clone()),
            worker_pid: Some(worker.1),
        };
        insert_trial(&mut tx, id, &record).map_err(fail)?;
        tx.execute(
            "UPDATE trials SET status = 'running', started = now(), heartbeat = now() \
             WHERE study = $1 AND number = $2",
            &[&id, &(number as i32)],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(Claim::Trial { number, suggestion })
    }

    /// Commits a finished trial that this worker claimed, in one
    /// transaction. Returns false, storing nothing, when the trial is no
    /// longer running here (it was failed as lost meanwhile: its worker
    /// missed heartbeats).
    pub fn finish_trial(&mut self, t: &TrialRecord) -> Result<bool> {
        let shown = self.shown.clone();
        let fail = |e| db_error(&shown, &format!("recording trial {}", t.number), e);
        let id = self.id;
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(fail)?;
        let gone = tx
            .query_opt(
                "DELETE FROM trials WHERE study = $1 AND number = $2 AND status = 'running' \
                 RETURNING started",
                &[&id, &(t.number as i32)],
            )
            .map_err(fail)?;
        let Some(gone) = gone else {
            return Ok(false);
        };
        insert_trial(&mut tx, id, t).map_err(fail)?;
        // The row keeps when the trial started.
        tx.execute(
            "UPDATE trials SET started = $3 WHERE study = $1 AND number = $2",
            &[
                &id,
                &(t.number as i32),
                &gone.get::<_, Option<std::time::SystemTime>>(0),
            ],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(true)
    }
}

/// What every claimed trial row records of the search: digests and seeds.
pub struct RunningTrial {
    /// SHA-256 of the learner.
    pub learner_sha256: String,
    /// SHA-256 of the optimizer.
    pub optimizer_sha256: String,
    /// The study's seed.
    pub seed: u64,
}

impl RunningTrial {
    fn seed_of(&self, number: u32) -> u64 {
        crate::search::trial_seed(self.seed, number)
    }
}

/// Counts the study's trials.
fn progress(
    client: &mut impl postgres::GenericClient,
    id: i64,
) -> Result<Progress, postgres::Error> {
    let row = client.query_one(
        "SELECT count(*) FILTER (WHERE status <> 'running' AND NOT lost), \
                count(*) FILTER (WHERE status = 'running'), \
                count(*) FILTER (WHERE lost) \
         FROM trials WHERE study = $1",
        &[&id],
    )?;
    Ok(Progress {
        counted: row.get::<_, i64>(0) as u32,
        running: row.get::<_, i64>(1) as u32,
        lost: row.get::<_, i64>(2) as u32,
    })
}

/// Beats the heartbeat of one running trial from a thread of its own, on a
/// connection of its own, until dropped.
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating every `every` for trial `number` of `study`.
    pub fn start(
        at: &PgLocation,
        study: &PgStudy,
        number: u32,
        every: std::time::Duration,
    ) -> Result<Heartbeat> {
        let mut client: Client = at.connect()?;
        let id = study.id;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("pf-heartbeat-{number}"))
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        // A missed beat is not fatal: the next may pass.
                        let _ = client.execute(
                            "UPDATE trials SET heartbeat = now() \
                             WHERE study = $1 AND number = $2 AND status = 'running'",
                            &[&id, &(number as i32)],
                        );
                    }
                    _ => return,
                }
            })?;
        Ok(Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Refuses a study that has no job for workers.
pub fn require_parts(study: &PgStudy) -> Result<SharedParts> {
    match study.shared_parts()? {
        Some(p) => Ok(p),
        None => bail!(
            "study {} has no job for workers: it was copied (`pf study copy`), not created by \
             `pf compress --study URL`; workers can only join a study pf compress created",
            study.location()
        ),
    }
}
