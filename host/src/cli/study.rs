//! `pf study`: studies as a whole, wherever they are kept (a SQLite file or
//! a PostgreSQL database).

use anyhow::Result;
use clap::{Args, Subcommand};
use pf::search::study::{self, StudyLocation};

/// Arguments of `pf study`.
#[derive(Args)]
pub struct StudyArgs {
    #[command(subcommand)]
    command: StudyCommand,
}

#[derive(Subcommand)]
enum StudyCommand {
    /// Copy a study (its settings, every finished trial and the final
    /// result) into a new one, in one transaction: the copy holds all of it
    /// or nothing. Each side is a SQLite file or a PostgreSQL study,
    /// postgres://USER@HOST/DB?study=NAME; an older pf's SQLite study is
    /// brought up to date on the way. Refused when TO exists.
    Copy {
        /// The study to copy (read only).
        #[arg(value_name = "FROM")]
        from: String,
        /// The new study: a file that does not exist, or a name not used in
        /// the database.
        #[arg(value_name = "TO")]
        to: String,
    },
}

/// Runs `pf study`.
pub fn run(a: StudyArgs) -> Result<()> {
    match a.command {
        StudyCommand::Copy { from, to } => {
            let (from, to) = (StudyLocation::parse(&from)?, StudyLocation::parse(&to)?);
            let copied = study::copy(&from, &to)?;
            println!(
                "copied study {from} to {to}: {} trial{}{}",
                copied.trials,
                if copied.trials == 1 { "" } else { "s" },
                if copied.final_result {
                    " and the final result"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
