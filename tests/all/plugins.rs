//! The plugin platform end to end: real components built from `plugins/`
//! and `tests/plugins/`, loaded through the same runtime the CLI uses.

use crate::support::{json, plugin_file, run_pf, stderr, tempdir};
use pf::conformance::{self, LearnerSuite};
use pf::plugin::runtime::CompileSource;
use pf::plugin::trial::{run_learner, TrialSpec};
use pf::plugin::{Cause, FineTune, Limits, Param, ParamValue, Runtime, TrialError};

/// A runtime with tight limits so hostile plugins fail fast.
fn tight_runtime() -> Runtime {
    Runtime::new(
        Limits {
            memory_bytes: 64 << 20,
            fuel_per_call: 300_000_000,
            max_tensors: 256,
            ..Limits::default()
        },
        None,
    )
    .expect("runtime")
}

/// A small trained digits model, saved as `dir/base.pf` for the CLI.
fn saved_baseline(dir: &std::path::Path) -> (pf::model::Model, std::path::PathBuf) {
    let (base, _) = conformance::digits_baseline(1, 30).unwrap();
    let path = dir.join("base.pf");
    pf::model::save(&base, &path).unwrap();
    (base, path)
}

/// The learner conformance suite, once per built-in learner, from one list
/// (as the optimizer suite is instantiated in `optimizers.rs`). A learner
/// may name a further check of its report after `=>`.
mod passes_the_learner_suite {
    use pf::conformance::SuiteReport;

    macro_rules! suite {
        ($($name:ident $(=> $check:path)?),* $(,)?) => {
            /// Every built-in learner, as the list instantiates the suite.
            pub(crate) const LEARNERS: &[&str] = &[$(stringify!($name)),*];
            $(
                #[test]
                fn $name() {
                    let (_, _report) = crate::support::passes_learner_suite(stringify!($name));
                    $($check(&_report);)?
                }
            )*
        };
    }
    suite!(
        weight_sparse => checked_a_sparsity_target,
        uniform_quant => met_a_size_target,
        full_prec,
        channel_pruned,
        dis_chn_pruned,
        non_uniform_quant,
    );

    /// The target check really ran on a sparsity parameter.
    fn checked_a_sparsity_target(report: &SuiteReport) {
        let target = report
            .checks
            .iter()
            .find(|c| c.name.starts_with("targets"))
            .unwrap_or_else(|| panic!("no target check: {:?}", report.checks));
        assert!(target.detail.contains("sparsity"), "{}", target.detail);
    }

    fn met_a_size_target(report: &SuiteReport) {
        let size = report
            .checks
            .iter()
            .find(|c| c.name.contains("size target"))
            .unwrap_or_else(|| panic!("no size-target check: {}", report.failures()));
        assert!(size.passed, "{}", size.detail);
    }
}

/// The names of the plugins under `plugins/` whose `src/lib.rs` exports a
/// component with `macro` (`export_learner!` or `export_optimizer!`).
fn built_ins_exporting(macro_name: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| {
            std::fs::read_to_string(d.join("src/lib.rs"))
                .is_ok_and(|src| src.contains(&format!("pf_sdk::{macro_name}(")))
        })
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A new built-in plugin cannot skip its conformance suite: the lists the
/// suites are instantiated from name every learner and optimizer in
/// `plugins/`.
#[test]
fn every_built_in_plugin_is_in_its_conformance_suite_list() {
    for (lists, macro_name) in [
        (passes_the_learner_suite::LEARNERS, "export_learner!"),
        (
            crate::optimizers::passes_the_optimizer_suite::OPTIMIZERS,
            "export_optimizer!",
        ),
    ] {
        let built_ins = built_ins_exporting(macro_name);
        assert!(
            !built_ins.is_empty(),
            "no plugin in plugins/ uses {macro_name}"
        );
        let mut listed: Vec<String> = lists.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(
            listed, built_ins,
            "the conformance suite list and the plugins in plugins/ using {macro_name} differ"
        );
    }
}

