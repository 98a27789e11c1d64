//! Rate limits and lockouts, kept in memory: a fixed one-minute window per request source (IP
//! address) and per authenticated box, and a ten-minute count of failed authentications per
//! source. Each hub process counts on its own; behind a load balancer the effective limit is the
//! per-process limit times the number of hubs — an operator sizes it so. A refusal is a 429 with
//! the reason, which the client turns into exit 9.

use std::collections::HashMap;
use std::sync::Mutex;

/// Requests allowed per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per source address (0: no limit).
    pub per_source: u32,
    /// Per box (0: no limit).
    pub per_box: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { per_source: 600, per_box: 120 }
    }
}

/// Most keys tracked. Old windows are dropped first; if the table is still full, new keys are
/// refused (fail closed) until the minute turns — a flood of sources costs a bounded table.
const MAX_TRACKED: usize = 100_000;
/// Failed authentications from one source in one lockout window before it is locked out.
pub const LOCKOUT_AFTER: u32 = 10;
/// The lockout window, in seconds.
pub const LOCKOUT_WINDOW_SECS: i64 = 600;

/// Counters per key in the current window.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: Option<RateLimits>,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter { limits: Some(limits), windows: Mutex::new(HashMap::new()) }
    }

    /// Adds one to `key`'s count in the window of `width` seconds containing `now`; returns the
    /// new count, or `None` when the table is full (the caller refuses).
    fn bump(&self, key: String, width: i64, now: i64) -> Option<u32> {
        let window = now.div_euclid(width);
        // A poisoned lock means a panic elsewhere; refuse rather than stop counting.
        let mut windows = self.windows.lock().ok()?;
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&key) {
            let minute = now.div_euclid(60);
            let lockout = now.div_euclid(LOCKOUT_WINDOW_SECS);
            windows.retain(
                |k, (w, _)| if k.starts_with("fail:") { *w == lockout } else { *w == minute },
            );
            if windows.len() >= MAX_TRACKED {
                return None;
            }
        }
        let entry = windows.entry(key).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        Some(entry.1)
    }

    fn count(&self, key: String, width: i64, now: i64) -> u32 {
        let window = now.div_euclid(width);
        match self.windows.lock() {
            Ok(windows) => windows.get(&key).filter(|(w, _)| *w == window).map_or(0, |(_, n)| *n),
            Err(_) => u32::MAX,
        }
    }

    fn allow(&self, key: String, limit: u32, now: i64) -> bool {
        limit == 0 || self.bump(key, 60, now).is_some_and(|n| n <= limit)
    }

    /// Counts a request from `source`; `false` if that source is over its limit.
    pub fn allow_source(&self, source: &str, now: i64) -> bool {
        let limit = self.limits.map_or(0, |l| l.per_source);
        self.allow(format!("source:{source}"), limit, now)
    }

    /// Counts an authenticated request of `box_name`; `false` if that box is over its limit.
    /// Only verified requests count, so nobody can use up a box's allowance by naming it.
    pub fn allow_box(&self, box_name: &str, now: i64) -> bool {
        let limit = self.limits.map_or(0, |l| l.per_box);
        self.allow(format!("box:{box_name}"), limit, now)
    }

    /// Records a failed authentication (bad signature, stale timestamp, unknown box, replay)
    /// from `source`.
    pub fn record_failure(&self, source: &str, now: i64) {
        let _ = self.bump(format!("fail:{source}"), LOCKOUT_WINDOW_SECS, now);
    }

    /// Whether `source` has failed too often in the current lockout window.
    pub fn locked_out(&self, source: &str, now: i64) -> bool {
        self.count(format!("fail:{source}"), LOCKOUT_WINDOW_SECS, now) >= LOCKOUT_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_the_next_minute() {
        let limiter = RateLimiter::new(RateLimits { per_source: 3, per_box: 0 });
        assert!((0..3).all(|_| limiter.allow_source("10.0.0.1", 60)));
        assert!(!limiter.allow_source("10.0.0.1", 61));
        assert!(limiter.allow_source("10.0.0.2", 61), "another source has its own window");
        assert!(limiter.allow_source("10.0.0.1", 120), "a new minute starts afresh");
        assert!((0..1000).all(|_| limiter.allow_box("b", 60)), "0 means no limit");
    }

    #[test]
    fn repeated_failures_lock_out_that_source_only() {
        let limiter = RateLimiter::new(RateLimits::default());
        for _ in 0..LOCKOUT_AFTER {
            assert!(!limiter.locked_out("10.0.0.9", 100));
            limiter.record_failure("10.0.0.9", 100);
        }
        assert!(limiter.locked_out("10.0.0.9", 101));
        assert!(!limiter.locked_out("10.0.0.10", 101), "another source is not affected");
        assert!(!limiter.locked_out("10.0.0.9", 100 + LOCKOUT_WINDOW_SECS), "the lockout ends");
    }
}
