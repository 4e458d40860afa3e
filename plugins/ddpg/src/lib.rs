//! DDPG (Lillicrap et al. 2016, "Continuous control with deep reinforcement
//! learning") used as AMC (He et al. 2018, "AMC: AutoML for Model
//! Compression") and PocketFlow use it: an agent that walks through a
//! network layer by layer and picks each layer's compression. A pf
//! optimizer plugin.
//!
//! ## Episodes
//!
//! One trial is one episode; step `t` of an episode of `D` steps decides
//! dimension `t` of the search space, in space order. The agent's state at
//! that step (`episode::StateEncoder`) is the dimension's `context` vector
//! (for `weight_sparse`'s `sparsity.<layer>` dimensions: the layer's
//! position, size, cost, kind, stride and shape), each feature min–max
//! normalised across the space's dimensions, zeros for a dimension without a
//! context; then the position `t / D` and the previous step's action, as
//! AMC's state ends with the previous action. An action is a position in
//! `[0, 1]` that becomes a value through `ParamSpec::from_unit`, so floats
//! (log scales included), ints, booleans and choices all work, and a plain
//! vector space without contexts is searched with the position and previous
//! action alone. The previous action fed forward is the unit position of the
//! value actually suggested (an int or choice snaps it), so the states built
//! while suggesting are exactly those rebuilt from the parameters when they
//! are observed. That is why `observe` needs no memory of what was
//! suggested: suggestions may be pending in any number and any order (pf's
//! parallel jobs), and parameters replayed from a stored study (`--resume`)
//! are learned from like the agent's own.
//!
//! ## Agent
//!
//! `agent::Agent`: an actor `state → 32 → 32 → sigmoid` and a critic
//! `(state, action) → 32 → 32 → Q`, ReLU hidden layers, He initialisation
//! and DDPG's ±3·10⁻³ output layers, all drawn from the host's seeded
//! stream (`mlp` holds the hand-written layers, backpropagation and Adam).
//! Each update samples a minibatch of 64 transitions uniformly from a
//! replay buffer of 2000 (the oldest dropped), regresses the critic on
//! `r + γ·Q′(s′, μ′(s′))·(1 − done)`, moves the actor along the
//! deterministic policy gradient `∂Q/∂a · ∂μ/∂θ` and the target networks by
//! `τ = 0.01`. After every episode observed from the end of warm-up on, the
//! agent makes one update per step of the episode, as AMC does.
//!
//! ## Exploration
//!
//! The first `warmup_trials` episodes (by default `min(20, max(1,
//! budget/5))`; AMC explores for the first 100 of its 400 episodes, pf's
//! benchmark gives an optimizer 100 trials) take uniformly random actions.
//! After them each action is the actor's plus normal noise truncated to
//! `[0, 1]`, whose σ starts at 0.5 and is multiplied by 0.95 per episode
//! (AMC's values): about 0.18 twenty episodes after warm-up, 0.02 after
//! sixty, so by the end of a 100-trial budget the policy exploits.
//!
//! ## Rewards
//!
//! As in AMC and PocketFlow, every transition of an episode receives the
//! episode's reward minus a baseline, an exponential moving average of the
//! rewards (decay `baseline_decay`). Two changes: the buffer keeps each
//! transition's observed reward and the baseline is subtracted when it is
//! sampled, so old and new transitions are measured against the same
//! baseline; and the difference is divided by the standard deviation of the
//! rewards seen and clipped to ±5. Accuracies differ by hundredths, losses
//! by hundreds: on a unit scale one learning rate fits every reward, and no
//! single extreme trial swamps the critic.
//!
//! The discount defaults to AMC's γ = 1: step `t`'s target is its reward
//! plus the target critic's value of the next step under the target actor,
//! so the target networks and their soft updates do the work they do in
//! AMC. `discount = 0` is the alternative: every step already receives the
//! whole episode's reward, so γ = 0 regresses each step's Q directly on
//! what the episode was worth, without bootstrapping through the slowly
//! moving targets (less variance, and an update is cheaper). On the
//! synthetic per-layer problem of the tests the two were within noise of
//! each other (last-20 mean −0.276 with γ = 0, −0.298 with γ = 1; random
//! −1.03), so the default stays with the published method.
//!
//! A failed trial, or one whose reward is not finite, is stored like any
//! other and trained as the worst finite reward seen so far: a region where
//! trials fail is one to leave. Until some trial has a finite reward the
//! agent does not train.
//!
//! ## Other departures from AMC
//!
//! Hidden layers of 32 units instead of 300, and a critic learning rate of
//! 3·10⁻³ instead of 10⁻³ (the actor keeps AMC's 10⁻⁴): a search has a
//! hundred episodes, not AMC's four hundred, and runs inside WebAssembly.
//! On the tests' problems 32 units did as well as 48 or 64 at a quarter of
//! the cost of 64 (a few milliseconds per trial), and the faster critic
//! converged more reliably. All of these are options.
//!
//! ## Robustness
//!
//! An update whose gradients or new weights are not finite is undone
//! (weights and Adam state restored; the targets are not moved) and logged
//! as a warning; the four networks are checked again after each round of
//! updates and restored as a whole should that ever fail; and an action that is somehow not finite becomes ½, so a
//! NaN never reaches a suggestion. Randomness comes only from the host's
//! seeded stream (weights, warm-up actions, noise, minibatches): the same
//! seed gives the same search.

