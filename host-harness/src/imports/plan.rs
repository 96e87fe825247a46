//! Planning: an engine call made against a read snapshot, with the writes
//! it asks of the LMS, the outbox and the sync log kept in order instead of
//! made, to be replayed later in a write transaction. The background drain
//! plans its next batch this way while the current one commits (`worker`).

use crate::bindings::lms::scim::lms::{self, Change};
use crate::bindings::lms::scim::outbox::{self, Task};
use crate::bindings::lms::scim::sync_log::{self, Event};

use super::SqlStore;

/// A write the engine asked for while planning.
pub enum Deferred {
    Apply(Vec<Change>),
    Append(Vec<Event>),
    Enqueue(Task),
}

impl SqlStore {
    /// Starts planning: a read transaction on a connection that refuses
    /// writes (`query_only`), so a call that writes anything but the
    /// deferred kinds fails instead of writing outside the write lock.
    /// Always pair with [`SqlStore::end_planning`].
    pub fn planning(&mut self) -> rusqlite::Result<()> {
        self.planned = Some(Vec::new());
        if let Some(conn) = self.conn_ref()
            && let Err(e) = conn.execute_batch("PRAGMA query_only = 1; BEGIN")
        {
            self.end_planning();
            return Err(e);
        }
        Ok(())
    }

    /// Ends the read transaction, lets the connection write again, and
    /// hands over the writes asked for.
    pub fn end_planning(&mut self) -> Vec<Deferred> {
        if let Some(conn) = self.conn_ref() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let _ = conn.execute_batch("PRAGMA query_only = 0");
        }
        self.planned.take().unwrap_or_default()
    }

    /// Keeps `op` when planning; gives it back otherwise.
    pub(super) fn defer(&mut self, op: Deferred) -> Option<Deferred> {
        match &mut self.planned {
            Some(ops) => {
                ops.push(op);
                None
            }
            None => Some(op),
        }
    }

    /// Makes a plan's writes, in order, in the caller's transaction.
    pub fn replay(&mut self, ops: Vec<Deferred>) -> Result<(), String> {
        for op in ops {
            match op {
                Deferred::Apply(changes) => {
                    lms::Host::apply(self, changes).map_err(|lms::LmsError::Unavailable(e)| {
                        format!("could not apply LMS effects: {e}")
                    })?
                }
                Deferred::Append(events) => sync_log::Host::append(self, events),
                Deferred::Enqueue(task) => outbox::Host::enqueue(self, task),
            }
        }
        match &self.journal.failed {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }
}
