//! Loading plugins: compile once (cached by content hash), check the world
//! and contract version, refuse foreign imports, and instantiate each trial in
//! a short-lived store under the sandbox limits.

use super::bindings::{
    learner::Learner, learner::LearnerPre, optimizer::Optimizer, optimizer::OptimizerPre, types,
};
use super::bounds;
use super::error::{CallError, Cause};
use super::inspect::{self, Inspection, PluginKind};
use super::limits::Limits;
use super::state::PluginState;
use crate::model::{Measure, Target};
use anyhow::{bail, Context, Result};
use pf_registry::admission::{Admitted, Candidate, Gate};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

/// Contract versions this pf can load.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0"];

/// How a component was obtained by [`Runtime::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled now by Cranelift.
    Compiled,
    /// Read from the on-disk cache of precompiled components.
    DiskCache,
    /// Already compiled in this process.
    MemoryCache,
}

/// A loaded, checked plugin, ready to instantiate.
pub struct Plugin {
    /// What the plugin says about itself (`describe`).
    pub info: types::PluginInfo,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the component's bytes.
    pub sha256: String,
    /// World, contract version, imports and exports.
    pub inspection: Inspection,
    /// How the compiled code was obtained.
    pub source: CompileSource,
    /// The admission decision: provenance, manifest and warnings.
    pub admission: Admitted,
    /// Time to obtain the compiled code.
    pub load_seconds: f64,
    pre: Pre,
}

enum Pre {
    Learner(LearnerPre<PluginState>),
    Optimizer(OptimizerPre<PluginState>),
}

impl Plugin {
    /// Learner or optimizer.
    pub fn kind(&self) -> PluginKind {
        self.inspection.kind
    }

    /// The plugin's name, as it describes itself.
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

/// The WebAssembly engine, its linkers and the compile cache.
pub struct Runtime {
    engine: Engine,
    learner_linker: Linker<PluginState>,
    optimizer_linker: Linker<PluginState>,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<String, Component>>,
    /// Limits applied to every instance.
    pub limits: Limits,
    /// The admission policy every load goes through.
    pub gate: Gate,
    /// Trials of the search this runtime serves, checked against the
    /// policy's cap at every load.
    pub search_budget: Option<u32>,
}

/// The default folder of precompiled components: `$PF_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/pf/components`, else `~/.cache/pf/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    crate::io::cache_root().map(|d| d.join("components"))
}

