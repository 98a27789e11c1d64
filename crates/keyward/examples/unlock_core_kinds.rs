//! `keyward unlock --out -` with nothing else linked: the keybox read and opened through its
//! unattended slots, of keyward-core's own kinds only, and the key written to stdout. Not a
//! tool: scripts/bench-startup.sh times it beside `keyward`, as the start-up an executable
//! holding only this path would have (what keyward's whole CLI adds to every command's start).
//!
//! Usage: unlock_core_kinds KEYBOX

#[path = "common/unlock.rs"]
mod unlock;

fn main() -> std::process::ExitCode {
    unlock::unlock()
}
