//! Admission cannot be forged: only pf's own install folder (located from
//! the running executable) makes a plugin built in. A `plugins.lock` written
//! beside a plugin, reached by path or through `PF_PLUGIN_PATH`, changes
//! nothing; the audit log names the rule that admitted each plugin.

use crate::registry::{assert_complete_entries, pf_in, s, Admission};
use crate::support::{plugin_file, sha256_file, stderr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `fixture`'s component copied into `a`'s folder `forged/`, beside a
/// hand-written `plugins.lock` that pins it with its true digest: what an
/// attacker ships to pass as a built-in plugin.
fn forged(a: &Admission, fixture: &str) -> PathBuf {
    let dir = a.env.dir.join("forged");
    std::fs::create_dir_all(&dir).unwrap();
    let component = dir.join(format!("{fixture}.wasm"));
    std::fs::copy(plugin_file(fixture), &component).unwrap();
    let lock = dir.join("plugins.lock");
    let mut pins: serde_json::Value = std::fs::read(&lock)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"format": 1, "plugins": {}}));
    pins["plugins"][fixture] = format!("sha256:{}", sha256_file(&component)).into();
    std::fs::write(&lock, serde_json::to_vec_pretty(&pins).unwrap()).unwrap();
    component
}

/// Runs `cmd`, which must be refused by `rule` and logged as refused (as
/// unsigned) in `a`'s audit log; returns stderr.
fn refused_unsigned(a: &Admission, mut cmd: Command, rule: &str) -> String {
    let logged = a.env.audit_entries().len();
    let o = cmd.output().expect("pf runs");
    let err = stderr(&o);
    assert!(!o.status.success(), "not refused:\n{err}");
    assert!(err.contains(&format!("refused by rule `{rule}`")), "{err}");
    assert!(err.contains("not signed"), "{err}");
    let log = a.env.audit_entries();
    let new = &log[logged..];
    assert_complete_entries(new);
    assert!(
        new.iter().any(|e| e["decision"] == "refused"
            && e["rule"] == rule
            && e["provenance"] == "unsigned"),
        "{new:#?}"
    );
    assert!(
        !new.iter().any(|e| e["provenance"] == "builtin"
            && e["path"].as_str().is_some_and(|p| p.contains("forged"))),
        "a forged plugin was logged as built in: {new:#?}"
    );
    err
}

/// `pf compress` with one plugin under test and the strict policy, with a
/// study that must not be created.
fn compress(a: &Admission, learner: &str, optimizer: &str) -> Command {
    let mut c = pf_in(&a.env);
    c.args([
        "compress",
        "--plugin",
        learner,
        "--optimizer",
        optimizer,
        "--trials",
        "1",
        "--target",
        "params=0.5",
        "--policy",
        &a.strict,
        "--study",
        "forged.db",
    ]);
    c
}

#[test]
fn a_hand_written_lock_beside_an_unsigned_plugin_does_not_make_it_built_in() {
    let a = Admission::new();
    for fixture in ["outside_magnitude", "hostile_optimizer"] {
        let component = forged(&a, fixture);
        let mut c = pf_in(&a.env);
        c.args(["plugin", "inspect", s(&component), "--policy", &a.strict]);
        refused_unsigned(&a, c, "signatures.required");
    }
}

#[test]
fn compress_refuses_a_forged_lock_by_path_and_through_pf_plugin_path() {
    let a = Admission::new();
    let learner = forged(&a, "outside_magnitude");
    let optimizer = forged(&a, "hostile_optimizer");
    let forged_dir = learner.parent().unwrap().to_path_buf();

    refused_unsigned(
        &a,
        compress(&a, s(&learner), "random"),
        "signatures.required",
    );
    refused_unsigned(
        &a,
        compress(&a, "weight_sparse", s(&optimizer)),
        "signatures.required",
    );
    // By name, found through PF_PLUGIN_PATH before anything else.
    let mut by_name = compress(&a, "outside_magnitude", "random");
    by_name.env("PF_PLUGIN_PATH", &forged_dir);
    refused_unsigned(&a, by_name, "signatures.required");
    let mut by_name = compress(&a, "weight_sparse", "hostile_optimizer");
    by_name.env("PF_PLUGIN_PATH", &forged_dir);
    refused_unsigned(&a, by_name, "signatures.required");
    assert!(
        !a.env.dir.join("forged.db").exists(),
        "a refused search leaves no study"
    );
}

