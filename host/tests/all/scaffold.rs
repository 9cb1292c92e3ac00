//! `featherflow plugin new` writes a project that passes its own unit test,
//! builds with `plugin build` (installing the pinned toolchain on first
//! use) and matches its expected output under `plugin test`: in Rust,
//! Python and JavaScript.

use std::process::Command;

use crate::{featherflow, root, run_ok};

/// `memory_mib`: the memory limit the built component must declare.
fn new_build_test(lang: &str, unit_test: &[&str], memory_mib: usize) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    let name = format!("revenue-{lang}");
    run_ok(
        featherflow()
            .args(["plugin", "new", &name, "--lang", lang, "--dir"])
            .arg(&project),
    );
    let out = Command::new(unit_test[0])
        .args(&unit_test[1..])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{lang} unit test: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if lang == "rust" {
        // The Rust template leaves the limit to the engine; declare one.
        let manifest = project.join("featherflow-plugin.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("# memory-limit-mib = 64"), "{text}");
        std::fs::write(
            &manifest,
            text.replace("# memory-limit-mib = 64", &format!("memory-limit-mib = {memory_mib}")),
        )
        .unwrap();
    }
    // Toolchains are kept between runs, beside the build's other outputs.
    let tools = root().join("target/plugin-tools");
    run_ok(
        featherflow()
            .args(["plugin", "build"])
            .arg(&project)
            .env("FEATHERFLOW_PLUGINS_TOOLS_DIR", &tools),
    );
    let wasm = project.join(format!("{name}.wasm"));
    let (stdout, _) = run_ok(featherflow().args(["plugin", "inspect"]).arg(&wasm));
    assert!(stdout.contains(&format!("revenue_{lang}")), "{stdout}");
    assert!(stdout.contains(&format!("memory limit:  {memory_mib} MiB")), "{stdout}");
    let (_, stderr) = run_ok(
        featherflow()
            .args(["plugin", "test"])
            .arg(&wasm)
            .arg("--events")
            .arg(project.join("testdata/events.jsonl"))
            .arg("--expect")
            .arg(project.join("testdata/expected.jsonl")),
    );
    assert!(
        stderr.contains("OK: output matches") && stderr.contains("(4 lines)"),
        "{stderr}"
    );
}

#[test]
fn a_new_rust_plugin_tests_builds_and_matches_its_expected_output() {
    new_build_test("rust", &["cargo", "test", "-q"], 80);
}

#[test]
fn a_new_python_plugin_tests_builds_and_matches_its_expected_output() {
    new_build_test("python", &["python3", "-m", "unittest", "discover", "-s", "tests"], 128);
}

#[test]
fn a_new_js_plugin_tests_builds_and_matches_its_expected_output() {
    new_build_test("js", &["node", "--test", "test/"], 128);
}

#[test]
fn a_bad_name_or_a_used_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = featherflow()
        .args(["plugin", "new", "../evil", "--lang", "rust", "--dir"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin name"), "{out:?}");
    std::fs::write(dir.path().join("taken"), "").unwrap();
    let out = featherflow()
        .args(["plugin", "new", "ok", "--lang", "js", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"), "{out:?}");
}
