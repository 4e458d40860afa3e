//! Signing, the admission policy, the registry and the audit log, through
//! the `pf` binary as users run it; and the plugin guide, run end to end.

use crate::support::{pf, plugin_file, stderr, tempdir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `pf` with its own data folder, audit log and no ambient policy.
pub(crate) fn pf_in(env: &Env) -> Command {
    let mut c = pf();
    c.env("XDG_DATA_HOME", env.dir.join("data"))
        .env("XDG_CONFIG_HOME", env.dir.join("config"))
        .env("PF_AUDIT_LOG", env.audit())
        .env("PF_POLICY", "none")
        .env_remove("PF_PLUGIN_PATH")
        .current_dir(&env.dir);
    c
}

pub(crate) struct Env {
    pub(crate) dir: PathBuf,
}

impl Env {
    pub(crate) fn audit(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        pf_in(self).args(args).output().expect("pf runs")
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "pf {} failed:\n{}",
            args.join(" "),
            stderr(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a command that must be refused by `rule`, and logged as refused
    /// by it in the audit log; returns stderr.
    pub(crate) fn refused(&self, args: &[&str], rule: &str) -> String {
        let logged = self.audit_entries().len();
        let o = self.run(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "pf {} was not refused", args.join(" "));
        assert!(
            err.contains(&format!("refused by rule `{rule}`")),
            "pf {}: expected rule `{rule}`, got:\n{err}",
            args.join(" ")
        );
        assert!(!err.contains("panicked"), "{err}");
        let log = self.audit_entries();
        assert!(
            log[logged..]
                .iter()
                .any(|e| e["decision"] == "refused" && e["rule"] == rule),
            "pf {}: no refusal by rule `{rule}` in the audit log: {:#?}",
            args.join(" "),
            &log[logged..]
        );
        assert_complete_entries(&log[logged..]);
        err
    }

    pub(crate) fn audit_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A copy of a fixture learner in its own folder, as a third party would
/// ship it.
pub(crate) fn third_party(env: &Env, folder: &str) -> PathBuf {
    let dir = env.dir.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("outside_magnitude.wasm");
    std::fs::copy(plugin_file("outside_magnitude"), &p).unwrap();
    p
}

/// Appends a custom section: the component stays valid and loads, but its
/// bytes (and digest) change.
fn tamper_component(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let name = b"evil";
    let payload = b"payload";
    bytes.push(0); // custom section id
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

/// What every admission test starts from: a data folder with the keys of
/// alice (whom the strict policy trusts) and mallory (whom it does not), and
/// the strict policy: signatures required, `--allow-unsigned` refused, at most
/// 512 MiB of plugin memory.
pub(crate) struct Admission {
    pub(crate) env: Env,
    pub(crate) strict: String,
    _tmp: tempfile::TempDir,
}

impl Admission {
    pub(crate) fn new() -> Admission {
        let tmp = tempdir();
        let env = Env {
            dir: tmp.path().to_path_buf(),
        };
        env.ok(&["plugin", "keygen", "-o", "keys/alice.key"]);
        env.ok(&["plugin", "keygen", "-o", "keys/mallory.key"]);
        let alice = std::fs::read_to_string(env.dir.join("keys/alice.pub")).unwrap();
        let strict = env.write(
            "strict.toml",
            &format!(
                "[signatures]\nrequired = true\nallow_unsigned_flag = false\n\n[[publishers]]\nname = \"alice\"\nkey = \"{}\"\n\n[limits]\nmax_memory_mib = 512\n",
                alice.trim()
            ),
        );
        Admission {
            env,
            strict,
            _tmp: tmp,
        }
    }

    /// A copy of the fixture learner in `folder` with its manifest, signed
    /// with `keys/KEY.key`.
    pub(crate) fn signed(&self, folder: &str, key: &str) -> PathBuf {
        let p = third_party(&self.env, folder);
        self.env.ok(&["plugin", "manifest", s(&p)]);
        self.sign(&p, key);
        p
    }

    fn sign(&self, p: &Path, key: &str) {
        let key = format!("keys/{key}.key");
        self.env.ok(&["plugin", "sign", s(p), "--key", &key]);
    }

    /// `pf plugin inspect PLUGIN --policy POLICY EXTRA...`, which must be
    /// refused by `rule` and logged as such; returns stderr.
    pub(crate) fn inspect_refused(
        &self,
        plugin: &Path,
        policy: &str,
        extra: &[&str],
        rule: &str,
    ) -> String {
        let mut args = vec!["plugin", "inspect", s(plugin), "--policy", policy];
        args.extend_from_slice(extra);
        self.env.refused(&args, rule)
    }
}

/// Adds `"limits": LIMITS` to the manifest beside `component`.
fn ask_for_limits(component: &Path, limits: &str) {
    let manifest = component.with_file_name("outside_magnitude.manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let edited = text.replace(
        "\"format\": 1,",
        &format!("\"format\": 1,\n  \"limits\": {limits},"),
    );
    assert_ne!(edited, text, "the manifest layout changed: {text}");
    std::fs::write(&manifest, edited).unwrap();
}

/// The audit fields every decision is logged with.
pub(crate) fn assert_complete_entries(log: &[serde_json::Value]) {
    assert!(!log.is_empty(), "nothing was logged");
    for e in log {
        for field in [
            "time",
            "command",
            "plugin",
            "digest",
            "path",
            "provenance",
            "decision",
            "rule",
        ] {
            assert!(e[field].is_string(), "audit entry without {field}: {e}");
        }
        assert!(e["digest"].as_str().unwrap().starts_with("sha256:"), "{e}");
    }
}

#[test]
fn admission_accepts_a_plugin_signed_by_a_trusted_publisher_and_logs_it() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    let out = a
        .env
        .ok(&["plugin", "verify", s(&good), "--policy", &a.strict]);
    assert!(out.contains("signed by trusted publisher alice"), "{out}");
    a.env
        .ok(&["plugin", "inspect", s(&good), "--policy", &a.strict]);
    let log = a.env.audit_entries();
    assert_complete_entries(&log);
    assert!(
        log.iter().any(|e| e["decision"] == "allowed"
            && e["provenance"] == "signed"
            && e["signer"] == "alice"
            && e["command"] == "plugin inspect"),
        "{log:#?}"
    );
}

#[test]
fn rule_manifest_component_refuses_a_component_changed_after_signing() {
    let a = Admission::new();
    let tampered = a.signed("tampered_component", "alice");
    tamper_component(&tampered);
    a.inspect_refused(&tampered, &a.strict, &[], "manifest.component");
}

#[test]
fn rule_manifest_valid_refuses_a_manifest_that_does_not_parse() {
    let a = Admission::new();
    let broken = a.signed("broken_manifest", "alice");
    std::fs::write(
        broken.with_file_name("outside_magnitude.manifest.json"),
        "{\"format\": 1,",
    )
    .unwrap();
    a.inspect_refused(&broken, &a.strict, &[], "manifest.valid");
}

#[test]
fn rule_signature_valid_refuses_a_manifest_edited_after_signing() {
    let a = Admission::new();
    let edited = a.signed("tampered_manifest", "alice");
    ask_for_limits(&edited, "{\"memory_mib\": 100000}");
    a.inspect_refused(&edited, &a.strict, &[], "signature.valid");
}

#[test]
fn rule_signatures_required_refuses_a_key_the_policy_does_not_trust() {
    let a = Admission::new();
    let untrusted = a.signed("untrusted", "mallory");
    let err = a.inspect_refused(&untrusted, &a.strict, &[], "signatures.required");
    assert!(err.contains("mallory"), "{err}");
}

#[test]
fn rule_signatures_required_refuses_an_unsigned_plugin_unless_the_flag_is_allowed() {
    let a = Admission::new();
    let unsigned = third_party(&a.env, "unsigned");
    a.inspect_refused(&unsigned, &a.strict, &[], "signatures.required");
    let lenient = a
        .env
        .write("lenient.toml", "[signatures]\nrequired = true\n");
    a.inspect_refused(&unsigned, &lenient, &[], "signatures.required");
    // Where the policy allows it, --allow-unsigned lets it load, visibly.
    let o = a.env.run(&[
        "plugin",
        "inspect",
        s(&unsigned),
        "--policy",
        &lenient,
        "--allow-unsigned",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unsigned"),
        "a visible warning: {}",
        stderr(&o)
    );
    let log = a.env.audit_entries();
    assert_complete_entries(&log);
    assert!(
        log.iter()
            .any(|e| e["decision"] == "allowed" && e["provenance"] == "unsigned"),
        "{log:#?}"
    );
}

#[test]
fn without_a_policy_an_unsigned_plugin_loads_with_a_warning() {
    let a = Admission::new();
    let unsigned = third_party(&a.env, "unsigned");
    let o = a.env.run(&["plugin", "inspect", s(&unsigned)]);
    assert!(
        o.status.success() && stderr(&o).contains("is unsigned"),
        "{}",
        stderr(&o)
    );
    let log = a.env.audit_entries();
    assert_complete_entries(&log);
    assert!(
        log.iter()
            .any(|e| e["decision"] == "allowed" && e["provenance"] == "unsigned"),
        "{log:#?}"
    );
}

#[test]
fn rule_signatures_allow_unsigned_flag_refuses_the_flag_where_the_policy_forbids_it() {
    let a = Admission::new();
    let unsigned = third_party(&a.env, "unsigned");
    a.inspect_refused(
        &unsigned,
        &a.strict,
        &["--allow-unsigned"],
        "signatures.allow_unsigned_flag",
    );
}

#[test]
fn rule_worlds_refuses_a_world_or_contract_version_the_policy_does_not_allow() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    let optimizers_only = a
        .env
        .write("worlds.toml", "[worlds]\noptimizer = \"^0.1\"\n");
    a.inspect_refused(&good, &optimizers_only, &[], "worlds");
    let newer_only = a
        .env
        .write("versions.toml", "[worlds]\nlearner = \"^0.2\"\n");
    let err = a.inspect_refused(&good, &newer_only, &[], "worlds");
    assert!(err.contains("^0.2"), "{err}");
}

#[test]
fn rule_limits_max_memory_mib_caps_the_command_line_and_the_signed_manifest() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    a.inspect_refused(
        &good,
        &a.strict,
        &["--plugin-memory", "1024"],
        "limits.max_memory_mib",
    );
    // A validly signed manifest that asks for more.
    let greedy = third_party(&a.env, "greedy");
    a.env.ok(&["plugin", "manifest", s(&greedy)]);
    ask_for_limits(&greedy, "{\"memory_mib\": 4096}");
    a.sign(&greedy, "alice");
    let err = a.inspect_refused(&greedy, &a.strict, &[], "limits.max_memory_mib");
    assert!(err.contains("its manifest asks for"), "{err}");
}

#[test]
fn rule_limits_max_fuel_millions_caps_the_command_line() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    let capped = a
        .env
        .write("fuel.toml", "[limits]\nmax_fuel_millions = 1000\n");
    let err = a.inspect_refused(
        &good,
        &capped,
        &["--plugin-fuel", "1001"],
        "limits.max_fuel_millions",
    );
    assert!(err.contains("1001"), "{err}");
}

#[test]
fn rule_limits_max_tensors_caps_the_command_line() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    let capped = a.env.write("tensors.toml", "[limits]\nmax_tensors = 100\n");
    let err = a.inspect_refused(
        &good,
        &capped,
        &["--plugin-tensors", "101"],
        "limits.max_tensors",
    );
    assert!(err.contains("101"), "{err}");
}

#[test]
fn rule_limits_max_trials_refuses_a_longer_search_and_leaves_no_study() {
    let a = Admission::new();
    let good = a.signed("good", "alice");
    let budget = a.env.write("budget.toml", "[limits]\nmax_trials = 3\n");
    a.env.refused(
        &[
            "compress",
            "--plugin",
            s(&good),
            "--optimizer",
            "random",
            "--trials",
            "4",
            "--target",
            "params=0.5",
            "--policy",
            &budget,
            "--study",
            "refused.db",
        ],
        "limits.max_trials",
    );
    assert!(
        !a.env.dir.join("refused.db").exists(),
        "a refused search leaves no study"
    );
}

#[test]
fn a_malformed_policy_or_registry_is_a_clear_error() {
    let tmp = tempdir();
    let env = Env {
        dir: tmp.path().to_path_buf(),
    };
    let bad = env.write("bad.toml", "[signatures]\nrequird = true\n");
    let o = env.run(&["plugin", "inspect", "random", "--policy", &bad]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("requird") && stderr(&o).contains("bad.toml"),
        "{}",
        stderr(&o)
    );

    let reg = env.dir.join("reg");
    std::fs::create_dir_all(&reg).unwrap();
    let o = env.run(&["plugin", "install", "x", "--registry", s(&reg)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a pf registry"), "{}", stderr(&o));
    std::fs::write(
        reg.join("index.json"),
        "{\"format\": 1, \"plugins\": {\"x\": 3}}",
    )
    .unwrap();
    let o = env.run(&["plugin", "install", "x", "--registry", s(&reg)]);
    assert!(
        !o.status.success() && stderr(&o).contains("index"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));
    let o = env.run(&["plugin", "remove", "nothing_here"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no installed plugin"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["plugin", "keygen", "-o", "k.key"]);
    assert!(o.status.success());
    let o = env.run(&["plugin", "keygen", "-o", "k.key"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--force"),
        "keys are never overwritten silently"
    );
}

/// The code blocks of docs/plugin-guide.md marked `<!-- tutorial-file: PATH -->`.
fn guide_files() -> Vec<(String, String)> {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plugin-guide.md"),
    )
    .unwrap();
    let mut files = Vec::new();
    let mut lines = guide.lines();
    while let Some(l) = lines.next() {
        if let Some(path) = l
            .strip_prefix("<!-- tutorial-file: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            let fence = lines.next().expect("a code block follows");
            assert!(fence.starts_with("```"), "{fence}");
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            files.push((path.to_string(), body.join("\n") + "\n"));
        }
    }
    files
}

/// The SDK as `cargo package` ships it, unpacked: the scaffold depends on
/// it as it would on the crates.io release, so building the plugin proves
/// the package complete (WIT included). Cargo's own verification build (a
/// native build of the same files) is skipped: the plugin build is the one
/// that matters, and it is already here.
fn packaged_sdk(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(&cargo)
        .current_dir(&repo)
        .args([
            "package",
            "-p",
            "pf-sdk",
            "--no-verify",
            "--allow-dirty",
            "--offline",
            "--target-dir",
        ])
        .arg(dir.join("package-target"))
        .output()
        .expect("cargo runs");
    assert!(o.status.success(), "cargo package failed: {}", stderr(&o));
    let pkg = dir.join("package-target/package");
    let krate = std::fs::read_dir(&pkg)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "crate"))
        .expect("a .crate file");
    let o = Command::new("tar")
        .arg("xzf")
        .arg(&krate)
        .arg("-C")
        .arg(dir)
        .output()
        .expect("tar runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let unpacked = dir.join(krate.file_stem().unwrap());
    assert!(
        unpacked.join("wit/0.1.0/plugin.wit").is_file(),
        "the package carries the WIT"
    );
    unpacked
}

#[test]
fn the_plugin_guide_runs_end_to_end() {
    let tmp = tempdir();
    let env = Env {
        dir: tmp.path().to_path_buf(),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdk = packaged_sdk(&env.dir);

    // 2. Start a crate, against the packaged SDK.
    env.ok(&[
        "plugin",
        "new",
        "l1_filter",
        "--kind",
        "learner",
        "--sdk",
        s(&sdk),
    ]);
    let krate = env.dir.join("l1_filter");
    assert!(krate.join("README.md").is_file());
    // 4. The guide's code.
    let files = guide_files();
    assert!(
        files.iter().any(|(p, _)| p == "src/lib.rs"),
        "the guide has the learner"
    );
    for (path, text) in &files {
        std::fs::write(krate.join(path), text).unwrap();
    }

    // 3. Build and test.
    let wasm_target = repo.join("target/wasm");
    env.ok(&[
        "plugin",
        "build",
        s(&krate),
        "--target-dir",
        s(&wasm_target),
    ]);
    let component = krate.join("target/plugins/l1_filter.wasm");
    let out = env.ok(&["plugin", "test", s(&component)]);
    assert!(!out.contains("[FAIL]"), "{out}");

    // 7. Sign and publish.
    env.ok(&["plugin", "keygen", "-o", "keys/alice.key"]);
    let out = env.ok(&[
        "plugin",
        "publish",
        s(&component),
        "--registry",
        "registry",
        "--key",
        "keys/alice.key",
    ]);
    assert!(out.contains("published l1_filter@0.1.0"), "{out}");
    let listed = env.ok(&["plugin", "list", "--registry", "registry", "--json"]);
    assert!(listed.contains("l1_filter"), "{listed}");

    // 8. Install and use, under a policy that trusts alice only.
    let alice = std::fs::read_to_string(env.dir.join("keys/alice.pub")).unwrap();
    let policy = env.write(
        "policy.toml",
        &format!(
            "[signatures]\nrequired = true\n\n[[publishers]]\nname = \"alice\"\nkey = \"{}\"\n",
            alice.trim()
        ),
    );
    env.ok(&[
        "plugin",
        "install",
        "l1_filter@0.1",
        "--registry",
        "registry",
        "--policy",
        &policy,
    ]);
    let installed = env.ok(&["plugin", "list", "--json"]);
    assert!(
        installed.contains("\"installed\"") && installed.contains("alice"),
        "{installed}"
    );
    let out = env.ok(&[
        "compress",
        "--plugin",
        "l1_filter",
        "--optimizer",
        "random",
        "--trials",
        "2",
        "--target",
        "flops=0.5",
        "--finetune-steps",
        "10",
        "--retrain-epochs",
        "0",
        "--policy",
        &policy,
        "--study",
        "study.db",
        "--export",
        "l1.pf",
        "--report",
        "report.html",
    ]);
    assert!(out.contains("met at"), "{out}");
    // A latency bound alone: the optimizer searches the FLOPs target the
    // learner is handed, and every candidate is timed in LiteRT.
    let out = env.ok(&[
        "compress",
        "--plugin",
        "l1_filter",
        "--optimizer",
        "random",
        "--trials",
        "2",
        "--target",
        "latency=1000ms@1",
        "--finetune-steps",
        "10",
        "--retrain-epochs",
        "0",
        "--policy",
        &policy,
        "--study",
        "latency.db",
        "--export",
        "l1-latency.pf",
        "--no-report",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ratio = r["best"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "flops_ratio")
        .and_then(|p| p["value"]["float"].as_f64())
        .unwrap_or_else(|| panic!("no flops_ratio in the best trial: {r}"));
    let macs = r["final"]["footprint"]["macs"].as_f64().unwrap();
    let base = r["baseline"]["footprint"]["macs"].as_f64().unwrap();
    assert!(
        macs <= ratio * base && (0.1..=1.0).contains(&ratio),
        "the learner did not meet the searched FLOPs target {ratio}: {macs} of {base} MACs"
    );
    assert!(r["latency"]["final_ms"].as_f64().unwrap() > 0.0, "{r}");
    // The same component without its signature is refused by that policy.
    let bare = env.dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(&component, bare.join("l1_filter.wasm")).unwrap();
    env.refused(
        &[
            "plugin",
            "inspect",
            s(&bare.join("l1_filter.wasm")),
            "--policy",
            &policy,
        ],
        "signatures.required",
    );
    env.ok(&["plugin", "remove", "l1_filter@0.1.0"]);
    assert!(
        env.run(&["plugin", "inspect", "l1_filter@0.1"])
            .status
            .code()
            != Some(0)
    );

    // The audit log has every decision of the walk-through.
    let log = env.audit_entries();
    let seen = |command: &str, plugin: &str, decision: &str| {
        log.iter()
            .any(|e| e["command"] == command && e["plugin"] == plugin && e["decision"] == decision)
    };
    assert!(seen("plugin test", "l1_filter", "allowed"));
    assert!(seen("plugin install", "l1_filter", "allowed"));
    assert!(seen("compress", "l1_filter", "allowed"));
    assert!(seen("compress", "random", "allowed"));
    assert!(seen("plugin inspect", "l1_filter", "refused"));
    let compress = log
        .iter()
        .find(|e| e["command"] == "compress" && e["plugin"] == "l1_filter")
        .unwrap();
    assert_eq!(compress["signer"], "alice");
    assert_eq!(compress["version"], "0.1.0");
    assert!(compress["path"]
        .as_str()
        .unwrap()
        .contains("data/pf/plugins/l1_filter/0.1.0"));
}

#[test]
fn a_new_optimizer_crate_builds_and_passes_the_suite_as_generated() {
    let tmp = tempdir();
    let env = Env {
        dir: tmp.path().to_path_buf(),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdk = repo.join("sdk");
    env.ok(&[
        "plugin",
        "new",
        "my_search",
        "--kind",
        "optimizer",
        "--sdk",
        s(&sdk),
    ]);
    let krate = env.dir.join("my_search");
    env.ok(&[
        "plugin",
        "build",
        s(&krate),
        "--target-dir",
        s(&repo.join("target/wasm")),
    ]);
    let out = env.ok(&[
        "plugin",
        "test",
        s(&krate.join("target/plugins/my_search.wasm")),
    ]);
    assert!(!out.contains("[FAIL]"), "{out}");
    // Names that cannot be crates are refused before anything is written.
    let o = env.run(&[
        "plugin",
        "new",
        "My-Search",
        "--kind",
        "learner",
        "--sdk",
        s(&sdk),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("lowercase"),
        "{}",
        stderr(&o)
    );
    assert!(!env.dir.join("My-Search").exists());
    let o = env.run(&[
        "plugin",
        "new",
        "my_search",
        "--kind",
        "learner",
        "--sdk",
        s(&sdk),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("not empty"),
        "{}",
        stderr(&o)
    );
}
