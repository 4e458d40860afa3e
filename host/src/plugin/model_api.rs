//! The host side of the `model` interface: the network a learner compresses,
//! with the data and training settings of the trial.

use super::bindings::model::{self as wit, Error};
use super::budget::{self, Budget};
use super::state::PluginState;
use super::tensor::HostTensorData;
use crate::data::{Batcher, Dataset, Normalization};
use crate::graph::{Op, Quantizer, Shape, INPUT};
use crate::model::Model;
use crate::rng;
use crate::train::{self, OptimizerKind, Schedule, ScheduleKind, TrainConfig};
use candle_core::DType;
use std::sync::Arc;
use wasmtime::component::Resource;

type Call<T> = wasmtime::Result<Result<T, Error>>;

/// Most images one `sample-features` call may run through the model (they
/// go through in one batch).
pub const MAX_SAMPLED_IMAGES: u32 = 1024;

/// The data a trial trains and evaluates on.
pub struct TrialData {
    /// Training split (fine-tuning, feature samples, gradients).
    pub train: Dataset,
    /// Validation split (`evaluate`).
    pub val: Dataset,
    /// Input normalisation.
    pub norm: Normalization,
}

/// How the host fine-tunes during a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct FineTune {
    /// Samples per step.
    pub batch_size: usize,
    /// Constant learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Show a progress bar for the host's own fine-tuning.
    pub progress: bool,
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            batch_size: 64,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            progress: false,
        }
    }
}

impl FineTune {
    /// The training configuration of `steps` fine-tuning steps.
    pub fn config(&self, steps: u64, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs: u64::MAX / 2,
            max_steps: Some(steps),
            batch_size: self.batch_size,
            optimizer: OptimizerKind::Sgd {
                momentum: self.momentum,
                nesterov: false,
            },
            weight_decay: self.weight_decay,
            schedule: Schedule {
                base: self.lr,
                kind: ScheduleKind::Constant,
                warmup_steps: 0,
            },
            label_smoothing: 0.0,
            augment: crate::data::Augment::None,
            seed,
            distill: None,
        }
    }
}

/// The model a learner works on, with everything its calls need.
pub struct ModelContext {
    /// The candidate: a fresh copy of the baseline.
    pub model: Model,
    /// Training and validation data.
    pub data: Arc<TrialData>,
    /// Fine-tuning settings.
    pub finetune: FineTune,
    /// Seed of the trial; every random choice of the host derives from it.
    pub seed: u64,
    /// How many times the learner has called `fine-tune` (each call uses a
    /// fresh data order).
    pub finetune_calls: u64,
    /// How many times the learner has asked for gradients (each call draws
    /// fresh batches).
    pub gradient_calls: u64,
    /// Auxiliary classifiers the learner added; its own `fine-tune` calls
    /// train them with the network.
    pub aux_heads: Vec<train::auxiliary::AuxHead>,
}

/// Most auxiliary heads one trial may add.
const MAX_AUX_HEADS: usize = 16;

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{e:#}"))
}

fn shape_dims(s: &Shape) -> Vec<u32> {
    match *s {
        Shape::Map { c, h, w } => vec![c as u32, h as u32, w as u32],
        Shape::Vector { n } => vec![n as u32],
    }
}

impl ModelContext {
    /// A context for a learner instance: the model it works on, the trial's
    /// data, fine-tuning settings and seed, and no fine-tuning done yet.
    pub fn new(model: Model, data: Arc<TrialData>, finetune: FineTune, seed: u64) -> Self {
        ModelContext {
            model,
            data,
            finetune,
            seed,
            finetune_calls: 0,
            gradient_calls: 0,
            aux_heads: Vec::new(),
        }
    }

