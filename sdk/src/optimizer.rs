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

    /// The next parameters to try: one value per dimension, within its domain.
    fn suggest(&mut self) -> Result<Vec<Param>>;

    /// The outcome of parameters suggested earlier (or replayed from storage
    /// when a study resumes). Rewards may be NaN or infinite.
    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()>;
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
