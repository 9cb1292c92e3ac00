//! Repeated failures, logged quietly and clearly.
//!
//! A broker that is down, a Redis that does not answer, a full disk or a
//! plugin that keeps trapping fail again and again for as long as they last.
//! An [`Outage`] logs such a cause once when it starts, then at most one
//! line per [`Outage::EVERY`] with the count of failures since, and once
//! when it ends — never a line per failure. It also keeps the state for
//! metrics and health checks ([`Outage::is_failing`], [`Outage::total`]).
//!
//! A leaf: depends on nothing in the crate.

use std::time::{Duration, Instant};

/// One cause of repeated failures (`"kafka"`, `"redis"`, `"checkpoint"`).
#[derive(Debug)]
pub struct Outage {
    cause: &'static str,
    /// When the current outage started (`None`: all is well).
    since: Option<Instant>,
    /// Failures since the last line logged.
    unlogged: u64,
    /// Failures of the current outage.
    in_outage: u64,
    /// Failures ever.
    total: u64,
    /// Outages ever (ended or not).
    outages: u64,
    last_line: Instant,
}

impl Outage {
    /// At most one line per cause this often while a failure lasts.
    pub const EVERY: Duration = Duration::from_secs(10);

    pub fn new(cause: &'static str) -> Self {
        Self {
            cause,
            since: None,
            unlogged: 0,
            in_outage: 0,
            total: 0,
            outages: 0,
            last_line: Instant::now(),
        }
    }

    /// One more failure. Logs at WARN when the outage starts, then at most
    /// once per [`Outage::EVERY`] with the count; returns whether it logged.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> bool {
        self.total += 1;
        self.in_outage += 1;
        self.unlogged += 1;
        let now = Instant::now();
        match self.since {
            None => {
                self.since = Some(now);
                self.outages += 1;
                self.unlogged = 0;
                self.last_line = now;
                tracing::warn!(cause = self.cause, error = %error, "{} failing; retrying (logged again at most every {} s while it lasts)", self.cause, Self::EVERY.as_secs());
                true
            }
            Some(since) if now.duration_since(self.last_line) >= Self::EVERY => {
                tracing::warn!(cause = self.cause, error = %error, failures = self.unlogged, for_s = since.elapsed().as_secs(), "{} still failing: {} failures in the last {} s", self.cause, self.unlogged, now.duration_since(self.last_line).as_secs());
                self.unlogged = 0;
                self.last_line = now;
                true
            }
            Some(_) => false,
        }
    }

    /// A success: ends the outage, if any, with one INFO line.
    pub fn ok(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                cause = self.cause,
                failures = self.in_outage,
                down_s = since.elapsed().as_secs_f64(),
                "{} is back after {} failures over {:.1} s",
                self.cause,
                self.in_outage,
                since.elapsed().as_secs_f64()
            );
            self.in_outage = 0;
            self.unlogged = 0;
        }
    }

    /// Failing now.
    pub fn is_failing(&self) -> bool {
        self.since.is_some()
    }

    /// How long the current outage has lasted.
    pub fn failing_for(&self) -> Option<Duration> {
        self.since.map(|s| s.elapsed())
    }

    /// Failures ever.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Outages ever.
    pub fn outages(&self) -> u64 {
        self.outages
    }

    pub fn cause(&self) -> &'static str {
        self.cause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_start_then_at_most_once_per_period_then_the_end() {
        let mut o = Outage::new("test");
        assert!(o.failed(&"down"), "the first failure is logged");
        for _ in 0..10_000 {
            assert!(!o.failed(&"down"), "the next ones within the period are not");
        }
        assert!(o.is_failing());
        assert_eq!(o.total(), 10_001);
        // A period later, one line with the count.
        o.last_line -= Outage::EVERY;
        assert!(o.failed(&"down"));
        assert!(!o.failed(&"down"));
        o.ok();
        assert!(!o.is_failing());
        assert_eq!(o.outages(), 1);
        // A new outage is logged at once again.
        assert!(o.failed(&"down again"));
        assert_eq!(o.outages(), 2);
        assert_eq!(o.total(), 10_004);
    }
}
