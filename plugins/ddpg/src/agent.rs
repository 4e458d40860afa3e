//! The DDPG agent (Lillicrap et al. 2016): a deterministic actor
//! `μ(s) ∈ (0, 1)`, a critic `Q(s, a)`, slowly following target copies of
//! both, and a replay buffer of transitions.
//!
//! One update on a minibatch of transitions `(s, a, r, s′, done)`:
//!
//! 1. critic: minimise `mean (Q(s, a) − y)²` with the target
//!    `y = r + γ·Q′(s′, μ′(s′))·(1 − done)` (the primes are the target
//!    networks; with `γ = 0` the target is `r` and they are not evaluated);
//! 2. actor: ascend the deterministic policy gradient
//!    `mean ∂Q(s, a)/∂a |_{a = μ(s)} · ∂μ(s)/∂θ`, through the critic just
//!    updated;
//! 3. targets: `θ′ ← τ·θ + (1 − τ)·θ′` for both networks.
//!
//! Both networks are trained with Adam. A step whose gradients or resulting
//! weights are not finite is undone (weights and Adam state restored) and
//! reported, so a NaN can never reach the actions.

use crate::mlp::{Adam, Mlp, OutputActivation};
use pf_sdk::prelude::*;
use std::collections::VecDeque;

/// The scale of the output layers' initial weights (DDPG's ±3·10⁻³).
const FINAL_LAYER_SCALE: f64 = 3e-3;

/// One step of one episode.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The state the action was taken in.
    pub state: Vec<f64>,
    /// The action, a unit position in `[0, 1]`.
    pub action: f64,
    /// The reward of the episode this step belongs to, as observed: `None`
    /// when the trial failed or its reward was not finite. It is turned into
    /// the training reward only when sampled (see `Agent::update`), so the
    /// whole buffer always uses the current baseline.
    pub reward: Option<f64>,
    /// The next step's state, `None` at the last step of the episode.
    pub next_state: Option<Vec<f64>>,
}

/// A first-in first-out store of transitions: when full, the oldest is
/// dropped for each new one.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    capacity: usize,
    transitions: VecDeque<Transition>,
}

impl ReplayBuffer {
    /// An empty buffer holding at most `capacity` (at least 1) transitions.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ReplayBuffer {
            capacity,
            transitions: VecDeque::with_capacity(capacity.min(1 << 16)),
        }
    }

    /// Adds `transition`, dropping the oldest one when the buffer is full.
    pub fn push(&mut self, transition: Transition) {
        if self.transitions.len() == self.capacity {
            self.transitions.pop_front();
        }
        self.transitions.push_back(transition);
    }

    /// The number of transitions held.
    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    /// Whether the buffer holds no transition.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// The transitions, oldest first.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter()
    }

    /// `size` transitions drawn uniformly, with replacement (so a batch can
    /// be drawn from a buffer smaller than it); none from an empty buffer.
    pub fn sample(&self, size: usize, rng: &mut impl RandomExt) -> Vec<&Transition> {
        if self.transitions.is_empty() {
            return Vec::new();
        }
        (0..size)
            .map(|_| &self.transitions[rng.below(self.transitions.len() as u64) as usize])
            .collect()
    }
}

/// The agent's shape and learning rates.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// The length of a state.
    pub state_len: usize,
    /// Units in each of the two hidden layers of both networks.
    pub hidden: usize,
    /// Adam's step size for the actor.
    pub actor_lr: f64,
    /// Adam's step size for the critic.
    pub critic_lr: f64,
    /// The soft-update rate τ of the target networks.
    pub tau: f64,
    /// The discount γ of the next state's value.
    pub discount: f64,
}

/// What one minibatch update did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateReport {
    /// The critic's mean squared error before its step.
    pub critic_loss: f64,
    /// The mean `Q(s, μ(s))` over the batch before the actor's step.
    pub mean_q: f64,
}

/// Why an update was undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateFailure {
    /// The critic's loss, gradient or new weights were not finite.
    Critic,
    /// The actor's gradient or new weights were not finite.
    Actor,
}

