//! The `featherflow` binary: parse the command line, set up logging, hand
//! over to [`featherflow::app`], map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;
use featherflow::app::{self, Cli};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    app::init_tracing(cli.log_format);
    match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
