//! What one plugin call costs, in isolation: `update` per event and `finish`
//! per window, on synthetic batches shaped like `make bench` at 100 k users
//! (every event of a batch updates a different state; a window merges six
//! slices).
//!
//! ```text
//! cargo run --release -p featherflow --example plugin_cost -- plugins/user-activity.wasm other/user-activity.wasm
//! ```
//!
//! Several plugins are measured in alternating rounds and each reports its
//! best round, so that two builds of a plugin can be compared on a noisy
//! machine.

use std::time::Instant;

use anyhow::Context;
use featherflow::plugin::WindowSpec;
use featherflow::plugin::codec::Packed;
use featherflow::plugin::declaration::Field;
use featherflow::plugin::runtime::{Limits, PluginEngine, PluginInstance};

/// Events (and windows) per call, as `engine.batch-size`.
const BATCH: usize = 1024;
const ROUNDS: usize = 40;

struct Subject {
    path: String,
    instance: PluginInstance,
    fields: std::sync::Arc<[Field]>,
    states: Vec<u8>,
    events: Vec<u8>,
    windows: Vec<u8>,
    best_update_ns: f64,
    best_finish_ns: f64,
}

fn main() -> anyhow::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!paths.is_empty(), "usage: plugin_cost PLUGIN.wasm...");
    let engine = PluginEngine::new()?;
    let mut subjects = Vec::new();
    for path in paths {
        let plugin = engine
            .load_file(std::path::Path::new(&path), Limits::default())
            .with_context(|| format!("loading {path}"))?;
        // A real state of the plugin: one event applied to the empty state.
        let mut instance = plugin.instantiate()?;
        let mut one = Packed::default();
        one.clear();
        one.push_event(0, 1_704_067_200_000, 29.99, "view", "111", "");
        let mut empty = Packed::default();
        empty.clear();
        empty.push_state(&[]);
        let state = instance.update(empty.bytes(), one.bytes(), 1)?.remove(0);
        let slices = match plugin.declaration.window {
            WindowSpec::Sliding { size_ms, slide_ms } => (size_ms / slide_ms) as usize,
            WindowSpec::Session { .. } => 1,
        };

        let (mut states, mut events, mut windows) = (Packed::default(), Packed::default(), Packed::default());
        states.clear();
        events.clear();
        windows.clear();
        for i in 0..BATCH {
            let key = (10_000 + i * 37 % 90_000).to_string();
            let event_type = ["view", "cart", "purchase"][i % 3];
            states.push_state(&state);
            events.push_event(i as u32, 1_704_067_200_000 + i as i64, 29.99, event_type, &key, "");
            windows.push_window(&key, 0, 3_600_000, std::iter::repeat_n(state.as_slice(), slices));
        }
        subjects.push(Subject {
            path,
            instance,
            fields: plugin.declaration.fields.clone(),
            states: states.bytes().to_vec(),
            events: events.bytes().to_vec(),
            windows: windows.bytes().to_vec(),
            best_update_ns: f64::MAX,
            best_finish_ns: f64::MAX,
        });
    }

    let mut values = Vec::new();
    for _ in 0..ROUNDS {
        for s in &mut subjects {
            let started = Instant::now();
            for _ in 0..20 {
                s.instance.update_with(&s.states, &s.events, BATCH, |_, _| {})?;
            }
            s.best_update_ns = s
                .best_update_ns
                .min(started.elapsed().as_nanos() as f64 / (20 * BATCH) as f64);
            let started = Instant::now();
            for _ in 0..5 {
                values.clear();
                s.instance.finish(&s.windows, BATCH, &s.fields, &mut values)?;
            }
            s.best_finish_ns = s
                .best_finish_ns
                .min(started.elapsed().as_nanos() as f64 / (5 * BATCH) as f64);
        }
    }
    for s in &subjects {
        println!(
            "{}: update {:.1} ns/event, finish {:.1} ns/window (best of {ROUNDS} rounds, {BATCH} per call)",
            s.path, s.best_update_ns, s.best_finish_ns
        );
    }
    Ok(())
}
