//! The agent's server: one thread accepts, a few workers answer one request per connection, one
//! thread wipes the key when its time is up, one waits for SIGTERM, SIGINT or
//! SIGHUP and wipes before the process exits.

#![allow(unsafe_code)] // pthread_sigmask and sigwait; their SAFETY notes are at the calls

use std::io::IoSlice;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use keyward_box::BoxError;
use keyward_box::secrets::SecretFiles;
use keyward_core::store::RealFs;
use keyward_core::{DataKey, ExpectedFingerprint, Fingerprint, Store};
use serde_json::json;

use crate::callers::{Allowlist, Caller, NotAllowed};
use crate::error::AgentError;
use crate::holder::Holder;
use crate::protocol::{self, BadRequest, Op, Refusal, Response, State};
use crate::socket::BoundSocket;

/// Threads that answer connections (a re-open that waits on a device holds one of them).
const WORKERS: usize = 4;
/// Connections accepted and waiting for a worker; more are closed unanswered.
const MAX_WAITING: usize = 32;
/// How long a connection may take to send its request or take its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request was not granted: its audit line's reason, and (but for an answer the caller
/// did not take) the refusal it gets.
#[derive(Debug, thiserror::Error)]
enum Denial {
    #[error("no credentials ({0})")]
    NoCredentials(std::io::Error),
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    #[error("no request ({0})")]
    NoRequest(std::io::Error),
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("locked: {0}")]
    Locked(ReopenFailure),
    #[error("the caller did not take the answer ({0})")]
    NotTaken(std::io::Error),
}

impl Denial {
    /// The refusal to send, if the caller can still be answered.
    fn refusal(&self) -> Option<(Refusal, String)> {
        match self {
            Denial::NotAllowed(e) => Some((Refusal::Refused, e.to_string())),
            Denial::NoRequest(_) | Denial::BadRequest(_) => {
                Some((Refusal::BadRequest, self.to_string()))
            }
            Denial::Locked(e) => Some((Refusal::Locked, e.to_string())),
            Denial::NoCredentials(_) | Denial::NotTaken(_) => None,
        }
    }
}

