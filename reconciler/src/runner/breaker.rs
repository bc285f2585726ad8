//! The circuit breaker: after operations on `threshold` different objects
//! failed with no success between, no operation starts for `pause`; then
//! one runs as a probe, and its result closes or reopens the breaker.

use crate::fast_hash::FastSet;
use std::time::Duration;

use statedb::Key;
use tokio::time::Instant;

use crate::time::deadline;

pub(super) struct Breaker {
    threshold: usize,
    pause: Duration,
    /// Objects that failed since the last success.
    failing: FastSet<Key>,
    /// Open until then; past it, half open (one probe).
    open_until: Option<Instant>,
    probing: bool,
    /// Times it opened, for health.
    pub opened: u64,
}

impl Breaker {
    pub fn new(threshold: u32, pause: Duration) -> Self {
        Breaker {
            threshold: threshold as usize,
            pause,
            failing: FastSet::default(),
            open_until: None,
            probing: false,
            opened: 0,
        }
    }

    /// How many units may start now.
    pub fn allowed(&self) -> usize {
        match self.open_until {
            None => usize::MAX,
            Some(t) if t > Instant::now() => 0,
            Some(_) if self.probing => 0,
            Some(_) => 1,
        }
    }

    /// A unit was started while half open: it is the probe.
    pub fn started(&mut self) {
        if self.open_until.is_some() {
            self.probing = true;
        }
    }

    /// When an open breaker lets the probe through (to wake the loop).
    pub fn reopens_at(&self) -> Option<Instant> {
        self.open_until.filter(|t| *t > Instant::now())
    }

    /// The result of one operation.
    pub fn record(&mut self, pk: &Key, ok: bool) {
        if self.threshold == 0 {
            return;
        }
        if ok {
            self.failing.clear();
            self.open_until = None;
            self.probing = false;
            return;
        }
        if self.probing {
            self.probing = false;
            self.open_until = Some(deadline(Instant::now(), self.pause));
            return;
        }
        if self.open_until.is_none() {
            self.failing.insert(pk.clone());
            if self.failing.len() >= self.threshold {
                self.opened += 1;
                self.open_until = Some(deadline(Instant::now(), self.pause));
            }
        }
    }

    /// Health's view: `Some(message)` while open or probing.
    pub fn message(&self) -> Option<String> {
        self.open_until.map(|_| {
            format!(
                "circuit breaker open: operations on {} objects failed in a row; pausing {:?} between probes",
                self.failing.len(),
                self.pause
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_distinct_failures_and_probes() {
        let mut b = Breaker::new(3, Duration::from_secs(1));
        let k = |i: u8| Key::from_slice(&[i]);
        // One object failing again and again never opens it.
        for _ in 0..10 {
            b.record(&k(1), false);
        }
        assert_eq!(b.allowed(), usize::MAX);
        b.record(&k(2), false);
        b.record(&k(3), false);
        assert_eq!(b.allowed(), 0, "three objects failed");
        assert!(b.message().is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.allowed(), 1, "half open: one probe");
        b.started();
        assert_eq!(b.allowed(), 0, "only one probe");
        b.record(&k(1), false);
        assert_eq!(b.allowed(), 0, "probe failed: open again");
        tokio::time::advance(Duration::from_secs(1)).await;
        b.started();
        b.record(&k(1), true);
        assert_eq!(b.allowed(), usize::MAX, "probe succeeded: closed");
        assert!(b.message().is_none());
        let mut off = Breaker::new(0, Duration::ZERO);
        for i in 0..100 {
            off.record(&k(i), false);
        }
        assert_eq!(off.allowed(), usize::MAX);
    }
}
