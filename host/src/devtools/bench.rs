//! What going through WebAssembly costs (`pf plugin bench`):
//!
//! - component load: cold (Cranelift), from the disk cache, from memory;
//! - one store + instance;
//! - one export call and one host (import) call;
//! - a weight-sparse fine-tune driven by the plugin against the same
//!   Zhu & Gupta schedule computed natively in the host, same model, data and
//!   steps, interleaved rounds.
//!
//! The native side (`NativeSparse`) is a second implementation of the
//! `weight_sparse` plugin's schedule, on purpose: it is the baseline the
//! component is measured against, so it must run without WebAssembly. The
//! plugin crate cannot be linked into the host instead (it is built for
//! `wasm32` against `pf-sdk`'s WIT imports, whose tensors live in the
//! host's sandbox store), and running the component twice would compare
//! WebAssembly with itself. Keep the two in step when the plugin's default
//! schedule changes (`plugins/weight_sparse/src/lib.rs`).

use crate::model::Model;
use crate::plugin::runtime::CompileSource;
use crate::plugin::{
    space, trial, FineTune, Limits, ModelContext, Param, ParamValue, Runtime, TrialData,
};
use crate::registry::resolve;
use crate::train::StepHook;
use anyhow::{bail, Result};
use candle_core::DType;
use std::sync::Arc;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchRequest<'a> {
    /// The learner to measure (a weight-sparse learner for the overhead
    /// comparison): a path, `NAME` or `NAME@VERSION`.
    pub plugin: &'a str,
    /// A learner whose `compress` makes a million host calls (the
    /// `hostile_learner` fixture with attack=host_calls), for the per-call
    /// cost; none skips that measurement.
    pub host_call_plugin: Option<&'a str>,
    /// Fine-tuning steps per round.
    pub steps: u64,
    /// Rounds of each measurement (medians are reported).
    pub rounds: usize,
    /// Final sparsity of the schedule.
    pub sparsity: f64,
    /// Steps between mask updates.
    pub interval: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Zhu & Gupta's schedule computed in the host, with the same update rule
/// as the `weight_sparse` plugin (prune the k smallest magnitudes of each
/// weight layer at every update step).
struct NativeSparse {
    sparsity: f64,
    interval: u64,
    layers: Vec<String>,
    seconds: f64,
}

impl NativeSparse {
    fn target(&self, step: u64, total: u64) -> Option<f64> {
        let (t0, end) = (0u64, ((0.75 * total as f64).round() as u64).max(1));
        if step < t0 || step > end {
            return None;
        }
        let t = step - t0;
        if t % self.interval != 0 && step != end {
            return None;
        }
        let frac = 1.0 - t as f64 / (end - t0) as f64;
        Some(self.sparsity * (1.0 - frac.powi(3)))
    }
}

impl StepHook for NativeSparse {
    fn after_step(&mut self, model: &mut Model, step: u64, total: u64) -> Result<()> {
        let began = Instant::now();
        if let Some(s) = self.target(step, total) {
            for layer in &self.layers {
                let w = model.params[&format!("{layer}.weight")].as_tensor().abs()?;
                let n = w.elem_count();
                let k = (s * n as f64).floor() as usize;
                if k == 0 {
                    continue;
                }
                let flat = w.flatten_all()?.contiguous()?;
                let idx = flat.arg_sort_last_dim(true)?;
                let sorted = flat.gather(&idx, 0)?;
                let threshold = sorted.narrow(0, k - 1, 1)?.to_vec1::<f32>()?[0];
                let mask = w.gt(threshold)?.to_dtype(DType::F32)?;
                model.set_mask(layer, mask)?;
            }
        }
        self.seconds += began.elapsed().as_secs_f64();
        Ok(())
    }
}

