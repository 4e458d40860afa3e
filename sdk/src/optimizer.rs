//! The [`Optimizer`] trait: a hyper-parameter search strategy.

pub use crate::bindings::optimizer_plugin::Outcome;
use crate::{Error, Info, Param, ParamSpec, Params, Result};

impl Outcome {
    /// The reward, if the trial succeeded and the reward is a finite number.
    pub fn finite_reward(&self) -> Option<f64> {
        match *self {
            Outcome::Reward(r) if r.is_finite() => Some(r),
            _ => None,
        }
    }
}

/// A hyper-parameter search strategy. Each search the host starts is one
/// value of the implementing type; export it with
/// [`export_optimizer!`](crate::export_optimizer).
///
/// An optimizer's own settings (e.g. TPE's `multivariate`) are a
/// [`Params`] struct, declared once as a learner's parameters are: its JSON
/// Schema is the optimizer's `params-schema`, and the host's `options` are
/// decoded into it (unknown names and out-of-range values are
/// `invalid-argument` errors naming the option). `()` takes none.
pub trait Optimizer: Sized + 'static {
    /// The optimizer's settings.
    type Options: Params;

    /// Name, version and summary.
    fn info() -> Info;

    /// Starts a search over `space` with a budget of `budget` trials. The SDK
    /// only calls it with a space that passed
    /// [`space::validate`](crate::space::validate) (unique names, sound
    /// bounds, non-empty choices) and with options that decoded; anything
    /// else is answered with its `invalid-argument` error.
    fn create(space: Vec<ParamSpec>, budget: u32, options: Self::Options) -> Result<Self>;

    /// What the SDK calls in place of [`create`](Self::create): the same
    /// search, told also the names of the options the host set (the user's
    /// `--optimizer-set`); every other option holds its default. An
    /// optimizer whose defaults depend on the budget (TPE's random start-up
    /// trials) overrides this to scale only the options nobody set, and
    /// then calls `create`, which takes `options` as they are. The default
    /// ignores `given` and calls `create`.
    fn create_given(
        space: Vec<ParamSpec>,
        budget: u32,
        options: Self::Options,
        given: &[&str],
    ) -> Result<Self> {
        let _ = given;
        Self::create(space, budget, options)
    }

    /// The next parameters to try: one value per dimension, within its domain.
    fn suggest(&mut self) -> Result<Vec<Param>>;

    /// The outcome of parameters suggested earlier (or replayed from storage
    /// when a study resumes). Rewards may be NaN or infinite.
    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()>;
}

/// The number of random start-up trials (a design before a model takes
/// over) for a budget of `budget` trials: `configured`, but at most about a
/// third of the budget (rounded up, at least 2, never more than the
/// budget), so that a small budget still leaves most trials to the model.
/// For budgets of at least `3·configured` this is `configured` itself.
pub fn startup_for_budget(configured: u32, budget: u32) -> u32 {
    configured.min(budget.div_ceil(3).max(2)).min(budget)
}

/// Counts one more suggestion against the search's `budget` (the number of
/// trials `create` was given): increments `suggested`, or leaves it and
/// answers `limit-exceeded` when the budget is used up, which is what the
/// host and the conformance suite expect of a suggestion past the budget.
pub fn count_suggestion(suggested: &mut u32, budget: u32) -> Result<()> {
    if *suggested >= budget {
        return Err(Error::limit_exceeded(format!(
            "budget of {budget} trials used up"
        )));
    }
    *suggested += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::startup_for_budget;

    #[test]
    fn startup_is_about_a_third_of_a_small_budget() {
        let cases = [(1, 1), (3, 2), (6, 2), (7, 3), (12, 4), (29, 10), (30, 10)];
        for (budget, startup) in cases {
            assert_eq!(startup_for_budget(10, budget), startup, "budget {budget}");
        }
        assert_eq!(startup_for_budget(10, 1000), 10);
        assert_eq!(startup_for_budget(0, 6), 0);
        assert_eq!(startup_for_budget(1, 6), 1);
    }
}
