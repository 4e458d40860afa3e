//! The automated search: a study of trials, each suggested by an optimizer plugin, compressed by a learner plugin and evaluated by the host.
pub mod baseline;
pub mod host_space;
pub mod interrupt;
pub mod job;
pub mod latency;
mod learner_space;
mod record;
pub mod report;
pub mod resume;
pub mod retrain;
mod reward;
pub mod run;
pub mod study;
pub mod target;
pub use record::*;
pub use reward::Reward;
pub use run::{best_of, run_search, trial_seed, SearchOutcome, SearchSetup};
pub use study::{PgStudy, SqliteStudy, StudyLocation, StudyStore};
