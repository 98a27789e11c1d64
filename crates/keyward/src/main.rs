//! `keyward`: every command; `hub …` and `peer …` run in `keyward-server` (see the library).

fn main() -> std::process::ExitCode {
    keyward::main()
}
