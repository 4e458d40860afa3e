//! `pf report`: a study as a self-contained HTML page or SVG plots.

use anyhow::Result;
use clap::Args;
use pf::search::{SqliteStudy, StudyStore};
use std::path::PathBuf;

/// Arguments of `pf report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The study database written by `pf compress`.
    study: PathBuf,
    /// Output file: .html (trials table and plots) or .svg (the plots).
    /// Default: the study's name with .html.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `pf report`.
pub fn run(a: ReportArgs) -> Result<()> {
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| a.study.with_extension("html"));
    pf::search::report::Format::from_path(&output)?;
    pf::io::check_writable(&output)?;
    let study = SqliteStudy::open_read_only(&a.study)?;
    let trials = study.trials()?;
    pf::search::report::write_file(study.meta(), &trials, &output)?;
    println!("{}", output.display());
    Ok(())
}