#[test]
fn full_prec_meets_no_target_and_changes_nothing_but_training() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let plugin = rt.load(&plugin_file("full_prec")).unwrap();
    assert!(plugin.info.targets.is_empty());
    // Applied, it leaves a model of the same size with no masks or
    // quantizers: only the host's fine-tuning changed it.
    let dir = crate::support::tempdir();
    let (base, model) = saved_baseline(dir.path());
    let out = dir.path().join("tuned.pf");
    let o = crate::support::pf()
        .args([
            "plugin",
            "apply",
            "-p",
            "full_prec",
            "--finetune-steps",
            "20",
            "--model",
        ])
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::support::stderr(&o));
    let tuned = pf::model::load(&out, &candle_core::Device::Cpu).unwrap();
    assert_eq!(tuned.graph, base.graph);
    assert!(tuned.masks.is_empty());
    assert_eq!(tuned.footprint().unwrap(), base.footprint().unwrap());
    assert_ne!(
        tuned.weights_sha256().unwrap(),
        base.weights_sha256().unwrap()
    );
    // full_prec meets no target: a search that asks it for one is refused
    // with what it supports (without a target it runs as a control).
    let o = crate::support::pf()
        .current_dir(dir.path())
        .args([
            "compress",
            "--plugin",
            "full_prec",
            "--target",
            "flops=0.5",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = crate::support::stderr(&o);
    assert!(
        err.contains("full_prec") && err.contains("--target none"),
        "{err}"
    );
}

#[test]
fn uniform_quant_allocates_bits_per_layer_under_a_size_budget_and_refuses_bad_bits() {
    let dir = crate::support::tempdir();
    let (_, model) = saved_baseline(dir.path());
    let model = model.to_str().unwrap();
    // A budget below 8 bits everywhere: per layer, the big layers lose bits
    // first, and the host's count meets the target.
    let o = crate::support::pf()
        .current_dir(dir.path())
        .args([
            "plugin",
            "apply",
            "-p",
            "uniform_quant",
            "--model",
            model,
            "--set",
            "per_layer=true",
            "--target",
            "size=0.15",
            "--finetune-steps",
            "20",
            "--json",
        ])
        .output()
        .unwrap();
    let r = crate::support::json(&o);
    assert!(
        r["measured"]["bytes_ratio"].as_f64().unwrap() <= 0.15,
        "{r}"
    );
    let bits = r["plugin_report"]["average_weight_bits"].as_f64().unwrap();
    assert!((2.0..8.0).contains(&bits), "{r}");
    // Bits out of range are refused, naming the parameter.
    for bad in ["weight_bits=0", "weight_bits=33", "activation_bits=1"] {
        let o = crate::support::pf()
            .current_dir(dir.path())
            .args([
                "plugin",
                "apply",
                "-p",
                "uniform_quant",
                "--model",
                model,
                "--set",
                bad,
                "--finetune-steps",
                "1",
            ])
            .output()
            .unwrap();
        crate::support::assert_refused(&o, bad.split('=').next().unwrap());
    }
}

#[test]
fn uniform_quant_buckets_carry_their_own_scales_in_the_size() {
    let dir = crate::support::tempdir();
    let (_, model) = saved_baseline(dir.path());
    let model = model.to_str().unwrap();
    let bytes_ratio = |extra: &[&str]| {
        let o = crate::support::pf()
            .current_dir(dir.path())
            .args(["plugin", "apply", "-p", "uniform_quant", "--model", model])
            .args(["--set", "weight_bits=4", "--finetune-steps", "10", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let r = crate::support::json(&o);
        assert!(r["test_accuracy_after"].as_f64().unwrap() > 0.5, "{r}");
        r["measured"]["bytes_ratio"].as_f64().unwrap()
    };
    let per_channel = bytes_ratio(&[]);
    // 4 bytes of scale per 16 weights of half a byte: 1.5 times the codes.
    let bucketed = bytes_ratio(&["--set", "bucket_size=16"]);
    assert!(bucketed > per_channel * 1.3, "{bucketed} vs {per_channel}");
    let o = crate::support::pf()
        .current_dir(dir.path())
        .args(["plugin", "apply", "-p", "uniform_quant", "--model", model])
        .args(["--set", "bucket_size=-1", "--finetune-steps", "1"])
        .output()
        .unwrap();
    crate::support::assert_refused(&o, "bucket_size");
}

#[test]
fn plugin_built_outside_the_workspace_loads_the_same_way_and_passes() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let outside = rt.load(&plugin_file("outside_magnitude")).unwrap();
    let builtin = rt.load(&plugin_file("weight_sparse")).unwrap();
    assert_eq!(outside.kind(), builtin.kind());
    assert_eq!(outside.inspection.contract, builtin.inspection.contract);
    let report = conformance::run_learner_suite(&rt, &outside, &LearnerSuite::default()).unwrap();
    assert!(report.passed(), "{}", report.failures());
}

/// Runs the hostile learner with one attack and returns the failure.
fn attack(rt: &Runtime, plugin: &pf::plugin::Plugin, name: &str) -> Result<(), TrialError> {
    let (base, data) = conformance::digits_baseline(1, 0).unwrap();
    let spec = TrialSpec {
        params: vec![Param {
            name: "attack".into(),
            value: ParamValue::Choice(name.into()),
        }],
        finetune_steps: 2,
        finetune: FineTune::default(),
        seed: 1,
        target: None,
    };
    run_learner(rt, plugin, &base, data, &spec).map(|_| ())
}

fn cause(r: Result<(), TrialError>) -> Cause {
    match r {
        Err(TrialError::Plugin(e)) => {
            assert_eq!(e.plugin, "hostile_learner");
            assert_eq!(e.export, "compress");
            e.cause
        }
        Err(TrialError::Host(e)) => panic!("expected a plugin error, got a host error: {e:#}"),
        Ok(()) => panic!("the attack succeeded"),
    }
}

#[test]
fn hostile_learners_end_in_typed_errors_and_the_next_trial_runs() {
    let rt = tight_runtime();
    let plugin = rt.load(&plugin_file("hostile_learner")).unwrap();
    attack(&rt, &plugin, "none").expect("a harmless trial works");

    assert!(matches!(
        cause(attack(&rt, &plugin, "infinite_loop")),
        Cause::OutOfFuel
    ));
    attack(&rt, &plugin, "none").expect("next trial after a runaway loop");

    assert!(matches!(
        cause(attack(&rt, &plugin, "memory_bomb")),
        Cause::MemoryLimit
    ));
    attack(&rt, &plugin, "none").expect("next trial after a memory bomb");

    assert!(matches!(
        cause(attack(&rt, &plugin, "deep_recursion")),
        Cause::StackOverflow
    ));
    attack(&rt, &plugin, "none").expect("next trial after a stack overflow");

    match cause(attack(&rt, &plugin, "panic")) {
        Cause::Panic(m) => assert!(m.contains("hostile plugin panicked on purpose"), "{m}"),
        other => panic!("expected a panic, got {other:?}"),
    }

    for forged in ["forged_handle", "dropped_handle"] {
        match cause(attack(&rt, &plugin, forged)) {
            Cause::Trap(m) => assert!(m.contains("handle"), "{forged}: {m}"),
            other => panic!("{forged}: expected a handle trap, got {other:?}"),
        }
        attack(&rt, &plugin, "none").expect("next trial after a forged handle");
    }

    match cause(attack(&rt, &plugin, "tensor_flood")) {
        Cause::Sandbox(m) => assert!(m.contains("256 live tensor handles"), "{m}"),
        other => panic!("expected the handle cap, got {other:?}"),
    }

    match cause(attack(&rt, &plugin, "nan_weights")) {
        Cause::Returned(e) => assert!(format!("{e:?}").contains("NaN"), "{e:?}"),
        other => panic!("expected a refused NaN weight, got {other:?}"),
    }
    attack(&rt, &plugin, "none").expect("the host survives every attack");
}

#[test]
fn a_plugin_importing_wasi_is_refused_at_load() {
    let rt = tight_runtime();
    let err = rt.load(&plugin_file("wasi_import")).err().expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("wasi:cli/environment"), "{msg}");
    assert!(msg.contains("no WASI"), "{msg}");
}

#[test]
fn files_that_are_not_pf_components_are_refused_with_the_reason() {
    let rt = tight_runtime();
    let dir = tempdir();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let msg = format!("{:#}", rt.load(&core).err().unwrap());
    assert!(
        msg.contains("core WebAssembly module, not a component"),
        "{msg}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"MZ not wasm at all").unwrap();
    let msg = format!("{:#}", rt.load(&junk).err().unwrap());
    assert!(
        msg.contains("junk.wasm") && msg.contains("not a WebAssembly component"),
        "{msg}"
    );
    // A truncated real component.
    let bytes = std::fs::read(plugin_file("random")).unwrap();
    let cut = dir.path().join("cut.wasm");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = format!("{:#}", rt.load(&cut).err().unwrap());
    assert!(msg.contains("cut.wasm"), "{msg}");
}

#[test]
fn hostile_optimizers_are_caught_by_the_suite_or_end_in_typed_errors() {
    let rt = tight_runtime();
    let plugin = rt.load(&plugin_file("hostile_optimizer")).unwrap();
    let run = |attack: &str| {
        let mut space = conformance::test_space();
        space.push(pf::plugin::ParamSpec {
            name: "attack".into(),
            kind: pf::plugin::ParamKind::Choice(if attack == "none" {
                vec!["none".into()]
            } else {
                vec![attack.into(), "none".into()]
            }),
            default: ParamValue::Choice(attack.into()),
            help: String::new(),
            context: vec![],
        });
        let mut inst = rt.optimizer(&plugin, 0).unwrap();
        inst.create(&space, 5, &[]).unwrap();
        inst.suggest().map(|p| (space, p))
    };
    let (space, ok) = run("none").expect("a harmless optimizer works");
    pf::plugin::space::check_params(&space, &ok).unwrap();
    for bad in ["out_of_bounds", "wrong_type", "nan"] {
        let (space, p) = run(bad).expect("the plugin returns a value");
        let e = pf::plugin::space::check_params(&space, &p).expect_err(bad);
        assert!(e.contains("must be"), "{bad}: {e}");
    }
    assert!(matches!(
        run("infinite_loop").err().unwrap().cause,
        Cause::OutOfFuel
    ));
    match run("panic").err().unwrap().cause {
        Cause::Panic(_) => {}
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn compiled_components_are_cached_by_content_hash() {
    let cache = tempdir();
    let path = plugin_file("random");
    let rt = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let first = rt.load(&path).unwrap();
    assert_eq!(first.source, CompileSource::Compiled);
    assert_eq!(rt.load(&path).unwrap().source, CompileSource::MemoryCache);
    // A new process (runtime) finds the precompiled file on disk.
    let again = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    let second = again.load(&path).unwrap();
    assert_eq!(second.source, CompileSource::DiskCache);
    assert_eq!(second.sha256, first.sha256);
    // A damaged cache entry is recompiled, not trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = Runtime::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    assert_eq!(third.load(&path).unwrap().source, CompileSource::Compiled);
}

#[test]
fn pf_plugin_inspect_shows_world_version_imports_and_space() {
    let dir = tempdir();
    let path = plugin_file("weight_sparse");
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "inspect",
            path.to_str().unwrap(),
            "--json",
            "--no-cache",
        ],
    );
    let v = json(&out);
    assert_eq!(v["world"], "learner");
    assert_eq!(v["contract"], "0.1.0");
    for i in v["imports"].as_array().unwrap() {
        assert!(i.as_str().unwrap().starts_with("pocketflow:plugin/"), "{i}");
    }
    let names: Vec<&str> = v["search_space"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"sparsity"), "{names:?}");
    assert!(v["info"]["params_schema"]["properties"]["sparsity"].is_object());
}

#[test]
fn plugins_resolve_by_name_through_pf_plugin_path() {
    let dir = tempdir();
    let plugins = plugin_file("random").parent().unwrap().to_path_buf();
    let out = crate::support::pf()
        .current_dir(dir.path())
        .env("PF_PLUGIN_PATH", &plugins)
        .args([
            "plugin",
            "test",
            "random",
            "--budget",
            "10",
            "--json",
            "--no-cache",
        ])
        .output()
        .unwrap();
    let v = json(&out);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{v}"
    );
    let out = run_pf(dir.path(), &["plugin", "test", "no_such_plugin"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no plugin named `no_such_plugin`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pf_plugin_test_exits_non_zero_when_a_plugin_fails_its_suite() {
    let dir = tempdir();
    // Random points of the hostile learner's space pick attacks, which the
    // suite reports by name with the reason (which attack a seed draws
    // changes as the fixture gains attacks).
    let hostile = plugin_file("hostile_learner");
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "test",
            hostile.to_str().unwrap(),
            "--seed",
            "1",
            "--plugin-fuel",
            "300",
            "--plugin-memory",
            "64",
            "--no-cache",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("fails the learner conformance suite"), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("random point")
            && l.contains(": attack=")
            && l.contains("failed in `compress`: it ")),
        "{err}"
    );
    // A plugin that imports WASI does not even load.
    let wasi = plugin_file("wasi_import");
    let out = run_pf(
        dir.path(),
        &["plugin", "test", wasi.to_str().unwrap(), "--no-cache"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wasi:cli/environment"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pf_plugin_apply_prunes_to_the_target_counted_by_the_host() {
    let dir = tempdir();
    let path = plugin_file("weight_sparse");
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "apply",
            "--plugin",
            path.to_str().unwrap(),
            "--set",
            "sparsity=0.7",
            "--finetune-steps",
            "40",
            "--seed",
            "3",
            "-o",
            "sparse.pf",
            "--json",
            "--no-cache",
        ],
    );
    let v = json(&out);
    let s = v["measured"]["sparsity"].as_f64().unwrap();
    assert!((0.695..0.72).contains(&s), "sparsity {s}");
    assert!(v["test_accuracy_after"].as_f64().unwrap() > 0.8, "{v}");
    // The saved model really holds the zeros.
    let model = pf::model::load(&dir.path().join("sparse.pf"), &candle_core::Device::Cpu).unwrap();
    let (mut zeros, mut total) = (0usize, 0usize);
    for (name, t) in model.named_tensors() {
        if name.ends_with(".weight") && t.rank() > 1 {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            zeros += v.iter().filter(|x| **x == 0.0).count();
            total += v.len();
        }
    }
    let file_sparsity = zeros as f64 / total as f64;
    assert!(
        (file_sparsity - s).abs() < 1e-6,
        "file {file_sparsity} vs measured {s}"
    );
    // A bad --set names the parameter and its domain.
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "apply",
            "--plugin",
            path.to_str().unwrap(),
            "--set",
            "sparsity=1.5",
            "--no-cache",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`sparsity` = 1.5 is out of range: it must be a float in [0, 0.99]"),
        "{}",
        stderr(&out)
    );
}

