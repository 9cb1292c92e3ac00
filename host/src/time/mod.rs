//! Event time and watermarks.
//!
//! Pure: wall-clock time is an argument, never read here; no tokio, no I/O.
//! This is what makes lateness deterministic — a watermark moves with each
//! event read, in order, and never on a timer (docs/semantics.md, "Time and watermarks").
//!
//! One [`Watermarks`] tracks every source partition of a job. A partition's
//! watermark is `max_event_time_seen - out_of_orderness - 1`; the job's
//! watermark is the minimum over partitions that are not idle, and never moves
//! backwards. A partition that has seen nothing for `idle_timeout` of wall
//! time stops holding the others back until its next event.
//!
//! When every partition is idle, the watermark holds by default
//! ([`IdleWatermark::Hold`]): replay stays a pure function of its input.
//! With [`IdleWatermark::WallClock`] it then advances as the wall clock
//! does, from where it stood when the last partition went idle, so that the
//! windows and sessions of a quiet stream still close. The trade: an event
//! that arrives after such an advance may be late for windows that an
//! uninterrupted stream would have kept open.

/// The watermark before any event: nothing can be late yet.
pub const MIN_WATERMARK: i64 = i64::MIN;
/// The watermark at the end of a bounded input: every window fires.
pub const MAX_WATERMARK: i64 = i64::MAX;

#[derive(Debug, Clone)]
struct PartitionClock {
    /// Whether this partition is read here at all: partitions are indexed
    /// by number, and an engine core that reads partition 5 alone must not
    /// wait for partitions 0 to 4.
    tracked: bool,
    /// `i64::MIN` until the partition's first event.
    watermark: i64,
    /// Wall time of the partition's last event (or of its assignment).
    last_active_ms: i64,
    idle: bool,
}

/// What the watermark does while every partition is idle
/// (`time.idle-watermark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdleWatermark {
    /// Stay where it is until an event arrives (deterministic).
    #[default]
    Hold,
    /// Advance with the wall clock from where it stood when the last
    /// partition went idle.
    WallClock,
}

/// Watermarks of one job, per source partition.
#[derive(Debug, Clone)]
pub struct Watermarks {
    out_of_orderness_ms: i64,
    /// `None` disables idleness (file replay: one partition, never idle).
    idle_timeout_ms: Option<i64>,
    idle_watermark: IdleWatermark,
    /// Since when (wall ms) every partition is idle, and the watermark then.
    all_idle_since: Option<(i64, i64)>,
    /// Times the watermark advanced with the wall clock.
    wall_clock_advances: u64,
    partitions: Vec<PartitionClock>,
    /// The combined watermark; monotonic.
    current: i64,
}

impl Watermarks {
    pub fn new(out_of_orderness_ms: i64, idle_timeout_ms: Option<i64>) -> Self {
        Self {
            out_of_orderness_ms,
            idle_timeout_ms,
            idle_watermark: IdleWatermark::Hold,
            all_idle_since: None,
            wall_clock_advances: 0,
            partitions: Vec::new(),
            current: MIN_WATERMARK,
        }
    }

    /// What the watermark does while every partition is idle.
    pub fn with_idle_watermark(mut self, mode: IdleWatermark) -> Self {
        self.idle_watermark = mode;
        self
    }

    /// Times the watermark advanced with the wall clock.
    pub fn wall_clock_advances(&self) -> u64 {
        self.wall_clock_advances
    }

    /// The combined watermark.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Make sure `partition` is tracked: a tracked partition without events
    /// holds the watermark back until it turns idle.
    pub fn add_partition(&mut self, partition: usize, wall_ms: i64) {
        if self.partitions.len() <= partition {
            self.partitions.resize(
                partition + 1,
                PartitionClock {
                    tracked: false,
                    watermark: MIN_WATERMARK,
                    last_active_ms: wall_ms,
                    idle: false,
                },
            );
        }
        let clock = &mut self.partitions[partition];
        if !clock.tracked {
            clock.tracked = true;
            clock.last_active_ms = wall_ms;
            clock.idle = false;
        }
    }

