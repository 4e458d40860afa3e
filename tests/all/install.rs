//! pf as users meet it once installed: the built-in plugins work for any
//! user, an installed copy (`scripts/install.sh`) finds its plugins and runs
//! a search from anywhere, `pf doctor` says what is missing and how to
//! install it, and a Python without LiteRT or ONNX Runtime is a clear error.

use crate::support::{digits_model, json, path_str, stderr, tempdir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/plugins`, as scripts/build-plugins.sh leaves it.
fn built_plugins() -> PathBuf {
    let dir = repo().join("target/plugins");
    assert!(
        dir.join("plugins.lock").is_file(),
        "{} has no plugins.lock: run scripts/build-plugins.sh --fixtures first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A pf run with none of the caller's plugin or data folders: only what the
/// binary finds beside itself.
fn isolated(exe: &Path, home: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("PF_PLUGIN_PATH")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("PF_CACHE_DIR")
        .env("HOME", home);
    c
}

/// The names plugins.lock pins in `dir`.
fn pinned(dir: &Path) -> Vec<String> {
    let lock = pf_registry::lock::Lock::read_in(dir).unwrap().unwrap();
    lock.plugins.keys().cloned().collect()
}

/// Built components, their lock and side files are written 0644 by
/// `pf plugin build`: another user (here `nobody`) lists the built-ins and
/// loads one. Needs root to switch user; skipped, saying so, otherwise.
#[test]
fn another_user_lists_and_loads_the_built_in_plugins() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let plugins = built_plugins();
    // What the build wrote is readable by all.
    assert_eq!(mode(&plugins.join("plugins.lock")), 0o644, "plugins.lock");
    for name in pinned(&plugins) {
        assert_eq!(
            mode(&plugins.join(format!("{name}.wasm"))),
            0o644,
            "{name}.wasm"
        );
    }
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!(
            "skipping the run as user nobody: it needs root to switch user (CI runs as root); the modes above were checked"
        );
        return;
    }
    // SAFETY: getpwnam with a NUL-terminated name; the fields are copied
    // before any other call.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        assert!(!pw.is_null(), "there is no user nobody");
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    let nobody = |exe: &Path, home: &Path| {
        let mut c = isolated(exe, home);
        c.uid(uid).gid(gid).current_dir(home);
        c
    };
    let tmp = tempdir();
    set_mode(tmp.path(), 0o755);
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    set_mode(&home, 0o777);
    // nobody must reach the binary: use the build's own when every folder
    // above it lets others through, else a copy (with the plugins, modes
    // kept) in a folder that does.
    let built = PathBuf::from(env!("CARGO_BIN_EXE_pf"));
    let reachable = nobody(&built, &home)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let exe = if reachable {
        built
    } else {
        eprintln!(
            "{} is out of nobody's reach: running a copy",
            built.display()
        );
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        set_mode(&bin, 0o755);
        std::fs::copy(&built, bin.join("pf")).unwrap();
        let copy = tmp.path().join("plugins");
        std::fs::create_dir(&copy).unwrap();
        set_mode(&copy, 0o755);
        std::fs::copy(plugins.join("plugins.lock"), copy.join("plugins.lock")).unwrap();
        for name in pinned(&plugins) {
            let f = format!("{name}.wasm");
            std::fs::copy(plugins.join(&f), copy.join(&f)).unwrap();
        }
        bin.join("pf")
    };

    let list = nobody(&exe, &home)
        .args(["plugin", "list", "--json"])
        .output()
        .unwrap();
    let rows = json(&list);
    let builtins: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "builtin")
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        builtins.contains(&"weight_sparse") && builtins.contains(&"random"),
        "nobody sees the built-ins {builtins:?}; stderr: {}",
        stderr(&list)
    );
    assert!(!stderr(&list).contains("cannot read"), "{}", stderr(&list));

    let inspect = nobody(&exe, &home)
        .args(["plugin", "inspect", "weight_sparse", "--json"])
        .output()
        .unwrap();
    let info = json(&inspect);
    assert_eq!(info["provenance"], "builtin", "{info}");
}

/// `scripts/install.sh --bin` lays out a built pf as `PREFIX/bin/pf` with
/// the built-in plugins (and nothing else) in `PREFIX/share/pf/plugins`, all
/// readable by every user; that copy, run from another folder with no
/// plugin path, lists its plugins, passes `pf doctor`, and runs a search.
#[test]
fn an_installed_copy_runs_the_default_job() {
    let plugins = built_plugins();
    let tmp = tempdir();
    let prefix = tmp.path().join("prefix");
    let out = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_pf")])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh failed: {}", stderr(&out));

    let exe = prefix.join("bin/pf");
    let share = prefix.join("share/pf/plugins");
    assert_eq!(mode(&exe), 0o755);
    for d in [prefix.join("share"), prefix.join("share/pf"), share.clone()] {
        assert_eq!(mode(&d), 0o755, "{}", d.display());
    }
    assert_eq!(mode(&share.join("plugins.lock")), 0o644);
    let names = pinned(&plugins);
    let mut installed: Vec<String> = std::fs::read_dir(&share)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    let mut expected: Vec<String> = names.iter().map(|n| format!("{n}.wasm")).collect();
    expected.push("plugins.lock".into());
    expected.sort();
    // Only the pinned built-ins: never the test fixtures beside them.
    assert_eq!(installed, expected);
    for f in &installed {
        assert_eq!(mode(&share.join(f)), 0o644, "{f}");
    }

    let work = tmp.path().join("work");
    let home = tmp.path().join("home");
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&home).unwrap();
    let pf = || {
        let mut c = isolated(&exe, &home);
        c.current_dir(&work);
        c
    };

    let rows = json(&pf().args(["plugin", "list", "--json"]).output().unwrap());
    let listed: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed.len(), names.len(), "{listed:?}");
    for (_, path) in &listed {
        assert!(Path::new(path).starts_with(&share), "{path}");
    }

    let doctor = pf().args(["doctor", "--json"]).output().unwrap();
    let report = json(&doctor);
    assert_eq!(report["ok"], true, "{report}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "plugins")
        .unwrap();
    assert_eq!(check["status"], "ok", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains(&share.display().to_string()),
        "{check}"
    );

    let model = digits_model(tmp.path(), 30);
    // The default job in its headline form, on a small baseline and budget:
    // channel_pruned × tpe at the target channel_pruned is made for, the
    // outputs beside the study.
    let search = pf()
        .args([
            "--plugin",
            "channel_pruned",
            "--optimizer",
            "tpe",
            "--model",
            &model,
            "--trials",
            "2",
            "--finetune-steps",
            "5",
            "--bn-images",
            "64",
            "--retrain-epochs",
            "0",
            "--study",
            &path_str(tmp.path(), "runs/s.db"),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        search.status.success(),
        "the installed pf cannot search: {}",
        stderr(&search)
    );
    for name in ["s.tflite", "s.pf", "s.html"] {
        assert!(tmp.path().join("runs").join(name).is_file(), "{name}");
    }
    assert!(
        std::fs::read_dir(&work).unwrap().next().is_none(),
        "the search wrote into the current folder"
    );
}

/// A Python that runs but has no site packages: no numpy, no LiteRT, no
/// ONNX Runtime.
fn bare_python(dir: &Path) -> PathBuf {
    // The interpreter itself, not a shim (pyenv's need bash on PATH).
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    let python3 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        Path::new(&python3).is_file(),
        "python3 says it is `{python3}`"
    );
    let wrapper = dir.join("bare-python");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {python3} -I -S \"$@\"\n"),
    )
    .unwrap();
    set_mode(&wrapper, 0o755);
    wrapper
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report}"))
}

/// `pf doctor` from the build tree: the plugins are there (so it passes),
/// LiteRT is there when scripts/test.sh made its venv (or PF_LITERT_PYTHON
/// names one), and every missing piece comes with how to install it.
#[test]
fn doctor_reports_each_piece_and_how_to_install_what_is_missing() {
    built_plugins();
    let tmp = tempdir();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_pf"));

    // As found: plugins ok; LiteRT ok where the test venv is.
    let out = isolated(&exe, &home).arg("doctor").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no `{name}` line in\n{text}"))
            .to_string()
    };
    assert!(line("plugins").starts_with("ok "), "{text}");
    assert!(line("plugins").contains("target/plugins"), "{text}");
    let venv = repo().join("target/litert-venv/bin/python");
    if std::env::var_os("PF_LITERT_PYTHON").is_some() || venv.is_file() {
        assert!(line("litert").starts_with("ok "), "{text}");
        assert!(line("onnxruntime").starts_with("ok "), "{text}");
    } else {
        eprintln!(
            "no target/litert-venv: LiteRT's ok line is not checked (scripts/test.sh makes it)"
        );
    }
    for name in ["wasm32", "chromium", "cuda"] {
        line(name);
    }

    // A Python without the runtimes and a PATH without chromium: each line
    // says missing, what is missing, and how to install it; optional pieces
    // do not fail the check.
    let bare = bare_python(tmp.path());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = isolated(&exe, &home)
        .args(["doctor", "--json"])
        .env("PF_LITERT_PYTHON", &bare)
        .env("PATH", &empty)
        .output()
        .unwrap();
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report}");
    let litert = check(&report, "litert");
    assert_eq!(litert["status"], "missing", "{litert}");
    let said = litert.to_string();
    assert!(
        said.contains("ai-edge-litert==2.3.0") && said.contains(&bare.display().to_string()),
        "{said}"
    );
    assert!(
        said.contains("no module `numpy`") || said.contains("ai_edge_litert"),
        "{said}"
    );
    let ort = check(&report, "onnxruntime");
    assert_eq!(ort["status"], "missing");
    assert!(ort.to_string().contains("onnxruntime==1.32.0"), "{ort}");
    let chromium = check(&report, "chromium");
    assert_eq!(chromium["status"], "missing");
    assert!(
        chromium["fix"]
            .as_str()
            .unwrap()
            .contains("apt-get install"),
        "{chromium}"
    );

    // A pf with no built-in plugins beside it fails, saying how to get them.
    let lone = tmp.path().join("lone");
    std::fs::create_dir(&lone).unwrap();
    let copy = lone.join("pf");
    if std::fs::hard_link(&exe, &copy).is_err() {
        std::fs::copy(&exe, &copy).unwrap();
    }
    let out = isolated(&copy, &home).arg("doctor").output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    let plugins_line = text
        .lines()
        .find(|l| l.starts_with("missing  plugins"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(plugins_line.contains("scripts/build-plugins.sh"), "{text}");
    assert!(stderr(&out).contains("plugins"), "{}", stderr(&out));
}

/// Without LiteRT or ONNX Runtime in the Python used, `--verify` and
/// `pf bench-tflite` say which module is missing from which Python and how
/// to install it, instead of Python's bare ModuleNotFoundError.
#[test]
fn a_python_without_the_runtimes_is_a_clear_error() {
    let tmp = tempdir();
    let bare = bare_python(tmp.path());
    let tflite = path_str(tmp.path(), "m.tflite");
    let onnx = path_str(tmp.path(), "m.onnx");
    let bare_s = bare.to_string_lossy().into_owned();
    let model = digits_model(tmp.path(), 5);
    let plain = crate::support::run_pf(tmp.path(), &["export", &model, "-o", &tflite]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let checked = path_str(tmp.path(), "checked.tflite");
    let runs: [(Vec<&str>, &str); 3] = [
        (
            vec![
                "export",
                &model,
                "-o",
                &checked,
                "--verify",
                "--verify-images",
                "8",
                "--python",
                &bare_s,
            ],
            "ai-edge-litert==2.3.0",
        ),
        (
            vec![
                "export",
                &model,
                "--format",
                "onnx",
                "-o",
                &onnx,
                "--verify",
                "--verify-images",
                "8",
                "--python",
                &bare_s,
            ],
            "onnxruntime==1.32.0",
        ),
        (
            vec!["bench-tflite", &tflite, "--runs", "1", "--python", &bare_s],
            "ai-edge-litert==2.3.0",
        ),
    ];
    for (args, package) in runs {
        let out = crate::support::pf()
            .current_dir(tmp.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let e = stderr(&out);
        assert!(
            e.contains("is missing from")
                && e.contains("numpy")
                && e.contains(&bare_s)
                && e.contains(package)
                && e.contains("PF_LITERT_PYTHON")
                && e.contains("pf doctor")
                && !e.contains("Traceback"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn the_missing_module_is_read_from_pythons_error() {
    use pf::export::python::missing_module;
    assert_eq!(
        missing_module("Traceback...\nModuleNotFoundError: No module named 'numpy'\n").as_deref(),
        Some("numpy")
    );
    assert_eq!(
        missing_module("ImportError: No module named 'ai_edge_litert.interpreter'").as_deref(),
        Some("ai_edge_litert.interpreter")
    );
    assert_eq!(missing_module("ValueError: bad"), None);
}