    fn weight(&self, layer: &str) -> Result<&candle_core::Var, Error> {
        self.model
            .params
            .get(&format!("{layer}.weight"))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "model `{}` has no weight layer `{layer}`",
                    self.model.graph.name
                ))
            })
    }

    /// Evaluates on the validation split (`batches` = 0: all of it).
    pub fn evaluate(&self, batches: u32) -> anyhow::Result<train::Metrics> {
        let bs = 256;
        let data = if batches == 0 || (batches as usize) * bs >= self.data.val.len() {
            None
        } else {
            let idx: Vec<usize> = (0..batches as usize * bs).collect();
            Some(self.data.val.subset(&idx))
        };
        let m = train::evaluate(
            &self.model,
            data.as_ref().unwrap_or(&self.data.val),
            &self.data.norm,
            bs,
            false,
        )?;
        if !m.loss.is_finite() {
            anyhow::bail!(
                "the model's validation loss is {} (non-finite weights?)",
                m.loss
            );
        }
        Ok(m)
    }

    /// The configuration of the next fine-tuning run of `steps` steps: each
    /// run gets its own data order, derived from the trial seed.
    pub fn next_config(&mut self, steps: u64, purpose: &str) -> TrainConfig {
        use rand::RngCore;
        let seed = rng::stream(self.seed, &[purpose, &self.finetune_calls.to_string()]).next_u64();
        self.finetune_calls += 1;
        self.finetune.config(steps, seed)
    }

    /// A trainer for the next `steps` fine-tuning steps on `data` (this
    /// context's data, held by the caller so the model can be borrowed).
    pub fn trainer<'a>(
        &mut self,
        data: &'a TrialData,
        steps: u64,
        purpose: &str,
    ) -> train::Trainer<'a> {
        train::Trainer {
            config: self.next_config(steps, purpose),
            data: &data.train,
            norm: data.norm.clone(),
            teacher: None,
            checkpoint: None,
            progress: self.finetune.progress && purpose == "host-finetune",
            auxiliary: &[],
        }
    }

    /// Fine-tunes for `steps` steps (no plugin calls in between), with the
    /// auxiliary heads the learner added, stopping between steps once
    /// `budget`'s deadline has passed.
    pub fn fine_tune(
        &mut self,
        steps: u64,
        purpose: &str,
        budget: &Budget,
    ) -> anyhow::Result<train::TrainReport> {
        let data = self.data.clone();
        let heads = std::mem::take(&mut self.aux_heads);
        let mut trainer = self.trainer(&data, steps, purpose);
        trainer.auxiliary = &heads;
        let mut hook = budget::DeadlineHook(budget);
        let report = trainer.run(&mut self.model, Some(&mut hook));
        self.aux_heads = heads;
        report
    }

    /// The host work of running `samples` samples through the model
    /// forwards (`factor` 1) or training on them (`factor`
    /// [`budget::TRAIN_COST_FACTOR`]), in element-operations.
    pub fn work_of(&self, samples: u64, factor: u64) -> u64 {
        let macs = self
            .model
            .graph
            .cost()
            .map(|c| c.macs.saturating_add(c.params))
            .unwrap_or(u64::MAX);
        budget::times(budget::times(samples, macs.max(1)), factor)
    }

    /// The weight layers as the plugin sees them.
    pub fn layer_infos(&self) -> anyhow::Result<Vec<wit::LayerInfo>> {
        let g = &self.model.graph;
        let shapes = g.validate()?;
        let cost = g.cost()?;
        let coupling = g.coupling()?;
        let input_shape = Shape::Map {
            c: g.input.channels,
            h: g.input.height,
            w: g.input.width,
        };
        let mut out = Vec::new();
        for (i, layer) in g.layers.iter().enumerate() {
            if !layer.op.has_weight() {
                continue;
            }
            let w = self.model.params[&format!("{}.weight", layer.name)].as_tensor();
            let src = &layer.inputs[0];
            let in_shape = if src == INPUT {
                input_shape
            } else {
                shapes[g.index_of(src).expect("validated graph")]
            };
            let (kind, stride) = match &layer.op {
                Op::Conv2d { stride, .. } if layer.op.is_depthwise() => {
                    (wit::LayerKind::DepthwiseConv2d, stride[0])
                }
                Op::Conv2d { stride, .. } => (wit::LayerKind::Conv2d, stride[0]),
                _ => (wit::LayerKind::Linear, 1),
            };
            let input_group = coupling.groups.iter().position(|gr| {
                gr.consumers.contains(&layer.name) || gr.followers.contains(&layer.name)
            });
            out.push(wit::LayerInfo {
                name: layer.name.clone(),
                kind,
                index: out.len() as u32,
                weight_shape: w.dims().iter().map(|&d| d as u32).collect(),
                input_shape: shape_dims(&in_shape),
                output_shape: shape_dims(&shapes[i]),
                stride: stride as u32,
                macs: cost.layers[i].macs,
                params: cost.layers[i].params,
                nonzero_weights: (w.elem_count() as u64)
                    .saturating_sub(crate::model::zero_count(w)?),
                output_group: coupling.layer_group.get(&layer.name).map(|&g| g as u32),
                input_group: input_group.map(|g| g as u32),
                input_prunable: input_group.is_some_and(|g| coupling.groups[g].prunable),
            });
        }
        Ok(out)
    }

    /// Size and cost of the model now.
    pub fn cost(&self) -> anyhow::Result<wit::ModelCost> {
        let f = self.model.footprint()?;
        Ok(wit::ModelCost {
            macs: f.macs,
            params: f.params,
            nonzero_params: f.nonzero_params,
            bytes: f.bytes,
        })
    }
}

