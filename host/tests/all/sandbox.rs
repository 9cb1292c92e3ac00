//! Plugins that misbehave on purpose (guest-features/test-guests/) are
//! contained: refused at load, or — when they fail in service — their batch
//! is dead-lettered with the reason, their instance replaced, and every
//! other view keeps running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use featherflow::engine::{Engine, EngineConfig, Position};
use featherflow::plugin::sections::with_memory_limit;
use featherflow::plugin::{Limits, Plugin, PluginEngine, PluginError};
use featherflow::sink::{FeatureRecord, RecordLog, Sink, SinkError};

use crate::guest;

fn limits() -> Limits {
    Limits {
        memory_bytes: 32 << 20,
        max_memory_bytes: 128 << 20,
        deadline: Duration::from_millis(200),
    }
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<FeatureRecord>>>);

impl Sink for Collect {
    fn write(&mut self, records: &[FeatureRecord]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

fn line(t_ms: i64, ty: &str, user: &str) -> String {
    format!("{{\"event_time\":{t_ms},\"event_type\":\"{ty}\",\"user_id\":\"{user}\",\"price\":1.5}}")
}

#[test]
fn wrong_world_is_refused_with_the_reason() {
    let engine = PluginEngine::new().unwrap();
    let err = engine.load_file(&guest("wrong-world"), limits()).unwrap_err();
    assert!(matches!(err, PluginError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("featherflow:plugin/feature"), "{err}");
}

#[test]
fn not_a_component_is_refused() {
    let engine = PluginEngine::new().unwrap();
    let err = engine.load(b"\0asm\x01\0\0\0garbage", "bytes", limits()).unwrap_err();
    assert!(err.to_string().contains("not a valid WebAssembly component"), "{err}");
}

#[test]
fn malformed_output_fails_the_dry_run() {
    let engine = PluginEngine::new().unwrap();
    let err = engine.load_file(&guest("garbage"), limits()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("dry run failed") && msg.contains("malformed"), "{msg}");
}

/// Run the seed user-activity view beside a misbehaving view over events
/// with a few `poison` events; returns the engine and what the sink got.
fn run_beside(bad: &str, lines: &[String]) -> (Engine, Vec<FeatureRecord>, String) {
    let bad = PluginEngine::new().unwrap().load_file(&guest(bad), limits()).unwrap();
    run_beside_plugin(bad, lines)
}

fn run_beside_plugin(bad: Plugin, lines: &[String]) -> (Engine, Vec<FeatureRecord>, String) {
    let plugins = PluginEngine::new().unwrap();
    let good = Arc::new(plugins.load_file(&guest("user-activity"), limits()).unwrap());
    let bad = Arc::new(bad);
    let sink = Collect::default();
    let mut engine = Engine::new(
        EngineConfig {
            batch_size: 4,
            ..EngineConfig::default()
        },
        Box::new(sink.clone()),
    );
    let dir = tempfile::tempdir().unwrap();
    let dead_path = dir.path().join("dead.jsonl");
    engine.set_dead_letter(RecordLog::open(dead_path.to_str().unwrap()).unwrap());
    engine.add_view(good).unwrap();
    engine.add_view(bad).unwrap();
    for (i, l) in lines.iter().enumerate() {
        engine
            .process_record(
                Position {
                    partition: 0,
                    offset: i as u64 + 1,
                },
                l.as_bytes(),
                0,
            )
            .unwrap();
    }
    engine.finish().unwrap();
    let records = sink.0.lock().unwrap().clone();
    let dead = std::fs::read_to_string(dead_path).unwrap_or_default();
    (engine, records, dead)
}

fn events_with_poison(poison_at: &[usize]) -> Vec<String> {
    (0..40)
        .map(|i| {
            let ty = if poison_at.contains(&i) { "poison" } else { "view" };
            line(1_704_067_200_000 + i as i64 * 1_000, ty, &format!("u{}", i % 3))
        })
        .collect()
}

fn check_contained(bad: &str, expect_reason: &str) {
    let started = Instant::now();
    let (engine, records, dead) = run_beside(bad, &events_with_poison(&[5]));
    let views = engine.views();
    // The good view saw every event and fired all its windows.
    assert_eq!(views[0].stats.events, 40);
    assert_eq!(views[0].stats.plugin_errors, 0);
    let good: Vec<_> = records.iter().filter(|r| &*r.view == "user_features").collect();
    assert_eq!(good.len(), 3 * 6, "6 sliding windows for each of 3 users");
    let total: i64 = good
        .iter()
        .filter(|r| r.window_start == 1_704_067_200_000 - 3_000_000)
        .map(|r| match r.values[1] {
            featherflow::sink::Value::Integer(n) => n,
            _ => panic!("view_count"),
        })
        .sum();
    assert_eq!(total, 39, "every view event but the poison one is counted");
    // The bad view failed once, its batch (4 events) went to the dead-letter
    // output with the reason, and the replaced instance went on serving.
    let bad_view = &views[1];
    assert_eq!(bad_view.stats.plugin_errors, 1, "{bad}");
    assert!(bad_view.disabled.is_none());
    assert_eq!(bad_view.stats.dead_lettered, 4);
    let dead_for_bad: Vec<&str> = dead.lines().filter(|l| l.contains(bad_view.name())).collect();
    assert_eq!(dead_for_bad.len(), 4, "{dead}");
    assert!(dead_for_bad.iter().all(|l| l.contains(expect_reason)), "{dead}");
    assert!(dead_for_bad.iter().any(|l| l.contains("poison")), "{dead}");
    let bad_windows = records.iter().filter(|r| &*r.view == bad_view.name()).count();
    assert!(bad_windows > 0, "the replaced instance kept firing windows");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_trap_is_contained() {
    check_contained("trap", "trap");
}

#[test]
fn an_endless_loop_hits_the_deadline_and_is_contained() {
    check_contained("loop-forever", "deadline");
}

#[test]
fn a_memory_bomb_hits_the_limit_and_is_contained() {
    check_contained("memory-bomb", "trap");
}

#[test]
fn what_a_trapping_plugin_printed_is_in_the_reason() {
    // The guest's panic message goes to its stderr before it aborts.
    let (_, _, dead) = run_beside("trap", &events_with_poison(&[5]));
    let line = dead
        .lines()
        .find(|l| l.contains("test_trap"))
        .expect("a dead-lettered event");
    assert!(
        line.contains("the plugin wrote to stderr")
            && line.contains("test_trap traps on purpose (event at 1704067205000 ms)"),
        "{line}"
    );
}

#[test]
fn an_instance_whose_memory_creeps_up_is_replaced_before_it_fails() {
    // Every `grow` event leaks 1 MiB: 40 of them are more than the 32 MiB
    // limit, but the instance is replaced each time it passes 24 MiB.
    let lines: Vec<String> = (0..40)
        .map(|i| line(1_704_067_200_000 + i * 1_000, "grow", &format!("u{}", i % 3)))
        .collect();
    let (engine, records, dead) = run_beside("memory-bomb", &lines);
    let bad = &engine.views()[1];
    assert_eq!(bad.stats.plugin_errors, 0, "{dead}");
    assert_eq!(bad.stats.dead_lettered, 0);
    assert!(bad.stats.instance_recycles >= 1, "{:?}", bad.stats);
    assert_eq!(records.iter().filter(|r| &*r.view == "test_memory_bomb").count(), 3);
}

#[test]
fn a_plugin_that_declares_more_memory_gets_it_within_the_cap() {
    // The same leaking guest as above, declaring 96 MiB (the default here
    // is 32, the cap 128): 40 MiB of leaks stay below its high-water mark.
    let bytes = with_memory_limit(std::fs::read(guest("memory-bomb")).unwrap(), 96);
    let plugins = PluginEngine::new().unwrap();
    let bad = plugins.load(&bytes, "memory-bomb (96 MiB)", limits()).unwrap();
    assert_eq!(bad.limits.memory_bytes, 96 << 20);
    let lines: Vec<String> = (0..40)
        .map(|i| line(1_704_067_200_000 + i * 1_000, "grow", &format!("u{}", i % 3)))
        .collect();
    let (engine, records, dead) = run_beside_plugin(bad, &lines);
    let bad = &engine.views()[1];
    assert_eq!(bad.stats.plugin_errors, 0, "{dead}");
    assert_eq!(bad.stats.instance_recycles, 0, "{:?}", bad.stats);
    assert_eq!(records.iter().filter(|r| &*r.view == "test_memory_bomb").count(), 3);

    // Past the cap, the plugin is refused, naming the limit and the key.
    let greedy = with_memory_limit(std::fs::read(guest("user-activity")).unwrap(), 200);
    let err = plugins.load(&greedy, "greedy", limits()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, PluginError::Refused { .. })
            && msg.contains("200 MiB")
            && msg.contains("plugins.max-memory-limit-mib"),
        "{msg}"
    );
}

#[test]
fn compiled_components_are_cached_by_content_and_a_damaged_file_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let load = || {
        PluginEngine::with_cache(Some(dir.path().to_path_buf()))
            .unwrap()
            .load_file(&guest("user-activity"), limits())
            .unwrap()
    };
    let first = load();
    assert!(!first.from_cache);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].to_string_lossy().contains(&first.hash),
        "named by the component's hash"
    );
    // A restart (a new engine) reads it; the load's dry run ran on it.
    let again = load();
    assert!(again.from_cache);
    assert_eq!(
        (again.hash.as_str(), &again.declaration),
        (first.hash.as_str(), &first.declaration)
    );
    std::fs::write(&files[0], b"not compiled code").unwrap();
    let third = load();
    assert!(!third.from_cache, "a damaged file is not used");
    assert!(
        std::fs::metadata(&files[0]).unwrap().len() > 10_000,
        "and is written again"
    );
    assert!(load().from_cache);
}