/// Why the keybox could not be opened again.
#[derive(Debug, thiserror::Error)]
pub enum ReopenFailure {
    /// Reading it, opening it with nobody there, or its key's fingerprint.
    #[error(transparent)]
    Keybox(#[from] BoxError),
    /// A `lock` or a signal came while it was being opened.
    #[error("the key was wiped while the keybox was being opened")]
    Wiped,
    /// The key cannot be locked in memory.
    #[error("cannot lock memory for the key ({0})")]
    Memory(std::io::Error),
}

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
    /// Counts the wipes asked for (`lock`, a signal): a re-open that began before one does not
    /// hold its key afterwards.
    wipes: AtomicU64,
    /// Set once a signal ends the agent: nothing is held or served any more.
    stopping: AtomicBool,
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
            wipes: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
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
            let Ok(stream) = stream else {
                // Out of descriptors, say: wait a little rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            // Full: closed unanswered (the client sees the agent as busy, exit 8).
            let _ = queue.try_send(stream);
        }
        Ok(())
    }

    /// Wipes the key now (`lock`); a re-open under way does not hold its key afterwards.
    pub fn wipe(&self) {
        self.wipes.fetch_add(1, Ordering::SeqCst);
        self.holder().wipe();
        self.changed.notify_all();
    }

    /// Wipes the key for good: the process is ending.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wipe();
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

    /// One connection: who calls (checked before anything is read from it, so a caller that is
    /// not allowed cannot hold a worker), what it asks, the answer, the audit line.
    fn answer(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let caller = match Caller::of(&stream) {
            Ok(caller) => caller,
            Err(e) => {
                let unknown = Caller { pid: 0, uid: u32::MAX, gid: u32::MAX, exe: None };
                self.record(&unknown, None, Err(&Denial::NoCredentials(e)));
                return;
            }
        };
        let (op, outcome) = match self.admit(&caller, &mut stream) {
            Ok(op) => (Some(op), self.perform(op, &mut stream)),
            Err(denial) => (None, Err(denial)),
        };
        if let Err(denial) = &outcome
            && let Some((why, message)) = denial.refusal()
        {
            let _ = protocol::write_message(&mut stream, &Response::refusal(why, message));
        }
        self.record(&caller, op, outcome.as_ref().map(|_| ()));
    }

    /// The caller checked (before anything is read from it), then its request read.
    fn admit(&self, caller: &Caller, stream: &mut UnixStream) -> Result<Op, Denial> {
        self.allow.check(caller)?;
        let frame = protocol::read_request_frame(stream).map_err(Denial::NoRequest)?;
        Ok(protocol::parse_request(&frame)?.op)
    }

    /// Answers an admitted request.
    fn perform(&self, op: Op, stream: &mut UnixStream) -> Result<(), Denial> {
        match op {
            Op::Get => self.get(stream),
            Op::Status => protocol::write_message(stream, &self.status()).map_err(Denial::NotTaken),
            Op::Lock => {
                self.wipe();
                let done = Response { state: Some(State::Locked), ..Response::granted() };
                protocol::write_message(stream, &done).map_err(Denial::NotTaken)
            }
        }
    }

    /// Sends the key (re-opening the keybox if its time was up).
    fn get(&self, stream: &mut UnixStream) -> Result<(), Denial> {
        let sent = match self.send_held(stream) {
            Some(sent) => sent,
            None => {
                self.reopen().map_err(Denial::Locked)?;
                self.send_held(stream).ok_or(Denial::Locked(ReopenFailure::Wiped))?
            }
        };
        sent.map_err(Denial::NotTaken)?;
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Sends the answer and the key straight from its locked memory (one write, no copy of the
    /// key), if a key is held.
    fn send_held(&self, stream: &mut UnixStream) -> Option<std::io::Result<()>> {
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let header =
            Response { fingerprint: Some(self.fingerprint.to_string()), ..Response::granted() };
        self.holder().with_key(|key| {
            let mut frames = Vec::with_capacity(256);
            let answer = Response { key_len: Some(key.len()), ..header };
            protocol::push_message(&mut frames, &answer)?;
            let len = u32::try_from(key.len()).map_err(std::io::Error::other)?.to_be_bytes();
            frames.extend_from_slice(&len);
            write_all_parts(stream, &mut [IoSlice::new(&frames), IoSlice::new(key)])
        })
    }

    /// Opens the keybox again with nobody there, checks the key is the one first held, and
    /// holds it for a TTL — unless a wipe was asked for meanwhile.
    fn reopen(&self) -> Result<(), ReopenFailure> {
        let _one = self.reopening.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let wipes = self.wipes.load(Ordering::SeqCst);
        // Another request may have re-opened it meanwhile.
        if self.holder().time_left().is_some() {
            return Ok(());
        }
        let store = Store::new(&RealFs, self.keybox.clone());
        let keybox = store.load().map_err(BoxError::from)?;
        let files = SecretFiles::new();
        let opened = keyward_box::unlock::open_unattended(
            &keybox,
            store.path(),
            &files,
            self.slot.as_deref(),
        )?;
        let key = opened.key().clone();
        drop(opened);
        // The keybox at the path may have been replaced by another: its key is not served.
        let first = ExpectedFingerprint::Full(self.fingerprint);
        keyward_box::fingerprint::gate(&key.fingerprint(), &[("the agent's key".into(), first)])?;
        let mut holder = self.holder();
        if self.stopping.load(Ordering::SeqCst) || self.wipes.load(Ordering::SeqCst) != wipes {
            return Err(ReopenFailure::Wiped);
        }
        holder.hold(key, self.ttl).map_err(ReopenFailure::Memory)?;
        drop(holder);
        self.changed.notify_all();
        Ok(())
    }

    fn record_stop(&self, signal: i32) {
        let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ =
            writeln!(audit, "{}", json!({ "event": "stopped", "signal": signal, "key": "wiped" }));
        let _ = audit.flush();
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
    fn record(&self, caller: &Caller, op: Option<Op>, outcome: Result<(), &Denial>) {
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
        if let Err(denial) = outcome {
            line["reason"] = json!(denial.to_string());
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

/// What a signal must undo: the agent once it exists, the socket once it is bound. Given to
/// [`wipe_on_signals`] before either exists, so a signal during start-up (at a prompt, while a
/// device is asked) ends the process too.
#[derive(Default)]
pub struct Shutdown {
    agent: OnceLock<Arc<Agent>>,
    socket: OnceLock<BoundSocket>,
}

impl Shutdown {
    /// The agent to wipe.
    pub fn set_agent(&self, agent: Arc<Agent>) {
        let _ = self.agent.set(agent);
    }

    /// The socket to remove.
    pub fn set_socket(&self, socket: BoundSocket) {
        let _ = self.socket.set(socket);
    }
}

/// Waits (on a thread of its own) for one of `signals`, then wipes the key, removes the socket
/// (if it is still the one bound here) and ends the process.
pub fn wipe_on_signals(signals: libc::sigset_t, shutdown: Arc<Shutdown>) {
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: `signals` is an initialised set and `signal` is valid for writes.
        unsafe {
            libc::sigwait(&raw const signals, &raw mut signal);
        }
        if let Some(agent) = shutdown.agent.get() {
            agent.stop();
        }
        if let Some(socket) = shutdown.socket.get() {
            socket.remove_if_ours();
        }
        // The key is gone already; the audit line last, as a full stderr pipe may block it.
        if let Some(agent) = shutdown.agent.get() {
            agent.record_stop(signal);
        }
        std::process::exit(0);
    });
}

/// Writes every part, in as few writes as the socket takes.
fn write_all_parts(stream: &mut UnixStream, mut parts: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !parts.is_empty() {
        match stream.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}
