//! Ctrl-C (SIGINT) and SIGTERM during `pf compress`. A trial cannot be
//! stopped half-way and kept, and every finished trial is already committed,
//! so pf stops at once: it lists the trials that were running in the
//! study's `interruptions` table ([`super::study::record_interruption`]),
//! prints how many finished trials the study keeps and the exact command
//! that continues it, and exits with status 130 (the shell's code for
//! SIGINT). `--resume` runs the interrupted trials again, as if the first
//! run had never been stopped.
//!
//! The signal handler only sets a flag (all a handler may safely do); a
//! watcher thread acts on it.

use anyhow::Result;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Set by the signal handler.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Trials started and not yet committed to the study.
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// How often the watcher looks at the flag.
const POLL: Duration = Duration::from_millis(20);

/// The exit status after an interruption (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

fn running() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes that trial `number` has started.
pub fn trial_started(number: u32) {
    running().insert(number);
}

/// Notes that trial `number` is committed to the study (or will never be).
pub fn trial_recorded(number: u32) {
    running().remove(&number);
}

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// From now on, Ctrl-C (SIGINT) or SIGTERM stops the process as the module
/// documentation says, for the study at `study` (which may not exist yet:
/// then nothing was recorded and nothing is to resume). `resume` is the
/// command that continues the study ([`resume_command`]).
pub fn watch_study(study: &Path, resume: String) -> Result<()> {
    let study = study.to_path_buf();
    std::thread::Builder::new()
        .name("pf-interrupt".into())
        .spawn(move || loop {
            std::thread::sleep(POLL);
            if SIGNALLED.load(Ordering::SeqCst) {
                stop(&study, &resume);
            }
        })?;
    #[cfg(unix)]
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic, which
        // is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    Ok(())
}

/// Records the running trials, says what was kept and how to go on, and
/// exits.
fn stop(study: &Path, resume: &str) -> ! {
    // Held to the end: no trial starts any more.
    let running = running();
    let numbers: Vec<u32> = running.iter().copied().collect();
    let list = |numbers: &[u32]| {
        numbers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let s = study.display();
    eprintln!();
    if !study.is_file() {
        eprintln!("pf: interrupted before study {s} was created; nothing was recorded");
        std::process::exit(EXIT_INTERRUPTED);
    }
    match super::study::record_interruption(study, &numbers) {
        Ok((numbers, finished)) => {
            let list = list(&numbers);
            let what = match numbers.len() {
                0 => String::new(),
                1 => format!("trial {list} was running and is recorded as interrupted; "),
                _ => format!("trials {list} were running and are recorded as interrupted; "),
            };
            eprintln!(
                "pf: interrupted: {what}study {s} keeps its {finished} finished trial{}.",
                if finished == 1 { "" } else { "s" }
            );
        }
        Err(e) => eprintln!(
            "pf: interrupted; the running trials ({}) could not be recorded ({e:#}); the \
             finished trials in {s} are kept.",
            list(&numbers)
        ),
    }
    eprintln!("Continue the study with:\n  {resume}");
    std::process::exit(EXIT_INTERRUPTED);
}

/// The command that continues a study: the command line `args` (the program
/// first) with `--resume` added unless it is there, each argument quoted
/// for a POSIX shell where it needs it.
pub fn resume_command(args: impl IntoIterator<Item = String>) -> String {
    let mut args: Vec<String> = args.into_iter().collect();
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell reads it back: bare when it holds only safe
/// characters, else in single quotes.
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_adds_resume_once_and_quotes_what_a_shell_would_split() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resume_command(args(&["pf", "compress", "--study", "runs/a b.db"])),
            "pf compress --study 'runs/a b.db' --resume"
        );
        assert_eq!(
            resume_command(args(&["pf", "compress", "--resume", "--set", "x='1'"])),
            r"pf compress --resume --set 'x='\''1'\'''"
        );
        assert_eq!(resume_command(args(&["pf", ""])), "pf '' --resume");
    }
}
