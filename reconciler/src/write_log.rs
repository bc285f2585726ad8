//! Which row versions of a table reconcilers wrote, shared by every
//! reconciler of the table on one Db ([`statedb::Db::shared`]): what lets
//! a reconciler tell another reconciler's status write (no new desired
//! state) from a user's write (new desired state, even when it kept an
//! old `Done` status).
//!
//! Each status write by a reconciler at revision `N`, replacing the
//! version at `R`, records `desired(N) = desired(R)`: the revision of the
//! last user write the version carries. A version not recorded, above
//! the floor, is a user's: `desired(R) = R`. A reconciler whose status
//! was written at `S` has new work at a version `V` exactly when
//! `desired(V) > S`; for its own writes and for other reconcilers' writes
//! over versions it had reconciled, `desired` stays at or below `S`, so
//! status writes never make work for each other (no ping-pong), however
//! many reconcilers share an object and wherever they keep their status.
//!
//! Entries are kept until every registered reconciler of the table has
//! read past them (the floor); below the floor nothing is known and a
//! status is taken at its word, as the reference does.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use statedb::{Db, Revision};

/// What a version of a row is, for one reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// A reconciler's status write; it carries the user's write at
    /// `desired` (0: none since the floor).
    StatusWrite { desired: Revision },
    /// A user's write.
    User,
    /// Below the floor: not known.
    Unknown,
}

#[derive(Default)]
struct Inner {
    /// Revision of a status write → the user write it carries, ascending
    /// by revision (writes come in revision order: the table lock orders
    /// them), so appending and looking up cost no tree per write.
    writes: VecDeque<(Revision, Revision)>,
    /// Per reconciler (module id): the revision it has processed changes
    /// up to. A reconciler that stopped keeps its place, so that when it
    /// starts again (a restart builds it anew) it still finds what was
    /// written while it was away; see [`MAX_KEPT`].
    readers: HashMap<String, Revision>,
    /// How many live readers each module id has.
    live: HashMap<String, usize>,
    /// Everything at or below has been read by every reader; only grows.
    floor: Revision,
}

/// How many entries the log keeps for the sake of stopped reconcilers:
/// past it, their places are given up (a reconciler restarted after that
/// long may miss a clone written while it was away until a full round).
pub(crate) const MAX_KEPT: usize = 1 << 16;

/// The log of one table (see the module docs).
#[derive(Default)]
pub(crate) struct WriteLog {
    inner: Mutex<Inner>,
}

impl WriteLog {
    /// The log of table `table` on `db`, shared with every reconciler of
    /// the table there.
    pub fn of(db: &Db, table: &str) -> Arc<WriteLog> {
        db.shared::<WriteLog>(&format!("reconciler/write-log/{table}"))
            .unwrap_or_default()
    }

    /// Registers reconciler `module_id` as a reader (taking the place it
    /// had if it ran before), which reports what it has processed with
    /// [`Reader::read_up_to`].
    pub fn reader(self: &Arc<Self>, module_id: &str) -> Reader {
        let mut g = self.inner.lock();
        let floor = g.floor;
        g.readers.entry(module_id.to_string()).or_insert(floor);
        *g.live.entry(module_id.to_string()).or_default() += 1;
        Reader {
            log: self.clone(),
            id: module_id.to_string(),
        }
    }

    /// Gives up the places of stopped reconcilers once the log is large.
    fn trim(g: &mut Inner) {
        if g.writes.len() <= MAX_KEPT {
            return;
        }
        let live = std::mem::take(&mut g.live);
        g.readers.retain(|id, _| live.contains_key(id));
        g.live = live;
        Self::advance(g);
    }

    /// Moves the floor to the least place and drops what is below.
    fn advance(g: &mut Inner) {
        let Some(low) = g.readers.values().copied().min() else {
            return;
        };
        if low > g.floor {
            g.floor = low;
            let keep = g.writes.partition_point(|&(r, _)| r <= low);
            g.writes.drain(..keep);
        }
    }

    /// The entry at `revision`, if recorded.
    fn get(g: &Inner, revision: Revision) -> Option<Revision> {
        let i = g.writes.partition_point(|&(r, _)| r < revision);
        g.writes
            .get(i)
            .filter(|&&(r, _)| r == revision)
            .map(|&(_, d)| d)
    }

    fn desired_of(g: &Inner, revision: Revision) -> Revision {
        match Self::get(g, revision) {
            Some(d) => d,
            None if revision > g.floor => revision,
            // Read by everyone already.
            None => 0,
        }
    }

