//! Quotes from a real swtpm, checked as a peer checks them: only a fresh quote, by the enrolled
//! TPM, over the challenge given, with the enrolled PCR values, passes. A machine without swtpm
//! fails these tests, naming the package.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyward_tpm2::{Bank, QuoteError, Tpm, pcr_digest, verify_quote};

struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    fn start() -> Swtpm {
        let state = tempfile::tempdir().expect("state folder");
        let port = free_port_pair();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("swtpm cannot run ({e}): install the Debian package swtpm"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, port, _state: state }
    }

    fn tpm(&self) -> Tpm {
        // SAFETY of the test: one variable, set before any TPM use in this process.
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
        Tpm::open(&format!("swtpm:host=127.0.0.1,port={}", self.port)).expect("reach swtpm")
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = first.local_addr().expect("addr").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free adjacent ports on 127.0.0.1");
}

const PCRS: &[u8] = &[7, 11];

#[test]
fn only_a_fresh_quote_of_the_enrolled_tpm_and_pcr_values_verifies() {
    let enrolled = Swtpm::start();
    let mut tpm = enrolled.tpm();
    // Enrollment: the key, the PCRs and their digest, as a peer stores them.
    let key = tpm.attestation_key().expect("attestation key");
    assert_eq!(tpm.attestation_key().expect("again"), key, "the same key every time");
    let values = tpm.pcr_values(Bank::Sha256, PCRS).expect("PCRs");
    let digest = pcr_digest(&values);

    let challenge = [7u8; 32];
    let quote = tpm.quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    verify_quote(&key, &quote, &challenge, Bank::Sha256, PCRS, &digest).expect("a good quote");

    // A replay against another challenge.
    let other = [8u8; 32];
    assert_eq!(
        verify_quote(&key, &quote, &other, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::WrongChallenge)
    );
    // Another selection than enrolled.
    let narrower = tpm.quote(&challenge, Bank::Sha256, &[7]).expect("quote");
    assert_eq!(
        verify_quote(&key, &narrower, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::WrongPcrs)
    );
    // An edited quote.
    let mut edited = quote.clone();
    let last = edited.attest.len() - 1;
    edited.attest[last] ^= 1;
    assert_eq!(
        verify_quote(&key, &edited, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::BadSignature)
    );

    // Another TPM's quote, however good, is not the enrolled key's.
    let stranger = Swtpm::start();
    let foreign = stranger.tpm().quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    assert_eq!(
        verify_quote(&key, &foreign, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::BadSignature)
    );

    // The enrolled TPM after a boot change: its quote is genuine but the values differ.
    drop(tpm);
    let extend = Command::new("tpm2_pcrextend")
        .arg(format!("11:sha256={}", "ab".repeat(32)))
        .env("TPM2TOOLS_TCTI", format!("swtpm:host=127.0.0.1,port={}", enrolled.port))
        .env("TSS2_LOG", "all+NONE")
        .status()
        .unwrap_or_else(|e| panic!("tpm2_pcrextend cannot run ({e}): install tpm2-tools"));
    assert!(extend.success());
    let changed = enrolled.tpm().quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    assert_eq!(
        verify_quote(&key, &changed, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::PcrValuesChanged)
    );
}
