//! The tpm2 kind's TSS work, done in keyward's tpm2 helper (`keyward-tpm2-helper`): the kind
//! (`keyward-tpm2`) sends it calls over a pipe, and only this crate links tss-esapi, the TSS and
//! OpenSSL. A keyward process that opens no tpm2 slot never loads them.
//!
//! - [`Tss`] is one TPM through ESAPI: seal, unseal, NV counters ([`tss`]), quotes ([`quote`]);
//! - [`serve`] answers the kind's calls (`keyward_tpm2::helper::Call`) with a [`Tss`];
//! - `openssl_context` makes the TSS's OpenSSL contexts one per process, not one per operation.

mod openssl_context;
mod quote;
mod tss;

use std::process::ExitCode;

use keyward_tpm2::helper::{Answer, Bytes, Call, Reply};
use keyward_tpm2::{Cause, HELPER, TpmFailure};

pub use tss::Tss;

/// The helper's main: answers calls on standard input until it closes, then flushes what the
/// TPM holds for it and exits.
pub fn serve() -> ExitCode {
    cap_tss_logging();
    openssl_context::keep();
    let mut tpm: Option<Tss> = None;
    keyward_helper::serve(HELPER, move |call: Call| match (call, tpm.as_mut()) {
        (Call::Open { device }, _) => {
            // A second open replaces the first (its handles are flushed as it drops).
            tpm = None;
            Answer::Opened(Tss::open(&device).map(|opened| tpm = Some(opened)))
        }
        (call, Some(tpm)) => Answer::Replied(answer(tpm, call)),
        (_, None) => Answer::Replied(Err(misuse("a call before the TPM was opened"))),
    })
}

fn answer(tpm: &mut Tss, call: Call) -> Result<Reply, TpmFailure> {
    Ok(match call {
        Call::Open { .. } => return Err(misuse("an open answered as a call")),
        Call::PcrValues { bank, pcrs } => {
            Reply::PcrValues(tpm.pcr_values(bank, &pcrs)?.into_iter().map(Bytes).collect())
        }
        Call::Seal { bank, pcrs, auth, secret } => Reply::Sealed(tpm.seal(
            bank,
            &pcrs,
            auth.as_ref().map(|a| a.expose()),
            secret.expose(),
        )?),
        Call::Unseal { sealed, bank, pcrs, auth } => Reply::Unsealed(
            tpm.unseal(&sealed, bank, &pcrs, auth.as_ref().map(|a| a.expose()))?.into(),
        ),
        Call::DefineCounter => Reply::Index(tpm.define_counter()?),
        Call::Counter { index } => Reply::Counter(tpm.counter(index)?),
        Call::UndefineCounter { index } => {
            tpm.undefine_counter(index)?;
            Reply::Done
        }
        Call::HasStorageKey { name } => Reply::Yes(tpm.has_storage_key(&name)?),
        Call::Increment { index } => {
            tpm.increment(index)?;
            Reply::Done
        }
        Call::Lockout => Reply::Lockout(tpm.lockout()),
        Call::AttestationKey => Reply::AttestationKey(Bytes(tpm.attestation_key()?)),
        Call::Quote { challenge, bank, pcrs } => Reply::Quote(tpm.quote(&challenge, bank, &pcrs)?),
    })
}

fn misuse(what: &str) -> TpmFailure {
    TpmFailure::local("keyward's tpm2 helper", Cause::Unexpected(what.into()))
}

/// The TSS's own log lines. Unasked, none: a failure is keyward's one line, with the TPM's
/// response code in it. Asked with `TSS2_LOG`, at most warnings and errors: the TSS logs session
/// keys at its debug level and what it decrypts at its trace level (`esys_crypto+trace` prints an
/// unsealed key), so no secret reaches a log.
fn cap_tss_logging() {
    const VARIABLE: &str = "TSS2_LOG";
    let Some(asked) = std::env::var_os(VARIABLE) else {
        // SAFETY: the first thing the helper does, while it has one thread.
        unsafe { std::env::set_var(VARIABLE, "all+NONE") };
        return;
    };
    let asked = asked.to_string_lossy().into_owned();
    let capped = capped_log_levels(&asked);
    if capped != asked {
        eprintln!("{HELPER}: {VARIABLE}={asked} would log secrets; logging {capped} instead");
        // SAFETY: the first thing the helper does, while it has one thread.
        unsafe { std::env::set_var(VARIABLE, capped) };
    }
}

/// `TSS2_LOG` (`module+level,…`) with every level above `warning` lowered to it.
fn capped_log_levels(asked: &str) -> String {
    asked
        .split(',')
        .map(|entry| match entry.split_once('+') {
            Some((module, level))
                if !matches!(level.to_ascii_lowercase().as_str(), "none" | "error" | "warning") =>
            {
                format!("{module}+warning")
            }
            _ => entry.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_log_levels_above_warning_are_lowered_to_it() {
        assert_eq!(capped_log_levels("all+NONE"), "all+NONE");
        assert_eq!(capped_log_levels("all+trace"), "all+warning");
        assert_eq!(
            capped_log_levels("esys+error,esys_crypto+DEBUG"),
            "esys+error,esys_crypto+warning"
        );
        assert_eq!(capped_log_levels("tcti+info,marshal+Warning"), "tcti+warning,marshal+Warning");
    }
}
