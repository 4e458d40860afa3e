//! The `pf` command-line tool.

mod cli;

fn main() {
    keep_freed_memory();
    quiet_broken_pipe();
    report_file_size_limits();
    let code = match cli::run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Training allocates and frees the same large activation buffers every step.
/// glibc serves big allocations with fresh `mmap`s and returns them on free,
/// so every step pays for page faults and the kernel zeroing new pages. Keep
/// them in the heap instead (glibc only; elsewhere the allocator decides).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator thresholds; it is called once at
    // start-up, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// `pf info model | head` closes stdout early: end quietly, as other Unix
/// tools do, instead of panicking in `println!` (Rust ignores SIGPIPE by
/// default, so writes fail with EPIPE).
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Under a file-size limit (`ulimit -f`), a write past it raises SIGXFSZ,
/// whose default action kills the process without a word. Ignored, the
/// write fails with EFBIG instead, and pf says which file it could not
/// write and what to do (a study keeps every committed trial).
fn report_file_size_limits() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" at start-up, before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
