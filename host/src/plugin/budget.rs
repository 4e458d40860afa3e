//! The budget of one trial: a wall-clock deadline and a meter of the work a
//! plugin makes the host do.
//!
//! Fuel bounds the instructions a plugin executes, but not the time: a
//! plugin can stay cheap in fuel while the host fine-tunes, computes
//! gradients or multiplies large matrices for it. So every learner instance
//! (one trial, or one load's `describe`) and every optimizer call gets a
//! deadline and a host-work allowance:
//!
//! - WebAssembly code is interrupted at the deadline by epoch interruption
//!   (the runtime's ticker advances the engine's epoch; the store's epoch
//!   callback checks the deadline).
//! - Host calls are charged up front by their work, in element-operations
//!   (one multiply-add, one element read or written): a call whose work
//!   would pass the allowance is refused before the host starts it, and
//!   every charge also checks the deadline.
//! - Long host loops (fine-tuning, gradient batches) check the deadline
//!   between steps.
//!
//! Either limit traps the plugin with a message that says which budget ran
//! out; the trial fails with it and the next trial runs.

use std::time::{Duration, Instant};

/// Multiply-adds a training step costs per sample and per multiply-add of
/// the forward pass: the forward pass, and about twice that backwards.
pub const TRAIN_COST_FACTOR: u64 = 3;

/// Most element-operations one tensor operation may cost (2^36: a
/// 4096 × 4096 × 4096 product, seconds of CPU). One operation cannot be
/// interrupted once started, so a larger one (an 8192² matrix product) is
/// refused whatever budget is left.
pub const MAX_OP_WORK: u64 = 1 << 36;

/// How often the runtime's ticker advances the epoch: the most a plugin
/// overruns its deadline in WebAssembly code.
pub const TICK: Duration = Duration::from_millis(20);

/// A deadline and a host-work allowance.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The wall-clock seconds allowed.
    pub seconds: u64,
    /// The element-operations allowed.
    pub work_limit: u64,
    deadline: Instant,
    work_used: u64,
}

impl Budget {
    /// A budget of `seconds` and `work_limit` element-operations, starting
    /// now.
    pub fn start(seconds: u64, work_limit: u64) -> Self {
        Budget {
            seconds,
            work_limit,
            deadline: deadline_after(seconds),
            work_used: 0,
        }
    }

    /// Starts the same budget afresh (for an optimizer's next call).
    pub fn restart(&mut self) {
        *self = Budget::start(self.seconds, self.work_limit);
    }

    /// Element-operations charged so far.
    pub fn work_used(&self) -> u64 {
        self.work_used
    }

    /// Whether the deadline has passed.
    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Why the plugin is stopped when the deadline has passed.
    pub fn time_message(&self) -> String {
        format!(
            "it exceeded its time budget ({} s); a runaway loop or host-call flood, or raise --trial-timeout",
            self.seconds
        )
    }

    /// Checks the deadline.
    pub fn check_time(&self) -> Result<(), String> {
        if self.past_deadline() {
            Err(self.time_message())
        } else {
            Ok(())
        }
    }

    /// Charges one tensor operation of `work` element-operations, as
    /// [`Budget::charge`] does, refusing it outright above [`MAX_OP_WORK`].
    pub fn charge_op(&mut self, what: &str, work: u64) -> Result<(), String> {
        if work > MAX_OP_WORK {
            self.check_time()?;
            return Err(format!(
                "it exceeded its host-work budget: {what} would cost {work} element-operations, \
                 above the {MAX_OP_WORK} one tensor operation may cost; split the work into \
                 smaller operations"
            ));
        }
        self.charge(what, work)
    }

    /// Charges `work` element-operations for `what`, or says why not: the
    /// deadline has passed, or the work would pass the allowance (then
    /// nothing is charged, and the host must not do the work).
    pub fn charge(&mut self, what: &str, work: u64) -> Result<(), String> {
        self.check_time()?;
        let total = self.work_used.saturating_add(work);
        if total > self.work_limit {
            return Err(format!(
                "it exceeded its host-work budget ({} element-operations): {what} would cost {work} \
                 with {} already used; a host-call flood, or raise --plugin-host-work",
                self.work_limit, self.work_used
            ));
        }
        self.work_used = total;
        Ok(())
    }
}

/// Stops a host training loop between steps once the budget's deadline
/// has passed.
pub struct DeadlineHook<'a>(pub &'a Budget);

impl crate::train::StepHook for DeadlineHook<'_> {
    fn after_step(&mut self, _: &mut crate::model::Model, _: u64, _: u64) -> anyhow::Result<()> {
        self.0.check_time().map_err(anyhow::Error::msg)
    }
}

/// `seconds` from now, or as far as the clock goes.
fn deadline_after(seconds: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(seconds))
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)))
}

/// The work of `units` units of `cost` element-operations each, saturating.
pub fn times(units: u64, cost: u64) -> u64 {
    units.saturating_mul(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_past_the_allowance_is_refused_and_not_charged() {
        let mut b = Budget::start(60, 100);
        b.charge("a", 60).unwrap();
        let e = b.charge("a matmul", 41).unwrap_err();
        assert!(e.contains("host-work budget (100"), "{e}");
        assert!(e.contains("a matmul would cost 41"), "{e}");
        assert_eq!(b.work_used(), 60);
        b.charge("b", 40).unwrap();
        assert_eq!(b.work_used(), 100);
    }

    #[test]
    fn one_operation_above_the_cap_is_refused_whatever_is_left() {
        let mut b = Budget::start(60, u64::MAX);
        let e = b.charge_op("a matmul", MAX_OP_WORK + 1).unwrap_err();
        assert!(
            e.contains("above the 68719476736 one tensor operation"),
            "{e}"
        );
        assert_eq!(b.work_used(), 0);
        b.charge_op("a matmul", MAX_OP_WORK).unwrap();
    }

    #[test]
    fn a_passed_deadline_refuses_every_charge() {
        let mut b = Budget::start(0, u64::MAX);
        assert!(b.past_deadline());
        let e = b.charge("anything", 0).unwrap_err();
        assert!(e.contains("time budget (0 s)"), "{e}");
        b.seconds = 3600;
        b.restart();
        b.charge("anything", 1).unwrap();
    }
}