/// Actor, critic, their targets and optimisers.
#[derive(Clone, Debug)]
pub struct Agent {
    /// Shapes, learning rates, τ and γ.
    config: AgentConfig,
    /// The policy μ: state → action in (0, 1).
    actor: Mlp,
    /// The action value Q: (state, action) → expected training reward.
    critic: Mlp,
    /// μ′, following the actor at rate τ.
    target_actor: Mlp,
    /// Q′, following the critic at rate τ.
    target_critic: Mlp,
    /// Adam's state for the actor's parameters.
    actor_adam: Adam,
    /// Adam's state for the critic's parameters.
    critic_adam: Adam,
}

impl Agent {
    /// A fresh agent whose weights are drawn from `rng`: the actor
    /// `state → hidden → hidden → sigmoid action`, the critic
    /// `(state, action) → hidden → hidden → Q`, targets equal to them.
    pub fn new(config: AgentConfig, rng: &mut impl RandomExt) -> Self {
        let (s, h) = (config.state_len, config.hidden.max(1));
        let actor = Mlp::new(
            &[s, h, h, 1],
            OutputActivation::Sigmoid,
            FINAL_LAYER_SCALE,
            rng,
        );
        let critic = Mlp::new(
            &[s + 1, h, h, 1],
            OutputActivation::Linear,
            FINAL_LAYER_SCALE,
            rng,
        );
        Agent {
            actor_adam: Adam::new(config.actor_lr, actor.params().len()),
            critic_adam: Adam::new(config.critic_lr, critic.params().len()),
            target_actor: actor.clone(),
            target_critic: critic.clone(),
            actor,
            critic,
            config,
        }
    }

