//! What a reconciler reports about itself: [`Reconciled`], published by
//! the loop, read from the handle and from the state table.

use std::time::Duration;

use serde::Serialize;

/// Where a reconciler is: the table revision up to which every change has
/// been processed, and what is still failing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Every change of the table up to this revision has been processed
    /// (its operation ran and its result was written back, success or
    /// failure). Published as soon as it moves, not only when idle.
    pub revision: statedb::Revision,
    /// Objects in error (waiting for a retry), hard deletes included.
    pub errors: usize,
    /// Primary keys of up to [`Reconciled::MAX_KEYS`] of them, as text
    /// (printable keys as they are, others in hex).
    pub error_keys: Vec<String>,
    /// The lowest revision of a desired version still failing (the retry
    /// low watermark): every change below it has succeeded, once
    /// `revision` has passed it too. `None` when nothing fails.
    pub lowest_failing: Option<statedb::Revision>,
    /// The lowest revision whose work has not succeeded yet: failing, or
    /// queued or running again (a retry replaced by a newer version
    /// stands for the revision it failed at). `None` when nothing is
    /// outstanding. [`Reconciled::succeeded`] looks at it.
    pub lowest_unsettled: Option<statedb::Revision>,
    /// Rows deleted from the table whose delete from the target has not
    /// succeeded yet (counted in `errors` too).
    pub pending_hard_deletes: usize,
    /// Objects with an operation in flight now.
    pub in_flight: usize,
    /// The loop is running (false before start and after stop).
    pub running: bool,
    /// Prunes finished since start (full rounds' included).
    pub prunes: u64,
    /// Prunes started since start.
    pub prunes_started: u64,
    /// Full reconciliations finished since start.
    pub full_rounds: u64,
    /// Full reconciliations started since start.
    pub full_rounds_started: u64,
    /// Up to [`Reconciled::MAX_KEYS`] failing objects, due first: key,
    /// attempts, last error and when the next attempt is due. The answer
    /// to "why is this object not in the target yet?".
    pub failing: Vec<Failing>,
    /// Health as last reported: true for OK.
    pub healthy: bool,
    /// The health message last reported (`OK, 3 object(s)`, or the
    /// errors).
    pub health: String,
    /// The last prune's error, if it failed.
    pub prune_error: Option<String>,
}

/// One failing object of [`Reconciled::failing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failing {
    /// The primary key as text, as its key type prints it
    /// ([`statedb::Table::primary_key_text`]).
    pub key: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// A delete of a row no longer in the table.
    pub hard_delete: bool,
    /// How long until the next attempt, as of the report; `None` while
    /// an attempt is in flight or the key waits for a probe of the
    /// circuit breaker.
    pub retry_in: Option<Duration>,
}

impl Reconciled {
    /// Most keys listed in [`Reconciled::error_keys`].
    pub const MAX_KEYS: usize = 100;

    /// Has every change up to `revision` been processed?
    pub fn processed(&self, revision: statedb::Revision) -> bool {
        self.revision >= revision
    }

    /// Has every change up to `revision` *succeeded*: processed, none of
    /// them still failing (retries and hard deletes included), and the
    /// first prune since start done without error (so nothing deleted
    /// before a restart lingers in the target)?
    ///
    /// ## Warning
    ///
    /// The first prune waits until the table is initialized: until then
    /// this is false.
    pub fn succeeded(&self, revision: statedb::Revision) -> bool {
        // Leftovers from before a (re)start (a delete lost with the last
        // run's retries) are gone only after a prune: until the first one
        // since start has succeeded, the target may hold rows the table
        // does not.
        self.processed(revision)
            && self.prunes > 0
            && self.prune_error.is_none()
            && self.lowest_failing.is_none_or(|low| low > revision)
            && self.lowest_unsettled.is_none_or(|low| low > revision)
    }
}
