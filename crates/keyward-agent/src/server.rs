//! The agent: the key it holds, the thread that wipes it when its time is up, the thread that
//! opens the keybox again when a `get` finds no key, its audit log, and the signals that end it.
//! Its callers are met by [`crate::connections`], on one thread that never waits on any of
//! them.

#![allow(unsafe_code)] // pthread_sigmask and sigwait; their SAFETY notes are at the calls

use std::io::IoSlice;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use keyward_box::BoxError;
use keyward_box::secrets::SecretFiles;
use keyward_core::store::RealFs;
use keyward_core::{DataKey, Fingerprint, Store};
use serde_json::json;

use crate::callers::{Allowlist, Caller};
use crate::error::AgentError;
use crate::holder::Holder;
use crate::protocol::{self, Op, Reopen, Response, State};
use crate::socket::BoundSocket;
use crate::tally::{Counted, Tally};

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

/// The re-opens asked for and done: rounds, so a `get` waits for one that began after it asked
/// (one that began before may end in a `lock` the `get` came after).
#[derive(Debug, Default)]
pub(crate) struct Reopens {
    /// The last round asked for.
    asked: u64,
    /// The last round begun.
    started: u64,
    /// The wipes asked for when a `get` last asked: a round begun after another wipe serves
    /// nobody (every `get` of it was refused by that `lock`) and holds nothing.
    asked_at_wipes: u64,
    /// The last round done.
    done: u64,
    /// Why the last round done failed, if it did.
    failure: Option<String>,
}

