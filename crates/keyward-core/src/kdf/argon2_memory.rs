//! Argon2's working memory as one mapping of its own (`crate::memory`), aligned to 2 MiB and
//! advised for transparent huge pages. Argon2 reads blocks at data-dependent places all over
//! hundreds of MiB; with 4 KiB pages nearly every reference misses the TLB and the first pass
//! faults tens of thousands of pages. Huge pages remove most of both (see docs/BENCHMARKS.md).
//! The mapping is left out of core dumps: it holds values derived from the passphrase.

#![allow(unsafe_code)] // one slice over the mapping; its SAFETY note says why it is sound

use argon2::Block;

use crate::memory::Mapping;

/// The alignment that lets the kernel back the mapping with 2 MiB pages.
const HUGE_PAGE: usize = 2 * 1024 * 1024;

/// A mapping holding `block_count` zeroed argon2 blocks; unmapped on drop.
pub(super) struct Argon2Memory {
    mapping: Mapping,
    block_count: usize,
}

impl Argon2Memory {
    /// Maps memory for `block_count` blocks; `None` if the system refuses.
    pub(super) fn new(block_count: usize) -> Option<Self> {
        let mapping = Mapping::new(block_count.checked_mul(Block::SIZE)?, HUGE_PAGE)?;
        mapping.advise_huge_pages();
        Some(Argon2Memory { mapping, block_count })
    }

    /// The blocks.
    pub(super) fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: the mapping holds at least `block_count` blocks from its start, which is
        // 2 MiB-aligned (so aligned for `Block`) and zero-filled by the kernel (a valid
        // `Block`); it is borrowed mutably through `&mut self` only. No wipe on drop: unmapped
        // pages are never seen again by user space unzeroed, and a pass over hundreds of MiB
        // would cost time for nothing.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.mapping.start().as_ptr().cast::<Block>(),
                self.block_count,
            )
        }
    }
}