impl PluginState {
    /// The gradients of `layers`' weights of the final cross-entropy, or of
    /// auxiliary head `head`'s, over `batches` fresh training batches.
    fn gradients_of(
        &mut self,
        head: Option<usize>,
        layers: Vec<String>,
        batches: u32,
    ) -> Call<Vec<Resource<HostTensorData>>> {
        let ctx = self.ctx()?;
        for layer in &layers {
            if let Err(e) = ctx.weight(layer) {
                return Ok(Err(e));
            }
        }
        if batches == 0 || batches > 10_000 {
            return Ok(Err(Error::InvalidArgument(format!(
                "gradient needs 1 to 10000 batches, not {batches}"
            ))));
        }
        let size = ctx.finetune.batch_size;
        let work = ctx.work_of(
            u64::from(batches).saturating_mul(size as u64),
            budget::TRAIN_COST_FACTOR,
        );
        self.charge(&format!("gradients over {batches} batches"), work)?;
        let budget = self.budget.clone();
        let ctx = self.ctx()?;
        let batcher = Batcher::new(&ctx.data.train, ctx.data.norm.clone(), ctx.model.device());
        let draw = ctx.gradient_calls;
        ctx.gradient_calls += 1;
        // Each batch's loss first checks the deadline.
        let in_time = || budget.check_time().map_err(anyhow::Error::msg);
        let grads = match head {
            None => ctx.model.loss_gradients(
                &batcher,
                batches as usize,
                size,
                ctx.seed,
                draw,
                &[],
                |out, labels| {
                    in_time()?;
                    Ok(crate::nn::loss::cross_entropy(&out.output, labels, 0.0)?)
                },
            ),
            Some(h) => {
                let head = &ctx.aux_heads[h];
                ctx.model.loss_gradients(
                    &batcher,
                    batches as usize,
                    size,
                    ctx.seed,
                    draw,
                    &[head.tensor.as_str()],
                    |out, labels| {
                        in_time()?;
                        head.loss(out, labels)
                    },
                )
            }
        };
        let grads = match grads {
            Ok(g) => g,
            Err(_) if budget.past_deadline() => return Err(self.budget_trap(budget.time_message())),
            Err(e) => return Ok(Err(invalid(e))),
        };
        let mut out = Vec::with_capacity(layers.len());
        for layer in &layers {
            match grads.get(layer) {
                Some(g) => out.push(self.push_tensor(g.clone())?),
                None => return Ok(Err(Error::Host(format!("no gradient reached `{layer}`")))),
            }
        }
        Ok(Ok(out))
    }

    fn ctx(&mut self) -> wasmtime::Result<&mut ModelContext> {
        // Only learners import `model`; the context is absent only while the
        // host itself is training, when the plugin cannot be running.
        self.model
            .as_mut()
            .ok_or_else(|| wasmtime::Error::msg("the model is not available to this plugin now"))
    }
}

impl wit::Host for PluginState {
    fn layers(&mut self) -> wasmtime::Result<Vec<wit::LayerInfo>> {
        let params = self.ctx()?.model.graph.cost().map_or(0, |c| c.params);
        self.charge("listing the layers", params)?;
        self.ctx()?.layer_infos().map_err(wasmtime::Error::msg)
    }

