//! A counting global allocator: counts allocations and bytes while
//! enabled, and live bytes while tracking. Off, it costs one relaxed load.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

pub struct Counting;

/// The allocator underneath: mimalloc (feature `mimalloc`, the default)
/// or the system's.
#[cfg(feature = "mimalloc")]
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
static INNER: std::alloc::System = std::alloc::System;

static COUNT: AtomicBool = AtomicBool::new(false);
static TRACK_LIVE: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

#[inline]
fn on_alloc(size: usize) {
    if COUNT.load(Relaxed) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
    if TRACK_LIVE.load(Relaxed) {
        LIVE.fetch_add(size as i64, Relaxed);
    }
}

#[inline]
fn on_dealloc(size: usize) {
    if TRACK_LIVE.load(Relaxed) {
        LIVE.fetch_sub(size as i64, Relaxed);
    }
}

/// mimalloc's plain entry points for the alignments its blocks always
/// have: every block is aligned to 8 bytes (its size classes are multiples
/// of 8 within aligned pages). The `mimalloc` crate's `GlobalAlloc` calls
/// the aligned entry points for every request, whose fallback path
/// (`mi_theap_malloc_zero_aligned_at_generic`, `_overalloc`) was 12% of
/// `part_txn_1`.
#[cfg(feature = "mimalloc")]
mod plain {
    use std::alloc::Layout;

    use libmimalloc_sys::{mi_malloc, mi_realloc, mi_zalloc};

    /// The alignment every mimalloc block has.
    const BLOCK_ALIGN: usize = 8;

    pub fn fits(layout: Layout) -> bool {
        layout.align() <= BLOCK_ALIGN
    }

    /// # Safety
    /// As `GlobalAlloc::alloc`, with `fits(layout)`.
    pub unsafe fn alloc(layout: Layout) -> *mut u8 {
        // SAFETY: `mi_malloc` takes any size; a non-null result is a block
        // of at least `size` bytes aligned to `BLOCK_ALIGN` >= the
        // layout's alignment.
        unsafe { mi_malloc(layout.size()).cast() }
    }

    /// # Safety
    /// As `GlobalAlloc::alloc_zeroed`, with `fits(layout)`.
    pub unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`, zeroed.
        unsafe { mi_zalloc(layout.size()).cast() }
    }

    /// # Safety
    /// As `GlobalAlloc::realloc`, with `fits(layout)`; `ptr` is a mimalloc
    /// block.
    pub unsafe fn realloc(ptr: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc (through `INNER` or this module,
        // both mimalloc); the new block keeps `BLOCK_ALIGN`.
        unsafe { mi_realloc(ptr.cast(), new_size).cast() }
    }
}

// SAFETY: every method forwards to mimalloc (or the system allocator)
// with the caller's arguments: to `INNER`, or, for alignments mimalloc's
// blocks always have, to its plain entry points (`plain`), which return
// blocks `INNER` can free and resize; `dealloc` is `mi_free` either way.
// The counters touch no memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        #[cfg(feature = "mimalloc")]
        if plain::fits(layout) {
            // SAFETY: the caller upholds `alloc`'s contract; `fits` holds.
            return unsafe { plain::alloc(layout) };
        }
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        #[cfg(feature = "mimalloc")]
        if plain::fits(layout) {
            // SAFETY: as in `alloc`.
            return unsafe { plain::alloc_zeroed(layout) };
        }
        // SAFETY: forwarded as is.
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        // SAFETY: `ptr` came from this allocator, so from mimalloc (or
        // the system allocator without the feature).
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_dealloc(layout.size());
        #[cfg(feature = "mimalloc")]
        if plain::fits(layout) {
            // SAFETY: the caller upholds `realloc`'s contract; `ptr` came
            // from mimalloc.
            return unsafe { plain::realloc(ptr, new_size) };
        }
        // SAFETY: forwarded as is; `ptr` came from `INNER`.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

/// Counts allocations while `f` runs; returns (result, allocs, bytes).
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let a0 = ALLOCS.load(Relaxed);
    let b0 = BYTES.load(Relaxed);
    COUNT.store(true, Relaxed);
    let r = f();
    COUNT.store(false, Relaxed);
    (r, ALLOCS.load(Relaxed) - a0, BYTES.load(Relaxed) - b0)
}

/// Starts tracking live heap bytes from zero.
pub fn track_live() {
    LIVE.store(0, Relaxed);
    TRACK_LIVE.store(true, Relaxed);
}

/// Heap bytes allocated since `track_live` and not yet freed.
pub fn live_bytes() -> i64 {
    LIVE.load(Relaxed)
}

/// Peak resident set size of this process (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    // The test binary allocates through `Counting` too (the global
    // allocator of this crate): these go through each of its paths.

    /// Small alignments (mimalloc's plain entry points): growth by
    /// `realloc` keeps the contents, zeroed memory is zero.
    #[test]
    fn plain_paths_keep_contents_and_alignment() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..10_000u64 {
            v.push(i); // grows by realloc
        }
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
        assert_eq!(v.as_ptr() as usize % std::mem::align_of::<u64>(), 0);
        let zeroed = vec![0u64; 5_000]; // alloc_zeroed
        assert!(zeroed.iter().all(|x| *x == 0));
        for size in [1usize, 3, 7, 8, 9, 24, 100, 4096] {
            let b = vec![0xa5u8; size].into_boxed_slice();
            assert!(b.iter().all(|x| *x == 0xa5));
        }
    }

    /// Larger alignments go through the allocator's aligned path.
    #[test]
    fn large_alignments_are_honoured() {
        #[repr(align(64))]
        struct Line([u8; 64]);
        let mut v: Vec<u128> = (0..1_000u128).collect();
        v.extend(1_000..5_000u128);
        assert_eq!(v.as_ptr() as usize % 16, 0);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u128));
        let lines: Vec<Box<Line>> = (0..100u8).map(|i| Box::new(Line([i; 64]))).collect();
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(&**l as *const Line as usize % 64, 0);
            assert!(l.0.iter().all(|x| *x == i as u8));
        }
    }
}