impl Runtime {
    /// A runtime with these limits, caching compiled components in
    /// `cache_dir` (no disk cache when `None`).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self> {
        limits.validate()?;
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .concurrency_support(false)
            .max_wasm_stack(1 << 20)
            .wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        start_epoch_ticker(&engine)?;
        let mut learner_linker = Linker::new(&engine);
        Learner::add_to_linker::<_, HasSelf<_>>(&mut learner_linker, |s: &mut PluginState| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut optimizer_linker = Linker::new(&engine);
        Optimizer::add_to_linker::<_, HasSelf<_>>(&mut optimizer_linker, |s: &mut PluginState| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Runtime {
            engine,
            learner_linker,
            optimizer_linker,
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
            limits,
            gate: Gate::open(),
            search_budget: None,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn cache_key(&self, sha256: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{sha256}-{:016x}.cwasm", h.finish())
    }

    /// Compiles a component, or takes it from the memory or disk cache.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, CompileSource)> {
        if let Some(c) = self.compiled.lock().expect("cache lock").get(sha256) {
            return Ok((c.clone(), CompileSource::MemoryCache));
        }
        let key = self.cache_key(sha256);
        if let Some(dir) = &self.cache_dir {
            let path = dir.join(&key);
            // Read into memory rather than mapping the file: a mapped cache
            // file truncated by someone else would take the process down.
            if let Ok(serialized) = std::fs::read(&path) {
                // SAFETY: files in the cache are written only by
                // `precompile_component` of an engine with the same
                // compatibility hash (part of the file name), atomically;
                // wasmtime checks the header before use.
                match unsafe { Component::deserialize(&self.engine, &serialized) } {
                    Ok(c) => {
                        self.compiled
                            .lock()
                            .expect("cache lock")
                            .insert(sha256.to_string(), c.clone());
                        return Ok((c, CompileSource::DiskCache));
                    }
                    Err(_) => {
                        // A stale or damaged entry: compile afresh below.
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        if let Some(dir) = &self.cache_dir {
            if let Ok(serialized) = self.engine.precompile_component(bytes) {
                // The cache only saves time; failing to write it is not an error.
                let _ = std::fs::create_dir_all(dir)
                    .map_err(anyhow::Error::from)
                    .and_then(|_| crate::io::atomic_write(&dir.join(&key), &serialized));
            }
        }
        self.compiled
            .lock()
            .expect("cache lock")
            .insert(sha256.to_string(), component.clone());
        Ok((component, CompileSource::Compiled))
    }

    /// Loads a plugin from a file, checking that it is a pf component of a
    /// supported contract version that imports nothing but pf's interfaces.
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read plugin {}", path.display()))?;
        self.load_bytes(&bytes, path)
            .with_context(|| format!("cannot load plugin {}", path.display()))
    }

    /// Loads a plugin from its bytes. `path` locates its side files (its
    /// manifest and signatures), which the admission policy
    /// ([`Runtime::gate`]) checks before any of its code is compiled or run;
    /// it is built in only when `path` lies in one of the gate's install
    /// folders.
    pub fn load_bytes(&self, bytes: &[u8], path: &Path) -> Result<Arc<Plugin>> {
        let inspection = inspect::inspect(bytes)?;
        let admission = self
            .gate
            .admit(
                &Candidate {
                    path,
                    bytes,
                    kind: inspection.kind,
                    contract: &inspection.contract,
                },
                &self.limits.grant(self.search_budget),
            )
            .map_err(anyhow::Error::from)?;
        if !SUPPORTED_CONTRACTS.contains(&inspection.contract.as_str()) {
            bail!(
                "it targets contract pocketflow:plugin@{}, but this pf accepts {}; rebuild it against a supported pf-sdk",
                inspection.contract,
                SUPPORTED_CONTRACTS
                    .iter()
                    .map(|v| format!("@{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let sha256 = crate::io::sha256_hex(bytes);
        let began = Instant::now();
        let (component, source) = self.compile(bytes, &sha256)?;
        let load_seconds = began.elapsed().as_secs_f64();
        let pre = match inspection.kind {
            PluginKind::Learner => Pre::Learner(
                LearnerPre::new(
                    self.learner_linker
                        .instantiate_pre(&component)
                        .map_err(|e| anyhow::anyhow!("{e:#}"))?,
                )
                .map_err(|e| anyhow::anyhow!("{e:#}"))?,
            ),
            PluginKind::Optimizer => Pre::Optimizer(
                OptimizerPre::new(
                    self.optimizer_linker
                        .instantiate_pre(&component)
                        .map_err(|e| anyhow::anyhow!("{e:#}"))?,
                )
                .map_err(|e| anyhow::anyhow!("{e:#}"))?,
            ),
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let mut plugin = Plugin {
            info: types::PluginInfo {
                name: stem,
                version: String::new(),
                summary: String::new(),
                params_schema: String::new(),
                targets: Vec::new(),
            },
            path: path.to_path_buf(),
            sha256,
            inspection,
            source,
            load_seconds,
            admission,
            pre,
        };
        let mut info = match plugin.kind() {
            PluginKind::Learner => self.learner(&plugin, None, 0)?.describe()?,
            PluginKind::Optimizer => self.optimizer(&plugin, 0)?.describe()?,
        };
        bounds::check_info(&mut info).with_context(|| {
            format!(
                "its `describe` is refused ({} `{}`)",
                inspection_kind(plugin.kind()),
                bounds::quote(&info.name)
            )
        })?;
        if let Some(m) = &plugin.admission.manifest {
            if m.name != info.name || m.version.to_string() != info.version {
                bail!(
                    "its manifest is for {}@{}, but the component describes itself as {}@{}; remake the manifest with `pf plugin manifest`",
                    m.name,
                    m.version,
                    info.name,
                    info.version
                );
            }
        }
        plugin.info = info;
        for w in &plugin.admission.warnings {
            eprintln!("warning: {w}");
        }
        Ok(Arc::new(plugin))
    }

    /// A fresh store for one instance: limits, fuel for instantiation and a
    /// random stream of its own. The stream follows the seed and the
    /// plugin's name and version, not its bytes, so the same seed gives the
    /// same study with a plugin built by another compiler.
    fn store(&self, plugin: &Plugin, seed: u64) -> Result<Store<PluginState>> {
        let rng = crate::rng::stream(seed, &["plugin", &plugin.info.name, &plugin.info.version]);
        let mut store = Store::new(
            &self.engine,
            PluginState::new(&plugin.info.name, self.limits.clone(), rng),
        );
        store.limiter(|s| s);
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // WebAssembly code stops at the budget's deadline: at every epoch
        // tick the callback looks at the clock.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.budget.past_deadline() {
                let m = state.budget.time_message();
                return Err(state.budget_trap(m));
            }
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });
        Ok(store)
    }

    /// Instantiates a prepared component in `store`, saying which limit
    /// refused it when one did.
    fn instantiate<B>(
        &self,
        plugin: &Plugin,
        store: &mut Store<PluginState>,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<B>,
    ) -> Result<B> {
        f(store).map_err(|e| {
            let state = store.data();
            let why = if let Some(m) = &state.budget_hit {
                m.clone()
            } else if state.memory_limit_hit {
                format!(
                    "its memories and tables need more than the memory limit of {} bytes \
                     (all of them together); raise --plugin-memory",
                    self.limits.memory_bytes
                )
            } else if e.to_string().contains("count too high") {
                format!(
                    "{e}: a plugin instance may create at most {} memories, {} tables and {} core instances",
                    super::limits::MAX_MEMORIES,
                    super::limits::MAX_TABLES,
                    super::limits::MAX_CORE_INSTANCES
                )
            } else {
                format!("{e:#}")
            };
            anyhow::anyhow!("instantiating `{}`: {why}", plugin.name())
        })
    }

    /// A fresh learner instance working on `model` (none for `describe`
    /// only), with its randomness seeded by `seed`.
    pub fn learner(
        &self,
        plugin: &Plugin,
        model: Option<super::ModelContext>,
        seed: u64,
    ) -> Result<LearnerInstance> {
        let Pre::Learner(pre) = &plugin.pre else {
            bail!("plugin `{}` is an optimizer, not a learner", plugin.name());
        };
        let mut store = self.store(plugin, seed)?;
        store.data_mut().model = model;
        let bindings = self.instantiate(plugin, &mut store, |s| pre.instantiate(s))?;
        Ok(LearnerInstance {
            store,
            bindings,
            trapped: None,
        })
    }

    /// A fresh optimizer instance with its randomness seeded by `seed`.
    pub fn optimizer(&self, plugin: &Plugin, seed: u64) -> Result<OptimizerInstance> {
        let Pre::Optimizer(pre) = &plugin.pre else {
            bail!("plugin `{}` is a learner, not an optimizer", plugin.name());
        };
        let mut store = self.store(plugin, seed)?;
        // One optimizer instance serves the whole search: each of its calls
        // gets the budget of a trial.
        store.data_mut().budget_per_call = true;
        let bindings = self.instantiate(plugin, &mut store, |s| pre.instantiate(s))?;
        Ok(OptimizerInstance {
            store,
            bindings,
            search: None,
            trapped: None,
        })
    }
}

/// Starts the thread that advances `engine`'s epoch every
/// [`super::budget::TICK`], so that stores can check their deadlines; it
/// ends with the engine.
fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("pf-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(super::budget::TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .context("starting the plugin deadline ticker")?;
    Ok(())
}

/// Runs one export call under a fresh fuel budget and turns traps into
/// typed errors.
fn call<T>(
    store: &mut Store<PluginState>,
    trapped: &mut Option<CallError>,
    export: &str,
    f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<Result<T, types::Error>>,
) -> Result<T, CallError> {
    let plugin = store.data().plugin.clone();
    if let Some(t) = trapped {
        return Err(CallError {
            plugin,
            export: export.to_string(),
            cause: Cause::Trap(format!(
                "the instance is unusable after it failed in `{}`",
                t.export
            )),
        });
    }
    let fuel = store.data().limits.fuel_per_call;
    let _ = store.set_fuel(fuel);
    store.data_mut().reset_call_markers();
    let began = Instant::now();
    // Defence in depth: a panic in the host while serving the plugin ends
    // this call as a trap instead of the whole process.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(store)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(wasmtime::Error::msg(format!(
                "the host failed serving this call: {what}"
            )))
        });
    let state = store.data_mut();
    state.call_seconds += began.elapsed().as_secs_f64();
    state.calls += 1;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError {
            plugin,
            export: export.to_string(),
            cause: Cause::Returned(bounds::error(e)),
        }),
        Err(e) => {
            let cause = classify(store.data(), &e);
            let err = CallError {
                plugin,
                export: export.to_string(),
                cause,
            };
            *trapped = Some(err.clone());
            Err(err)
        }
    }
}

