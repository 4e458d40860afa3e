//! What a plugin may make the host spend: one memory budget across all of
//! an instance's memories and tables, and a per-trial budget of wall-clock
//! time and host work that also covers the work a plugin asks the host to
//! do (fine-tuning, gradients, tensor operations), for learners and
//! optimizers alike.

use crate::support::{plugin_file, run_pf, stderr, tempdir};
use pf::conformance;
use pf::plugin::trial::{run_learner, TrialSpec};
use pf::plugin::{Cause, FineTune, Limits, Param, ParamValue, Runtime, TrialError};
use pf::search::{SqliteStudy, StudyStore, TrialStatus};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a test waits for a run that the budget should have ended; on
/// a host without the budget the floods never end, and the test fails here
/// instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `f` on its own thread and returns its result, or fails the test
/// when it takes longer than [`TEST_TIMEOUT`] (the thread is left behind).
fn within_timeout<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TEST_TIMEOUT) {
        Ok(v) => v,
        Err(_) => panic!("{what} was still running after {TEST_TIMEOUT:?}: no budget stopped it"),
    }
}

/// A runtime with a `seconds` trial budget and `work` element-operations
/// of host work.
fn runtime(seconds: u64, work: u64) -> Runtime {
    Runtime::new(
        Limits {
            trial_seconds: seconds,
            host_work: work,
            ..Limits::default()
        },
        None,
    )
    .expect("runtime")
}

/// Runs one trial of the hostile learner with `attack`; returns the
/// failure's export and cause (or `None` when the trial completed) and how
/// long the trial took.
fn trial(rt: Runtime, attack: &'static str) -> (Option<(String, Cause)>, Duration) {
    within_timeout(attack, move || {
        let plugin = rt.load(&plugin_file("hostile_learner")).unwrap();
        let (base, data) = conformance::digits_baseline(1, 0).unwrap();
        let spec = TrialSpec {
            params: vec![Param {
                name: "attack".into(),
                value: ParamValue::Choice(attack.into()),
            }],
            finetune_steps: 2,
            finetune: FineTune::default(),
            seed: 1,
            target: None,
        };
        let began = Instant::now();
        let r = run_learner(&rt, &plugin, &base, data, &spec);
        let took = began.elapsed();
        match r {
            Ok(_) => (None, took),
            Err(TrialError::Plugin(e)) => (Some((e.export, e.cause)), took),
            Err(TrialError::Host(e)) => panic!("{attack}: a host error, not the budget: {e:#}"),
        }
    })
}

/// The budget message of a failed trial, or a test failure.
fn budget_message(attack: &str, outcome: Option<(String, Cause)>) -> (String, String) {
    match outcome {
        Some((export, Cause::Budget(m))) => (export, m),
        Some((export, other)) => {
            panic!("{attack}: failed in `{export}` with {other:?}, not the budget")
        }
        None => panic!("{attack}: the trial completed"),
    }
}

#[test]
fn host_work_floods_fail_their_trial_at_the_deadline_and_the_next_trial_runs() {
    // Each flood is cheap in fuel and endless in host work; with a 5 s
    // budget (room for a busy machine to get through `compress` and two
    // fine-tuning steps before `slow_finish` stalls) each trial must end
    // soon after 5 s.
    for (attack, export) in [
        ("finetune_flood", "compress"),
        ("gradient_flood", "compress"),
        ("slow_finish", "finish"),
    ] {
        let (outcome, took) = trial(runtime(5, u64::MAX), attack);
        let (failed_in, m) = budget_message(attack, outcome);
        assert_eq!(failed_in, export, "{attack}: {m}");
        assert!(
            m.contains("exceeded its time budget (5 s)"),
            "{attack}: {m}"
        );
        assert!(m.contains("--trial-timeout"), "{attack}: {m}");
        assert!(took < Duration::from_secs(30), "{attack} took {took:?}");
        let (next, _) = trial(runtime(5, u64::MAX), "none");
        assert!(next.is_none(), "the trial after {attack} failed: {next:?}");
    }
}

