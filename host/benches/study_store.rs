//! The database's cost per trial: the store calls a search makes for each
//! trial, timed against SQLite and PostgreSQL, with trivial trials (no
//! training), so that only the store is measured.
//!
//! - `sqlite record`: `SqliteStudy::record` (one transaction per trial), what
//!   `pf compress` does per trial;
//! - `postgres record`: the same on `PgStudy`;
//! - `postgres claim+commit`: what `pf worker` does per trial: the claim
//!   (row lock, lost-trial sweep, counts, history read, insert of the
//!   running row) and the commit of the result; the optimizer replay is
//!   left out (no plugin), so this is the database's share alone.
//!
//! ```text
//! cargo bench -p pf --bench study_store -- TEMPLATE.db POSTGRES_URL [TRIALS]
//! ```
//!
//! `TEMPLATE.db` is any SQLite study (its settings and first trial are the
//! template); `POSTGRES_URL` a database URL without `study=` (a study of a
//! unique name is made in it). `scripts/bench-distributed.sh` runs it.

use anyhow::{bail, Context, Result};
use pf::search::study::{self, Claim, PgStudy, RunningTrial, StudyLocation};
use pf::search::{SqliteStudy, StudyStore, TrialRecord};
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(template), Some(url)) = (args.first(), args.get(1)) else {
        bail!("usage: study_store TEMPLATE.db POSTGRES_URL [TRIALS]");
    };
    let n: u32 = args.get(2).map_or(Ok(300), |s| s.parse())?;
    let source = SqliteStudy::open_read_only(std::path::Path::new(template))?;
    let mut meta = source.meta().clone();
    meta.trials = n;
    let first = source
        .trials()?
        .into_iter()
        .next()
        .context("the template study has no trial")?;
    let trial = |number: u32| TrialRecord {
        number,
        ..first.clone()
    };
    let dir = tempfile::tempdir()?;
    let unique = format!(
        "bench-{}-{}",
        std::process::id(),
        pf::search::trial_seed(0, n)
    );

    let mut sqlite = SqliteStudy::create(&dir.path().join("bench.db"), &meta)?;
    let sqlite_ms = time_each(n, |i| sqlite.record(&trial(i)))?;

    let sep = if url.contains('?') { '&' } else { '?' };
    let at = StudyLocation::parse(&format!("{url}{sep}study={unique}-record"))?;
    let mut pg = study::create(&at, &meta)?;
    let pg_ms = time_each(n, |i| pg.record(&trial(i)))?;

    let at = StudyLocation::parse(&format!("{url}{sep}study={unique}-claim"))?;
    let StudyLocation::Postgres(loc) = &at else {
        bail!("{url} is not a postgres:// URL");
    };
    study::create(&at, &meta)?;
    let mut shared = PgStudy::open(loc, true)?;
    let worker = ("bench".to_string(), std::process::id());
    let running = RunningTrial {
        learner_sha256: first.learner_sha256.clone(),
        optimizer_sha256: first.optimizer_sha256.clone(),
        seed: meta.seed,
    };
    let claim_ms = time_each(n, |i| {
        let claim = shared.claim(60.0, n, &worker, &running, |_, _| {
            Ok(((), first.params.clone()))
        })?;
        match claim {
            Claim::Trial { number, .. } if number == i => {}
            other => bail!("trial {i}: unexpected claim {other:?}"),
        }
        if !shared.finish_trial(&trial(i))? {
            bail!("trial {i} was lost");
        }
        Ok(())
    })?;

    println!("trials per store: {n}");
    for (what, ms) in [
        ("sqlite record", sqlite_ms),
        ("postgres record", pg_ms),
        ("postgres claim+commit", claim_ms),
    ] {
        println!(
            "{what:<24} mean {:.3} ms  median {:.3} ms  p95 {:.3} ms  (first 10 {:.3}, last 10 {:.3})",
            mean(&ms),
            quantile(&ms, 0.5),
            quantile(&ms, 0.95),
            mean(&ms[..10.min(ms.len())]),
            mean(&ms[ms.len().saturating_sub(10)..])
        );
    }
    Ok(())
}

/// Milliseconds of each of `n` calls of `f(0..n)`.
fn time_each(n: u32, mut f: impl FnMut(u32) -> Result<()>) -> Result<Vec<f64>> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

fn quantile(x: &[f64], q: f64) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}
