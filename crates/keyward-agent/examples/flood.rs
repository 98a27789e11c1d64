//! Legitimate `get`s while the agent is under attack: N gets by this process (an allowed
//! caller) with nobody else there, then N more while a uid the agent refuses floods it with
//! connections and an allowed uid holds 100 half-sent request frames. Prints, for each, how many
//! were served and the median and 99th percentile of their round trips, in microseconds
//! (scripts/bench-agent-flood.sh runs it, as root: the attackers are forked with other uids).
//!
//!     cargo run --release -p keyward-agent --example flood -- SOCKET REFUSED_UID HOLDER_UID [N]

#![allow(unsafe_code)] // fork, setuid, kill: the attackers are processes of other uids

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyward_agent::client::AgentClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: flood SOCKET REFUSED_UID HOLDER_UID [N]";
    let socket = PathBuf::from(args.next().ok_or(usage)?);
    let refused: u32 = args.next().ok_or(usage)?.parse()?;
    let holder: u32 = args.next().ok_or(usage)?.parse()?;
    // Bounded: at most 100 000 gets each.
    let count: usize = args.next().map_or(Ok(5_000), |n| n.parse())?.clamp(10, 100_000);
    let client = AgentClient::new(&socket).with_timeout(Some(Duration::from_secs(5)));
    for _ in 0..100 {
        client.get()?;
    }
    report("quiet", &measure(&client, count));
    let target = socket.clone();
    let flooder = forked_as(refused, move || flood(&target));
    let target = socket.clone();
    let half_frames = forked_as(holder, move || hold_half_frames(&target));
    std::thread::sleep(Duration::from_millis(300));
    let under_attack = measure(&client, count);
    for child in [flooder, half_frames] {
        // SAFETY: kill and waitpid on our own children.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
    }
    report("flooded", &under_attack);
    let status = client.status()?;
    println!("refused during the run: {}", status.refused.unwrap_or(0));
    Ok(())
}

/// Round trips of served gets, and how many failed.
struct Measured {
    micros: Vec<f64>,
    failed: usize,
}

fn measure(client: &AgentClient, count: usize) -> Measured {
    let mut micros = Vec::with_capacity(count);
    let mut failed = 0;
    for _ in 0..count {
        let start = Instant::now();
        match client.get() {
            Ok(_) => micros.push(start.elapsed().as_secs_f64() * 1e6),
            Err(_) => failed += 1,
        }
    }
    micros.sort_by(f64::total_cmp);
    Measured { micros, failed }
}

fn report(what: &str, measured: &Measured) {
    let served = measured.micros.len();
    let at = |q: f64| measured.micros.get(((served.max(1) - 1) as f64 * q) as usize).copied();
    println!(
        "{what}: served {served} of {} ({:.2} %), median {:.1} µs, p99 {:.1} µs",
        served + measured.failed,
        100.0 * served as f64 / (served + measured.failed) as f64,
        at(0.5).unwrap_or(f64::NAN),
        at(0.99).unwrap_or(f64::NAN),
    );
}

/// Connects and hangs up, as fast as it can, until killed (at most ten minutes).
fn flood(socket: &Path) {
    let until = Instant::now() + Duration::from_secs(600);
    while Instant::now() < until {
        drop(UnixStream::connect(socket));
    }
}

/// Holds 100 connections, each with two bytes of a request's length sent, until killed.
fn hold_half_frames(socket: &Path) {
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(mut stream) = UnixStream::connect(socket) {
            let _ = stream.write_all(&[0, 0]);
            held.push(stream);
        }
    }
    std::thread::sleep(Duration::from_secs(600));
}

fn forked_as(uid: u32, work: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child drops its ids, runs `work` and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; setgroups takes an empty list.
        unsafe {
            libc::setgroups(0, std::ptr::null());
            libc::setgid(uid);
            libc::setuid(uid);
        }
        work();
        // SAFETY: ends the child without the parent's destructors.
        unsafe { libc::_exit(0) }
    }
    pid
}
