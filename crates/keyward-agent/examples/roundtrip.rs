//! The round trip of a cached `get`, in-process: N requests to the agent at SOCKET, one
//! connection each, as `keyward agent get` makes them. Prints the median, mean and 99th
//! percentile in microseconds (scripts/bench-agent.sh runs it).
//!
//!     cargo run --release -p keyward-agent --example roundtrip -- SOCKET [N]

use std::path::PathBuf;
use std::time::Instant;

use keyward_agent::client::AgentClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let socket = PathBuf::from(args.next().ok_or("usage: roundtrip SOCKET [N]")?);
    let count: usize = match args.next() {
        Some(n) => n.to_str().ok_or("N is a number")?.parse()?,
        None => 10_000,
    };
    // Bounded: at most 100 000 requests.
    let count = count.clamp(10, 100_000);
    let client = AgentClient::new(&socket);
    // Warm up (the first request may re-open the keybox).
    for _ in 0..100 {
        client.get()?;
    }
    let mut micros = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let given = client.get()?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        drop(given);
    }
    micros.sort_by(f64::total_cmp);
    let mean = micros.iter().sum::<f64>() / micros.len() as f64;
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "requests {count}: median {:.1} µs, mean {mean:.1} µs, p99 {:.1} µs",
        at(0.5),
        at(0.99)
    );
    Ok(())
}
