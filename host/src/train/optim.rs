//! Optimizers with PyTorch's update rules: SGD with momentum, Nesterov and
//! weight decay, and Adam.

use anyhow::{Context, Result};
use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which update rule, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum.
    Sgd {
        /// Momentum factor (0 disables it).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam (Kingma & Ba) with L2 weight decay added to the gradient.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
    },
}

/// An optimizer and its per-parameter state.
pub struct Optimizer {
    /// Update rule.
    pub kind: OptimizerKind,
    /// L2 penalty added to every gradient.
    pub weight_decay: f64,
    /// Per-parameter state: momentum buffer (SGD) or first and second moments
    /// (Adam).
    pub state: BTreeMap<String, Vec<Tensor>>,
    /// Number of updates taken.
    pub steps: u64,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(kind: OptimizerKind, weight_decay: f64) -> Self {
        Optimizer {
            kind,
            weight_decay,
            state: BTreeMap::new(),
            steps: 0,
        }
    }

    /// Applies one update with learning rate `lr`. Parameters without a
    /// gradient are left alone.
    pub fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &GradStore,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for (name, var) in params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached copies: the state must not keep the step's autograd
            // graph alive (it would chain every step to the previous one).
            let w = var.as_tensor().detach();
            let mut g = grad.detach();
            if self.weight_decay != 0.0 {
                g = (g + (&w * self.weight_decay)?)?;
            }
            let update = match &self.kind {
                OptimizerKind::Sgd { momentum, nesterov } => {
                    if *momentum == 0.0 {
                        g
                    } else {
                        let buf = match self.state.get(name) {
                            Some(s) => ((&s[0] * *momentum)? + &g)?,
                            None => g.clone(),
                        };
                        self.state.insert(name.clone(), vec![buf.clone()]);
                        if *nesterov {
                            (g + (buf * *momentum)?)?
                        } else {
                            buf
                        }
                    }
                }
                OptimizerKind::Adam { beta1, beta2, eps } => {
                    let (m, v) = match self.state.get(name) {
                        Some(s) => (s[0].clone(), s[1].clone()),
                        None => (g.zeros_like()?, g.zeros_like()?),
                    };
                    let m = ((m * *beta1)? + (&g * (1.0 - beta1))?)?;
                    let v = ((v * *beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    self.state.insert(name.clone(), vec![m.clone(), v.clone()]);
                    let m_hat = (m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (v / (1.0 - beta2.powi(t)))?;
                    (m_hat / (v_hat.sqrt()? + *eps)?)?
                }
            };
            var.set(&(&w - (update * lr)?)?)
                .with_context(|| format!("updating `{name}`"))?;
        }
        Ok(())
    }
}