#[test]
fn loads_of_one_component_at_the_same_time_compile_it_once() {
    // As the watchers of a group's partitions do when a plugin is deployed;
    // no cache directory, so each load would otherwise compile.
    let engine = PluginEngine::new().unwrap();
    let start = std::sync::Barrier::new(4);
    let loads: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    engine.load_file(&guest("user-activity"), limits()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let compiled = loads.iter().filter(|p| !p.from_cache).count();
    assert_eq!(compiled, 1, "one load compiles, the others share it");
    assert!(
        loads
            .iter()
            .all(|p| p.declaration == loads[0].declaration && p.hash == loads[0].hash)
    );
    // Once done, a load compiles again (nothing is kept in memory).
    assert!(!engine.load_file(&guest("user-activity"), limits()).unwrap().from_cache);
}

#[test]
fn repeated_failures_disable_the_view_and_the_rest_runs_on() {
    // Poison in three consecutive batches of 4.
    let (engine, records, _) = run_beside("trap", &events_with_poison(&[1, 5, 9]));
    let bad = &engine.views()[1];
    assert_eq!(bad.stats.plugin_errors, 3);
    assert!(bad.disabled.as_deref().unwrap_or("").contains("3 consecutive failures"));
    assert_eq!(engine.views()[0].stats.events, 40);
    assert_eq!(records.iter().filter(|r| &*r.view == "user_features").count(), 18);
}
