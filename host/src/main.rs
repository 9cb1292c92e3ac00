//! The `featherflow` binary: parse the command line, set up logging, hand
//! over to [`featherflow::cli`], map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;
use featherflow::cli::{self, Cli};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its index in the option enum of mimalloc v3's
/// `mimalloc.h` (the version `libmimalloc-sys` 0.1.49 builds), which has no
/// Rust constant for it. Check it when that crate is updated.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Allocator settings for a process that touches a few hundred MB at random.
fn tune_allocator() {
    use libmimalloc_sys::{mi_option_large_os_pages, mi_option_set};
    // SAFETY: called first thing in `main`, before any other thread exists
    // (mimalloc's option setters are not thread-safe).
    unsafe {
        // 2 MiB pages (transparent huge pages, where the kernel grants them
        // on request). With 100 k keys each event touches a handful of
        // random cache lines over a few hundred MB; with 4 KiB pages nearly
        // each of them also missed the TLB. `make bench`: -15 % CPU time.
        mi_option_set(mi_option_large_os_pages, 1);
        // Keep freed memory for 10 s (default 1 s) before returning it to
        // the OS. Every slide frees a chunk's records and allocates the next
        // ones; with the default, their pages went back to the kernel and
        // were faulted in and zeroed again. `make bench`: page faults
        // 6.9 k -> 2.7 k.
        mi_option_set(MI_OPTION_PURGE_DELAY, 10_000);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let args = Cli::parse();
    cli::init_tracing(args.log_format);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