    fn tracked(&self) -> impl Iterator<Item = &PartitionClock> {
        self.partitions.iter().filter(|p| p.tracked)
    }

    /// The watermark of one partition (`i64::MIN` before its first event).
    pub fn partition(&self, partition: usize) -> Option<i64> {
        self.partitions.get(partition).map(|p| p.watermark)
    }

    /// Watermark and idleness of every tracked partition.
    pub fn partitions(&self) -> impl Iterator<Item = (usize, i64, bool)> + '_ {
        self.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.tracked)
            .map(|(i, p)| (i, p.watermark, p.idle))
    }

    /// Record an event at `event_ms` read from `partition`; returns the new
    /// combined watermark.
    #[inline]
    pub fn observe(&mut self, partition: usize, event_ms: i64, wall_ms: i64) -> i64 {
        if !self.partitions.get(partition).is_some_and(|c| c.tracked) {
            self.add_partition(partition, wall_ms);
        }
        let candidate = event_ms.saturating_sub(self.out_of_orderness_ms).saturating_sub(1);
        let clock = &mut self.partitions[partition];
        clock.last_active_ms = wall_ms;
        let was_idle = std::mem::replace(&mut clock.idle, false);
        if was_idle {
            self.all_idle_since = None;
        }
        if candidate <= clock.watermark && !was_idle {
            return self.current;
        }
        clock.watermark = clock.watermark.max(candidate);
        self.recompute()
    }

    /// Mark partitions idle whose last event is older than the idle timeout;
    /// returns the new combined watermark.
    pub fn check_idle(&mut self, wall_ms: i64) -> i64 {
        let Some(timeout) = self.idle_timeout_ms else {
            return self.current;
        };
        let mut changed = false;
        for p in self.partitions.iter_mut().filter(|p| p.tracked) {
            if !p.idle && wall_ms.saturating_sub(p.last_active_ms) >= timeout {
                p.idle = true;
                changed = true;
            }
        }
        if changed {
            self.recompute();
        }
        if self.idle_watermark == IdleWatermark::WallClock
            && self.tracked().next().is_some()
            && self.tracked().all(|p| p.idle)
        {
            let (since, base) = *self.all_idle_since.get_or_insert((wall_ms, self.current));
            if base != MIN_WATERMARK {
                let target = base.saturating_add(wall_ms.saturating_sub(since));
                if target > self.current {
                    self.current = target;
                    self.wall_clock_advances += 1;
                }
            }
        }
        self.current
    }

    /// End of a bounded input: every window fires.
    pub fn finish(&mut self) -> i64 {
        self.current = MAX_WATERMARK;
        self.current
    }

    /// Restore the combined watermark and per-partition watermarks from a
    /// checkpoint.
    pub fn restore(&mut self, current: i64, partitions: &[(usize, i64)], wall_ms: i64) {
        for &(p, wm) in partitions {
            self.add_partition(p, wall_ms);
            self.partitions[p].watermark = wm;
        }
        self.current = current;
    }

    fn recompute(&mut self) -> i64 {
        let min_active = self.tracked().filter(|p| !p.idle).map(|p| p.watermark).min();
        // All idle: nothing holds the watermark back, but nothing advances it
        // either (Flink does the same): keep the current one.
        if let Some(wm) = min_active {
            self.current = self.current.max(wm);
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_max_minus_bound_minus_one() {
        let mut w = Watermarks::new(10_000, None);
        assert_eq!(w.observe(0, 100_000, 0), 89_999);
        // An older event never moves it back.
        assert_eq!(w.observe(0, 95_000, 0), 89_999);
        assert_eq!(w.observe(0, 120_000, 0), 109_999);
    }

    #[test]
    fn slowest_partition_holds_the_watermark() {
        let mut w = Watermarks::new(0, None);
        w.add_partition(0, 0);
        w.add_partition(1, 0);
        assert_eq!(w.observe(0, 1_000, 0), MIN_WATERMARK);
        assert_eq!(w.observe(1, 500, 0), 499);
        assert_eq!(w.observe(1, 2_000, 0), 999);
    }

    #[test]
    fn idle_partition_stops_holding_back_and_rejoins() {
        let mut w = Watermarks::new(0, Some(30_000));
        w.add_partition(0, 0);
        w.add_partition(1, 0);
        assert_eq!(w.observe(0, 10_000, 1_000), MIN_WATERMARK);
        assert_eq!(w.check_idle(20_000), MIN_WATERMARK);
        assert_eq!(w.observe(0, 10_000, 25_000), MIN_WATERMARK);
        // Partition 1 has been silent for 30 s of wall time, partition 0 not.
        assert_eq!(w.check_idle(31_000), 9_999);
        // It wakes up behind: the combined watermark never goes back.
        assert_eq!(w.observe(1, 5_000, 32_000), 9_999);
        assert_eq!(w.observe(0, 20_000, 32_000), 9_999);
        assert_eq!(w.observe(1, 30_000, 32_000), 19_999);
    }

    #[test]
    fn all_idle_holds_by_default() {
        let mut w = Watermarks::new(0, Some(1_000));
        w.add_partition(0, 0);
        assert_eq!(w.observe(0, 50_000, 0), 49_999);
        for wall in [1_000, 5_000, 60_000] {
            assert_eq!(w.check_idle(wall), 49_999);
        }
        assert_eq!(w.wall_clock_advances(), 0);
    }

    #[test]
    fn all_idle_advances_with_the_wall_clock_when_asked() {
        let mut w = Watermarks::new(0, Some(1_000)).with_idle_watermark(IdleWatermark::WallClock);
        w.add_partition(0, 0);
        w.add_partition(1, 0);
        assert_eq!(w.observe(0, 50_000, 0), MIN_WATERMARK);
        assert_eq!(w.observe(1, 40_000, 0), 39_999);
        // Both idle at 1 s of wall time: from then on, wall time moves it.
        assert_eq!(w.check_idle(1_000), 39_999);
        assert_eq!(w.check_idle(11_000), 49_999);
        assert_eq!(w.check_idle(61_000), 99_999);
        assert_eq!(w.wall_clock_advances(), 2);
        // An event ends the advance; it never moves back.
        assert_eq!(w.observe(0, 60_000, 61_500), 99_999);
        assert_eq!(w.check_idle(62_000), 99_999);
        // One partition active, the other idle: no wall-clock advance.
        assert_eq!(w.observe(0, 200_000, 62_400), 199_999);
        assert_eq!(w.check_idle(63_000), 199_999);
        assert_eq!(w.wall_clock_advances(), 2);
    }

    #[test]
    fn no_events_no_advance() {
        let mut w = Watermarks::new(0, Some(1_000)).with_idle_watermark(IdleWatermark::WallClock);
        w.add_partition(0, 0);
        assert_eq!(w.check_idle(100_000), MIN_WATERMARK);
        assert_eq!(w.check_idle(200_000), MIN_WATERMARK);
    }

    #[test]
    fn a_partition_read_alone_waits_for_no_other() {
        // An engine core of a group member reads partition 5 only.
        let mut w = Watermarks::new(0, None);
        w.add_partition(5, 0);
        assert_eq!(w.observe(5, 1_000, 0), 999);
        assert_eq!(w.partitions().map(|(p, _, _)| p).collect::<Vec<_>>(), [5]);
        let mut w = Watermarks::new(0, Some(1_000));
        assert_eq!(w.observe(2, 1_000, 0), 999);
        assert_eq!(w.check_idle(5_000), 999);
    }

    #[test]
    fn finish_fires_everything() {
        let mut w = Watermarks::new(10_000, None);
        w.observe(0, 1, 0);
        assert_eq!(w.finish(), MAX_WATERMARK);
    }
}
