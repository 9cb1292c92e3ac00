//! Hostile input through the engine with a real plugin: whatever the lines
//! (the parser's hostile corpus: megabyte lines, deep nesting, huge
//! numbers, odd times, NUL bytes, lone surrogates, duplicate keys, invalid
//! UTF-8, damaged at random), the engine does not panic and counts every
//! record exactly once — read = lines, events + bad = read, the reasons
//! add up to the bad records, the events are the lines the parser accepts
//! — one record at a time and in blocks alike.

// The generator is the parser's own (`event/tests/hostile.rs` uses it too).
#[path = "../../src/event/tests/hostile/corpus.rs"]
mod corpus;

use std::sync::Arc;

use featherflow::engine::{Engine, EngineConfig, Position};
use featherflow::event::{BadReason, ParserConfig, parse_event};
use featherflow::plugin::{Limits, Plugin, PluginEngine};
use featherflow::sink::CountingSink;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::guest;

/// 2024-06-01T00:00:00Z: "now" for the future-skew check.
const NOW_MS: i64 = 1_717_200_000_000;

fn parser() -> ParserConfig {
    ParserConfig {
        zone_offset_ms: 0,
        max_future_skew_ms: Some(86_400_000),
        now_ms: NOW_MS,
    }
}

fn engine(plugin: &Arc<Plugin>) -> Engine {
    let cfg = EngineConfig {
        parser: parser(),
        // Small batches: many plugin calls per case.
        batch_size: 16,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg, Box::new(CountingSink::default()));
    engine.add_view(plugin.clone()).unwrap();
    engine
}

#[test]
fn every_hostile_record_is_counted_once() {
    let pe = PluginEngine::new().unwrap();
    let plugin = Arc::new(pe.load_file(&guest("user-activity"), Limits::default()).unwrap());
    let labels: Vec<&str> = BadReason::ALL.iter().map(BadReason::as_str).collect();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let batches = prop::collection::vec(corpus::spec(), 1..200);
    runner
        .run(&batches, |specs| {
            let lines: Vec<Vec<u8>> = specs.iter().map(corpus::Spec::build).collect();
            let accepted = lines.iter().filter(|l| parse_event(l, &parser()).is_ok()).count() as u64;
            // One record at a time (as the Kafka source hands them over).
            let mut one = engine(&plugin);
            for (i, line) in lines.iter().enumerate() {
                let pos = Position {
                    partition: 0,
                    offset: i as u64,
                };
                one.process_record(pos, line, NOW_MS).unwrap();
            }
            // In blocks (as the file source does).
            let mut blocks = engine(&plugin);
            let numbered: Vec<(u64, &[u8])> = lines.iter().enumerate().map(|(i, l)| (i as u64, &l[..])).collect();
            for block in numbered.chunks(64) {
                blocks.process_lines(0, block, NOW_MS).unwrap();
            }
            for engine in [&mut one, &mut blocks] {
                engine.finish().unwrap();
                let s = &engine.stats;
                prop_assert_eq!(s.records_read, lines.len() as u64);
                prop_assert_eq!(s.events + s.bad_records, s.records_read);
                prop_assert_eq!(s.events, accepted);
                prop_assert_eq!(s.bad_by_reason.values().sum::<u64>(), s.bad_records);
                for reason in s.bad_by_reason.keys() {
                    prop_assert!(labels.contains(reason), "{}", reason);
                }
                prop_assert!(s.recent_bad.iter().all(|b| b.raw.len() <= 200 * 3));
            }
            prop_assert_eq!(&one.stats.bad_by_reason, &blocks.stats.bad_by_reason);
            prop_assert_eq!(one.stats.windows_fired, blocks.stats.windows_fired);
            Ok(())
        })
        .unwrap();
}