/// Runs the benchmark and returns its figures as JSON. `runtime` gives the
/// runtime (limits and admission gate) the plugins run in after the load
/// measurements, which use fresh default runtimes; `baseline` gives the
/// model and data of the fine-tunes, asked for once the plugin has loaded.
pub fn run(
    req: &BenchRequest,
    runtime: impl FnOnce() -> Result<Runtime>,
    baseline: impl FnOnce() -> Result<(Model, Arc<TrialData>)>,
) -> Result<serde_json::Value> {
    if req.rounds == 0 || req.steps == 0 {
        bail!("--rounds and --steps must be at least 1");
    }
    let path = resolve::resolve(req.plugin)?;
    let bytes = std::fs::read(&path)?;
    // Component loads.
    let cache = tempfile::tempdir()?;
    let (mut cold, mut disk, mut memory) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..req.rounds.max(3) {
        let _ = std::fs::remove_dir_all(cache.path());
        let rt = Runtime::new(Limits::default(), Some(cache.path().to_path_buf()))?;
        let t = Instant::now();
        let p = rt.load_bytes(&bytes, &path)?;
        cold.push(t.elapsed().as_secs_f64());
        if p.source != CompileSource::Compiled {
            bail!(
                "expected a load from {:?} but got {:?} (is the temporary cache folder writable?)",
                CompileSource::Compiled,
                p.source
            );
        }
        let t = Instant::now();
        let p = rt.load_bytes(&bytes, &path)?;
        memory.push(t.elapsed().as_secs_f64());
        if p.source != CompileSource::MemoryCache {
            bail!(
                "expected a load from {:?} but got {:?} (is the temporary cache folder writable?)",
                CompileSource::MemoryCache,
                p.source
            );
        }
        let fresh = Runtime::new(Limits::default(), Some(cache.path().to_path_buf()))?;
        let t = Instant::now();
        let p = fresh.load_bytes(&bytes, &path)?;
        disk.push(t.elapsed().as_secs_f64());
        if p.source != CompileSource::DiskCache {
            bail!(
                "expected a load from {:?} but got {:?} (is the temporary cache folder writable?)",
                CompileSource::DiskCache,
                p.source
            );
        }
    }
    let rt = runtime()?;
    let plugin = rt.load(&path)?;
    // Instantiation and one export call (`describe`).
    let (mut inst_s, mut call_s) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let t = Instant::now();
        let mut i = rt.learner(&plugin, None, 0)?;
        inst_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        i.describe()?;
        call_s.push(t.elapsed().as_secs_f64());
    }
    let (base, data) = baseline()?;
    // One host call, from inside the sandbox.
    let host_call_ns = match req.host_call_plugin {
        None => None,
        Some(spec) => {
            let hp = rt.load(&resolve::resolve(spec)?)?;
            let calls = 1_000_000u64;
            let mut per = Vec::new();
            for _ in 0..req.rounds {
                let params = vec![Param {
                    name: "attack".into(),
                    value: ParamValue::Choice("host_calls".into()),
                }];
                let ctx =
                    ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), 0);
                let mut i = rt.learner(&hp, Some(ctx), 0)?;
                let t = Instant::now();
                i.compress(&params, None)?;
                per.push(t.elapsed().as_secs_f64() / calls as f64 * 1e9);
            }
            Some(median(per))
        }
    };
    // Weight-sparse fine-tuning through the plugin against native.
    let probe = ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), 0);
    let sp = rt
        .learner(&plugin, Some(probe), 0)?
        .search_space(&[], None)?;
    let mut params = space::defaults(&sp);
    for (name, value) in [
        ("sparsity", req.sparsity.to_string()),
        ("interval", req.interval.to_string()),
    ] {
        if let Ok(p) = space::parse_assignment(&sp, &format!("{name}={value}")) {
            if let Some(slot) = params.iter_mut().find(|q| q.name == p.name) {
                *slot = p;
            }
        }
    }
    let layers: Vec<String> = base
        .graph
        .layers
        .iter()
        .filter(|l| l.op.has_weight())
        .map(|l| l.name.clone())
        .collect();
    let (mut wasm, mut native, mut hook_native) = (Vec::new(), Vec::new(), Vec::new());
    let (mut in_plugin, mut plugin_calls) = (Vec::new(), 0);
    let (mut wasm_sparsity, mut native_sparsity) = (0.0, 0.0);
    for _ in 0..req.rounds {
        let spec = trial::TrialSpec {
            params: params.clone(),
            finetune_steps: req.steps,
            finetune: FineTune::default(),
            seed: 0,
            target: None,
        };
        let t = Instant::now();
        let r = trial::run_learner(&rt, &plugin, &base, data.clone(), &spec)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        wasm.push(t.elapsed().as_secs_f64());
        in_plugin.push(r.plugin_seconds);
        plugin_calls = r.plugin_calls;
        wasm_sparsity = r.model.weight_sparsity()?;

        let mut ctx = ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), 0);
        let mut hook = NativeSparse {
            sparsity: req.sparsity,
            interval: req.interval,
            layers: layers.clone(),
            seconds: 0.0,
        };
        let trainer = ctx.trainer(&data, req.steps, "host-finetune");
        let t = Instant::now();
        trainer.run(&mut ctx.model, Some(&mut hook))?;
        native.push(t.elapsed().as_secs_f64());
        hook_native.push(hook.seconds);
        native_sparsity = ctx.model.weight_sparsity()?;
    }
    let (w, n) = (median(wasm.clone()), median(native.clone()));
    Ok(serde_json::json!({
        "plugin": plugin.name(),
        "component_bytes": bytes.len(),
        "load_ms": {"cold_compile": median(cold) * 1e3, "disk_cache": median(disk) * 1e3, "memory_cache": median(memory) * 1e3},
        "instantiate_us": median(inst_s) * 1e6,
        "export_call_us": median(call_s) * 1e6,
        "host_call_ns": host_call_ns,
        "finetune": {
            "model": base.graph.name,
            "steps": req.steps,
            "rounds": req.rounds,
            "wasm_seconds": wasm,
            "native_seconds": native,
            "native_schedule_seconds": median(hook_native.clone()),
            "plugin_call_seconds": median(in_plugin.clone()),
            "plugin_calls": plugin_calls,
            "overhead_percent_wall": (w - n) / n * 100.0,
            "overhead_percent_schedule": (median(in_plugin) - median(hook_native)) / n * 100.0,
            "sparsity_wasm": wasm_sparsity,
            "sparsity_native": native_sparsity,
        },
    }))
}