    fn groups(&mut self) -> wasmtime::Result<Vec<wit::ChannelGroup>> {
        let map = self
            .ctx()?
            .model
            .graph
            .coupling()
            .map_err(wasmtime::Error::msg)?;
        Ok(map
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| wit::ChannelGroup {
                id: i as u32,
                channels: g.channels as u32,
                producers: g.producers,
                followers: g.followers,
                consumers: g.consumers,
                prunable: g.prunable,
                reason: g.reason,
            })
            .collect())
    }

    fn cost(&mut self) -> wasmtime::Result<wit::ModelCost> {
        self.ctx()?.cost().map_err(wasmtime::Error::msg)
    }

    fn weight(&mut self, layer: String) -> Call<Resource<HostTensorData>> {
        let w = match self.ctx()?.weight(&layer) {
            Ok(w) => w.as_tensor().copy()?,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.push_tensor(w)?))
    }

    fn set_weight(&mut self, layer: String, weight: Resource<HostTensorData>) -> Call<()> {
        let t = self.tensor(&weight)?;
        let ctx = self.ctx()?;
        let var = match ctx.weight(&layer) {
            Ok(v) => v.clone(),
            Err(e) => return Ok(Err(e)),
        };
        if t.dims() != var.dims() {
            return Ok(Err(Error::InvalidArgument(format!(
                "the weight of `{layer}` has shape {:?}, not {:?}",
                var.dims(),
                t.dims()
            ))));
        }
        // x·0 is 0 for every finite x and NaN for NaN and ±∞ (a max over
        // the values would skip NaN).
        let finite = (&t * 0.0)?.sum_all()?.to_scalar::<f32>()? == 0.0;
        if !finite {
            return Ok(Err(Error::Numerical(format!(
                "the new weight of `{layer}` contains NaN or infinite values"
            ))));
        }
        var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        Ok(ctx.model.apply_masks().map_err(invalid))
    }

    fn mask(&mut self, layer: String) -> Call<Option<Resource<HostTensorData>>> {
        let ctx = self.ctx()?;
        if let Err(e) = ctx.weight(&layer) {
            return Ok(Err(e));
        }
        match ctx.model.masks.get(&layer).cloned() {
            None => Ok(Ok(None)),
            Some(m) => Ok(Ok(Some(self.push_tensor(m)?))),
        }
    }

    fn set_mask(&mut self, layer: String, mask: Resource<HostTensorData>) -> Call<()> {
        let m = self.tensor(&mask)?;
        let ctx = self.ctx()?;
        if let Err(e) = ctx.weight(&layer) {
            return Ok(Err(e));
        }
        Ok(ctx.model.set_mask(&layer, m).map_err(invalid))
    }

    fn prune_input_channels(&mut self, layer: String, keep: Vec<u32>) -> Call<()> {
        let ctx = self.ctx()?;
        let coupling = ctx.model.graph.coupling().map_err(wasmtime::Error::msg)?;
        let group = coupling
            .groups
            .iter()
            .find(|g| g.consumers.contains(&layer) || g.followers.contains(&layer));
        let Some(group) = group else {
            return Ok(Err(match ctx.model.graph.layer(&layer) {
                None => Error::NotFound(format!("no layer `{layer}`")),
                Some(_) => Error::Unsupported(format!(
                    "the input channels of `{layer}` come straight from the model input and cannot be pruned"
                )),
            }));
        };
        let Some(producer) = group.producers.first().cloned() else {
            return Ok(Err(Error::Unsupported(format!(
                "the input channels of `{layer}` have no producing layer"
            ))));
        };
        let index = coupling.groups.iter().position(|g| std::ptr::eq(g, group));
        let kept: Vec<usize> = keep.iter().map(|&k| k as usize).collect();
        if let Err(e) = ctx.model.prune_channels(&producer, &kept) {
            return Ok(Err(Error::InvalidArgument(format!(
                "pruning the inputs of `{layer}`: {e:#}"
            ))));
        }
        // Heads that read the pruned channels lose them too.
        for head in &mut ctx.aux_heads {
            if coupling.layer_group.get(&head.source).copied() == index {
                head.keep_channels(&keep).map_err(wasmtime::Error::msg)?;
            }
        }
        Ok(Ok(()))
    }

    fn add_auxiliary_head(&mut self, layer: String) -> Call<u32> {
        let ctx = self.ctx()?;
        let graph = &ctx.model.graph;
        let Some(at) = graph.index_of(&layer) else {
            return Ok(Err(Error::NotFound(format!("no layer `{layer}`"))));
        };
        if !graph.layers[at].op.has_weight() {
            return Ok(Err(Error::InvalidArgument(format!(
                "`{layer}` is not a weight layer; heads go after convolutions and linear layers"
            ))));
        }
        if ctx.aux_heads.len() >= MAX_AUX_HEADS {
            return Ok(Err(Error::LimitExceeded(format!(
                "at most {MAX_AUX_HEADS} auxiliary heads"
            ))));
        }
        // The block's output; in a residual block, the stream after the add
        // (and its ReLU), which is what the next stage reads.
        let mut tensor = graph.block_output(&layer).to_string();
        for step in [
            (|op: &Op| matches!(op, Op::Add)) as fn(&Op) -> bool,
            |op: &Op| matches!(op, Op::Relu | Op::Relu6),
        ] {
            if let [one] = graph.consumers(&tensor).as_slice() {
                if step(&one.op) {
                    tensor = one.name.clone();
                }
            }
        }
        let shapes = graph.validate().map_err(wasmtime::Error::msg)?;
        let channels = match shapes[graph.index_of(&tensor).expect("block output exists")] {
            Shape::Map { c, .. } => c,
            Shape::Vector { n } => n,
        };
        let index = ctx.aux_heads.len();
        let head = train::auxiliary::AuxHead::new(
            &layer,
            &tensor,
            channels,
            ctx.data.train.classes,
            ctx.seed,
            index,
            &ctx.model,
        )
        .map_err(wasmtime::Error::msg)?;
        ctx.aux_heads.push(head);
        Ok(Ok(index as u32))
    }

    fn auxiliary_gradients(
        &mut self,
        head: u32,
        layers: Vec<String>,
        batches: u32,
    ) -> Call<Vec<Resource<HostTensorData>>> {
        let ctx = self.ctx()?;
        if head as usize >= ctx.aux_heads.len() {
            return Ok(Err(Error::NotFound(format!(
                "no auxiliary head {head}; {} were added",
                ctx.aux_heads.len()
            ))));
        }
        self.gradients_of(Some(head as usize), layers, batches)
    }

    fn set_quantizer(
        &mut self,
        layer: String,
        target: wit::QuantTarget,
        q: wit::Quantizer,
    ) -> Call<()> {
        let ctx = self.ctx()?;
        let q = match q {
            wit::Quantizer::None => None,
            wit::Quantizer::Uniform(u) => Some(Quantizer::Uniform {
                bits: u.bits,
                symmetric: u.symmetric,
                per_channel: u.per_channel,
                bucket: u.bucket,
            }),
            wit::Quantizer::Codebook(c) => Some(Quantizer::Codebook { centroids: c }),
        };
        if let Some(q) = &q {
            if let Err(e) = q.validate() {
                return Ok(Err(Error::InvalidArgument(format!(
                    "quantizer for `{layer}`: {e}"
                ))));
            }
            if target == wit::QuantTarget::Activations
                && matches!(
                    q,
                    Quantizer::Uniform {
                        per_channel: true,
                        ..
                    } | Quantizer::Uniform { bucket: 1.., .. }
                )
            {
                return Ok(Err(Error::Unsupported(
                    "activation quantizers are per tensor; set per-channel to false and bucket to 0"
                        .into(),
                )));
            }
        }
        let graph = &mut ctx.model.graph;
        if graph.layer(&layer).is_none() {
            return Ok(Err(Error::NotFound(format!("no layer `{layer}`"))));
        }
        // Activations of a convolution or linear layer are quantized where
        // its block ends (after its batch norm and activation): the tensor an
        // int8 kernel writes, and the one int8 export takes the range of.
        let at = match target {
            wit::QuantTarget::Weights => layer.clone(),
            wit::QuantTarget::Activations => graph.block_output(&layer).to_string(),
        };
        let Some(l) = graph.layers.iter_mut().find(|l| l.name == at) else {
            return Ok(Err(Error::NotFound(format!("no layer `{at}`"))));
        };
        if target == wit::QuantTarget::Weights && !l.op.has_weight() {
            return Ok(Err(Error::InvalidArgument(format!(
                "`{layer}` has no weight to quantize"
            ))));
        }
        let quant = l.quant.get_or_insert_with(Default::default);
        match target {
            wit::QuantTarget::Weights => quant.weight = q,
            wit::QuantTarget::Activations => quant.activation = q,
        }
        if quant.weight.is_none() && quant.activation.is_none() {
            l.quant = None;
        }
        Ok(ctx.model.ensure_quant_buffers().map_err(invalid))
    }

    fn sample_features(
        &mut self,
        layer: String,
        images: u32,
        per_image: u32,
    ) -> Call<wit::FeatureSample> {
        let max = self.limits.max_tensor_elements;
        let ctx = self.ctx()?;
        let Some(l) = ctx.model.graph.layer(&layer) else {
            return Ok(Err(Error::NotFound(format!("no layer `{layer}`"))));
        };
        let patch = match &l.op {
            Op::Conv2d {
                in_channels,
                kernel,
                groups,
                ..
            } => in_channels / groups * kernel[0] * kernel[1],
            Op::Linear { in_features, .. } => *in_features,
            other => {
                return Ok(Err(Error::Unsupported(format!(
                    "`{layer}` is a {} layer; features can be sampled for conv2d and linear layers",
                    other.kind()
                ))))
            }
        };
        if images > MAX_SAMPLED_IMAGES {
            return Ok(Err(Error::LimitExceeded(format!(
                "sample-features reads at most {MAX_SAMPLED_IMAGES} images, not {images}"
            ))));
        }
        let outputs_per = match &l.op {
            Op::Conv2d { out_channels, .. } => *out_channels,
            Op::Linear { out_features, .. } => *out_features,
            _ => 0,
        };
        let images_used = u64::from(images).min(ctx.data.train.len() as u64);
        let samples = images_used.saturating_mul(u64::from(per_image));
        let widest = patch.max(outputs_per) as u64;
        if samples.saturating_mul(widest) > max {
            return Ok(Err(Error::LimitExceeded(format!(
                "{samples} samples of {patch} inputs and {outputs_per} outputs exceed the {max} elements a tensor may have"
            ))));
        }
        let work = ctx.work_of(images_used, 1);
        self.charge(&format!("sampling features of {images_used} images"), work)?;
        let ctx = self.ctx()?;
        let batcher = Batcher::new(&ctx.data.train, ctx.data.norm.clone(), ctx.model.device());
        let seed = ctx.seed;
        let s = match ctx.model.sample_features(
            &batcher,
            &layer,
            images as usize,
            per_image as usize,
            seed,
        ) {
            Ok(s) => s,
            Err(e) => return Ok(Err(invalid(e))),
        };
        let inputs = self.push_tensor(s.inputs.to_dtype(DType::F32)?)?;
        let outputs = self.push_tensor(s.outputs.to_dtype(DType::F32)?)?;
        Ok(Ok(wit::FeatureSample { inputs, outputs }))
    }

    fn gradient(&mut self, layer: String, batches: u32) -> Call<Resource<HostTensorData>> {
        match self.gradients(vec![layer], batches)? {
            Ok(mut g) => Ok(Ok(g.remove(0))),
            Err(e) => Ok(Err(e)),
        }
    }

    fn gradients(
        &mut self,
        layers: Vec<String>,
        batches: u32,
    ) -> Call<Vec<Resource<HostTensorData>>> {
        self.gradients_of(None, layers, batches)
    }

    fn evaluate(&mut self, batches: u32) -> Call<wit::Metrics> {
        let ctx = self.ctx()?;
        let samples = match batches {
            0 => ctx.data.val.len() as u64,
            b => (u64::from(b) * 256).min(ctx.data.val.len() as u64),
        };
        let work = ctx.work_of(samples, 1);
        self.charge(&format!("evaluating {samples} samples"), work)?;
        let ctx = self.ctx()?;
        Ok(ctx
            .evaluate(batches)
            .map(|m| wit::Metrics {
                loss: m.loss,
                accuracy: m.accuracy,
                samples: m.samples as u64,
            })
            .map_err(|e| Error::Numerical(format!("{e:#}"))))
    }

    fn fine_tune(&mut self, steps: u32) -> Call<wit::Metrics> {
        if steps == 0 || steps > 100_000 {
            return Ok(Err(Error::InvalidArgument(format!(
                "fine-tune needs 1 to 100000 steps, not {steps}"
            ))));
        }
        let ctx = self.ctx()?;
        let work = ctx.work_of(
            u64::from(steps).saturating_mul(ctx.finetune.batch_size as u64),
            budget::TRAIN_COST_FACTOR,
        );
        self.charge(&format!("fine-tuning {steps} steps"), work)?;
        let budget = self.budget.clone();
        if let Err(e) = self
            .ctx()?
            .fine_tune(u64::from(steps), "plugin-finetune", &budget)
        {
            if budget.past_deadline() {
                return Err(self.budget_trap(budget.time_message()));
            }
            return Ok(Err(Error::Numerical(format!("{e:#}"))));
        }
        self.evaluate(0)
    }
}