mod agent;
mod episode;
mod mlp;

use agent::{Agent, AgentConfig, ReplayBuffer, Transition, UpdateFailure};
use episode::{snapped, unit_actions, StateEncoder};
use pf_sdk::prelude::*;

/// The settings of a DDPG search (see the crate docs for why the defaults
/// are what they are).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct DdpgOptions {
    /// Episodes (trials) of uniformly random actions before the actor takes over; 0 picks min(20, max(1, budget / 5)).
    #[schemars(range(min = 0, max = 1000000))]
    pub warmup_trials: u32,
    /// Units in each of the two hidden layers of the actor and of the critic (AMC: 300).
    #[schemars(range(min = 4, max = 512))]
    pub hidden: u32,
    /// Adam's step size for the actor (AMC's 1e-4).
    #[schemars(range(min = 0.000001, max = 1.0), extend("x-log" = true))]
    pub actor_lr: f64,
    /// Adam's step size for the critic (AMC: 1e-3).
    #[schemars(range(min = 0.000001, max = 1.0), extend("x-log" = true))]
    pub critic_lr: f64,
    /// Soft-update rate τ of the target networks: θ′ ← τ·θ + (1 − τ)·θ′ after every update.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub tau: f64,
    /// Discount γ of the next step's value in the critic's target r + γ·Q′(s′, μ′(s′)); 0 regresses every step on the episode's reward, 1 is AMC's choice.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub discount: f64,
    /// Standard deviation σ of the exploration noise (truncated to [0, 1]) on the first episode after warm-up.
    #[schemars(range(min = 0.0, max = 2.0))]
    pub noise: f64,
    /// Factor applied to σ for every episode past warm-up (σ of episode k after warm-up: noise · noise_decay^k).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub noise_decay: f64,
    /// Transitions per minibatch update, drawn uniformly from the replay buffer.
    #[schemars(range(min = 1, max = 4096))]
    pub batch_size: u32,
    /// Capacity of the replay buffer, in transitions (steps); the oldest are dropped.
    #[schemars(range(min = 1, max = 1000000))]
    pub buffer_size: u32,
    /// Minibatch updates per step of each episode observed from the end of warm-up on (AMC: 1).
    #[schemars(range(min = 0, max = 100))]
    pub updates_per_step: u32,
    /// Decay of the exponential moving average of the rewards (the baseline subtracted from every reward): b ← decay · b + (1 − decay) · r.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub baseline_decay: f64,
}

impl Default for DdpgOptions {
    fn default() -> Self {
        DdpgOptions {
            warmup_trials: 0,
            hidden: 32,
            actor_lr: 1e-4,
            critic_lr: 3e-3,
            tau: 0.01,
            discount: 1.0,
            noise: 0.5,
            noise_decay: 0.95,
            batch_size: 64,
            buffer_size: 2000,
            updates_per_step: 1,
            baseline_decay: 0.95,
        }
    }
}

/// The largest |training reward| (in standard deviations of the rewards):
/// one extreme trial cannot swamp the critic.
const REWARD_CLIP: f64 = 5.0;

/// Running statistics of the finite rewards observed: the baseline and
/// scale that turn an episode's reward into the critic's training reward.
#[derive(Clone, Debug, PartialEq)]
struct RewardStats {
    /// The decay of the moving average.
    decay: f64,
    /// The exponential moving average (the baseline, as in AMC and
    /// PocketFlow); `None` before the first finite reward.
    baseline: Option<f64>,
    /// How many finite rewards were seen.
    count: u64,
    /// Their mean.
    mean: f64,
    /// The sum of their squared deviations from the mean (Welford).
    squares: f64,
    /// The lowest, which failed trials are trained as.
    worst: Option<f64>,
    /// The highest.
    best: Option<f64>,
}

