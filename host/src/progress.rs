//! Progress bars on standard error, hidden when not wanted or not a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::OnceLock;

static STACK: OnceLock<MultiProgress> = OnceLock::new();

/// Stacks every bar made from now on (and lines printed through the
/// returned handle) in one display, so bars of work running at once, such as
/// parallel trials, do not overwrite each other.
pub fn stack() -> MultiProgress {
    STACK.get_or_init(MultiProgress::new).clone()
}

fn stacked(bar: ProgressBar) -> ProgressBar {
    match STACK.get() {
        Some(m) if !bar.is_hidden() => m.add(bar),
        _ => bar,
    }
}

/// A progress bar of `len` steps labelled `what`; hidden if `show` is false.
pub fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>6} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    stacked(bar)
}

/// A spinner with a message, for work of unknown length; hidden if `show` is
/// false.
pub fn spinner(message: &str, show: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    bar.set_message(message.to_string());
    let bar = stacked(bar);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Prints one line of progress on standard error: above the bars on a
/// terminal, plainly elsewhere (a log file, CI, `nohup`), where the bars
/// themselves are hidden and this line is all a reader gets.
pub fn line(msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let _ = stack().println(msg);
    } else {
        eprintln!("{msg}");
    }
}
