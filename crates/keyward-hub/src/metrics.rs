//! Prometheus metrics: counters of requests by route and outcome, served at `/metrics` in the
//! text exposition format. No label ever carries a box name, a blob or a secret.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The routes counted.
pub const ROUTES: [&str; 6] = ["enroll", "push", "status", "fetch", "approve", "recover"];
/// The outcomes counted.
pub const OUTCOMES: [&str; 3] = ["ok", "refused", "error"];

/// Request counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: [[AtomicU64; 3]; 6],
}

impl Metrics {
    /// Counts one request.
    pub fn count(&self, route: &str, outcome: &str) {
        let (Some(r), Some(o)) =
            (ROUTES.iter().position(|x| *x == route), OUTCOMES.iter().position(|x| *x == outcome))
        else {
            return;
        };
        self.counts[r][o].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP keyward_hub_requests_total Hub API requests by route and outcome.\n# TYPE keyward_hub_requests_total counter\n",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let n = self.counts[r][o].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "keyward_hub_requests_total{{route=\"{route}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_exposition() {
        let metrics = Metrics::default();
        metrics.count("push", "ok");
        metrics.count("push", "ok");
        metrics.count("recover", "refused");
        metrics.count("no-such-route", "ok");
        let text = metrics.render();
        assert!(
            text.contains("keyward_hub_requests_total{route=\"push\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("keyward_hub_requests_total{route=\"recover\",outcome=\"refused\"} 1"),
            "{text}"
        );
    }
}
