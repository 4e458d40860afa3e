//! Small multi-layer perceptrons written by hand: dense layers with ReLU
//! between them, a linear or sigmoid output, batched forward and backward
//! passes, the Adam optimiser and the soft (Polyak) update of target
//! networks.
//!
//! All parameters of a network live in one flat vector (layer by layer: the
//! weights, then the biases), so copying, averaging, checking and updating a
//! network are loops over one slice. A layer's weights are stored input by
//! input (`weights[i·outputs + o]` connects input `i` to output `o`): the
//! forward pass then adds one scaled row per input, which vectorises well.

use pf_sdk::prelude::*;

/// The function applied to the last layer's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputActivation {
    /// The outputs as they are (the critic's Q value).
    Linear,
    /// `1 / (1 + e^−x)`, in `(0, 1)` (the actor's action).
    Sigmoid,
}

/// A fully connected network: `sizes[0]` inputs, ReLU hidden layers of
/// `sizes[1..n−1]` units, `sizes[n−1]` outputs through an
/// [`OutputActivation`].
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    sizes: Vec<usize>,
    output: OutputActivation,
    /// Every weight and bias, layer by layer.
    params: Vec<f64>,
}

/// The activations of one batched forward pass, kept for the backward pass.
#[derive(Clone, Debug)]
pub struct Trace {
    batch: usize,
    /// `activations[0]` is the input, `activations[l + 1]` the output of
    /// layer `l` after its activation function; each `batch × width`.
    activations: Vec<Vec<f64>>,
}