    /// The actor's action in `state`, in `[0, 1]` (½ should it ever not be
    /// finite).
    pub fn act(&self, state: &[f64]) -> f64 {
        let a = self.actor.forward(state)[0];
        if a.is_finite() {
            a.clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// The actor network.
    #[cfg(test)]
    pub fn actor(&self) -> &Mlp {
        &self.actor
    }

    /// The critic network.
    #[cfg(test)]
    pub fn critic(&self) -> &Mlp {
        &self.critic
    }

    /// The target actor network.
    #[cfg(test)]
    pub fn target_actor(&self) -> &Mlp {
        &self.target_actor
    }

    /// The target critic network.
    #[cfg(test)]
    pub fn target_critic(&self) -> &Mlp {
        &self.target_critic
    }

    /// Whether every weight of the four networks is finite.
    pub fn is_finite(&self) -> bool {
        self.actor.is_finite()
            && self.critic.is_finite()
            && self.target_actor.is_finite()
            && self.target_critic.is_finite()
    }

    /// One update (critic, actor, targets) on `batch`, whose observed
    /// rewards `training_reward` turns into the rewards the critic learns.
    /// A network whose step would leave non-finite weights keeps its
    /// previous weights (and Adam state), the rest of the update is skipped
    /// (after a failed critic step the actor is not updated; in either case
    /// the targets are not moved), and the error says which network it was.
    pub fn update(
        &mut self,
        batch: &[&Transition],
        training_reward: impl Fn(Option<f64>) -> f64,
    ) -> std::result::Result<UpdateReport, UpdateFailure> {
        let n = batch.len();
        if n == 0 {
            return Ok(UpdateReport {
                critic_loss: 0.0,
                mean_q: 0.0,
            });
        }
        let s = self.config.state_len;
        let targets = self.critic_targets(batch, &training_reward);

        // Critic: regression of Q(s, a) onto the targets.
        let mut critic_inputs = Vec::with_capacity(n * (s + 1));
        for t in batch {
            critic_inputs.extend_from_slice(&t.state);
            critic_inputs.push(t.action);
        }
        let trace = self.critic.forward_batch(&critic_inputs, n);
        let q = trace.outputs();
        let critic_loss = q
            .iter()
            .zip(&targets)
            .map(|(q, y)| (q - y) * (q - y))
            .sum::<f64>()
            / n as f64;
        let grad_q: Vec<f64> = q
            .iter()
            .zip(&targets)
            .map(|(q, y)| 2.0 * (q - y) / n as f64)
            .collect();
        let mut critic_grads = vec![0.0; self.critic.params().len()];
        self.critic
            .backward(&trace, &grad_q, Some(&mut critic_grads), false);
        if !critic_loss.is_finite()
            || !take_step(&mut self.critic, &mut self.critic_adam, &critic_grads)
        {
            return Err(UpdateFailure::Critic);
        }

        // Actor: ascend Q(s, μ(s)), i.e. descend −mean Q.
        let mut states = Vec::with_capacity(n * s);
        for t in batch {
            states.extend_from_slice(&t.state);
        }
        let actor_trace = self.actor.forward_batch(&states, n);
        let actions = actor_trace.outputs();
        let mut critic_inputs = Vec::with_capacity(n * (s + 1));
        for (state, &a) in states.chunks_exact(s).zip(actions) {
            critic_inputs.extend_from_slice(state);
            critic_inputs.push(a);
        }
        let trace = self.critic.forward_batch(&critic_inputs, n);
        let mean_q = trace.outputs().iter().sum::<f64>() / n as f64;
        let grad_inputs = self
            .critic
            .backward(&trace, &vec![-1.0 / n as f64; n], None, true);
        let grad_actions: Vec<f64> = grad_inputs.chunks_exact(s + 1).map(|row| row[s]).collect();
        let mut actor_grads = vec![0.0; self.actor.params().len()];
        self.actor
            .backward(&actor_trace, &grad_actions, Some(&mut actor_grads), false);
        if !take_step(&mut self.actor, &mut self.actor_adam, &actor_grads) {
            return Err(UpdateFailure::Actor);
        }

        let tau = self.config.tau;
        self.target_actor.soft_update(&self.actor, tau);
        self.target_critic.soft_update(&self.critic, tau);
        Ok(UpdateReport {
            critic_loss,
            mean_q,
        })
    }

    /// `r + γ·Q′(s′, μ′(s′))·(1 − done)` for each transition of `batch`.
    fn critic_targets(
        &self,
        batch: &[&Transition],
        training_reward: &impl Fn(Option<f64>) -> f64,
    ) -> Vec<f64> {
        let mut targets: Vec<f64> = batch.iter().map(|t| training_reward(t.reward)).collect();
        let gamma = self.config.discount;
        if gamma == 0.0 {
            return targets;
        }
        let s = self.config.state_len;
        let continuing: Vec<(usize, &Vec<f64>)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.next_state.as_ref().map(|next| (i, next)))
            .collect();
        if continuing.is_empty() {
            return targets;
        }
        let m = continuing.len();
        let mut next_states = Vec::with_capacity(m * s);
        for (_, next) in &continuing {
            next_states.extend_from_slice(next);
        }
        let next_actions = self.target_actor.forward_batch(&next_states, m);
        let mut inputs = Vec::with_capacity(m * (s + 1));
        for ((_, next), &a) in continuing.iter().zip(next_actions.outputs()) {
            inputs.extend_from_slice(next);
            inputs.push(a);
        }
        let next_q = self.target_critic.forward_batch(&inputs, m);
        for ((i, _), &q) in continuing.iter().zip(next_q.outputs()) {
            targets[*i] += gamma * q;
        }
        targets
    }
}

/// One Adam step of `net` along `grads`, undone (weights and Adam state)
/// when the gradient or the new weights are not finite. Whether it stuck.
fn take_step(net: &mut Mlp, adam: &mut Adam, grads: &[f64]) -> bool {
    if !grads.iter().all(|g| g.is_finite()) {
        return false;
    }
    let saved = (net.params().to_vec(), adam.clone());
    adam.step(net.params_mut(), grads);
    if net.is_finite() {
        return true;
    }
    net.params_mut().copy_from_slice(&saved.0);
    *adam = saved.1;
    false
}
