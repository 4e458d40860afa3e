//! `pf doctor`: what this machine has of what pf uses, one line per piece,
//! with how to install each missing one.
//!
//! Required (the exit status): the built-in plugins, which every search
//! needs. Optional: the wasm32 toolchain (only to build plugins), LiteRT and
//! ONNX Runtime (only to verify or time exported files), Chromium (only the
//! report test opens reports in a browser) and CUDA (only `--device cuda`).

use super::common::print_json;
use anyhow::{bail, Result};
use clap::Args;
use pf::export::python::{self, Runtime};
use pf::export::tflite::litert;
use pf::plugin::PluginKind;
use pf::registry::resolve;
use pf_registry::lock::Lock;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Arguments of `pf doctor`.
///
/// Checks, one line each: the built-in plugins (required: where they are,
/// how many, whether their lock is readable and their digests match), the
/// wasm32 toolchain that builds plugins, LiteRT and ONNX Runtime in the
/// Python pf would use, Chromium, and CUDA. Every missing piece comes with
/// how to install it.
///
/// Exit status: 0 when everything the default job (`pf compress`) needs is
/// there, that is the built-in plugins; 1 when something it needs is
/// missing. Optional pieces never fail it.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Python to check for LiteRT and ONNX Runtime [default:
    /// $PF_LITERT_PYTHON, else target/litert-venv of this pf's checkout,
    /// else python3], as `pf export --verify` chooses it.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

/// One check's verdict.
#[derive(Debug, Serialize)]
struct Check {
    /// What was checked (`plugins`, `litert`, ...).
    name: &'static str,
    /// `ok` or `missing`.
    status: &'static str,
    /// Whether the default job needs it.
    required: bool,
    /// What was found, or what is wrong.
    detail: String,
    /// How to install it (only when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, required: bool, detail: String) -> Check {
        Check {
            name,
            status: "ok",
            required,
            detail,
            fix: None,
        }
    }

    fn missing(name: &'static str, required: bool, detail: String, fix: String) -> Check {
        Check {
            name,
            status: "missing",
            required,
            detail,
            fix: Some(fix),
        }
    }
}

/// Runs `pf doctor`.
pub fn run(a: DoctorArgs) -> Result<()> {
    let python = litert::python(a.python.as_deref());
    let python_source = if a.python.is_some() {
        "--python"
    } else if std::env::var_os("PF_LITERT_PYTHON").is_some() {
        "PF_LITERT_PYTHON"
    } else if python != Path::new("python3") {
        "this checkout's target/litert-venv"
    } else {
        "python3 on PATH"
    };
    let checks = vec![
        plugins(),
        toolchain(),
        runtime(litert::LITERT, "litert", &python, python_source),
        runtime(
            pf::onnx::runtime::ONNX_RUNTIME,
            "onnxruntime",
            &python,
            python_source,
        ),
        chromium(),
        cuda(),
    ];
    let ok = checks.iter().all(|c| !c.required || c.status == "ok");
    if a.json {
        print_json(&serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "exe": std::env::current_exe().ok(),
            "ok": ok,
            "checks": checks,
        }))?;
    } else {
        if let Ok(exe) = std::env::current_exe() {
            println!("pf {} ({})", env!("CARGO_PKG_VERSION"), exe.display());
        }
        for c in &checks {
            match &c.fix {
                None => println!("{:<8} {:<12} {}", c.status, c.name, c.detail),
                Some(fix) => println!(
                    "{:<8} {:<12} {}; {}; install: {fix}",
                    c.status,
                    c.name,
                    c.detail,
                    if c.required { "required" } else { "optional" },
                ),
            }
        }
        if ok {
            println!("pf has what the default job needs");
        }
    }
    if !ok {
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| c.required && c.status != "ok")
            .map(|c| c.name)
            .collect();
        bail!(
            "pf lacks what the default job needs: {} (see above)",
            missing.join(", ")
        );
    }
    Ok(())
}

const PLUGINS_FIX: &str = "build them with scripts/build-plugins.sh (they go to target/plugins), or install pf with scripts/install.sh PREFIX (they go to PREFIX/share/pf/plugins)";

