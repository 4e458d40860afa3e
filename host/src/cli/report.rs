//! `pf report`: a study as a self-contained HTML page or SVG plots.

use anyhow::Result;
use clap::Args;
use pf::search::study::{self, StudyLocation};
use std::path::PathBuf;

/// Arguments of `pf report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The study: a SQLite file written by `pf compress`, or a study in
    /// PostgreSQL, postgres://USER@HOST/DB?study=NAME (password from the
    /// URL, PGPASSWORD or ~/.pgpass). Read only: nothing is changed.
    #[arg(value_name = "STUDY")]
    study: String,
    /// Output file: .html (trials table and plots) or .svg (the plots).
    /// Default: the study's file name with .html; for a PostgreSQL study,
    /// its name with .html in the current folder.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `pf report`.
pub fn run(a: ReportArgs) -> Result<()> {
    let at = StudyLocation::parse(&a.study)?;
    let output = a.output.clone().unwrap_or_else(|| default_output(&at));
    pf::search::report::Format::from_path(&output)?;
    pf::io::check_writable(&output)?;
    let study = study::open_read(&at)?;
    let trials = study.trials()?;
    pf::search::report::write_file(study.meta(), &trials, &output)?;
    println!("{}", output.display());
    Ok(())
}

/// The report's default name: beside a SQLite study, or after a
/// PostgreSQL study's name in the current folder.
fn default_output(at: &StudyLocation) -> PathBuf {
    at.output_base().with_extension("html")
}
