//! A software TPM for tests (feature `test-support`): a swtpm of the test's own on free loopback
//! ports, with its state in a temporary folder, reached by a TCTI string, and tpm2-tools run
//! against it. A machine without swtpm or tpm2-tools fails the test, naming the package.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Tpm;

/// A running swtpm, stopped when dropped.
pub struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// A new TPM (fresh state) on free ports.
    pub fn start() -> Swtpm {
        Swtpm::start_on(free_port_pair())
    }

    /// A new TPM (fresh state) on `port` and the next one (the TCTI's control channel).
    pub fn start_on(port: u16) -> Swtpm {
        let state = tempfile::tempdir().expect("swtpm state folder");
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
            .unwrap_or_else(|e| {
                panic!("swtpm cannot run ({e}): install the Debian packages swtpm and swtpm-tools")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, port, _state: state }
    }

    /// Its command port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCTI string that reaches it.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// A connection from this process.
    pub fn tpm(&self) -> Tpm {
        Tpm::open(&self.tcti()).expect("reach the swtpm")
    }

    /// Runs a tpm2-tools command against it.
    pub fn tools(&self, args: &[&str]) {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+NONE")
            .output()
            .unwrap_or_else(|e| {
                panic!("{} cannot run ({e}): install the Debian package tpm2-tools", args[0])
            });
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Extends sha256 PCR `pcr`, as a firmware or boot change would.
    pub fn extend(&self, pcr: u8) {
        self.tools(&["tpm2_pcrextend", &format!("{pcr}:sha256={}", "ab".repeat(32))]);
    }

    /// A known lockout: `max_tries` wrong PINs, then locked for ten minutes.
    pub fn set_lockout(&self, max_tries: u32) {
        self.tools(&[
            "tpm2_dictionarylockout",
            "--setup-parameters",
            &format!("--max-tries={max_tries}"),
            "--recovery-time=600",
            "--lockout-recovery-time=600",
        ]);
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port whose next port is free too.
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
