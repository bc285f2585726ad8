//! The revisions of this reconciler's own status write-backs, not yet
//! read back from the change iterator: their changes are never work,
//! whatever the status getter reads.
//!
//! Kept as ranges, not per key: a write-back writes only its rows, under
//! the table lock, so its revisions are consecutive, and a range per
//! write-back transaction costs nothing per object (a map per key grew to
//! every object of a backlog, and hashed each one twice).

use std::collections::VecDeque;

use statedb::Revision;

#[derive(Debug, Default)]
pub(super) struct OwnWrites {
    /// Disjoint, ascending, inclusive.
    ranges: VecDeque<(Revision, Revision)>,
}

impl OwnWrites {
    /// Records that `rev` is one of ours.
    pub fn add(&mut self, rev: Revision) {
        if let Some(last) = self.ranges.back_mut() {
            if rev == last.1.saturating_add(1) {
                last.1 = rev;
                return;
            }
            if rev > last.1 {
                self.ranges.push_back((rev, rev));
                return;
            }
        } else {
            self.ranges.push_back((rev, rev));
            return;
        }
        // Out of order (not expected: write-backs settle in revision
        // order); kept correct all the same.
        if self.contains(rev) {
            return;
        }
        let i = self.ranges.partition_point(|&(_, end)| end < rev);
        self.ranges.insert(i, (rev, rev));
    }

    /// Whether `rev` was written by this reconciler.
    pub fn contains(&self, rev: Revision) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < rev);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= rev)
    }

    /// Forgets what is at or below `rev`: the change iterator has read
    /// past it, and never yields a revision it has passed again.
    pub fn forget_through(&mut self, rev: Revision) {
        while let Some(first) = self.ranges.front_mut() {
            if first.1 <= rev {
                self.ranges.pop_front();
            } else {
                first.0 = first.0.max(rev.saturating_add(1));
                break;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_writes_are_one_range_and_forgotten_once_read() {
        let mut o = OwnWrites::default();
        for r in 10..20 {
            o.add(r);
        }
        o.add(25);
        o.add(26);
        assert_eq!(o.len(), 2);
        assert!(o.contains(10) && o.contains(19) && o.contains(26));
        assert!(!o.contains(9) && !o.contains(20) && !o.contains(24) && !o.contains(27));
        o.forget_through(15);
        assert!(!o.contains(15) && o.contains(16));
        o.forget_through(25);
        assert_eq!(o.len(), 1);
        assert!(!o.contains(25) && o.contains(26));
        o.forget_through(u64::MAX);
        assert_eq!(o.len(), 0);
        // Out of order and repeated.
        o.add(40);
        o.add(30);
        o.add(30);
        o.add(35);
        assert!(o.contains(30) && o.contains(35) && o.contains(40) && !o.contains(31));
        assert_eq!(o.len(), 3);
    }
}
