//! A bounded load generator for the hub (and, for comparison, any plain HTTP endpoint such as
//! tangd's `/adv`): C concurrent connections, until S seconds or M requests, whichever first.
//! Prints one JSON line: requests, errors, seconds, requests per second, p50 and p99 latency.
//!
//! Usage:
//!   hub_load fetch|push URL PIN BOXES [--connections C] [--seconds S] [--max M]
//!   hub_load plain URL [--connections C] [--seconds S] [--max M]
//! `fetch` and `push` sign as a random seeded box `bench-0..BOXES-1` each request (hub_seed).

#[path = "common/bench_identity.rs"]
mod bench_identity;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyward_hub::api::PushRequest;
use keyward_hub::client::HubClient;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Fetch,
    Push,
    Plain,
}

fn option(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("fetch") => Mode::Fetch,
        Some("push") => Mode::Push,
        Some("plain") => Mode::Plain,
        _ => {
            eprintln!(
                "usage: hub_load fetch|push URL PIN BOXES [options] | hub_load plain URL [options]"
            );
            std::process::exit(2);
        }
    };
    let url = args.get(1).cloned().unwrap_or_default();
    let connections = option(&args, "--connections", 8).clamp(1, 256);
    let seconds = option(&args, "--seconds", 10).clamp(1, 600);
    let max = option(&args, "--max", 1_000_000).clamp(1, 100_000_000);
    let boxes = if mode == Mode::Plain {
        1
    } else {
        args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1).max(1)
    };
    let pin = if mode == Mode::Plain {
        [0u8; 32]
    } else {
        args.get(2).and_then(|p| keyward_service::tls::parse_pin(p)).unwrap_or_else(|| {
            eprintln!("the second argument is the hub certificate's SHA-256 (hex)");
            std::process::exit(2);
        })
    };

    // reqwest is built without a default TLS provider; the plain (http) client still wants one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let report = runtime.block_on(async move {
        let client = if mode == Mode::Plain {
            None
        } else {
            Some(HubClient::new(&url, pin).expect("client"))
        };
        let plain = reqwest::Client::builder().build().expect("http client");
        let issued = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..connections {
            let (client, plain, url) = (client.clone(), plain.clone(), url.clone());
            let (issued, errors) = (issued.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ task;
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                    // xorshift: which seeded box signs this request.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = state % boxes;
                    let t = Instant::now();
                    let ok = match (mode, &client) {
                        (Mode::Plain, _) => plain
                            .get(&url)
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false),
                        (Mode::Fetch, Some(c)) => {
                            let id = bench_identity::box_identity(i);
                            c.fetch_active(&bench_identity::box_name(i), &id).await.is_ok()
                        }
                        (Mode::Push, Some(c)) => {
                            let id = bench_identity::box_identity(i);
                            let push = PushRequest {
                                blob_format: "keyward-escrow-blob".into(),
                                blob: keyward_core::encoding::to_base64(&[9u8; 520]),
                                fingerprint: keyward_core::Fingerprint::of(
                                    b"keyward benchmark key, 32 bytes!",
                                )
                                .to_string(),
                                key_fingerprint: None,
                                // A directive of its own per push: the same blob and directive
                                // again would be the version it became, not a new one.
                                directive: serde_json::json!({ "n": state }),
                            };
                            c.push(&bench_identity::box_name(i), &id, &push).await.is_ok()
                        }
                        _ => false,
                    };
                    if ok {
                        latencies.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap_or_default());
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        serde_json::json!({
            "requests": all.len(),
            "errors": errors.load(Ordering::Relaxed),
            "seconds": (elapsed * 100.0).round() / 100.0,
            "rps": (all.len() as f64 / elapsed).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        })
    });
    println!("{report}");
}
