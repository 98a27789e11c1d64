//! Prometheus metrics: counters of requests by route and outcome, served at `/metrics` in the
//! text exposition format. No label ever carries a box name, a blob or a secret.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcomes counted.
pub const OUTCOMES: [&str; 3] = ["ok", "refused", "error"];

/// Request counters of one service (the hub, a peer).
#[derive(Debug)]
pub struct Metrics {
    /// Metric name prefix: `keyward_hub`, `keyward_peer`.
    service: &'static str,
    routes: &'static [&'static str],
    counts: Vec<[AtomicU64; 3]>,
}

impl Metrics {
    /// Counters named `<service>_requests_total` for these routes.
    pub fn new(service: &'static str, routes: &'static [&'static str]) -> Self {
        Metrics { service, routes, counts: routes.iter().map(|_| Default::default()).collect() }
    }

    /// Counts one request.
    pub fn count(&self, route: &str, outcome: &str) {
        let (Some(r), Some(o)) = (
            self.routes.iter().position(|x| *x == route),
            OUTCOMES.iter().position(|x| *x == outcome),
        ) else {
            return;
        };
        self.counts[r][o].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let name = format!("{}_requests_total", self.service);
        let mut out =
            format!("# HELP {name} API requests by route and outcome.\n# TYPE {name} counter\n");
        for (r, route) in self.routes.iter().enumerate() {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let n = self.counts[r][o].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{route=\"{route}\",outcome=\"{outcome}\"}} {n}");
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
        let metrics = Metrics::new("keyward_hub", &["push", "recover"]);
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
