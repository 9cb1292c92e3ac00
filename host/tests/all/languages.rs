//! Feature plugins written in Python and JavaScript (the ports in
//! guest-features/python and guest-features/js, built by
//! scripts/build-lang-plugins.sh) are drop-in replacements for the Rust
//! seed plugins: the same output, and states that pass from one language to
//! another in a hot swap.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use featherflow::cli::generate::{GeneratorArgs, generate_lines};
use featherflow::engine::{Engine, EngineConfig, SwapOutcome};
use featherflow::plugin::{Limits, Plugin, PluginEngine};
use featherflow::sink::{FeatureRecord, Sink, SinkError};

use crate::{guest, root};

/// A built Python or JavaScript port (`lang` = "python" or "js").
fn port(lang: &str, name: &str) -> PathBuf {
    let path = root()
        .join("target/lang-plugins")
        .join(lang)
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the Python and JavaScript plugins first with scripts/build-lang-plugins.sh",
        path.display()
    );
    path
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<FeatureRecord>>>);

impl Sink for Collect {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

/// Every record as (key, start, end, values), sorted.
fn as_set(records: &[FeatureRecord]) -> Vec<Written> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| {
            let mut v = String::new();
            for x in &r.values {
                x.write_json(&mut v);
                v.push(',');
            }
            (r.key.clone(), r.window_start, r.window_end, v)
        })
        .collect();
    out.sort();
    out
}

type Written = (String, i64, i64, String);

/// Equal outputs; on a difference, the first one (not both whole sets).
fn same(out: &[Written], reference: &[Written], what: &str) {
    if out != reference {
        let i = out
            .iter()
            .zip(reference)
            .position(|(a, b)| a != b)
            .unwrap_or(out.len().min(reference.len()));
        panic!(
            "{what}: {} windows against {}; first difference: {:?} against {:?}",
            out.len(),
            reference.len(),
            out.get(i),
            reference.get(i)
        );
    }
}

/// An engine that keeps compiled components (an interpreted one compiles
/// for seconds) beside the build's other outputs.
fn plugin_engine() -> PluginEngine {
    PluginEngine::with_cache(Some(root().join("target/plugin-cache"))).unwrap()
}

fn events() -> Vec<String> {
    let args = GeneratorArgs {
        events: 40_000,
        users: 300,
        active_users: None,
        event_rate: 8,
        disorder_seconds: 9.0,
        seed: 11,
        malformed: 0.005,
        out_of_order: 1.0,
        late: 0.01,
    };
    let mut lines = Vec::new();
    generate_lines(&args, |l| {
        lines.push(l.to_string());
        Ok(())
    })
    .unwrap();
    lines
}

/// Replay `lines` through `first` (user-activity and session-stats
/// plugins); before the block at each `(line, plugin)` of `swaps`, deploy
/// that plugin (it must take the running states as they are).
fn replay(pe: &PluginEngine, first: [&PathBuf; 2], swaps: &[(usize, &PathBuf)], lines: &[String]) -> Vec<Written> {
    let load = |p: &PathBuf| -> Arc<Plugin> { Arc::new(pe.load_file(p, Limits::default()).unwrap()) };
    let sink = Collect::default();
    let mut engine = Engine::new(EngineConfig::default(), Box::new(sink.clone()));
    for p in first {
        engine.add_view(load(p)).unwrap();
    }
    let raw: Vec<(u64, &[u8])> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.as_bytes()))
        .collect();
    let mut at = 0;
    for &(line, plugin) in swaps.iter().chain(std::iter::once(&(raw.len(), &PathBuf::new()))) {
        for block in raw[at..line].chunks(256) {
            engine.process_lines(0, block, 0).unwrap();
        }
        at = line;
        if line == raw.len() {
            break;
        }
        let plugin = load(plugin);
        let instance = plugin.instantiate().unwrap();
        let record = engine.deploy(plugin, instance, false);
        assert_eq!(record.outcome, SwapOutcome::Swapped, "{record:?}");
    }
    engine.finish().unwrap();
    assert!(engine.views().iter().all(|v| v.stats.plugin_errors == 0));
    let records = sink.0.lock().unwrap();
    as_set(&records)
}

#[test]
fn each_port_gives_the_rust_plugins_output() {
    let pe = plugin_engine();
    let lines = events();
    let (ua, ss) = (guest("user-activity"), guest("session-stats"));
    let reference = replay(&pe, [&ua, &ss], &[], &lines);
    assert!(reference.len() > 4_000, "{} windows", reference.len());
    for lang in ["python", "js"] {
        let (pua, pss) = (port(lang, "user-activity"), port(lang, "session-stats"));
        same(&replay(&pe, [&pua, &pss], &[], &lines), &reference, lang);
    }
}

#[test]
fn states_pass_between_languages_in_hot_swaps() {
    let pe = plugin_engine();
    let lines = events();
    let (ua, ss) = (guest("user-activity"), guest("session-stats"));
    let reference = replay(&pe, [&ua, &ss], &[], &lines);
    let n = lines.len();
    let (py_ua, js_ua) = (port("python", "user-activity"), port("js", "user-activity"));
    let (py_ss, js_ss) = (port("python", "session-stats"), port("js", "session-stats"));
    // user-activity Rust -> Python -> JS -> Rust, session-stats Rust -> JS
    // -> Python -> Rust, each swap in the middle of open windows.
    let swaps = [
        (n / 8, &py_ua),
        (n / 4, &js_ss),
        (3 * n / 8, &js_ua),
        (n / 2, &py_ss),
        (5 * n / 8, &ua),
        (3 * n / 4, &ss),
    ];
    same(&replay(&pe, [&ua, &ss], &swaps, &lines), &reference, "swapped");
}
