//! Learning-rate schedules: constant, step and cosine, each with an optional
//! linear warm-up.

use serde::{Deserialize, Serialize};

/// Shape of the schedule after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone (a fraction of the run).
    Step {
        /// Milestones as fractions of the total steps, ascending.
        milestones: Vec<f64>,
        /// Factor applied at each milestone.
        gamma: f64,
    },
    /// Cosine decay from the base rate to zero.
    Cosine,
}

/// A learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Base learning rate.
    pub base: f64,
    /// Shape after warm-up.
    pub kind: ScheduleKind,
    /// Steps of linear warm-up from `base / warmup` to `base`.
    pub warmup_steps: u64,
}

impl Schedule {
    /// Learning rate at `step` (0-based) of `total`.
    pub fn lr(&self, step: u64, total: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).clamp(0.0, 1.0);
        match &self.kind {
            ScheduleKind::Constant => self.base,
            ScheduleKind::Step { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| progress >= m).count() as i32;
                self.base * gamma.powi(passed)
            }
            ScheduleKind::Cosine => {
                self.base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}
