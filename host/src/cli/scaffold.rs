//! `featherflow plugin new` and `plugin build`: a ready plugin project in
//! Rust, Python or JavaScript, and its build with pinned toolchains.
//!
//! A project is self-contained: the SDK of its language and the WIT
//! contract are written into it from this binary, so a user who has only
//! the engine's binary can write, test and build a plugin. Its language is
//! in `featherflow-plugin.toml`. Toolchains are installed on first use
//! into `plugins.tools-dir` (default `~/.cache/featherflow/tools`):
//! componentize-py for Python, componentize-js for JavaScript (from PyPI and
//! npm, at the versions pinned here); Rust plugins build with the
//! `wasm32-wasip2` target of the user's rustup.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// componentize-py, pinned: the version the Python SDK is tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// componentize-js, pinned likewise.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `-` and `_`; the view
    /// is the name with `-` as `_`.
    pub name: String,
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where the project goes (default: ./NAME); must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project (made by `plugin new`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The component to write (default: DIR/NAME.wasm).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Configuration file (TOML), for `plugins.tools-dir`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

const WIT: &str = include_str!("../../../wit/feature.wit");
const EVENTS: &str = include_str!("templates/events.jsonl");
const EXPECTED: &str = include_str!("templates/expected.jsonl");
const README: &str = include_str!("templates/README.md");

/// `(path in the project, contents)` of one language's files; `{{NAME}}`
/// and `{{VIEW}}` are filled in.
fn files(lang: Lang) -> Vec<(&'static str, String)> {
    let sdk = |s: &str| s.to_string();
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml").into()),
            ("src/lib.rs", include_str!("templates/rust/lib.rs").into()),
            ("sdk/Cargo.toml", include_str!("templates/rust/sdk.Cargo.toml").into()),
            (
                "sdk/src/lib.rs",
                // The contract sits beside the SDK here, not two levels up.
                include_str!("../../../guest-features/sdk/src/lib.rs").replace("\"../../wit\"", "\"../wit\""),
            ),
            (
                "sdk/src/adapter.rs",
                sdk(include_str!("../../../guest-features/sdk/src/adapter.rs")),
            ),
            (
                "sdk/src/codec.rs",
                sdk(include_str!("../../../guest-features/sdk/src/codec.rs")),
            ),
            (
                "sdk/src/feature.rs",
                sdk(include_str!("../../../guest-features/sdk/src/feature.rs")),
            ),
            (".gitignore", "/target/\n*.wasm\n".into()),
        ],
        Lang::Python => python_files(),
        Lang::Js => js_files(),
    }
}

fn python_files() -> Vec<(&'static str, String)> {
    vec![
        ("app.py", include_str!("templates/python/app.py").into()),
        ("plugin.py", include_str!("templates/python/plugin.py").into()),
        (
            "tests/test_plugin.py",
            include_str!("templates/python/test_plugin.py").into(),
        ),
        (
            "featherflow_sdk/__init__.py",
            include_str!("../../../guest-features/sdk-python/featherflow_sdk/__init__.py").into(),
        ),
        (
            "featherflow_sdk/adapter.py",
            include_str!("../../../guest-features/sdk-python/featherflow_sdk/adapter.py").into(),
        ),
        (
            "featherflow_sdk/codec.py",
            include_str!("../../../guest-features/sdk-python/featherflow_sdk/codec.py").into(),
        ),
        (
            "featherflow_sdk/component.py",
            include_str!("../../../guest-features/sdk-python/featherflow_sdk/component.py").into(),
        ),
        (
            "featherflow_sdk/feature.py",
            include_str!("../../../guest-features/sdk-python/featherflow_sdk/feature.py").into(),
        ),
        (".gitignore", "__pycache__/\n*.wasm\n".into()),
    ]
}

