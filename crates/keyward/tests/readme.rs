//! The README runs as written: every ```sh block of README.md, in order, as one bash script in a
//! fresh HOME and an empty working folder, with this build's `keyward` on the PATH and no
//! terminal. The only changes made to the text are the ones a reader's machine does not need:
//!
//! - the two set-up commands at the top: `bash scripts/build-deps.sh` is left out (the build
//!   this test runs in had them), `cargo run --release -p keyward --` runs this build's binary
//!   instead (same program, no second release build), and `bash scripts/test-all.sh` — what is
//!   running this test — is not run again;
//! - every `127.0.0.1:PORT` is moved to a free port (CI machines run other servers), and after a
//!   line that starts a server in the background, the script waits until it listens (the key
//!   agent: until its socket is there).
//!
//! Everything else — every option, file and variable — is the README's own, so a command that
//! stops working fails this test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");
/// The most the whole README may take; it is killed (and the test fails) after that.
const LIMIT: Duration = Duration::from_secs(600);

/// The bodies of the ```sh blocks, in order.
fn shell_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(body), _) => body.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// Every `127.0.0.1:PORT` in `text`, mapped to a free port.
fn free_ports(text: &str) -> BTreeMap<String, String> {
    let mut ports = BTreeMap::new();
    for (at, _) in text.match_indices("127.0.0.1:") {
        let digits: String = text[at + 10..].chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && !ports.contains_key(&digits) {
            let free = TcpListener::bind("127.0.0.1:0").expect("a free port");
            let port = free.local_addr().expect("addr").port().to_string();
            ports.insert(digits, port);
        }
    }
    ports
}

/// The script: the README's lines with the changes the module doc lists.
fn script(blocks: &[Vec<&str>]) -> String {
    let ports = free_ports(README);
    let mut out = String::from(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
         trap 'echo \"README script line $LINENO failed: $BASH_COMMAND\" >&2' ERR\n\
         listening() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo \"nothing listens on $1\" >&2; return 1; }\n\
         socket_ready() { for _ in $(seq 200); do [ -S \"$1\" ] && return 0; sleep 0.05; done; echo \"no socket at $1\" >&2; return 1; }\n",
    );
    for block in blocks {
        for line in block {
            let trimmed = line.trim();
            if trimmed == "bash scripts/test-all.sh" {
                out.push_str("# (scripts/test-all.sh is what runs this)\n");
                continue;
            }
            let mut line = line
                .replace("bash scripts/build-deps.sh && ", "")
                .replace("cargo run --release -p keyward --", "keyward");
            for (from, to) in &ports {
                line = line.replace(&format!("127.0.0.1:{from}"), &format!("127.0.0.1:{to}"));
            }
            out.push_str(&line);
            out.push('\n');
            let starts_server = trimmed.starts_with("keyward ")
                && trimmed.contains(" serve ")
                && trimmed.split('#').next().is_some_and(|cmd| cmd.trim_end().ends_with('&'));
            if starts_server && trimmed.starts_with("keyward agent serve") {
                let socket =
                    line.split("--socket ").nth(1).and_then(|r| r.split_whitespace().next());
                let _ = writeln!(out, "socket_ready {}", socket.expect("the agent's --socket"));
            } else if starts_server {
                let listen =
                    line.split("--listen ").nth(1).and_then(|rest| rest.split_whitespace().next());
                let port = listen.and_then(|a| a.rsplit(':').next()).expect("a --listen address");
                let _ = writeln!(out, "listening {port}");
            }
        }
    }
    out
}

#[test]
fn every_shell_block_of_the_readme_runs_as_written_in_a_fresh_home() {
    let blocks = shell_blocks(README);
    assert!(blocks.len() >= 4, "the README has its shell blocks");
    let script = script(&blocks);
    let home = tempfile::Builder::new().prefix("keyward-readme-").tempdir().expect("tempdir");
    let work = home.path().join("work");
    std::fs::create_dir(&work).expect("work folder");
    let keyward = std::path::Path::new(env!("CARGO_BIN_EXE_keyward"));
    let path = format!(
        "{}:{}",
        keyward.parent().expect("bin folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Output to files, not pipes: a full pipe would stall the script.
    let (out_path, err_path) = (home.path().join("stdout.txt"), home.path().join("stderr.txt"));
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("bash runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let numbered: String =
        script.lines().enumerate().map(|(i, l)| format!("{:>4} {l}\n", i + 1)).collect();
    assert!(
        status.is_some_and(|s| s.success()),
        "the README did not run as written ({status:?} after {:?})\n--- script\n{numbered}--- stdout\n{stdout}\n--- stderr\n{stderr}",
        started.elapsed()
    );
}