/// Fraction of zero entries in each weight layer.
fn layer_sparsity(model: &pf::model::Model) -> Vec<(String, f64)> {
    model
        .graph
        .layers
        .iter()
        .filter(|l| l.op.has_weight())
        .map(|l| {
            let w: Vec<f32> = model.params[&format!("{}.weight", l.name)]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let zeros = w.iter().filter(|x| **x == 0.0).count();
            (l.name.clone(), zeros as f64 / w.len() as f64)
        })
        .collect()
}

#[test]
fn weight_sparse_follows_the_cubic_schedule_on_host_steps() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let plugin = rt.load(&plugin_file("weight_sparse")).unwrap();
    let (base, data) = conformance::digits_baseline(2, 30).unwrap();
    let ctx = pf::plugin::ModelContext::new(base, data, FineTune::default(), 2);
    let mut inst = rt.learner(&plugin, Some(ctx), 2).unwrap();
    let space = inst.search_space(&[], None).unwrap();
    inst.compress(&pf::plugin::space::defaults(&space), None)
        .unwrap();
    let overall = |inst: &mut pf::plugin::LearnerInstance| {
        let m = &inst.state().model.as_ref().unwrap().model;
        let per = layer_sparsity(m);
        per.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min)
    };
    assert_eq!(
        overall(&mut inst),
        0.0,
        "s_i = 0 prunes nothing at compress"
    );
    // Defaults: s_f = 0.8, t0 = 0, end = 0.75·total, Δt = 10. With 40 host
    // steps the end step is 30; at step 10 every layer is at
    // 0.8·(1 − (1 − 10/30)³) = 0.5630.
    for step in 1..=10 {
        inst.on_train_step(step, 40).unwrap();
    }
    let s10 = overall(&mut inst);
    assert!((s10 - 0.5630).abs() < 0.01, "sparsity at step 10: {s10}");
    for step in 11..=30 {
        inst.on_train_step(step, 40).unwrap();
    }
    let s30 = overall(&mut inst);
    assert!((s30 - 0.8).abs() < 0.01, "sparsity at the end step: {s30}");
}

