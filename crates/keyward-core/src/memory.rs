//! Memory of its own for secret material: anonymous private mappings, zero-filled by the kernel
//! and left out of core dumps (`MADV_DONTDUMP`). Two users: argon2's working memory (hundreds of
//! MiB of values derived from a passphrase, aligned for transparent huge pages, see
//! `kdf::argon2_memory`), and the small secrets a long-running process keeps — a server's TLS
//! key, a peer's sealing key — which are also locked into RAM ([`LockedBytes`]: `mlock`, never
//! swapped) and wiped on drop. And [`harden_process`], which keeps a whole process's memory out
//! of core dumps and out of other processes' reach. All of keyward's `unsafe` memory code is in
//! this module.

#![allow(unsafe_code)] // mmap, mlock, madvise, munmap; each block has its SAFETY note

use std::io;
use std::ptr::NonNull;

use zeroize::Zeroize;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// An anonymous private mapping with `len` usable bytes starting at an address aligned to
/// `align`; unmapped on drop.
pub(crate) struct Mapping {
    raw: NonNull<libc::c_void>,
    raw_len: usize,
    start: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by its value alone; access goes through `&self`/`&mut self`.
unsafe impl Send for Mapping {}
// SAFETY: shared access only reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` zeroed bytes (at least one page) whose start is a multiple of `align` (a power of
    /// two); `None` if the system refuses the memory.
    pub(crate) fn new(len: usize, align: usize) -> Option<Self> {
        let page = page_size();
        let len = len.max(1).checked_next_multiple_of(page)?;
        // mmap gives page-aligned memory; a larger alignment needs room to move the start.
        let slack = if align > page { align } else { 0 };
        let raw_len = len.checked_add(slack)?;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked against MAP_FAILED before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                raw_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let raw = NonNull::new(raw)?;
        let offset = if slack == 0 { 0 } else { (align - raw.as_ptr().addr() % align) % align };
        // SAFETY: `offset < slack` (or 0), so `raw + offset .. raw + offset + len` lies inside
        // the mapping of `len + slack` bytes.
        let start = unsafe { raw.as_ptr().cast::<u8>().add(offset) };
        // SAFETY: advice on our own mapping; failure (an old kernel) is harmless: the process
        // is non-dumpable anyway.
        unsafe {
            libc::madvise(raw.as_ptr(), raw_len, libc::MADV_DONTDUMP);
        }
        Some(Mapping { raw, raw_len, start: NonNull::new(start)?, len })
    }

    /// The aligned start.
    pub(crate) fn start(&self) -> NonNull<u8> {
        self.start
    }

    /// Asks the kernel to back the usable range with huge pages (argon2's memory: far fewer TLB
    /// misses and page faults). Harmless if refused.
    pub(crate) fn advise_huge_pages(&self) {
        // SAFETY: advice on a range inside our own mapping.
        unsafe {
            libc::madvise(self.start.as_ptr().cast(), self.len, libc::MADV_HUGEPAGE);
        }
    }

    /// Locks the whole mapping into RAM.
    fn lock(&self) -> io::Result<()> {
        // SAFETY: the range is exactly our mapping.
        if unsafe { libc::mlock(self.raw.as_ptr(), self.raw_len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unmapped pages are never seen again by user space without the kernel zeroing them;
        // unmapping also unlocks.
        // SAFETY: `raw` and `raw_len` are exactly what mmap returned and was asked for.
        unsafe {
            libc::munmap(self.raw.as_ptr(), self.raw_len);
        }
    }
}

/// Bytes in a locked, non-dumpable mapping of their own, wiped on drop.
pub struct LockedBytes {
    mapping: Mapping,
    len: usize,
}

impl LockedBytes {
    /// A copy of `bytes` in locked memory. Fails if the system will not lock it (a
    /// `RLIMIT_MEMLOCK` below a page, say): a secret is never kept where it could be swapped.
    pub fn copy_of(bytes: &[u8]) -> io::Result<Self> {
        let mapping = Mapping::new(bytes.len(), 1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "cannot map memory"))?;
        // Locked before the secret is copied in, so it is never in a swappable page.
        mapping.lock()?;
        let mut locked = LockedBytes { mapping, len: bytes.len() };
        locked.as_mut_slice().copy_from_slice(bytes);
        Ok(locked)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `start` points at `len` (≤ the mapping's usable length) initialised bytes we
        // own: zero-filled by the kernel, then copied into.
        unsafe { std::slice::from_raw_parts(self.mapping.start().as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, borrowed mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.mapping.start().as_ptr(), self.len) }
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        self.as_mut_slice().zeroize();
    }
}

impl std::fmt::Debug for LockedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockedBytes(<{} bytes redacted>)", self.len)
    }
}

/// Hardens the process before any secret is read: no core dumps, and no ptrace or
/// /proc/PID/mem access by other processes running as the same user (`PR_SET_DUMPABLE` 0). For
/// `keyward` and each of its helpers. Best effort and silent: some sandboxes forbid prctl.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_bytes_and_reports_its_length_only() {
        let locked = LockedBytes::copy_of(b"secret seed bytes").expect("lock a page");
        assert_eq!(locked.as_slice(), b"secret seed bytes");
        assert_eq!(format!("{locked:?}"), "LockedBytes(<17 bytes redacted>)");
    }

    #[test]
    fn a_large_alignment_is_honoured() {
        let align = 2 * 1024 * 1024;
        let mapping = Mapping::new(3 * 4096, align).expect("map");
        assert_eq!(mapping.start().as_ptr().addr() % align, 0);
    }
}