/// A value the plugin returned from `export` that broke a bound
/// ([`bounds`]), as the call's error.
fn bounded(
    state: &PluginState,
    export: &str,
    checked: Result<(), bounds::BoundError>,
) -> Result<(), CallError> {
    checked.map_err(|e| CallError {
        plugin: state.plugin.clone(),
        export: export.to_string(),
        cause: Cause::Sandbox(e.to_string()),
    })
}

/// "learner" or "optimizer".
fn inspection_kind(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Learner => "learner",
        PluginKind::Optimizer => "optimizer",
    }
}

/// Whether a trap happened inside the plugin's `cabi_realloc`: the only
/// plugin code wasmtime runs on the host's behalf, to copy a host call's
/// result or an export's arguments into the plugin's memory.
fn in_host_copy(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::WasmBacktrace>()
        .is_some_and(|bt| {
            bt.frames()
                .iter()
                .any(|f| f.func_name().is_some_and(|n| n.contains("cabi_realloc")))
        })
}

/// Why a call trapped.
fn classify(state: &PluginState, e: &wasmtime::Error) -> Cause {
    if let Some(m) = &state.budget_hit {
        return Cause::Budget(m.clone());
    }
    if state.memory_limit_hit {
        return Cause::MemoryLimit;
    }
    if let Some(m) = &state.host_trap {
        return Cause::Sandbox(bounds::text(m, bounds::MAX_ERROR_BYTES));
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) if in_host_copy(e) => Cause::OutOfFuelInHostCopy,
        Some(wasmtime::Trap::OutOfFuel) => Cause::OutOfFuel,
        Some(wasmtime::Trap::StackOverflow) => Cause::StackOverflow,
        _ if state.panic.is_some() => Cause::Panic(bounds::text(
            state.panic.as_deref().unwrap_or_default(),
            bounds::MAX_ERROR_BYTES,
        )),
        // The outer layers are wasmtime's backtrace; the root says why.
        _ => Cause::Trap(bounds::text(
            &e.root_cause().to_string(),
            bounds::MAX_ERROR_BYTES,
        )),
    }
}

