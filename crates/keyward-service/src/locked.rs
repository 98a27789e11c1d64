//! Secret bytes in memory of their own, for what a long-running process keeps: a peer's sealing
//! key, a server's TLS key. The bytes live in a page-aligned anonymous mapping that is locked
//! into RAM (`mlock`: never written to swap) and left out of core dumps (`MADV_DONTDUMP`); on
//! drop they are wiped, unlocked and unmapped. (The process as a whole is also non-dumpable:
//! the `keyward` binary sets `PR_SET_DUMPABLE` 0 and a zero core limit before anything else.)

#![allow(unsafe_code)] // mmap, mlock, madvise; each block has its SAFETY note

use std::io;
use std::ptr::NonNull;

use zeroize::Zeroize;

/// Bytes in a locked, non-dumpable mapping.
pub struct LockedBytes {
    ptr: NonNull<u8>,
    len: usize,
    mapping_len: usize,
}

// SAFETY: the mapping is owned by this value alone and only reached through `&self`/`&mut self`.
unsafe impl Send for LockedBytes {}
// SAFETY: shared access only reads.
unsafe impl Sync for LockedBytes {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

impl LockedBytes {
    /// A copy of `bytes` in locked memory. Fails if the system will not lock it (a
    /// `RLIMIT_MEMLOCK` below a page, say): a secret is never kept where it could be swapped.
    pub fn copy_of(bytes: &[u8]) -> io::Result<Self> {
        let page = page_size();
        let mapping_len = bytes.len().max(1).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked against MAP_FAILED before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapping_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(raw.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let locked = LockedBytes { ptr, len: bytes.len(), mapping_len };
        // SAFETY: the range is exactly our mapping. Locking first, before the secret is copied
        // in, so it is never in a swappable page.
        if unsafe { libc::mlock(raw, mapping_len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on our own mapping; failure (an old kernel) is harmless, the process is
        // non-dumpable anyway.
        unsafe {
            libc::madvise(raw, mapping_len, libc::MADV_DONTDUMP);
        }
        let mut locked = locked;
        locked.as_mut_slice().copy_from_slice(bytes);
        Ok(locked)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points at `mapping_len >= len` bytes we own, initialised (zero-filled by
        // the kernel, then copied into).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, borrowed mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        self.as_mut_slice().zeroize();
        // SAFETY: exactly the mapping mmap returned; nothing borrows it any more.
        unsafe {
            libc::munlock(self.ptr.as_ptr().cast(), self.mapping_len);
            libc::munmap(self.ptr.as_ptr().cast(), self.mapping_len);
        }
    }
}

impl std::fmt::Debug for LockedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockedBytes(<{} bytes redacted>)", self.len)
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
}
