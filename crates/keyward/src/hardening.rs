//! Process hardening applied before any secret is read: no core dumps, and no ptrace or
//! /proc/PID/mem access by other processes running as the same user.

/// Marks the process non-dumpable. Failure is not fatal (some sandboxes forbid prctl), so it is
/// best effort and silent.
pub fn harden_process() {
    // SAFETY: PR_SET_DUMPABLE with 0 takes no pointers and only changes this process's flags.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `no_core` is a valid rlimit that outlives the call.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
}
