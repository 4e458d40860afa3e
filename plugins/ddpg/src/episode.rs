//! Episodes over a search space: the state the agent sees at each step (one
//! step per dimension, in space order) and the actions that a set of
//! parameters amounts to.
//!
//! The state of step `t` of `D` is
//!
//! ```text
//! [ context features of dimension t, min–max normalised | t / D | previous action ]
//! ```
//!
//! Each context feature is normalised to `[0, 1]` across the dimensions that
//! have a context (AMC normalises its layer embedding the same way); a
//! dimension without one, a missing or non-finite feature, and a feature
//! that is the same for every dimension read 0. The previous action is the
//! unit position of the previous dimension's value (0 at the first step).
//! Because a state depends only on the space and the earlier values, the
//! states of any episode can be rebuilt from its parameters alone.

use pf_sdk::prelude::*;

/// Builds the agent's states for one search space.
#[derive(Clone, Debug)]
pub struct StateEncoder {
    /// The normalised context of each dimension, `features` values each.
    contexts: Vec<Vec<f64>>,
    features: usize,
}

impl StateEncoder {
    /// The encoder for `space`. Contexts of different lengths are tolerated
    /// (the SDK only checks that for learners' spaces): the longest sets the
    /// number of features and shorter ones read 0 where they end.
    pub fn new(space: &[ParamSpec]) -> Self {
        let features = space.iter().map(|s| s.context.len()).max().unwrap_or(0);
        let mut contexts = vec![vec![0.0; features]; space.len()];
        for feature in 0..features {
            let values = || {
                space
                    .iter()
                    .filter_map(move |s| s.context.get(feature).copied())
                    .filter(|x| x.is_finite())
            };
            let low = values().fold(f64::INFINITY, f64::min);
            let high = values().fold(f64::NEG_INFINITY, f64::max);
            if high <= low {
                continue; // constant, or absent everywhere: no information
            }
            for (spec, context) in space.iter().zip(&mut contexts) {
                if let Some(&x) = spec.context.get(feature) {
                    if x.is_finite() {
                        context[feature] = ((x - low) / (high - low)).clamp(0.0, 1.0);
                    }
                }
            }
        }
        StateEncoder { contexts, features }
    }

    /// The number of dimensions (steps of an episode).
    pub fn steps(&self) -> usize {
        self.contexts.len()
    }

    /// The length of a state: the context features, the position and the
    /// previous action.
    pub fn state_len(&self) -> usize {
        self.features + 2
    }

    /// The state of step `step`, after the previous dimension took the unit
    /// position `previous_action` (pass 0 at the first step).
    ///
    /// # Panics
    /// When `step` is not below [`steps`](Self::steps).
    pub fn state(&self, step: usize, previous_action: f64) -> Vec<f64> {
        let mut state = Vec::with_capacity(self.state_len());
        state.extend_from_slice(&self.contexts[step]);
        state.push(step as f64 / self.steps() as f64);
        state.push(previous_action);
        state
    }
}

/// The unit position ([`ParamSpec::to_unit`]) of each dimension's value in
/// `params`, in space order. The order of `params` does not matter; a name
/// the space does not know is ignored with a warning.
///
/// # Errors
/// `invalid-argument`, naming the parameter, when a dimension has no value,
/// two values, or a value outside its domain.
pub fn unit_actions(space: &[ParamSpec], params: &[Param]) -> Result<Vec<f64>> {
    for (i, param) in params.iter().enumerate() {
        if params[..i].iter().any(|p| p.name == param.name) {
            return Err(Error::invalid_argument(format!(
                "parameter `{}` is given twice",
                param.name
            )));
        }
        if !space.iter().any(|s| s.name == param.name) {
            pf_sdk::log::warn(&format!(
                "ddpg: ignoring parameter `{}`, which is not in the search space",
                param.name
            ));
        }
    }
    space
        .iter()
        .map(|spec| {
            let param = params.iter().find(|p| p.name == spec.name).ok_or_else(|| {
                Error::invalid_argument(format!("no value for parameter `{}`", spec.name))
            })?;
            spec.check(&param.value)?;
            spec.to_unit(&param.value).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "parameter `{}` = {} does not fit its dimension ({})",
                    spec.name, param.value, spec.kind
                ))
            })
        })
        .collect()
}

/// The unit position at which `spec` actually lands for the action `action`:
/// `to_unit(from_unit(action))`, i.e. the action snapped to what the
/// dimension can represent (an integer, a choice, a boolean). Suggestions
/// chain these, so the states built while suggesting equal the states
/// rebuilt from the parameters when they are observed.
pub fn snapped(spec: &ParamSpec, action: f64) -> (ParamValue, f64) {
    let value = spec.from_unit(action);
    let unit = spec.to_unit(&value).unwrap_or(action.clamp(0.0, 1.0));
    (value, unit)
}
