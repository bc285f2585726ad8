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

use std::collections::{BTreeMap, HashMap};
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
    /// Revision of a status write → the user write it carries.
    writes: BTreeMap<Revision, Revision>,
    /// Per registered reconciler: the revision it has read changes up to.
    readers: HashMap<u64, Revision>,
    next_reader: u64,
    /// Everything at or below has been read by every reader; only grows.
    floor: Revision,
}

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

    /// Registers a reader, which reports what it has read with
    /// [`Reader::read_up_to`]; it leaves when dropped.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let mut g = self.inner.lock();
        let id = g.next_reader;
        g.next_reader += 1;
        let floor = g.floor;
        g.readers.insert(id, floor);
        Reader {
            log: self.clone(),
            id,
        }
    }

    fn desired_of(g: &Inner, revision: Revision) -> Revision {
        match g.writes.get(&revision) {
            Some(&d) => d,
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
        g.writes.insert(written, d);
    }

    /// What the version at `revision` is.
    pub fn version(&self, revision: Revision) -> Version {
        let g = self.inner.lock();
        match g.writes.get(&revision) {
            Some(&desired) => Version::StatusWrite { desired },
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
    id: u64,
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
        let low = g.readers.values().copied().min().unwrap_or(revision);
        if low > g.floor {
            g.floor = low;
            g.writes = g.writes.split_off(&(low + 1));
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // The entries stay, even with no reader left: a reconciler
        // restarted on the table must still learn what the versions
        // written meanwhile carry. (Only readers add entries, so the log
        // does not grow while none is registered.)
        self.log.inner.lock().readers.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_writes_carry_the_user_write_they_replaced() {
        let log = Arc::new(WriteLog::default());
        let a = log.reader();
        let b = log.reader();
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
        drop((a, b));
        // A restarted reader still learns what 7 carries.
        let c = log.reader();
        assert_eq!(log.version(7), Version::StatusWrite { desired: 0 });
        c.read_up_to(7);
        assert_eq!(log.version(7), Version::Unknown);
    }

    #[test]
    fn a_new_reader_holds_the_floor_where_it_is() {
        let log = Arc::new(WriteLog::default());
        let a = log.reader();
        a.read_up_to(10);
        log.record(11, 10);
        let b = log.reader();
        a.read_up_to(20);
        assert_eq!(log.version(11), Version::StatusWrite { desired: 0 });
        b.read_up_to(20);
        assert_eq!(log.version(11), Version::Unknown);
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
