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

// SAFETY: every method forwards to `INNER` with the caller's arguments
// unchanged, so `INNER`'s guarantees hold; the counters touch no memory
// handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded as is.
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        // SAFETY: `ptr` came from `INNER` through this allocator.
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_dealloc(layout.size());
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