/// One learner instance: a short-lived store holding the model under
/// compression.
pub struct LearnerInstance {
    store: Store<PluginState>,
    bindings: Learner,
    trapped: Option<CallError>,
}

impl LearnerInstance {
    /// Store data (log, model, counters).
    pub fn state(&self) -> &PluginState {
        self.store.data()
    }

    /// Mutable store data.
    pub fn state_mut(&mut self) -> &mut PluginState {
        self.store.data_mut()
    }

    /// Takes the model context out of the instance.
    pub fn take_model(&mut self) -> Option<super::ModelContext> {
        self.store.data_mut().model.take()
    }

    /// `describe`.
    pub fn describe(&mut self) -> Result<types::PluginInfo, CallError> {
        let b = &self.bindings;
        call(&mut self.store, &mut self.trapped, "describe", |s| {
            b.pocketflow_plugin_learner_plugin()
                .call_describe(s)
                .map(Ok)
        })
    }

    /// `search-space`, given the values the user fixed and the target the
    /// trials will run under.
    pub fn search_space(
        &mut self,
        settings: &[types::Param],
        target: Option<Target>,
    ) -> Result<Vec<types::ParamSpec>, CallError> {
        let b = &self.bindings;
        let target = target.map(wit_target);
        let mut space = call(&mut self.store, &mut self.trapped, "search-space", |s| {
            b.pocketflow_plugin_learner_plugin()
                .call_search_space(s, settings, target)
        })?;
        bounded(
            self.state(),
            "search-space",
            bounds::check_space(&mut space),
        )?;
        Ok(space)
    }

