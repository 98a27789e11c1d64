//! Argon2's working memory as one anonymous mapping, aligned to 2 MiB and advised for
//! transparent huge pages. Argon2 reads blocks at data-dependent places all over hundreds of MiB;
//! with 4 KiB pages nearly every reference misses the TLB and the first pass faults tens of
//! thousands of pages. Huge pages remove most of both (see docs/BENCHMARKS.md). The mapping is
//! also excluded from core dumps: it holds values derived from the passphrase.

use std::ptr::NonNull;

use argon2::Block;

/// The alignment that lets the kernel back the mapping with 2 MiB pages.
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// A mapping holding `blocks` zeroed argon2 blocks; unmapped on drop.
pub(super) struct Argon2Memory {
    mapping: NonNull<libc::c_void>,
    mapping_len: usize,
    blocks: NonNull<Block>,
    block_count: usize,
}

impl Argon2Memory {
    /// Maps memory for `block_count` blocks; `None` if the system refuses.
    pub(super) fn new(block_count: usize) -> Option<Self> {
        let len = block_count.checked_mul(Block::SIZE)?;
        let mapping_len = len.checked_add(HUGE_PAGE)?;
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
            return None;
        }
        let mapping = NonNull::new(raw)?;
        let offset = (HUGE_PAGE - (raw as usize % HUGE_PAGE)) % HUGE_PAGE;
        // SAFETY: `offset < HUGE_PAGE`, so `raw + offset .. raw + offset + len` lies inside the
        // mapping of `len + HUGE_PAGE` bytes.
        let start = unsafe { raw.cast::<u8>().add(offset) };
        // SAFETY: advice calls only change how the kernel backs and dumps this mapping, which we
        // own; failures (an old kernel, THP disabled) are harmless and ignored.
        unsafe {
            libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
            libc::madvise(raw, mapping_len, libc::MADV_DONTDUMP);
        }
        Some(Argon2Memory {
            mapping,
            mapping_len,
            blocks: NonNull::new(start.cast::<Block>())?,
            block_count,
        })
    }

    /// The blocks.
    pub(super) fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `blocks` points at `block_count` blocks inside our mapping, 2 MiB-aligned (so
        // aligned for `Block`), zero-filled by the kernel (a valid `Block`), and borrowed
        // mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.block_count) }
    }
}

impl Drop for Argon2Memory {
    fn drop(&mut self) {
        // Unmapped pages are never seen again by user space without the kernel zeroing them, so
        // no explicit wipe is needed (and it would cost a pass over hundreds of MiB).
        // SAFETY: `mapping` and `mapping_len` are exactly what mmap returned and was asked for.
        unsafe {
            libc::munmap(self.mapping.as_ptr(), self.mapping_len);
        }
    }
}
