//! featherflow's integration tests: one binary, real plugins.
//!
//! Every Wasm plugin used here is a real component built from
//! `guest-features/` (`make guests`); a missing one fails the test with the
//! command to run, it is never skipped.

mod checkpoint;
mod exactly_once;
mod golden;
mod hostile_input;
mod hotswap;
mod kafka_redis;
mod languages;
mod redis_sink;
mod sandbox;
mod scaffold;
mod services;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A built guest component, by package name (`user-activity`).
pub fn guest(package: &str) -> PathBuf {
    let path = root()
        .join("target/wasm32-wasip2/wasm")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: build the guests first with `make guests`",
        path.display()
    );
    path
}

/// A fresh plugin directory holding copies of the given guests.
pub fn plugin_dir(packages: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for p in packages {
        std::fs::copy(guest(p), dir.path().join(format!("{p}.wasm"))).expect("copy plugin");
    }
    dir
}

pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// The featherflow binary built for this test run.
pub fn featherflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_featherflow"));
    c.env("RUST_LOG", "warn");
    c
}

/// Run a command, insist on success, return (stdout, stderr).
pub fn run_ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{stderr}", out.status);
    (stdout, stderr)
}
