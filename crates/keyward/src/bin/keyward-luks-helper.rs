//! keyward's LUKS2 helper: `keyward` starts it to read or change a LUKS2 header and speaks to it
//! over a pipe (docs/formats/helper.md). Only this executable links libcryptsetup.

fn main() -> std::process::ExitCode {
    keyward_luks_cryptsetup::serve()
}