#[test]
fn weight_sparse_per_layer_targets_are_declared_with_context_and_reached() {
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let plugin = rt.load(&plugin_file("weight_sparse")).unwrap();
    let (base, data) = conformance::digits_baseline(4, 30).unwrap();
    let layers: Vec<String> = layer_sparsity(&base).into_iter().map(|(n, _)| n).collect();
    let ctx = || {
        pf::plugin::ModelContext::new(
            base.try_clone().unwrap(),
            data.clone(),
            FineTune::default(),
            4,
        )
    };
    // Without the switch there are no per-layer dimensions.
    let uniform = rt
        .learner(&plugin, Some(ctx()), 4)
        .unwrap()
        .search_space(&[], None)
        .unwrap();
    assert!(uniform.iter().all(|s| !s.name.starts_with("sparsity.")));
    let on = Param {
        name: "per_layer".into(),
        value: ParamValue::Boolean(true),
    };
    let space = rt
        .learner(&plugin, Some(ctx()), 4)
        .unwrap()
        .search_space(std::slice::from_ref(&on), None)
        .unwrap();
    let per: Vec<_> = space
        .iter()
        .filter(|s| s.name.starts_with("sparsity."))
        .collect();
    assert_eq!(per.len(), layers.len());
    assert!(per.iter().all(|s| s.context.len() == 8), "context vectors");
    assert_ne!(per[0].context, per[per.len() - 1].context);
    let mut params = pf::plugin::space::defaults(&space);
    for p in params.iter_mut() {
        if p.name == "per_layer" {
            p.value = ParamValue::Boolean(true);
        }
        if p.name == format!("sparsity.{}", layers[0]) {
            p.value = ParamValue::Float(0.3);
        }
        if p.name == format!("sparsity.{}", layers[1]) {
            p.value = ParamValue::Float(0.9);
        }
    }
    let spec = TrialSpec {
        params,
        finetune_steps: 0,
        finetune: FineTune::default(),
        seed: 4,
        target: None,
    };
    let r = run_learner(&rt, &plugin, &base, data.clone(), &spec).unwrap();
    let got = layer_sparsity(&r.model);
    assert!((got[0].1 - 0.3).abs() < 0.01, "{got:?}");
    assert!((got[1].1 - 0.9).abs() < 0.01, "{got:?}");
    assert!(
        (got[2].1 - 0.8).abs() < 0.01,
        "the rest keep the uniform 0.8: {got:?}"
    );
}

#[test]
fn os_randomness_inside_plugins_comes_from_the_host_seed() {
    // `rand::StdRng::from_os_rng` and getrandom 0.2 inside the plugin are
    // served by the SDK's backend from the host's stream.
    let rt = Runtime::new(Limits::default(), None).unwrap();
    let plugin = rt.load(&plugin_file("os_random")).unwrap();
    let report = conformance::run_optimizer_suite(&rt, &plugin, 8, 5).unwrap();
    assert!(report.passed(), "{}", report.failures());
    let first = |seed: u64| {
        let mut inst = rt.optimizer(&plugin, seed).unwrap();
        inst.create(&conformance::test_space(), 3, &[]).unwrap();
        format!("{:?}", inst.suggest().unwrap())
    };
    assert_eq!(first(11), first(11));
    assert_ne!(first(11), first(12));
}