impl RewardStats {
    /// No rewards yet; the baseline will decay by `decay`.
    fn new(decay: f64) -> Self {
        RewardStats {
            decay,
            baseline: None,
            count: 0,
            mean: 0.0,
            squares: 0.0,
            worst: None,
            best: None,
        }
    }

    /// Takes a finite reward into account.
    fn record(&mut self, reward: f64) {
        self.baseline = Some(match self.baseline {
            None => reward,
            Some(b) => self.decay * b + (1.0 - self.decay) * reward,
        });
        self.count += 1;
        let delta = reward - self.mean;
        self.mean += delta / self.count as f64;
        self.squares += delta * (reward - self.mean);
        self.worst = Some(self.worst.map_or(reward, |w| w.min(reward)));
        self.best = Some(self.best.map_or(reward, |b| b.max(reward)));
    }

    /// The standard deviation of the rewards, or 1 while it is 0 or unknown.
    fn scale(&self) -> f64 {
        if self.count < 2 {
            return 1.0;
        }
        let std = (self.squares / (self.count - 1) as f64).sqrt();
        if std.is_finite() && std > 1e-12 * (1.0 + self.mean.abs()) {
            std
        } else {
            1.0
        }
    }

    /// The reward the critic learns for an episode observed with `reward`
    /// (`None`: failed, counted as the worst finite reward seen): its distance
    /// to the baseline in standard deviations, clipped to ±[`REWARD_CLIP`].
    fn training_reward(&self, reward: Option<f64>) -> f64 {
        let (Some(baseline), Some(worst)) = (self.baseline, self.worst) else {
            return 0.0;
        };
        let r = reward.unwrap_or(worst);
        let advantage = (r - baseline) / self.scale();
        if advantage.is_finite() {
            advantage.clamp(-REWARD_CLIP, REWARD_CLIP)
        } else {
            0.0
        }
    }
}

/// One DDPG search: the agent, its replay buffer and the bookkeeping of
/// episodes.
pub struct Ddpg {
    /// The dimensions, one step each, in this order.
    space: Vec<ParamSpec>,
    /// The number of suggestions allowed.
    budget: u32,
    options: DdpgOptions,
    /// Episodes of uniformly random actions (the option, resolved).
    warmup: u32,
    /// Suggestions made so far (the next episode's index).
    suggested: u32,
    /// Episodes observed so far (suggested here or not).
    observed: u32,
    /// Observed episodes without a finite reward.
    failures: u32,
    /// The host's seeded stream.
    rng: HostRng,
    encoder: StateEncoder,
    agent: Agent,
    buffer: ReplayBuffer,
    rewards: RewardStats,
}

impl Ddpg {
    /// The exploration noise σ of the episode with 0-based index `episode`.
    fn noise_at(&self, episode: u32) -> f64 {
        let past_warmup = episode.saturating_sub(self.warmup);
        let decay = self
            .options
            .noise_decay
            .powi(past_warmup.min(i32::MAX as u32) as i32);
        self.options.noise * decay
    }

    /// A draw from the normal law N(`mean`, `sigma`²) truncated to `[0, 1]`,
    /// by rejection (`mean` lies in `[0, 1]`, so at σ ≤ 2 a draw is accepted
    /// with probability above 0.19; after 64 rejections, which then happen
    /// less than once in a million times, a uniform draw stands in: the limit
    /// of the truncated law for a wide σ). `mean` itself when σ is 0.
    fn truncated_normal(&mut self, mean: f64, sigma: f64) -> f64 {
        if sigma <= 0.0 {
            return mean.clamp(0.0, 1.0);
        }
        for _ in 0..64 {
            let x = mean + sigma * self.rng.normal();
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        self.rng.f64()
    }

    /// Minibatch updates after an observed episode of `steps` steps.
    fn train(&mut self, steps: usize) {
        if self.rewards.count == 0 || self.buffer.is_empty() {
            return;
        }
        let updates = steps * self.options.updates_per_step as usize;
        let batch_size = self.options.batch_size as usize;
        let saved = self.agent.clone();
        let mut failures = [0u32; 2];
        let mut last_report = None;
        for _ in 0..updates {
            let batch = self.buffer.sample(batch_size, &mut self.rng);
            let rewards = &self.rewards;
            match self.agent.update(&batch, |r| rewards.training_reward(r)) {
                Ok(report) => last_report = Some(report),
                Err(UpdateFailure::Critic) => failures[0] += 1,
                Err(UpdateFailure::Actor) => failures[1] += 1,
            }
        }
        if failures != [0, 0] {
            pf_sdk::log::warn(&format!(
                "ddpg: {} critic and {} actor updates gave non-finite weights and were undone",
                failures[0], failures[1]
            ));
        }
        if !self.agent.is_finite() {
            // Each step is already checked; this guards the whole round.
            pf_sdk::log::warn("ddpg: the networks became non-finite; their weights are restored");
            self.agent = saved;
            return;
        }
        if let Some(r) = last_report {
            pf_sdk::log::trace(&format!(
                "ddpg: episode {}: critic loss {:.4}, mean Q {:.4}, {} transitions stored",
                self.observed,
                r.critic_loss,
                r.mean_q,
                self.buffer.len()
            ));
        }
    }
}

/// The warm-up episodes of a search of `budget` trials: `warmup_trials`
/// when set, otherwise (0) a fifth of the budget between 1 and 20, with the
/// line that says so when the budget made it fewer than 20.
fn warmup_for(warmup_trials: u32, budget: u32) -> (u32, Option<String>) {
    if warmup_trials != 0 {
        return (warmup_trials, None);
    }
    let warmup = (budget / 5).clamp(1, 20);
    let note = (warmup < 20 && budget > 0).then(|| {
        format!(
            "ddpg: {warmup} of {budget} trials are random warm-up episodes (warmup_trials \
             scaled to a fifth of the budget, at most 20; set warmup_trials to override)"
        )
    });
    (warmup, note)
}

impl Optimizer for Ddpg {
    type Options = DdpgOptions;

