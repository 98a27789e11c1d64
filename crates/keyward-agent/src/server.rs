//! The agent's server: one thread accepts, a few workers answer one request per connection, one
//! thread wipes the key when its time is up, one waits for SIGTERM, SIGINT or
//! SIGHUP and wipes before the process exits.

#![allow(unsafe_code)] // pthread_sigmask and sigwait; their SAFETY notes are at the calls

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keyward_box::secrets::SecretFiles;
use keyward_core::store::RealFs;
use keyward_core::{DataKey, ExpectedFingerprint, Fingerprint, Store};
use serde_json::json;

use crate::callers::{Allowlist, Caller};
use crate::error::AgentError;
use crate::holder::Holder;
use crate::protocol::{self, Op, Refusal, Response, State};

/// Threads that answer connections (a re-open that waits on a device holds one of them).
const WORKERS: usize = 4;
/// Connections accepted and waiting for a worker; more are closed unanswered.
const MAX_WAITING: usize = 32;
/// How long a connection may take to send its request or take its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent is set up with.
pub struct AgentConfig {
    /// The keybox it re-opens.
    pub keybox: PathBuf,
    /// The slot it re-opens with (by number or label), else every unattended one.
    pub slot: Option<String>,
    /// How long a key is held.
    pub ttl: Duration,
    /// Whom it serves.
    pub allow: Allowlist,
    /// Where audit lines go.
    pub audit: Box<dyn Write + Send>,
}

/// A running agent's state.
pub struct Agent {
    keybox: PathBuf,
    slot: Option<String>,
    ttl: Duration,
    allow: Allowlist,
    /// The fingerprint of the key first opened: a re-opened key must have it too.
    fingerprint: Fingerprint,
    holder: Mutex<Holder>,
    /// Signalled when a key is held or wiped (the wiper's deadline changed).
    changed: Condvar,
    /// One re-open at a time.
    reopening: Mutex<()>,
    audit: Mutex<Box<dyn Write + Send>>,
    served: AtomicU64,
    refused: AtomicU64,
}