/// A running agent's state.
pub struct Agent {
    keybox: PathBuf,
    slot: Option<String>,
    ttl: Duration,
    pub(crate) allow: Allowlist,
    /// The fingerprint of the key first opened: a re-opened key must have it too.
    fingerprint: Fingerprint,
    holder: Mutex<Holder>,
    /// Signalled when a key is held or wiped (the wiper's deadline changed).
    changed: Condvar,
    reopens: Mutex<Reopens>,
    /// Signalled when a re-open is asked for.
    reopen_asked: Condvar,
    audit: Mutex<Box<dyn Write + Send>>,
    /// Refusals of the current interval (see [`crate::tally`]).
    pub(crate) tally: Mutex<Tally>,
    served: AtomicU64,
    refused: AtomicU64,
    /// The `get`s waiting for a re-open, as of the connections' last turn.
    pub(crate) waiting: AtomicU64,
    /// Counts the wipes asked for (`lock`, a signal): a re-open that began before one does not
    /// hold its key afterwards, and a `get` that asked before one is refused.
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
            reopens: Mutex::new(Reopens::default()),
            reopen_asked: Condvar::new(),
            audit: Mutex::new(config.audit),
            tally: Mutex::new(Tally::new()),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            wipes: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }))
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Answers connections on `listener` until the process ends (see [`crate::connections`]).
    /// Starts the wiper and the re-opener.
    pub fn serve(self: &Arc<Self>, listener: &UnixListener) -> Result<(), AgentError> {
        let io = |what, source| AgentError::Io { what, path: self.keybox.clone(), source };
        let (wake_read, wake_write) = crate::connections::wake_pipe()
            .map_err(|e| io("cannot make the agent's wake-up pipe for", e))?;
        let wiper = Arc::clone(self);
        std::thread::spawn(move || wiper.wipe_when_due());
        let reopener = Arc::clone(self);
        std::thread::spawn(move || reopener.reopen_when_asked(&wake_write));
        crate::connections::serve(self, listener, &wake_read)
            .map_err(|e| io("cannot serve the socket of", e))
    }

    /// Wipes the key now (`lock`); a re-open under way does not hold its key afterwards.
    pub fn wipe(&self) {
        self.wipes.fetch_add(1, Ordering::SeqCst);
        self.holder().wipe();
        self.changed.notify_all();
    }

    /// How many wipes were asked for so far.
    pub(crate) fn wipes(&self) -> u64 {
        self.wipes.load(Ordering::SeqCst)
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

    fn reopens(&self) -> MutexGuard<'_, Reopens> {
        self.reopens.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Asks for the keybox to be opened again; returns the round to wait for. A round asked and
    /// not yet begun serves every `get` that asks meanwhile.
    pub(crate) fn ask_reopen(&self) -> u64 {
        let mut reopens = self.reopens();
        reopens.asked_at_wipes = self.wipes();
        if reopens.asked == reopens.started {
            reopens.asked += 1;
            self.reopen_asked.notify_all();
        }
        reopens.asked
    }

    /// The last round done, and why it failed if it did.
    pub(crate) fn reopened(&self) -> (u64, Option<String>) {
        let reopens = self.reopens();
        (reopens.done, reopens.failure.clone())
    }

    /// The re-opener: one round at a time, on a thread of its own, so a slow one (a TPM, a
    /// token, peers) holds nothing the callers wait on; each round done is told to the
    /// connections' thread through `wake`.
    fn reopen_when_asked(&self, wake: &OwnedFd) {
        loop {
            let (round, wipes) = {
                let mut reopens = self.reopens();
                while reopens.asked == reopens.started {
                    reopens = self
                        .reopen_asked
                        .wait(reopens)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                reopens.started = reopens.asked;
                (reopens.asked, reopens.asked_at_wipes)
            };
            let failure = self.reopen(wipes).err().map(|e| e.to_string());
            {
                let mut reopens = self.reopens();
                reopens.done = round;
                reopens.failure = failure;
            }
            crate::connections::wake_up(wake);
        }
    }

    /// Opens the keybox again with nobody there, checks the key is the one first held, and
    /// holds it for a TTL — unless a wipe was asked for since the last `get` asked (when
    /// `wipes` wipes had been).
    fn reopen(&self, wipes: u64) -> Result<(), ReopenFailure> {
        if self.wipes() != wipes {
            return Err(ReopenFailure::Wiped);
        }
        // A round asked while the key was held (it expired since, or it did not).
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
        // keyward's own fingerprint, exactly (not either form: this is no person's typing).
        if key.fingerprint() != self.fingerprint {
            return Err(ReopenFailure::from(BoxError::from(
                keyward_core::Error::FingerprintMismatch {
                    expected: format!("{} (the agent's key)", self.fingerprint),
                    found: key.fingerprint().to_string(),
                },
            )));
        }
        let mut holder = self.holder();
        if self.stopping.load(Ordering::SeqCst) || self.wipes() != wipes {
            return Err(ReopenFailure::Wiped);
        }
        holder.hold(key, self.ttl).map_err(ReopenFailure::Memory)?;
        drop(holder);
        self.changed.notify_all();
        Ok(())
    }

    /// Sends the answer and the key straight from its locked memory (one write, no copy of the
    /// key), if a key is held; `None` if none is.
    pub(crate) fn send_held(&self, stream: &mut UnixStream) -> Option<std::io::Result<()>> {
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let header =
            Response { fingerprint: Some(self.fingerprint.to_string()), ..Response::granted() };
        let sent = self.holder().with_key(|key| {
            let mut frames = Vec::with_capacity(256);
            let answer = Response { key_len: Some(key.len()), ..header };
            protocol::push_message(&mut frames, &answer)?;
            let len = u32::try_from(key.len()).map_err(std::io::Error::other)?.to_be_bytes();
            frames.extend_from_slice(&len);
            write_all_parts(stream, &mut [IoSlice::new(&frames), IoSlice::new(key)])
        });
        if matches!(sent, Some(Ok(()))) {
            self.served.fetch_add(1, Ordering::SeqCst);
        }
        sent
    }

    /// The answer to `status`.
    pub(crate) fn status(&self) -> Response {
        let left = self.holder().time_left();
        Response {
            state: Some(if left.is_some() { State::Unlocked } else { State::Locked }),
            seconds_left: left.map(|d| d.as_secs()),
            ttl: Some(self.ttl.as_secs()),
            served: Some(self.served.load(Ordering::SeqCst)),
            refused: Some(self.refused.load(Ordering::SeqCst)),
            waiting: Some(self.waiting.load(Ordering::SeqCst)),
            fingerprint: Some(self.fingerprint.to_string()),
            reopen: Some(self.reopen_route()),
            ..Response::granted()
        }
    }

    /// How the keybox would be opened again now: read from the keybox as it is (its slots may
    /// have changed since the start), with the last re-open's failure if it failed.
    fn reopen_route(&self) -> Reopen {
        let store = Store::new(&RealFs, self.keybox.clone());
        let route = store.load().map_err(|e| e.to_string()).and_then(|keybox| {
            keyward_box::unlock::unattended_route(&keybox, self.slot.as_deref())
        });
        match (route, self.reopened().1) {
            (Err(why), _) => Reopen::Cannot(why),
            (Ok(through), Some(failure)) => Reopen::LastFailed { through, failure },
            (Ok(through), None) => Reopen::Through(through),
        }
    }

    /// When the current interval of counted refusals ends.
    pub(crate) fn tally_due(&self) -> Instant {
        self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner).due()
    }

    /// A refusal: counted, and written at once if it is the first of its uid and reason in
    /// this interval (see [`crate::tally`]). `op` is what was asked, if it was read.
    pub(crate) fn refused(
        &self,
        caller: &Caller,
        op: Option<Op>,
        reason: &'static str,
        detail: &str,
    ) {
        self.refused.fetch_add(1, Ordering::SeqCst);
        let first = self
            .tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .count(caller.uid, reason);
        if first {
            self.audit_line(json!({
                "time": now_text(),
                "pid": caller.pid,
                "uid": caller.uid,
                "gid": caller.gid,
                "op": op.map(Op::name),
                "granted": false,
                "reason": detail,
            }));
        }
    }

    /// Writes the interval's refusals, if it is over (or `force`: the agent is stopping).
    pub(crate) fn audit_refusals(&self, force: bool) {
        let due = self
            .tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take_if_due(Instant::now(), force);
        let Some((span, lines)) = due else { return };
        for Counted { uid, reason, count } in lines {
            self.audit_line(json!({
                "time": now_text(), "event": "refused", "uid": uid, "reason": reason,
                "count": count, "seconds": span.as_secs(),
            }));
        }
    }

    /// One audit line for a request granted: when, who (`exe` as read when it connected),
    /// what. Never the key.
    pub(crate) fn record_granted(&self, caller: &Caller, exe: Option<&std::path::Path>, op: Op) {
        self.audit_line(json!({
            "time": now_text(),
            "pid": caller.pid,
            "uid": caller.uid,
            "gid": caller.gid,
            "exe": exe.map(|p| p.display().to_string()),
            "op": op.name(),
            "granted": true,
        }));
    }

    fn record_stop(&self, signal: i32) {
        self.audit_refusals(true);
        self.audit_line(json!({ "event": "stopped", "signal": signal, "key": "wiped" }));
    }

    fn audit_line(&self, line: serde_json::Value) {
        let mut audit = self.audit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(audit, "{line}");
        let _ = audit.flush();
    }
}

/// Now, as RFC 3339 UTC.
fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