    /// `compress`, under a target if one is given.
    pub fn compress(
        &mut self,
        params: &[types::Param],
        target: Option<Target>,
    ) -> Result<CompressReport, CallError> {
        let b = &self.bindings;
        let target = target.map(wit_target);
        let mut report = call(&mut self.store, &mut self.trapped, "compress", |s| {
            b.pocketflow_plugin_learner_plugin()
                .call_compress(s, params, target)
        })?;
        bounded(self.state(), "compress", bounds::check_report(&mut report))?;
        Ok(report)
    }

    /// `on-train-step`.
    pub fn on_train_step(&mut self, step: u32, total: u32) -> Result<(), CallError> {
        let b = &self.bindings;
        call(&mut self.store, &mut self.trapped, "on-train-step", |s| {
            b.pocketflow_plugin_learner_plugin()
                .call_on_train_step(s, step, total)
        })
    }

    /// `finish`.
    pub fn finish(&mut self) -> Result<CompressReport, CallError> {
        let b = &self.bindings;
        let mut report = call(&mut self.store, &mut self.trapped, "finish", |s| {
            b.pocketflow_plugin_learner_plugin().call_finish(s)
        })?;
        bounded(self.state(), "finish", bounds::check_report(&mut report))?;
        Ok(report)
    }

    /// The host's fine-tuning: `steps` training steps on the model, calling
    /// the plugin's `on-train-step` after each.
    pub fn fine_tune(&mut self, steps: u64) -> Result<crate::train::TrainReport, TrialError> {
        let ctx = self
            .store
            .data_mut()
            .model
            .as_mut()
            .ok_or_else(|| TrialError::Host(anyhow::anyhow!("the learner has no model")))?;
        // The store keeps a parking copy; after each step the trained model
        // is swapped in while the plugin runs, then swapped back out.
        let parked = ctx.model.try_clone().map_err(TrialError::Host)?;
        let mut trained = std::mem::replace(&mut ctx.model, parked);
        let data = ctx.data.clone();
        let trainer = ctx.trainer(&data, steps, "host-finetune");
        let mut hook = PluginHook {
            instance: self,
            error: None,
        };
        let result = trainer.run(&mut trained, Some(&mut hook));
        let plugin_error = hook.error.take();
        if let Some(ctx) = self.store.data_mut().model.as_mut() {
            ctx.model = trained;
        }
        match (plugin_error, result) {
            (Some(e), _) => Err(TrialError::Plugin(e)),
            (None, Err(e)) => Err(TrialError::Host(e)),
            (None, Ok(r)) => Ok(r),
        }
    }
}

/// Calls the learner's `on-train-step` after each host training step, with
/// the trained model swapped into the plugin's store for the call.
struct PluginHook<'a> {
    instance: &'a mut LearnerInstance,
    error: Option<CallError>,
}

impl crate::train::StepHook for PluginHook<'_> {
    fn after_step(&mut self, model: &mut crate::model::Model, step: u64, total: u64) -> Result<()> {
        // The trial's deadline covers the host's fine-tuning as well.
        let state = self.instance.store.data_mut();
        if let Err(m) = state.budget.check_time() {
            self.error = Some(CallError {
                plugin: state.plugin.clone(),
                export: "on-train-step".into(),
                cause: Cause::Budget(m.clone()),
            });
            bail!(m);
        }
        let swap = |inst: &mut LearnerInstance, model: &mut crate::model::Model| {
            if let Some(ctx) = inst.store.data_mut().model.as_mut() {
                std::mem::swap(&mut ctx.model, model);
            }
        };
        swap(self.instance, model);
        let r = self.instance.on_train_step(
            u32::try_from(step).unwrap_or(u32::MAX),
            u32::try_from(total).unwrap_or(u32::MAX),
        );
        swap(self.instance, model);
        if let Err(e) = r {
            let msg = e.to_string();
            self.error = Some(e);
            bail!(msg);
        }
        Ok(())
    }
}