impl Agent {
    /// An agent holding `key` (opened by the caller, as `keyward agent serve` opens it: perhaps
    /// with a person there) for its TTL.
    pub fn new(config: AgentConfig, key: DataKey) -> Result<Arc<Agent>, AgentError> {
        let fingerprint = key.fingerprint();
        let mut holder = Holder::default();
        holder.hold(key, config.ttl).map_err(|source| AgentError::Io {
            what: "cannot lock memory for the key of",
            path: config.keybox.clone(),
            source,
        })?;
        Ok(Arc::new(Agent {
            keybox: config.keybox,
            slot: config.slot,
            ttl: config.ttl,
            allow: config.allow,
            fingerprint,
            holder: Mutex::new(holder),
            changed: Condvar::new(),
            reopening: Mutex::new(()),
            audit: Mutex::new(config.audit),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Answers connections on `listener` until the process ends: this thread accepts, a few
    /// workers answer (started once, so a request costs no thread start). Starts the wiper.
    pub fn serve(self: &Arc<Self>, listener: &UnixListener) -> Result<(), AgentError> {
        let wiper = Arc::clone(self);
        std::thread::spawn(move || wiper.wipe_when_due());
        let (queue, waiting) = std::sync::mpsc::sync_channel::<UnixStream>(MAX_WAITING);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WORKERS {
            let (agent, waiting) = (Arc::clone(self), Arc::clone(&waiting));
            std::thread::spawn(move || {
                loop {
                    let next =
                        waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    match next {
                        Ok(stream) => agent.answer(stream),
                        Err(_) => return,
                    }
                }
            });
        }
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // Full: closed unanswered (the client sees the agent as busy, exit 8).
            let _ = queue.try_send(stream);
        }
        Ok(())
    }

    /// Wipes the key now.
    pub fn wipe(&self) {
        self.holder().wipe();
        self.changed.notify_all();
    }

    fn holder(&self) -> MutexGuard<'_, Holder> {
        // A thread that panicked holding the lock leaves a holder that is still consistent.
        self.holder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wipe_when_due(&self) {
        let mut holder = self.holder();
        loop {
            holder.wipe_if_expired();
            let wait = holder.deadline().map(|d| d.saturating_duration_since(Instant::now()));
            holder = match wait {
                Some(left) => {
                    self.changed
                        .wait_timeout(holder, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
                None => {
                    self.changed.wait(holder).unwrap_or_else(std::sync::PoisonError::into_inner)
                }
            };
        }
    }

    /// One connection: who calls, what it asks, the answer, the audit line.
    fn answer(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(caller) = Caller::of(&stream) else { return };
        let request = protocol::read_frame(&mut stream)
            .map_err(|e| format!("no request ({e})"))
            .and_then(|frame| protocol::parse_request(&frame));
        let op = match request {
            Ok(request) => request.op,
            Err(reason) => {
                self.record(&caller, None, Err(&reason));
                let refusal = Response::refusal(Refusal::BadRequest, reason);
                let _ = protocol::write_message(&mut stream, &refusal);
                return;
            }
        };
        if let Err(reason) = self.allow.check(&caller) {
            self.record(&caller, Some(op), Err(&reason));
            let refusal = Response::refusal(Refusal::Refused, reason);
            let _ = protocol::write_message(&mut stream, &refusal);
            return;
        }
        let outcome = match op {
            Op::Get => self.get(&mut stream),
            Op::Status => {
                let status = self.status();
                protocol::write_message(&mut stream, &status).map_err(|e| e.to_string())
            }
            Op::Lock => {
                self.wipe();
                let done = Response { state: Some(State::Locked), ..Response::granted() };
                protocol::write_message(&mut stream, &done).map_err(|e| e.to_string())
            }
        };
        self.record(&caller, Some(op), outcome.as_ref().map(|_| ()).map_err(String::as_str));
    }

    /// Sends the key (re-opening the keybox if its time was up); `Err` says why not.
    fn get(&self, stream: &mut UnixStream) -> Result<(), String> {
        // Bound first: the holder's lock must be released before a re-open takes it again.
        let held = self.holder().key();
        let key = match held {
            Some(key) => key,
            None => match self.reopen() {
                Ok(key) => key,
                Err(reason) => {
                    let _ = protocol::write_message(
                        stream,
                        &Response::refusal(Refusal::Locked, &reason),
                    );
                    return Err(format!("locked: {reason}"));
                }
            },
        };
        let header = Response {
            key_len: Some(key.len()),
            fingerprint: Some(self.fingerprint.to_string()),
            ..Response::granted()
        };
        // The answer and the key in one write, from wiped memory.
        let mut answer = zeroize::Zeroizing::new(Vec::with_capacity(256 + key.len()));
        protocol::push_message(&mut answer, &header)
            .and_then(|()| protocol::push_frame(&mut answer, &key))
            .and_then(|()| stream.write_all(&answer))
            .map_err(|e| format!("the caller did not take the key ({e})"))?;
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Opens the keybox again with nobody there, checks the key is the one first held, and
    /// holds it for a TTL.
    fn reopen(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let _one = self.reopening.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another request may have re-opened it meanwhile.
        let held = self.holder().key();
        if let Some(key) = held {
            return Ok(key);
        }
        let store = Store::new(&RealFs, self.keybox.clone());
        let keybox = store.load().map_err(|e| e.to_string())?;
        let files = SecretFiles::new();
        let opened = keyward_box::unlock::open_unattended(
            &keybox,
            store.path(),
            &files,
            self.slot.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let key = opened.key().clone();
        drop(opened);
        // The keybox at the path may have been replaced by another: its key is not served.
        let first = ExpectedFingerprint::Full(self.fingerprint);
        keyward_box::recovery::gate(&key.fingerprint(), &[("the agent's key".into(), first)])
            .map_err(|e| e.to_string())?;
        let copy = zeroize::Zeroizing::new(key.expose().to_vec());
        self.holder().hold(key, self.ttl).map_err(|e| format!("cannot lock memory ({e})"))?;
        self.changed.notify_all();
        Ok(copy)
    }

    fn status(&self) -> Response {
        let left = self.holder().time_left();
        Response {
            state: Some(if left.is_some() { State::Unlocked } else { State::Locked }),
            seconds_left: left.map(|d| d.as_secs()),
            ttl: Some(self.ttl.as_secs()),
            served: Some(self.served.load(Ordering::SeqCst)),
            refused: Some(self.refused.load(Ordering::SeqCst)),
            fingerprint: Some(self.fingerprint.to_string()),
            ..Response::granted()
        }
    }

    /// One audit line: when, who, what, and whether it was granted. Never the key.
    fn record(&self, caller: &Caller, op: Option<Op>, outcome: Result<(), &str>) {
        if outcome.is_err() {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut line = json!({
            "time": now,
            "pid": caller.pid,
            "uid": caller.uid,
            "gid": caller.gid,
            "exe": caller.exe.as_ref().map(|p| p.display().to_string()),
            "op": op.map(Op::name),
            "granted": outcome.is_ok(),
        });
        if let Err(reason) = outcome {
            line["reason"] = json!(reason);
        }
        let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(audit, "{line}");
        let _ = audit.flush();
    }
}

/// The signals that end the agent, blocked in every thread so that one thread takes them with
/// `sigwait`. Call before any other thread is started.
pub fn block_exit_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset, which initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes; the signal numbers are valid; pthread_sigmask only
    // changes this thread's mask (inherited by the threads it starts).
    unsafe {
        libc::sigemptyset(&raw mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&raw mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
    }
    set
}

/// Waits (on a thread of its own) for one of `signals`, then wipes the key, removes `socket`
/// and ends the process.
pub fn wipe_on_signals(agent: Arc<Agent>, signals: libc::sigset_t, socket: Option<PathBuf>) {
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: `signals` is an initialised set and `signal` is valid for writes.
        unsafe {
            libc::sigwait(&raw const signals, &raw mut signal);
        }
        agent.wipe();
        if let Some(socket) = socket {
            let _ = std::fs::remove_file(socket);
        }
        agent.record_stop(signal);
        std::process::exit(0);
    });
}

impl Agent {
    fn record_stop(&self, signal: i32) {
        let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ =
            writeln!(audit, "{}", json!({ "event": "stopped", "signal": signal, "key": "wiped" }));
        let _ = audit.flush();
    }
}