#[test]
fn a_host_call_past_the_host_work_budget_is_refused_before_the_host_starts_it() {
    // One 8192 × 8192 product is 2^39 multiply-adds, a minute of CPU that
    // nothing could interrupt: refused up front, with the default budget.
    let (outcome, took) = trial(runtime(600, Limits::default().host_work), "matmul_flood");
    let (export, m) = budget_message("matmul_flood", outcome);
    assert_eq!(export, "compress");
    assert!(m.contains("exceeded its host-work budget"), "{m}");
    assert!(
        m.contains("a matmul of [8192, 8192] × [8192, 8192] would cost 549755813888 element-operations, above the 68719476736"),
        "{m}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // Fine-tuning is charged by its steps before it starts: 100000 steps
    // of the digits CNN do not fit a budget of 10^10.
    let (outcome, took) = trial(runtime(600, 10_000_000_000), "finetune_flood");
    let (_, m) = budget_message("finetune_flood", outcome);
    assert!(
        m.contains("exceeded its host-work budget (10000000000 element-operations)"),
        "{m}"
    );
    assert!(m.contains("fine-tuning 100000 steps would cost"), "{m}");
    assert!(m.contains("--plugin-host-work"), "{m}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // A well-behaved trial fits that budget easily.
    let (next, _) = trial(runtime(600, 10_000_000_000), "none");
    assert!(next.is_none(), "{next:?}");
}

#[test]
fn webassembly_loops_stop_at_the_deadline_whatever_their_fuel() {
    let rt = Runtime::new(
        Limits {
            trial_seconds: 1,
            fuel_per_call: u64::MAX / 4,
            ..Limits::default()
        },
        None,
    )
    .unwrap();
    let (outcome, took) = trial(rt, "infinite_loop");
    let (_, m) = budget_message("infinite_loop", outcome);
    assert!(m.contains("exceeded its time budget (1 s)"), "{m}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// The hostile optimizer's first suggestion under `attack`, with the
/// failure's cause.
fn optimizer_attack(rt: Runtime, attack: &'static str) -> (Cause, Duration) {
    within_timeout(attack, move || {
        let plugin = rt.load(&plugin_file("hostile_optimizer")).unwrap();
        let mut space = conformance::test_space();
        space.push(pf::plugin::ParamSpec {
            name: "attack".into(),
            kind: pf::plugin::ParamKind::Choice(vec![attack.into(), "none".into()]),
            default: ParamValue::Choice(attack.into()),
            help: String::new(),
            context: vec![],
        });
        let mut opt = rt.optimizer(&plugin, 1).unwrap();
        opt.create(&space, 10, &[]).unwrap();
        let began = Instant::now();
        let e = opt.suggest().expect_err("the attack was stopped");
        assert_eq!(e.export, "search.suggest");
        (e.cause, began.elapsed())
    })
}

#[test]
fn optimizer_floods_fail_the_call_with_the_budget_reason() {
    // Tiny tensor operations forever: each cheap, the call endless.
    let (cause, took) = optimizer_attack(runtime(2, u64::MAX), "tensor_spin");
    match cause {
        Cause::Budget(m) => assert!(m.contains("exceeded its time budget (2 s)"), "{m}"),
        other => panic!("tensor_spin: {other:?}"),
    }
    assert!(took < Duration::from_secs(30), "tensor_spin took {took:?}");
    // One huge product: refused before it starts.
    let (cause, took) = optimizer_attack(runtime(600, Limits::default().host_work), "matmul_flood");
    match cause {
        Cause::Budget(m) => assert!(m.contains("exceeded its host-work budget"), "{m}"),
        other => panic!("matmul_flood: {other:?}"),
    }
    assert!(took < Duration::from_secs(20), "matmul_flood took {took:?}");
}

#[test]
fn the_study_records_budget_failures_and_the_search_goes_on() {
    let dir = tempdir();
    let model = crate::support::digits_model(dir.path(), 30);
    let hostile = plugin_file("hostile_learner");
    let args: Vec<String> = [
        "compress",
        "--plugin",
        hostile.to_str().unwrap(),
        "--optimizer",
        "random",
        "--model",
        &model,
        "--trials",
        "2",
        "--finetune-steps",
        "2",
        "--set",
        "attack=slow_finish",
        "--target",
        "flops=1",
        // Room for compress and two fine-tuning steps on a busy machine:
        // the stall in `finish` must be what the deadline catches.
        "--trial-timeout",
        "8",
        "--study",
        dir.path().join("study.db").to_str().unwrap(),
        "--no-report",
        "--no-cache",
    ]
    .map(String::from)
    .to_vec();
    let cwd = dir.path().to_path_buf();
    let out = within_timeout("pf compress", move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_pf(&cwd, &args)
    });
    let err = stderr(&out);
    assert!(!out.status.success(), "no trial can complete: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("exceeded its time budget (8 s)"), "{err}");
    let trials = SqliteStudy::open(&dir.path().join("study.db"))
        .unwrap()
        .trials()
        .unwrap();
    assert_eq!(trials.len(), 2, "both trials ran: {err}");
    for t in &trials {
        assert_eq!(t.status, TrialStatus::Failed);
        let e = t.error.as_deref().unwrap_or("");
        assert!(e.contains("failed in `finish`"), "{e}");
        assert!(e.contains("exceeded its time budget (8 s)"), "{e}");
    }
}

#[test]
fn a_learner_stalling_in_search_space_fails_before_the_study_starts() {
    let dir = tempdir();
    let model = crate::support::digits_model(dir.path(), 0);
    let hostile = plugin_file("hostile_learner");
    let study = dir.path().join("study.db");
    let args: Vec<String> = [
        "compress",
        "--plugin",
        hostile.to_str().unwrap(),
        "--optimizer",
        "random",
        "--model",
        &model,
        "--trials",
        "1",
        "--set",
        "attack=slow_search_space",
        "--trial-timeout",
        "2",
        "--study",
        study.to_str().unwrap(),
        "--no-report",
        "--no-cache",
    ]
    .map(String::from)
    .to_vec();
    let cwd = dir.path().to_path_buf();
    let began = Instant::now();
    let out = within_timeout("pf compress", move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_pf(&cwd, &args)
    });
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("failed in `search-space`"), "{err}");
    assert!(err.contains("exceeded its time budget (2 s)"), "{err}");
    assert!(began.elapsed() < Duration::from_secs(60), "{err}");
}

#[test]
fn a_trial_timeout_above_the_policy_cap_is_refused() {
    let dir = tempdir();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[limits]\ntrial_timeout_seconds = 60\n").unwrap();
    let random = plugin_file("random");
    let out = run_pf(
        dir.path(),
        &[
            "plugin",
            "inspect",
            random.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--trial-timeout",
            "61",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--trial-timeout 61 is above the policy's limits.trial_timeout_seconds of 60"),
        "{err}"
    );
}

// ---- one memory budget per instance ----

/// The hostile learner's core module (before it was made a component), as
/// `scripts/build-plugins.sh` leaves it.
fn hostile_core_module() -> Vec<u8> {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/wasm32-unknown-unknown");
    for profile in ["release", "debug"] {
        let p = root.join(profile).join("hostile_learner.wasm");
        if let Ok(bytes) = std::fs::read(&p) {
            return bytes;
        }
    }
    panic!(
        "no core module of hostile_learner under {}: run scripts/build-plugins.sh --fixtures",
        root.display()
    );
}

fn read_leb(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
        shift += 7;
    }
}

fn write_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `core` with `extra` more linear memories of `pages` 64 KiB pages each
/// (no maximum) declared after its own: the plugin's code still runs, and
/// the host must pay for, and count, every memory.
fn with_extra_memories(core: &[u8], extra: u64, pages: u64) -> Vec<u8> {
    let mut out = core[..8].to_vec();
    let mut at = 8;
    while at < core.len() {
        let id = core[at];
        at += 1;
        let size = read_leb(core, &mut at) as usize;
        let body = &core[at..at + size];
        at += size;
        if id != 5 {
            out.push(id);
            write_leb(&mut out, size as u64);
            out.extend_from_slice(body);
            continue;
        }
        let mut p = 0;
        let count = read_leb(body, &mut p);
        let mut section = Vec::new();
        write_leb(&mut section, count + extra);
        section.extend_from_slice(&body[p..]);
        for _ in 0..extra {
            section.push(0x00);
            write_leb(&mut section, pages);
        }
        out.push(5);
        write_leb(&mut out, section.len() as u64);
        out.extend(section);
    }
    out
}

/// Loads the hostile learner rebuilt with `extra` more memories of
/// `pages` pages each; returns the error of the load, if any.
fn load_with_memories(extra: u64, pages: u64) -> Option<String> {
    let component = pf::devtools::build::componentize(&with_extra_memories(
        &hostile_core_module(),
        extra,
        pages,
    ))
    .expect("the rebuilt module is a valid component");
    let dir = tempdir();
    let path = dir.path().join("many_memories.wasm");
    std::fs::write(&path, &component).unwrap();
    let rt = Runtime::new(
        Limits {
            memory_bytes: 256 << 20,
            ..Limits::default()
        },
        None,
    )
    .unwrap();
    rt.load(&path).err().map(|e| format!("{e:#}"))
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn memories_share_one_budget_and_their_number_is_capped() {
    // The rebuilt plugin still loads when its memories fit: one more of
    // 1 MiB (16 pages) costs 1 MiB of the 256.
    assert_eq!(
        load_with_memories(1, 16),
        None,
        "one small extra memory fits"
    );

    let before = rss_bytes();
    // Three more memories of 100 MiB each: 300 MiB together, above the
    // 256 MiB an instance may have, although each alone fits.
    let e = load_with_memories(3, 1600).expect("refused");
    assert!(e.contains("instantiating `many_memories`"), "{e}");
    assert!(e.contains("memory limit of 268435456 bytes"), "{e}");
    assert!(e.contains("all of them together"), "{e}");
    // Forty memories of 6 MiB each: 240 MiB would fit the bytes, but not
    // the count.
    let e = load_with_memories(40, 96).expect("refused");
    assert!(e.contains("memory count too high"), "{e}");
    assert!(e.contains("at most 4 memories"), "{e}");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 256 << 20,
        "the refused loads grew the process by {grown} bytes"
    );
}