    fn info() -> Info {
        Info::new(
            "ddpg",
            env!("CARGO_PKG_VERSION"),
            "Deep Deterministic Policy Gradient as AMC uses it for per-layer compression: one \
             trial is one episode with one step per dimension; an actor maps each dimension's \
             context features (and the previous action) to a value, a critic learns the \
             trial's reward. Works on plain vector spaces too.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, options: DdpgOptions) -> Result<Self> {
        let encoder = StateEncoder::new(&space);
        let mut rng = HostRng::new();
        let agent = Agent::new(
            AgentConfig {
                state_len: encoder.state_len(),
                hidden: options.hidden as usize,
                actor_lr: options.actor_lr,
                critic_lr: options.critic_lr,
                tau: options.tau,
                discount: options.discount,
            },
            &mut rng,
        );
        let (warmup, note) = warmup_for(options.warmup_trials, budget);
        if let Some(note) = note {
            pf_sdk::log::info(&note);
        }
        Ok(Ddpg {
            buffer: ReplayBuffer::new(options.buffer_size as usize),
            rewards: RewardStats::new(options.baseline_decay),
            space,
            budget,
            warmup,
            suggested: 0,
            observed: 0,
            failures: 0,
            rng,
            encoder,
            agent,
            options,
        })
    }

    fn suggest(&mut self) -> Result<Vec<Param>> {
        let episode = self.suggested;
        pf_sdk::count_suggestion(&mut self.suggested, self.budget)?;
        let exploring = episode < self.warmup;
        let sigma = self.noise_at(episode);
        let mut previous = 0.0;
        let mut params = Vec::with_capacity(self.space.len());
        for step in 0..self.space.len() {
            let action = if exploring {
                self.rng.f64()
            } else {
                let state = self.encoder.state(step, previous);
                let mean = self.agent.act(&state);
                self.truncated_normal(mean, sigma)
            };
            let spec = &self.space[step];
            let (value, unit) = snapped(spec, action);
            previous = unit;
            params.push(Param::new(spec.name.clone(), value));
        }
        Ok(params)
    }

    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()> {
        let actions = unit_actions(&self.space, &params)?;
        let reward = outcome.finite_reward();
        self.observed = self.observed.saturating_add(1);
        match reward {
            Some(r) => {
                if self.rewards.best.is_none_or(|best| r > best) {
                    pf_sdk::log::debug(&format!(
                        "ddpg: new best reward {r} at episode {}",
                        self.observed
                    ));
                }
                self.rewards.record(r);
            }
            None => self.failures = self.failures.saturating_add(1),
        }
        // The episode's transitions, rebuilt from its values alone.
        for (step, &action) in actions.iter().enumerate() {
            let previous = if step == 0 { 0.0 } else { actions[step - 1] };
            let next_state =
                (step + 1 < actions.len()).then(|| self.encoder.state(step + 1, action));
            self.buffer.push(Transition {
                state: self.encoder.state(step, previous),
                action,
                reward,
                next_state,
            });
        }
        if self.observed >= self.warmup {
            self.train(actions.len());
        }
        Ok(())
    }
}

pf_sdk::export_optimizer!(Ddpg);

#[cfg(test)]
mod tests;
