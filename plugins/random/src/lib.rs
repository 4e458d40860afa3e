//! Random search: a pf optimizer plugin.
//!
//! Each suggestion draws every dimension independently: floats uniformly in
//! their range (log-uniformly when the dimension asks for a log scale),
//! integers uniformly over the inclusive range (log-uniformly, then rounded
//! and clamped, on a log scale), choices uniformly, booleans by a fair coin.
//! The only source of randomness is the host's seeded stream, so a study is
//! reproducible from its seed. The SDK validates the space before `create`
//! (unique names, `low ≤ high`, `low > 0` on log scales, non-empty choices).

use pf_sdk::prelude::*;

/// One random search.
struct RandomSearch {
    space: Vec<ParamSpec>,
    budget: u32,
    suggested: u32,
    rng: HostRng,
    /// Finite rewards seen, with their parameters.
    rewards: Vec<(f64, Vec<Param>)>,
    /// Trials that failed or whose reward was not a finite number.
    failures: u32,
}

impl Optimizer for RandomSearch {
    type Options = ();

    fn info() -> Info {
        Info::new(
            "random",
            env!("CARGO_PKG_VERSION"),
            "Random search: every dimension drawn independently and uniformly (log-uniformly \
             on log scales) from the host's seeded random stream. A strong baseline for \
             small budgets and the reference the other optimizers are compared with.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, _options: ()) -> Result<Self> {
        Ok(RandomSearch {
            space,
            budget,
            suggested: 0,
            rng: HostRng::new(),
            rewards: Vec::new(),
            failures: 0,
        })
    }

    fn suggest(&mut self) -> Result<Vec<Param>> {
        pf_sdk::count_suggestion(&mut self.suggested, self.budget)?;
        let rng = &mut self.rng;
        Ok(self
            .space
            .iter()
            .map(|spec| Param::new(spec.name.clone(), sample(&spec.kind, rng)))
            .collect())
    }

    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()> {
        match outcome.finite_reward() {
            Some(reward) => {
                if self.best().is_none_or(|best| reward > best) {
                    pf_sdk::log::debug(&format!(
                        "new best reward {reward} ({} rewards and {} failures before it)",
                        self.rewards.len(),
                        self.failures
                    ));
                }
                self.rewards.push((reward, params));
            }
            None => self.failures += 1,
        }
        Ok(())
    }
}

impl RandomSearch {
    /// The best finite reward observed so far.
    fn best(&self) -> Option<f64> {
        self.rewards.iter().map(|(r, _)| *r).reduce(f64::max)
    }
}

/// One draw from a (validated) dimension.
fn sample(kind: &ParamKind, rng: &mut impl RandomExt) -> ParamValue {
    match kind {
        ParamKind::Float(r) => {
            let x = if r.log {
                rng.uniform(r.low.ln(), r.high.ln()).exp()
            } else {
                rng.uniform(r.low, r.high)
            };
            ParamValue::Float(x.clamp(r.low, r.high))
        }
        ParamKind::Int(r) => {
            let i = if r.log {
                let x = rng.uniform((r.low as f64).ln(), (r.high as f64).ln()).exp();
                // Casting saturates, and the clamp keeps the rounding inside.
                (x.round() as i64).clamp(r.low, r.high)
            } else {
                rng.range_inclusive(r.low, r.high)
            };
            ParamValue::Int(i)
        }
        ParamKind::Boolean => ParamValue::Boolean(rng.next_u64() >> 63 == 1),
        ParamKind::Choice(choices) => {
            let i = rng.below(choices.len() as u64) as usize;
            ParamValue::Choice(choices[i].clone())
        }
    }
}

pf_sdk::export_optimizer!(RandomSearch);