    /// A reconciler wrote a status at `written`, replacing the version at
    /// `replaced` (inside the write transaction, before it commits).
    pub fn record(&self, written: Revision, replaced: Revision) {
        let mut g = self.inner.lock();
        let d = Self::desired_of(&g, replaced);
        match g.writes.back() {
            Some(&(last, _)) if last >= written => {
                // Not expected (see `writes`); kept sorted all the same.
                let i = g.writes.partition_point(|&(r, _)| r < written);
                if g.writes.get(i).is_some_and(|&(r, _)| r == written) {
                    g.writes[i].1 = d;
                } else {
                    g.writes.insert(i, (written, d));
                }
            }
            _ => g.writes.push_back((written, d)),
        }
        Self::trim(&mut g);
    }

    /// What the version at `revision` is.
    pub fn version(&self, revision: Revision) -> Version {
        let g = self.inner.lock();
        match Self::get(&g, revision) {
            Some(desired) => Version::StatusWrite { desired },
            None if revision > g.floor => Version::User,
            None => Version::Unknown,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().writes.len()
    }
}

/// One reconciler's registration with a [`WriteLog`].
pub(crate) struct Reader {
    log: Arc<WriteLog>,
    id: String,
}

impl Reader {
    pub fn log(&self) -> &WriteLog {
        &self.log
    }

    /// This reader has processed every change up to `revision` (not only
    /// read it): entries every reader has passed are dropped.
    pub fn read_up_to(&self, revision: Revision) {
        let mut g = self.log.inner.lock();
        let Some(r) = g.readers.get_mut(&self.id) else {
            return;
        };
        if *r >= revision {
            return;
        }
        *r = revision;
        WriteLog::advance(&mut g);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // The place stays: the reconciler restarted must still learn what
        // the versions written meanwhile carry.
        let mut g = self.log.inner.lock();
        if let Some(n) = g.live.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                g.live.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_writes_carry_the_user_write_they_replaced() {
        let log = Arc::new(WriteLog::default());
        let a = log.reader("a");
        let b = log.reader("b");
        // User writes at 1; a writes its status at 2; b at 3.
        assert_eq!(log.version(1), Version::User);
        log.record(2, 1);
        log.record(3, 2);
        assert_eq!(log.version(2), Version::StatusWrite { desired: 1 });
        assert_eq!(log.version(3), Version::StatusWrite { desired: 1 });
        // A user's clone at 4, then a's write at 5 over it: b, whose
        // status was written at 3, sees 5 carry the user write at 4.
        log.record(5, 4);
        assert_eq!(log.version(5), Version::StatusWrite { desired: 4 });
        // Both read up to 5: everything at or below goes.
        a.read_up_to(5);
        assert_eq!(log.len(), 3, "b has not read them");
        b.read_up_to(5);
        assert_eq!(log.len(), 0);
        assert_eq!(log.version(5), Version::Unknown);
        assert_eq!(log.version(6), Version::User);
        // Over a version below the floor: nothing new to carry.
        log.record(7, 5);
        assert_eq!(log.version(7), Version::StatusWrite { desired: 0 });
        // b stops while a goes on: b's place holds what b has not
        // processed, for when b starts again.
        log.record(8, 6);
        drop(b);
        a.read_up_to(9);
        assert_eq!(log.version(8), Version::StatusWrite { desired: 6 });
        let b = log.reader("b");
        b.read_up_to(9);
        assert_eq!(log.version(8), Version::Unknown);
        drop((a, b));
    }

    #[test]
    fn a_new_reader_holds_the_floor_where_it_is() {
        let log = Arc::new(WriteLog::default());
        let a = log.reader("a");
        a.read_up_to(10);
        log.record(11, 10);
        let b = log.reader("b");
        a.read_up_to(20);
        assert_eq!(log.version(11), Version::StatusWrite { desired: 0 });
        b.read_up_to(20);
        assert_eq!(log.version(11), Version::Unknown);
    }

    #[test]
    fn stopped_readers_are_given_up_past_the_bound() {
        let log = Arc::new(WriteLog::default());
        let a = log.reader("a");
        drop(log.reader("gone"));
        a.read_up_to(1);
        for r in 2..(MAX_KEPT as u64 + 10) {
            log.record(r, r - 1);
            a.read_up_to(r);
        }
        assert!(log.len() <= MAX_KEPT, "{}", log.len());
        assert_eq!(log.len(), 0, "a processed everything");
    }

    #[test]
    fn one_log_per_table_and_db() {
        let db = Db::new();
        let x = WriteLog::of(&db, "t");
        x.record(2, 1);
        assert_eq!(
            WriteLog::of(&db, "t").version(2),
            Version::StatusWrite { desired: 1 }
        );
        assert_eq!(WriteLog::of(&db, "u").version(2), Version::User);
        assert_eq!(WriteLog::of(&Db::new(), "t").version(2), Version::User);
    }
}