/// The built-in plugins: the first of pf's install folders that has a
/// `plugins.lock`, its lock readable, and every component it pins present
/// with the pinned digest.
fn plugins() -> Check {
    let name = "plugins";
    let dirs: Vec<PathBuf> = resolve::builtin_dirs();
    let Some(dir) = dirs.iter().find(|d| Lock::path_in(d).exists()) else {
        return Check::missing(
            name,
            true,
            format!(
                "no built-in plugins (no {} in {})",
                pf_registry::lock::FILE_NAME,
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PLUGINS_FIX.into(),
        );
    };
    let lock = match Lock::read_in(dir) {
        Ok(Some(l)) => l,
        Ok(None) => unreachable!("the lock exists"),
        Err(e) => {
            return Check::missing(
                name,
                true,
                format!("the built-in plugins' lock cannot be read: {e}"),
                format!(
                "make it readable (`chmod a+r {}`), or rebuild or reinstall them: {PLUGINS_FIX}",
                Lock::path_in(dir).display()
            ),
            )
        }
    };
    let (mut learners, mut optimizers) = (0, 0);
    let mut bad = Vec::new();
    for (plugin, digest) in &lock.plugins {
        let path = dir.join(format!("{plugin}.wasm"));
        match std::fs::read(&path) {
            Ok(bytes) if pf_registry::sha256(&bytes) == *digest => {
                match pf::plugin::inspect::inspect(&bytes).map(|i| i.kind) {
                    Ok(PluginKind::Learner) => learners += 1,
                    Ok(PluginKind::Optimizer) => optimizers += 1,
                    Err(e) => bad.push(format!("{plugin} ({e:#})")),
                }
            }
            Ok(_) => bad.push(format!("{plugin} (not the bytes pinned in the lock)")),
            Err(e) => bad.push(format!("{plugin} ({e})")),
        }
    }
    if !bad.is_empty() || learners == 0 || optimizers == 0 {
        let problem = if bad.is_empty() {
            "no learner or no optimizer".to_string()
        } else {
            format!("unusable: {}", bad.join(", "))
        };
        return Check::missing(
            name,
            true,
            format!("built-in plugins in {}: {problem}", dir.display()),
            PLUGINS_FIX.into(),
        );
    }
    Check::ok(
        name,
        true,
        format!(
            "{} built-in plugins ({learners} learners, {optimizers} optimizers) in {}, {} readable, digests match",
            learners + optimizers,
            dir.display(),
            pf_registry::lock::FILE_NAME
        ),
    )
}

/// The compiler that builds plugins (`pf plugin build`), found as that
/// command finds it.
fn toolchain() -> Check {
    match pf::devtools::build::detect_toolchain() {
        Ok(t) => Check::ok("wasm32", false, format!("plugins build with {t}")),
        Err(_) => Check::missing(
            "wasm32",
            false,
            "no toolchain builds plugins for wasm32-unknown-unknown (only `pf plugin build` needs one)".into(),
            "`rustup target add wasm32-unknown-unknown`, or on Debian `apt-get install rustc-web cargo-web rust-web-src lld` (scripts/build-plugins.sh installs it)".into(),
        ),
    }
}

/// A Python runtime: `python` imports numpy and its module, and says which
/// version it has.
fn runtime(rt: Runtime, name: &'static str, python: &Path, source: &str) -> Check {
    let uses = if name == "litert" {
        "for `pf export --verify` of .tflite files, `pf bench-tflite` and latency targets"
    } else {
        "for `pf export --format onnx --verify`"
    };
    let script = format!(
        "import importlib.metadata as m\nimport numpy, {}\nprint(m.version('{}'))",
        rt.module, rt.package
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Check::ok(
            name,
            false,
            format!(
                "{} {} in {} ({source})",
                rt.name,
                String::from_utf8_lossy(&o.stdout).trim(),
                python.display()
            ),
        ),
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let why = match python::missing_module(&stderr) {
                Some(m) => format!("no module `{m}`"),
                None => stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("it fails")
                    .to_string(),
            };
            Check::missing(
                name,
                false,
                format!(
                    "{} is not in {} ({source}): {why} ({} is {uses})",
                    rt.name,
                    python.display(),
                    rt.name
                ),
                rt.install_hint(python),
            )
        }
        Err(e) => Check::missing(
            name,
            false,
            format!(
                "cannot run Python {} ({source}): {e} ({} is {uses})",
                python.display(),
                rt.name
            ),
            format!(
                "install Python 3, then `python3 -m venv DIR && DIR/bin/pip install {}`, and pass --python DIR/bin/python or set PF_LITERT_PYTHON",
                rt.requirement()
            ),
        ),
    }
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// A headless browser, found as the report test finds it.
fn chromium() -> Check {
    match on_path(&["chromium", "chromium-browser", "google-chrome"]) {
        Some(p) => Check::ok(
            "chromium",
            false,
            format!("{} (opens reports headless)", p.display()),
        ),
        None => Check::missing(
            "chromium",
            false,
            "no chromium, chromium-browser or google-chrome on PATH (only to open reports headless, as the report test does)".into(),
            "on Debian `apt-get install --no-install-recommends chromium` (scripts/test.sh installs it), else install Chrome or Chromium".into(),
        ),
    }
}

/// CUDA: built in or not, and whether the driver opens device 0.
fn cuda() -> Check {
    if !cfg!(feature = "cuda") {
        return Check::missing(
            "cuda",
            false,
            "this pf was built without CUDA (only `--device cuda:N` needs it)".into(),
            "rebuild with `cargo build --release -p pf --features cuda` on a machine with the CUDA toolkit".into(),
        );
    }
    match pf::device::DeviceSpec::Cuda(0).open() {
        Ok(_) => Check::ok("cuda", false, "built in; cuda:0 opens".into()),
        Err(e) => Check::missing(
            "cuda",
            false,
            format!("built in, but cuda:0 does not open: {e:#}"),
            "install the NVIDIA driver (and check `nvidia-smi`), or use --device cpu".into(),
        ),
    }
}
