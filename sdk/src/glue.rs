//! What the export macros expand to call: the `Guest` implementations,
//! generic over the plugin's type. Not part of the public API.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use crate::bindings::learner_plugin::CompressReport;
use crate::bindings::optimizer_plugin::{GuestSearch, Search};
use crate::bindings::types::{PluginInfo, Target};
use crate::{space, Error, Learner, Model, Optimizer, Outcome, Param, ParamSpec, Params, Result};

pub use wit_bindgen;

/// Installs the panic hook once: a panic's message and location go to the
/// host's log at error level, prefixed `panic: `, before the module traps.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = if let Some(s) = payload.downcast_ref::<&str>() {
                s
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.as_str()
            } else {
                "(a panic payload that is not a string)"
            };
            let text = match info.location() {
                Some(at) => format!(
                    "panic: {message} (at {}:{}:{})",
                    at.file(),
                    at.line(),
                    at.column()
                ),
                None => format!("panic: {message}"),
            };
            crate::log(crate::Level::Error, &text);
        }));
    });
}

thread_local! {
    /// The learner's state between `compress` and `finish`.
    static LEARNER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// `describe` of a learner.
pub fn learner_describe<L: Learner>() -> PluginInfo {
    install_panic_hook();
    L::info().into_plugin_info(L::Params::schema_json())
}

fn learner_space<L: Learner>(
    settings: &L::Params,
    target: Option<Target>,
    model: &Model,
) -> Result<Vec<ParamSpec>> {
    let space = L::search_space(settings, target, model)?;
    space::validate_strict(&space).map_err(|e| {
        Error::invalid_argument(format!("the plugin's search space: {}", e.message()))
    })?;
    Ok(space)
}

/// `search-space` of a learner.
pub fn learner_search_space<L: Learner>(
    settings: Vec<Param>,
    target: Option<Target>,
) -> Result<Vec<ParamSpec>> {
    install_panic_hook();
    let settings = L::Params::decode_settings(&settings)?;
    learner_space::<L>(&settings, target, &Model::new())
}

/// `compress` of a learner: decodes the parameters, runs it, keeps the state.
pub fn learner_compress<L: Learner>(
    params: Vec<Param>,
    target: Option<Target>,
) -> Result<CompressReport> {
    install_panic_hook();
    let model = Model::new();
    // The parameters themselves are the settings the space depends on.
    let settings = L::Params::decode_settings(&params)?;
    if let Some(t) = target {
        if !(t.ratio > 0.0 && t.ratio <= 1.0) {
            return Err(Error::invalid_argument(format!(
                "the target ratio {} is not in (0, 1]",
                t.ratio
            )));
        }
    }
    let space = learner_space::<L>(&settings, target, &model)?;
    let (decoded, extra) = L::Params::decode(&params, &space)?;
    // A new compression replaces any earlier state.
    LEARNER.with(|s| s.borrow_mut().take());
    let (learner, report) = L::compress(decoded, target, &extra, &model)?;
    LEARNER.with(|s| *s.borrow_mut() = Some(Box::new(learner)));
    Ok(report.into_wit())
}

/// Runs `f` on the learner's state, or fails when there is none.
fn with_learner<L: Learner, T>(
    call: &str,
    f: impl FnOnce(&mut L, &Model) -> Result<T>,
) -> Result<T> {
    let mut state = LEARNER
        .with(|s| s.borrow_mut().take())
        .ok_or_else(|| Error::invalid_argument(format!("`{call}` was called before `compress`")))?;
    let result = match state.downcast_mut::<L>() {
        Some(learner) => f(learner, &Model::new()),
        None => Err(Error::host("the SDK's learner state has another type")),
    };
    LEARNER.with(|s| *s.borrow_mut() = Some(state));
    result
}

/// `on-train-step` of a learner.
pub fn learner_on_train_step<L: Learner>(step: u32, total: u32) -> Result<()> {
    install_panic_hook();
    with_learner::<L, _>("on-train-step", |l, m| l.on_train_step(m, step, total))
}

/// `finish` of a learner.
pub fn learner_finish<L: Learner>() -> Result<CompressReport> {
    install_panic_hook();
    with_learner::<L, _>("finish", |l, m| l.finish(m)).map(crate::Report::into_wit)
}

/// `describe` of an optimizer.
pub fn optimizer_describe<O: Optimizer>() -> PluginInfo {
    install_panic_hook();
    O::info().into_plugin_info(O::Options::schema_json())
}

/// The `search` resource of an optimizer `O`.
pub struct SearchGlue<O>(RefCell<O>);

impl<O: Optimizer> GuestSearch for SearchGlue<O> {
    fn create(space: Vec<ParamSpec>, budget: u32, set: Vec<Param>) -> Result<Search> {
        install_panic_hook();
        space::validate(&space)?;
        let (options, _) = O::Options::decode(&set, &[])
            .map_err(|e| Error::invalid_argument(format!("optimizer options: {}", e.message())))?;
        let given: Vec<&str> = set.iter().map(|p| p.name.as_str()).collect();
        let search = O::create_given(space, budget, options, &given)?;
        Ok(Search::new(SearchGlue(RefCell::new(search))))
    }

    fn suggest(&self) -> Result<Vec<Param>> {
        install_panic_hook();
        self.0.borrow_mut().suggest()
    }

    fn observe(&self, params: Vec<Param>, outcome: Outcome) -> Result<()> {
        install_panic_hook();
        self.0.borrow_mut().observe(params, outcome)
    }
}
