//! The helper's side: answer calls until the caller closes the pipe.

use std::io::{self, IsTerminal};
use std::os::fd::FromRawFd;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{self, FrameError};

/// Answers each call read from standard input with `answer`, on standard output, until the input
/// closes; then drops `answer` (which releases what it holds) and exits 0. A frame it cannot
/// read ends it with 2, said on standard error. Started from a terminal, it says what it is.
pub fn serve<C: DeserializeOwned, A: Serialize>(
    name: &str,
    mut answer: impl FnMut(C) -> A,
) -> ExitCode {
    // It holds secrets too.
    keyward_core::memory::harden_process();
    let mut input = io::stdin().lock();
    if input.is_terminal() {
        eprintln!(
            "{name}: keyward starts this helper and speaks to it over pipes; it takes no commands"
        );
        return ExitCode::from(2);
    }
    // Frames go out on a copy of standard output, and standard output itself now goes to
    // standard error: a C library that prints (libcryptsetup does, without its log callback)
    // can never write into a frame.
    // (The copy is close-on-exec: nothing the helper's libraries might start inherits it.)
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) and dup2 on the process's own standard descriptors take no
    // pointers.
    let frames = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3) };
    if frames < 0 || unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        eprintln!("{name}: cannot set up its output: {}", io::Error::last_os_error());
        return ExitCode::from(1);
    }
    // SAFETY: `frames` is a descriptor this process just made and nothing else owns.
    let mut output = unsafe { std::fs::File::from_raw_fd(frames) };
    loop {
        match frame::read::<C>(&mut input) {
            Ok(Some(call)) => {
                if let Err(error) = frame::write(&mut output, &answer(call)) {
                    eprintln!("{name}: cannot answer: {error}");
                    return ExitCode::from(1);
                }
            }
            Ok(None) => return ExitCode::SUCCESS,
            Err(error) => {
                if matches!(error, FrameError::Version(_)) {
                    // A frame of this helper's own version, with no body: the caller (of another
                    // build) reads the version and says which, rather than "the helper failed".
                    let _ = frame::write(&mut output, &());
                }
                eprintln!("{name}: {error}");
                return ExitCode::from(2);
            }
        }
    }
}