fn js_files() -> Vec<(&'static str, String)> {
    vec![
        ("app.js", include_str!("templates/js/app.js").into()),
        ("plugin.js", include_str!("templates/js/plugin.js").into()),
        (
            "test/plugin.test.js",
            include_str!("templates/js/plugin.test.js").into(),
        ),
        ("package.json", include_str!("templates/js/package.json").into()),
        (
            "sdk/index.js",
            include_str!("../../../guest-features/sdk-js/src/index.js").into(),
        ),
        (
            "sdk/adapter.js",
            include_str!("../../../guest-features/sdk-js/src/adapter.js").into(),
        ),
        (
            "sdk/codec.js",
            include_str!("../../../guest-features/sdk-js/src/codec.js").into(),
        ),
        (
            "sdk/feature.js",
            include_str!("../../../guest-features/sdk-js/src/feature.js").into(),
        ),
        (".gitignore", "node_modules/\n*.wasm\n".into()),
    ]
}

/// The command that runs the project's native unit tests.
fn unit_test_command(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest discover -s tests",
        Lang::Js => "node --test test/",
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// `featherflow plugin new`.
pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    if !valid_name(&args.name) {
        bail!(
            "plugin name {:?}: use 1 to 64 lowercase letters, digits, '-' and '_', starting with a letter",
            args.name
        );
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty: choose another --dir", dir.display());
    }
    let view = args.name.replace('-', "_");
    let fill = |s: &str| {
        s.replace("{{NAME}}", &args.name)
            .replace("{{VIEW}}", &view)
            .replace("{{LANG}}", args.lang.as_str())
            .replace("{{UNIT_TEST}}", unit_test_command(args.lang))
    };
    let mut all = files(args.lang);
    all.push(("wit/feature.wit", WIT.into()));
    all.push(("testdata/events.jsonl", EVENTS.into()));
    all.push(("testdata/expected.jsonl", EXPECTED.into()));
    all.push(("README.md", README.into()));
    all.push((
        "featherflow-plugin.toml",
        format!(
            "# Made by `featherflow plugin new`; read by `featherflow plugin build`.\nname = \"{}\"\nlang = \"{}\"\n{}",
            args.name,
            args.lang.as_str(),
            match args.lang {
                // An interpreter's heap grows between collections: room for
                // it, so that the engine replaces the instance less often.
                Lang::Python | Lang::Js => "# The plugin's memory limit (the engine caps it with plugins.max-memory-limit-mib).\nmemory-limit-mib = 128\n",
                Lang::Rust => "# The plugin's memory limit (default: the engine's plugins.memory-limit-mib).\n# memory-limit-mib = 64\n",
            }
        ),
    ));
    for (path, text) in all {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
        let text = if path.extension().is_some_and(|e| e == "wit") {
            text
        } else {
            fill(&text)
        };
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created {} ({}, view {view}); next:\n  cd {}\n  {}\n  featherflow plugin build .\n  featherflow plugin test {}.wasm --events testdata/events.jsonl --expect testdata/expected.jsonl",
        dir.display(),
        args.lang.as_str(),
        dir.display(),
        unit_test_command(args.lang),
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Manifest {
    name: String,
    lang: String,
    /// The plugin's own memory limit, built into the component (see
    /// `plugin::sections`); the engine's `plugins.max-memory-limit-mib` caps it.
    memory_limit_mib: Option<usize>,
}

/// `featherflow plugin build`.
pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}", args.dir.display()))?;
    let manifest_path = dir.join("featherflow-plugin.toml");
    let manifest: Manifest = toml::from_str(&std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{} is not a plugin project (made by `featherflow plugin new`)",
            dir.display()
        )
    })?)
    .with_context(|| format!("{}", manifest_path.display()))?;
    let lang = Lang::from_str(&manifest.lang, true).map_err(|_| {
        anyhow::anyhow!(
            "{}: lang: {:?} is not rust, python or js",
            manifest_path.display(),
            manifest.lang
        )
    })?;
    let out = match args.out {
        Some(p) => std::path::absolute(p)?,
        None => dir.join(format!("{}.wasm", manifest.name)),
    };
    let config = crate::config::Config::load(args.config.as_deref())?;
    let started = std::time::Instant::now();
    let tmp = out.with_extension("wasm.tmp");
    match lang {
        Lang::Rust => build_rust(&dir, &manifest.name, &tmp)?,
        Lang::Python => build_python(&dir, &tmp, &tools_dir(&config)?)?,
        Lang::Js => build_js(&dir, &tmp, &tools_dir(&config)?)?,
    }
    if let Some(mib) = manifest.memory_limit_mib {
        anyhow::ensure!(
            mib >= 2,
            "{}: memory-limit-mib: must be at least 2",
            manifest_path.display()
        );
        let bytes = std::fs::read(&tmp)?;
        std::fs::write(&tmp, crate::plugin::sections::with_memory_limit(bytes, mib))?;
    }
    std::fs::rename(&tmp, &out)?;
    println!(
        "built {} ({} KB) in {:.1} s",
        out.display(),
        std::fs::metadata(&out)?.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Run `cmd`; on failure, say what failed.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn build_rust(dir: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    // A no-op when the target is there already.
    if Command::new("rustup").arg("--version").output().is_ok() {
        run(
            Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
            "rustup target add wasm32-wasip2",
        )?;
    }
    run(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(dir.join("Cargo.toml")),
        "cargo build",
    )?;
    let built = dir
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::copy(&built, out).with_context(|| format!("cargo built no {}", built.display()))?;
    Ok(())
}

/// Where pinned toolchains go (`plugins.tools-dir`).
fn tools_dir(config: &crate::config::Config) -> anyhow::Result<PathBuf> {
    if !config.plugins.tools_dir.is_empty() {
        return Ok(std::path::absolute(&config.plugins.tools_dir)?);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("set plugins.tools-dir (or HOME): where to install the plugin toolchains")?;
    Ok(cache.join("featherflow/tools"))
}

fn build_python(dir: &Path, out: &Path, tools: &Path) -> anyhow::Result<()> {
    let venv = tools.join("py");
    let tool = venv.join("bin/componentize-py");
    let stamp = venv.join(".featherflow-pin");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(COMPONENTIZE_PY) || !tool.exists() {
        eprintln!("installing {COMPONENTIZE_PY} into {} (once)", venv.display());
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        run(
            Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "-q", COMPONENTIZE_PY]),
            "pip install componentize-py",
        )?;
        std::fs::write(&stamp, COMPONENTIZE_PY)?;
    }
    run(
        Command::new(&tool)
            .current_dir(dir)
            .env_remove("VIRTUAL_ENV")
            .args([
                "-q",
                "-d",
                "wit",
                "-w",
                "feature",
                "componentize",
                "-p",
                ".",
                "app",
                "-o",
            ])
            .arg(out),
        "componentize-py",
    )
}

fn build_js(dir: &Path, out: &Path, tools: &Path) -> anyhow::Result<()> {
    let prefix = tools.join("js");
    let tool = prefix.join("node_modules/.bin/componentize-js");
    let stamp = prefix.join(".featherflow-pin");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(COMPONENTIZE_JS) || !tool.exists() {
        eprintln!("installing {COMPONENTIZE_JS} into {} (once)", prefix.display());
        std::fs::create_dir_all(&prefix)?;
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(COMPONENTIZE_JS),
            "npm install componentize-js",
        )?;
        std::fs::write(&stamp, COMPONENTIZE_JS)?;
    }
    // The host links no wasi:http: leave out the http and fetch-event features.
    run(
        Command::new(&tool)
            .current_dir(dir)
            .args(["-w", "wit", "-n", "feature", "-d", "http", "-d", "fetch-event", "-o"])
            .arg(out)
            .arg("app.js"),
        "componentize-js",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["a", "revenue-10m", "x_1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "A", "a/b", "../x", "a.b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
