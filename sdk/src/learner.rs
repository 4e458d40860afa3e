//! The [`Learner`] trait: a compression algorithm.

use crate::bindings::learner_plugin::CompressReport;
use crate::bindings::types::{Measure, PluginInfo, Target};
use crate::{Extra, Model, ParamSpec, Params, Result};

/// Who a plugin is: what `describe` returns, less the parameter schema (the
/// SDK fills that in from the parameter struct).
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    /// Short machine name, e.g. `weight_sparse`.
    pub name: String,
    /// Semantic version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// One-paragraph description.
    pub summary: String,
    /// The measures a learner can bring under a target (see
    /// [`Learner::compress`]); empty by default and for optimizers.
    pub targets: Vec<Measure>,
    /// The target the learner is made for, which `pf compress` uses when
    /// the user gives none (see [`Info::made_for`]).
    pub made_for: Option<(Measure, f64)>,
}

/// The key of the parameter schema's root under which [`Info::made_for`]
/// travels to the host: `{"measure": "flops", "ratio": 0.5}`.
pub const MADE_FOR_KEY: &str = "x-pf-target";

impl Info {
    /// An `Info` from its three parts.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Info {
            name: name.into(),
            version: version.into(),
            summary: summary.into(),
            targets: Vec::new(),
            made_for: None,
        }
    }

    /// Declares the measures the learner can meet a target for.
    pub fn with_targets(mut self, targets: &[Measure]) -> Self {
        self.targets = targets.to_vec();
        self
    }

    /// Declares the target the learner is made for: `pf compress` runs
    /// under it when the user gives no `--target` (a channel pruner at half
    /// the FLOPs, say). Its measure is added to [`Info::targets`] first if
    /// it is not there. A learner that declares none runs under the first
    /// of its targets at pf's default ratio for that measure, and one with
    /// no targets at all runs as a control, rewarded for accuracy alone.
    pub fn made_for(mut self, measure: Measure, ratio: f64) -> Self {
        if !self.targets.contains(&measure) {
            self.targets.insert(0, measure);
        }
        self.made_for = Some((measure, ratio));
        self
    }

    pub(crate) fn into_plugin_info(self, params_schema: String) -> PluginInfo {
        let params_schema = match self.made_for {
            Some((measure, ratio)) => with_made_for(params_schema, measure, ratio),
            None => params_schema,
        };
        PluginInfo {
            name: self.name,
            version: self.version,
            summary: self.summary,
            params_schema,
            targets: self.targets,
        }
    }
}

/// `schema` with the learner's own target at its root (the contract's
/// `plugin-info` has no field for it, so it travels as a schema annotation,
/// which hosts that do not know it ignore).
fn with_made_for(schema: String, measure: Measure, ratio: f64) -> String {
    let Ok(serde_json::Value::Object(mut root)) = serde_json::from_str(&schema) else {
        return schema;
    };
    let measure = match measure {
        Measure::Flops => "flops",
        Measure::Params => "params",
        Measure::Size => "size",
    };
    root.insert(
        MADE_FOR_KEY.to_string(),
        serde_json::json!({ "measure": measure, "ratio": ratio }),
    );
    serde_json::Value::Object(root).to_string()
}

/// What a compression did, for pf's report: a one-line summary and named
/// numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One line for the user.
    pub summary: String,
    /// Named numbers, e.g. `("sparsity", 0.8)`.
    pub values: Vec<(String, f64)>,
}

impl Report {
    /// A report with this summary and no values.
    pub fn new(summary: impl Into<String>) -> Self {
        Report {
            summary: summary.into(),
            values: Vec::new(),
        }
    }

    /// The same report with one more named value.
    pub fn with(mut self, name: impl Into<String>, value: f64) -> Self {
        self.values.push((name.into(), value));
        self
    }

    pub(crate) fn into_wit(self) -> CompressReport {
        CompressReport {
            summary: self.summary,
            values: self.values,
        }
    }
}

/// A compression algorithm. Implement it on the type that holds the state a
/// compression keeps between the host's calls, then export it with
/// [`export_learner!`](crate::export_learner).
///
/// The host calls, per trial: [`search_space`](Learner::search_space) (any
/// time), [`compress`](Learner::compress) once, then
/// [`on_train_step`](Learner::on_train_step) after each of its fine-tuning
/// steps, then [`finish`](Learner::finish) once. The SDK keeps the value
/// `compress` returns and hands it to the later calls; a call that comes
/// before any `compress` is answered with an `invalid-argument` error.
pub trait Learner: Sized + 'static {
    /// The hyper-parameters, as a struct (see [`Params`]).
    type Params: Params;

    /// Name, version and summary.
    fn info() -> Info;

    /// The search space. By default one dimension per field of
    /// [`Self::Params`]; override it to add dimensions that depend on the model
    /// (e.g. one ratio per layer, with the layer's features as `context`):
    /// their values reach [`compress`](Learner::compress) in [`Extra`]. The SDK
    /// validates the space (see [`space::validate_strict`](crate::space::validate_strict)).
    ///
    /// `settings` are the parameters with the values the user fixed (the
    /// defaults elsewhere), so the space may depend on them, e.g. per-layer
    /// dimensions only when a `per_layer` switch is on. `target` is the
    /// budget the trials will run under, if any, so dimensions it decides
    /// can be left out.
    fn search_space(
        settings: &Self::Params,
        target: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let _ = (settings, target, model);
        Self::Params::search_space()
    }

    /// Compresses the model with these parameters and returns the state kept
    /// for the later calls, with a report of what was done so far.
    ///
    /// With a `target` (only ever one of the measures [`Info::targets`]
    /// declares), the model must meet it when [`finish`](Learner::finish)
    /// returns: the host measures the model and fails the trial otherwise.
    fn compress(
        params: Self::Params,
        target: Option<Target>,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)>;

    /// Called after each of the host's fine-tuning steps (`step` of `total`,
    /// from 1). Does nothing by default.
    fn on_train_step(&mut self, model: &Model, step: u32, total: u32) -> Result<()> {
        let _ = (model, step, total);
        Ok(())
    }

    /// Called once after the host's fine-tuning: bring the model to its
    /// target and report. Returns an empty report by default.
    fn finish(&mut self, model: &Model) -> Result<Report> {
        let _ = model;
        Ok(Report::default())
    }
}
