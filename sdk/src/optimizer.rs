//! The [`Optimizer`] trait: a hyper-parameter search strategy.

pub use crate::bindings::optimizer_plugin::Outcome;
use crate::{Info, Param, ParamSpec, Result};

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
/// Optimizers take no parameters of their own; their `params-schema` is the
/// empty object.
pub trait Optimizer: Sized + 'static {
    /// Name, version and summary.
    fn info() -> Info;

    /// Starts a search over `space` with a budget of `budget` trials. The SDK
    /// only calls it with a space that passed
    /// [`space::validate`](crate::space::validate) (unique names, sound
    /// bounds, non-empty choices); anything else is answered with its
    /// `invalid-argument` error.
    fn create(space: Vec<ParamSpec>, budget: u32) -> Result<Self>;

    /// The next parameters to try: one value per dimension, within its domain.
    fn suggest(&mut self) -> Result<Vec<Param>>;

    /// The outcome of parameters suggested earlier (or replayed from storage
    /// when a study resumes). Rewards may be NaN or infinite.
    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()>;
}
