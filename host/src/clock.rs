//! The wall clock, read in one place.
//!
//! Only the layers that talk to the outside world (pipeline, api, cli) read
//! it; the engine and the operators below it take time as an argument, so
//! that a replay is a pure function of its input and tests choose the time.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