impl Trace {
    /// The network's outputs, `batch × outputs`, row by row.
    pub fn outputs(&self) -> &[f64] {
        self.activations.last().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Where one layer's parameters lie in [`Mlp::params`].
struct LayerSlices {
    inputs: usize,
    outputs: usize,
    weights: std::ops::Range<usize>,
    bias: std::ops::Range<usize>,
}

impl Mlp {
    /// A network with layer widths `sizes` (at least an input and an output
    /// width). Hidden layers get He initialisation (normal, variance
    /// `2 / inputs`, suited to ReLU); the last layer gets small uniform
    /// weights in `±final_scale` (DDPG's choice, 3·10⁻³, so that the first
    /// outputs are near zero, i.e. actions near ½ and Q values near 0);
    /// biases start at zero. Every draw comes from `rng`.
    ///
    /// # Panics
    /// When `sizes` has fewer than two entries or a zero width.
    pub fn new(
        sizes: &[usize],
        output: OutputActivation,
        final_scale: f64,
        rng: &mut impl RandomExt,
    ) -> Self {
        assert!(sizes.len() >= 2, "an MLP needs input and output widths");
        assert!(
            sizes.iter().all(|&s| s > 0),
            "zero-width layer in {sizes:?}"
        );
        let total = sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        let mut mlp = Mlp {
            sizes: sizes.to_vec(),
            output,
            params: vec![0.0; total],
        };
        let layers = mlp.layer_count();
        for l in 0..layers {
            let slices = mlp.layer(l);
            let last = l + 1 == layers;
            let he_std = (2.0 / slices.inputs as f64).sqrt();
            for w in &mut mlp.params[slices.weights] {
                *w = if last {
                    rng.uniform(-final_scale, final_scale)
                } else {
                    he_std * rng.normal()
                };
            }
        }
        mlp
    }

    /// The number of inputs.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// The number of outputs.
    pub fn outputs(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Every weight and bias, layer by layer.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Every weight and bias, for changing them in place.
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// Whether every parameter is a finite number.
    pub fn is_finite(&self) -> bool {
        self.params.iter().all(|p| p.is_finite())
    }

    /// Soft (Polyak) update towards `source`: `θ ← τ·θ_source + (1 − τ)·θ`.
    ///
    /// # Panics
    /// When the two networks differ in shape.
    pub fn soft_update(&mut self, source: &Mlp, tau: f64) {
        assert_eq!(self.sizes, source.sizes, "soft update between shapes");
        for (target, &value) in self.params.iter_mut().zip(&source.params) {
            *target = tau * value + (1.0 - tau) * *target;
        }
    }

    fn layer_count(&self) -> usize {
        self.sizes.len() - 1
    }

    fn layer(&self, l: usize) -> LayerSlices {
        let offset: usize = self.sizes[..=l]
            .windows(2)
            .map(|w| w[0] * w[1] + w[1])
            .sum();
        let (inputs, outputs) = (self.sizes[l], self.sizes[l + 1]);
        let weights = offset..offset + inputs * outputs;
        let bias = weights.end..weights.end + outputs;
        LayerSlices {
            inputs,
            outputs,
            weights,
            bias,
        }
    }

    /// The outputs for one input (no trace kept).
    pub fn forward(&self, input: &[f64]) -> Vec<f64> {
        let trace = self.forward_batch(input, 1);
        trace.outputs().to_vec()
    }

    /// The forward pass of `batch` inputs (`inputs` holds them row by row,
    /// `batch × self.inputs()`), keeping every activation.
    ///
    /// # Panics
    /// When `inputs` does not hold `batch` rows.
    pub fn forward_batch(&self, inputs: &[f64], batch: usize) -> Trace {
        assert_eq!(inputs.len(), batch * self.inputs(), "input rows");
        let layers = self.layer_count();
        let mut activations = Vec::with_capacity(layers + 1);
        activations.push(inputs.to_vec());
        for l in 0..layers {
            let s = self.layer(l);
            let weights = &self.params[s.weights.clone()];
            let bias = &self.params[s.bias.clone()];
            let input = &activations[l];
            let mut out = vec![0.0; batch * s.outputs];
            for (x_row, y_row) in input
                .chunks_exact(s.inputs)
                .zip(out.chunks_exact_mut(s.outputs))
            {
                y_row.copy_from_slice(bias);
                for (&x, w_row) in x_row.iter().zip(weights.chunks_exact(s.outputs)) {
                    if x != 0.0 {
                        axpy(y_row, x, w_row);
                    }
                }
            }
            let last = l + 1 == layers;
            match (last, self.output) {
                (false, _) => out.iter_mut().for_each(|y| *y = y.max(0.0)),
                (true, OutputActivation::Linear) => {}
                (true, OutputActivation::Sigmoid) => {
                    out.iter_mut().for_each(|y| *y = sigmoid(*y));
                }
            }
            activations.push(out);
        }
        Trace { batch, activations }
    }

    /// Backpropagates `grad_outputs` (∂loss/∂output, `batch × outputs`,
    /// already scaled as the loss wants, e.g. divided by the batch size)
    /// through the pass `trace`. Adds ∂loss/∂θ into `grads` when given (same
    /// layout as [`params`](Self::params)) and returns ∂loss/∂input,
    /// `batch × inputs`, when `input_grads` asks for it (an empty vector
    /// otherwise, which saves the first layer's share of the work).
    ///
    /// # Panics
    /// When the shapes do not match.
    pub fn backward(
        &self,
        trace: &Trace,
        grad_outputs: &[f64],
        mut grads: Option<&mut [f64]>,
        input_grads: bool,
    ) -> Vec<f64> {
        let batch = trace.batch;
        assert_eq!(grad_outputs.len(), batch * self.outputs(), "gradient rows");
        if let Some(g) = grads.as_deref() {
            assert_eq!(g.len(), self.params.len(), "gradient length");
        }
        let layers = self.layer_count();
        // ∂loss/∂(pre-activation) of the last layer.
        let outputs = trace.outputs();
        let mut delta: Vec<f64> = match self.output {
            OutputActivation::Linear => grad_outputs.to_vec(),
            OutputActivation::Sigmoid => grad_outputs
                .iter()
                .zip(outputs)
                .map(|(&g, &y)| g * y * (1.0 - y))
                .collect(),
        };
        for l in (0..layers).rev() {
            let s = self.layer(l);
            let weights = &self.params[s.weights.clone()];
            let input = &trace.activations[l];
            let wanted = l > 0 || input_grads;
            let mut grad_input = vec![0.0; if wanted { batch * s.inputs } else { 0 }];
            for (row, (x_row, d_row)) in input
                .chunks_exact(s.inputs)
                .zip(delta.chunks_exact(s.outputs))
                .enumerate()
            {
                if wanted {
                    let gi_row = &mut grad_input[row * s.inputs..(row + 1) * s.inputs];
                    for (gi, w_row) in gi_row.iter_mut().zip(weights.chunks_exact(s.outputs)) {
                        *gi = dot(w_row, d_row);
                    }
                }
                if let Some(g) = grads.as_deref_mut() {
                    let (gw, gb) =
                        g[s.weights.start..s.bias.end].split_at_mut(s.inputs * s.outputs);
                    for (&x, gw_row) in x_row.iter().zip(gw.chunks_exact_mut(s.outputs)) {
                        if x != 0.0 {
                            axpy(gw_row, x, d_row);
                        }
                    }
                    axpy(gb, 1.0, d_row);
                }
            }
            if l > 0 {
                // Through the ReLU of layer l − 1: its output is `input`.
                for (g, &x) in grad_input.iter_mut().zip(input) {
                    if x <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
            delta = grad_input;
        }
        delta
    }
}

/// `1 / (1 + e^−x)`, computed without overflow for large |x|.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `y += a·x` over the length of `y`. Index loops over slices cut to one
/// length: the optimiser drops the bounds checks and vectorises, and the
/// unoptimised test build stays reasonably fast.
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    let n = y.len();
    let x = &x[..n];
    let mut i = 0;
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// `Σ a_i·b_i` over the length of `a`, in four interleaved partial sums (so
/// the additions need not wait for one another).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    let b = &b[..n];
    let mut sums = [0.0; 4];
    let mut i = 0;
    while i + 4 <= n {
        sums[0] += a[i] * b[i];
        sums[1] += a[i + 1] * b[i + 1];
        sums[2] += a[i + 2] * b[i + 2];
        sums[3] += a[i + 3] * b[i + 3];
        i += 4;
    }
    let mut total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

/// Adam (Kingma & Ba 2015) for one parameter vector: first and second
/// moment estimates with bias correction.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// The step size α.
    pub learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    first_moment: Vec<f64>,
    second_moment: Vec<f64>,
    steps: i32,
}

impl Adam {
    /// Adam with step size `learning_rate` and the usual β₁ = 0.9,
    /// β₂ = 0.999, ε = 10⁻⁸, for `len` parameters.
    pub fn new(learning_rate: f64, len: usize) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            first_moment: vec![0.0; len],
            second_moment: vec![0.0; len],
            steps: 0,
        }
    }

    /// One descent step on `params` along the gradient `grads`.
    ///
    /// # Panics
    /// When the lengths differ from the one Adam was made for.
    pub fn step(&mut self, params: &mut [f64], grads: &[f64]) {
        assert_eq!(
            params.len(),
            self.first_moment.len(),
            "Adam parameter count"
        );
        assert_eq!(grads.len(), self.first_moment.len(), "Adam gradient count");
        self.steps = self.steps.saturating_add(1);
        let correction1 = 1.0 - self.beta1.powi(self.steps);
        let correction2 = 1.0 - self.beta2.powi(self.steps);
        let step_size = self.learning_rate * correction2.sqrt() / correction1;
        let epsilon = self.epsilon * correction2.sqrt();
        for ((p, &g), (m, v)) in params.iter_mut().zip(grads).zip(
            self.first_moment
                .iter_mut()
                .zip(self.second_moment.iter_mut()),
        ) {
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *p -= step_size * *m / (v.sqrt() + epsilon);
        }
    }
}