/// What a learner's `compress` and `finish` return.
pub type CompressReport =
    super::bindings::learner::exports::pocketflow::plugin::learner_plugin::CompressReport;

/// Why a trial step failed: the plugin, or the host.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The plugin failed (trap or error value).
    #[error(transparent)]
    Plugin(#[from] CallError),
    /// The host failed (training diverged, bad data, ...).
    #[error("{0:#}")]
    Host(anyhow::Error),
}

/// One optimizer instance.
pub struct OptimizerInstance {
    store: Store<PluginState>,
    bindings: Optimizer,
    search: Option<wasmtime::component::ResourceAny>,
    trapped: Option<CallError>,
}

/// The outcome of a trial as an optimizer sees it.
pub type Outcome =
    super::bindings::optimizer::exports::pocketflow::plugin::optimizer_plugin::Outcome;

impl OptimizerInstance {
    /// Store data (log, counters).
    pub fn state(&self) -> &PluginState {
        self.store.data()
    }

    /// `describe`.
    pub fn describe(&mut self) -> Result<types::PluginInfo, CallError> {
        let b = &self.bindings;
        call(&mut self.store, &mut self.trapped, "describe", |s| {
            b.pocketflow_plugin_optimizer_plugin()
                .call_describe(s)
                .map(Ok)
        })
    }

    /// `search.create`: starts the search with the optimizer's own
    /// `options` (none: its defaults).
    pub fn create(
        &mut self,
        space: &[types::ParamSpec],
        budget: u32,
        options: &[types::Param],
    ) -> Result<(), CallError> {
        let b = &self.bindings;
        let r = call(&mut self.store, &mut self.trapped, "search.create", |s| {
            b.pocketflow_plugin_optimizer_plugin()
                .search()
                .call_create(s, space, budget, options)
        })?;
        self.search = Some(r);
        Ok(())
    }

    fn handle(&self, export: &str) -> Result<wasmtime::component::ResourceAny, CallError> {
        self.search.ok_or_else(|| CallError {
            plugin: self.store.data().plugin.clone(),
            export: export.to_string(),
            cause: Cause::Sandbox("the search was not created".into()),
        })
    }

    /// `search.suggest`.
    pub fn suggest(&mut self) -> Result<Vec<types::Param>, CallError> {
        let h = self.handle("search.suggest")?;
        let b = &self.bindings;
        let params = call(&mut self.store, &mut self.trapped, "search.suggest", |s| {
            b.pocketflow_plugin_optimizer_plugin()
                .search()
                .call_suggest(s, h)
        })?;
        bounded(
            self.state(),
            "search.suggest",
            bounds::check_params(&params),
        )?;
        Ok(params)
    }

    /// `search.observe`.
    pub fn observe(&mut self, params: &[types::Param], outcome: &Outcome) -> Result<(), CallError> {
        let h = self.handle("search.observe")?;
        let b = &self.bindings;
        call(&mut self.store, &mut self.trapped, "search.observe", |s| {
            b.pocketflow_plugin_optimizer_plugin()
                .search()
                .call_observe(s, h, params, outcome)
        })
    }
}

/// The contract's form of a target.
pub fn wit_target(t: Target) -> types::Target {
    types::Target {
        measure: wit_measure(t.measure),
        ratio: t.ratio,
    }
}

/// The contract's form of a measure.
pub fn wit_measure(m: Measure) -> types::Measure {
    match m {
        Measure::Flops => types::Measure::Flops,
        Measure::Params => types::Measure::Params,
        Measure::Size => types::Measure::Size,
    }
}

/// The host's form of a measure a plugin declared.
pub fn host_measure(m: types::Measure) -> Measure {
    match m {
        types::Measure::Flops => Measure::Flops,
        types::Measure::Params => Measure::Params,
        types::Measure::Size => Measure::Size,
    }
}
