//! keyward's tpm2 helper: `keyward` starts it to use a TPM and speaks to it over a pipe
//! (docs/formats/helper.md). Only this executable links the TSS and OpenSSL.

fn main() -> std::process::ExitCode {
    keyward_tpm2_tss::serve()
}