#[test]
fn the_audit_log_names_the_rule_that_admitted_each_plugin() {
    let a = Admission::new();
    // pf's own built-ins, found beside the binary, load under the strict
    // policy without a signature.
    a.env
        .ok(&["plugin", "inspect", "random", "--policy", &a.strict]);
    let good = a.signed("good", "alice");
    a.env
        .ok(&["plugin", "inspect", s(&good), "--policy", &a.strict]);
    let unsigned = crate::registry::third_party(&a.env, "unsigned");
    a.env.ok(&["plugin", "inspect", s(&unsigned)]);
    let lenient = a
        .env
        .write("lenient.toml", "[signatures]\nrequired = true\n");
    a.env.ok(&[
        "plugin",
        "inspect",
        s(&unsigned),
        "--policy",
        &lenient,
        "--allow-unsigned",
    ]);

    let log = a.env.audit_entries();
    assert_complete_entries(&log);
    let allowed: Vec<&serde_json::Value> = log
        .iter()
        .filter(|e| e["decision"] == "allowed" && e["command"] == "plugin inspect")
        .collect();
    assert_eq!(allowed.len(), 4, "{log:#?}");
    let install = plugin_file("random")
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    let rule = |e: &serde_json::Value| {
        (
            e["rule"].as_str().unwrap().to_string(),
            e["reason"].as_str().unwrap().to_string(),
        )
    };
    let builtin = rule(allowed[0]);
    assert_eq!(builtin.0, "builtin.install_lock", "{:#?}", allowed[0]);
    assert!(
        builtin.1.contains(&install.display().to_string()),
        "the reason names pf's install folder: {}",
        builtin.1
    );
    let signed = rule(allowed[1]);
    assert_eq!(signed.0, "signatures.trusted", "{:#?}", allowed[1]);
    let alice = std::fs::read_to_string(a.env.dir.join("keys/alice.pub")).unwrap();
    assert!(
        signed.1.contains("alice") && signed.1.contains(alice.trim()),
        "the reason names the key: {}",
        signed.1
    );
    assert_eq!(rule(allowed[2]).0, "unsigned.policy", "{:#?}", allowed[2]);
    assert_eq!(
        rule(allowed[3]).0,
        "unsigned.allow_unsigned_flag",
        "{:#?}",
        allowed[3]
    );
}

/// A copy of pf laid out as installed: `root/bin/pf` (a hard link to the
/// binary under test) with `root/plugins/` holding pf's lock and the
/// built-ins `names`.
fn install_copy(root: &Path, names: &[&str]) -> PathBuf {
    let bin = root.join("bin");
    let plugins = root.join("plugins");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    let exe = bin.join("pf");
    let built = Path::new(env!("CARGO_BIN_EXE_pf"));
    std::fs::hard_link(built, &exe)
        .or_else(|_| std::fs::copy(built, &exe).map(|_| ()))
        .unwrap();
    let lock = plugin_file("random").with_file_name("plugins.lock");
    std::fs::copy(&lock, plugins.join("plugins.lock")).unwrap();
    for n in names {
        std::fs::copy(plugin_file(n), plugins.join(format!("{n}.wasm"))).unwrap();
    }
    exe
}

#[test]
fn rule_builtin_digest_refuses_a_built_in_swapped_in_the_install_folder() {
    let a = Admission::new();
    let root = a.env.dir.join("install");
    let exe = install_copy(&root, &["random", "tpe"]);
    let run = |args: &[&str]| {
        let c = pf_in(&a.env);
        let mut real = Command::new(&exe);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => real.env(k, v),
                None => real.env_remove(k),
            };
        }
        real.current_dir(&a.env.dir).args(args).output().unwrap()
    };
    // As built, it loads without a signature even under the strict policy.
    let tpe = root.join("plugins/tpe.wasm");
    let o = run(&["plugin", "inspect", s(&tpe), "--policy", &a.strict]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let log = a.env.audit_entries();
    assert!(
        log.iter().any(|e| e["decision"] == "allowed"
            && e["provenance"] == "builtin"
            && e["plugin"] == "tpe"),
        "{log:#?}"
    );
    // Swapped for another built-in's bytes, it is refused.
    std::fs::copy(plugin_file("tpe"), root.join("plugins/random.wasm")).unwrap();
    let o = run(&["plugin", "inspect", "random"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused by rule `builtin.digest`"),
        "{}",
        stderr(&o)
    );
    let log = a.env.audit_entries();
    assert!(
        log.iter()
            .any(|e| e["decision"] == "refused" && e["rule"] == "builtin.digest"),
        "{log:#?}"
    );
}
