//! The gate decides "built in" only from pf's own install folders: a
//! `plugins.lock` beside a plugin anywhere else is ignored, and the audit log
//! names the rule that admitted each plugin.

use pf_registry::admission::{Candidate, Gate, Grant, Provenance};
use pf_registry::lock::Lock;
use pf_registry::policy::Policy;
use pf_registry::PluginKind;
use std::path::{Path, PathBuf};

const COMPONENT: &[u8] = b"\0asm not really a component, but admission reads only its digest";

fn strict(audit: &Path, builtin_dirs: Vec<PathBuf>) -> Gate {
    Gate {
        policy: Policy::from_toml(
            "[signatures]\nrequired = true\nallow_unsigned_flag = false\n",
            None,
        )
        .unwrap(),
        audit_log: Some(audit.to_path_buf()),
        command: "test".into(),
        builtin_dirs,
        ..Gate::open()
    }
}

/// `name.wasm` in `dir`, pinned by a `plugins.lock` there.
fn pinned_component(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, COMPONENT).unwrap();
    Lock::record(dir, &[(name.into(), pf_registry::sha256(COMPONENT))]).unwrap();
    path
}

fn candidate(path: &Path, bytes: &'static [u8]) -> Candidate<'static> {
    Candidate {
        path: Box::leak(path.to_path_buf().into_boxed_path()),
        bytes,
        kind: PluginKind::Learner,
        contract: "0.1.0",
    }
}

fn grant() -> Grant {
    Grant {
        memory_mib: 64,
        fuel_millions: 10,
        tensors: 16,
        trials: None,
    }
}

fn audit_lines(audit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_lock_beside_a_plugin_outside_the_install_folders_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let install = tmp.path().join("install");
    std::fs::create_dir_all(&install).unwrap();
    let forged = pinned_component(&tmp.path().join("forged"), "evil");
    let gate = strict(&audit, vec![install]);
    let refusal = gate
        .admit(&candidate(&forged, COMPONENT), &grant())
        .unwrap_err();
    assert_eq!(refusal.rule, "signatures.required", "{refusal}");
    assert!(refusal.reason.contains("not signed"), "{refusal}");
    let log = audit_lines(&audit);
    assert_eq!(log[0]["decision"], "refused");
    assert_eq!(log[0]["provenance"], "unsigned");
    // With no install folders at all (a library gate), nothing is built in.
    let gate = strict(&audit, Vec::new());
    assert_eq!(
        gate.admit(&candidate(&forged, COMPONENT), &grant())
            .unwrap_err()
            .rule,
        "signatures.required"
    );
}

#[test]
fn a_component_pinned_in_an_install_folder_is_built_in_and_logged_so() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let install = tmp.path().join("share/pf/plugins");
    let path = pinned_component(&install, "tpe");
    let gate = strict(&audit, vec![install.clone()]);
    let admitted = gate.admit(&candidate(&path, COMPONENT), &grant()).unwrap();
    assert_eq!(admitted.rule, "builtin.install_lock");
    assert!(
        matches!(&admitted.provenance, Provenance::Builtin { lock } if lock.ends_with("share/pf/plugins/plugins.lock")),
        "{:?}",
        admitted.provenance
    );
    let log = audit_lines(&audit);
    assert_eq!(log[0]["rule"], "builtin.install_lock");
    assert!(
        log[0]["reason"]
            .as_str()
            .unwrap()
            .contains("share/pf/plugins/plugins.lock"),
        "{}",
        log[0]
    );
    // The same folder reached through another spelling is still pf's.
    let dotted = install.join("..").join("plugins").join("tpe.wasm");
    assert_eq!(
        gate.admit(&candidate(&dotted, COMPONENT), &grant())
            .unwrap()
            .rule,
        "builtin.install_lock"
    );
    // Bytes swapped in the install folder are refused.
    let refusal = gate
        .admit(&candidate(&path, b"\0asm other bytes"), &grant())
        .unwrap_err();
    assert_eq!(refusal.rule, "builtin.digest", "{refusal}");
}
