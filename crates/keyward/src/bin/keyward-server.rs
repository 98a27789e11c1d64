//! `keyward-server`: keyward with its servers; `keyward` hands it `hub …` and `peer …`.

fn main() -> std::process::ExitCode {
    keyward::main_server()
}
