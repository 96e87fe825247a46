//! The WIT `outbox` interface: tasks are written in the request's
//! transaction, stamped with its change id.

use crate::bindings::lms::scim::outbox::{Host, Task};

use super::SqlStore;

impl Host for SqlStore {
    fn enqueue(&mut self, task: Task) {
        let (Some(conn), tenant) = (self.conn_ref(), self.tenant()) else {
            return;
        };
        match crate::outbox::enqueue(conn, tenant, &self.journal.change_id, &task) {
            Ok(()) => self.journal.enqueued += 1,
            // The request must not commit without its task.
            Err(e) => self.journal.failed = Some(format!("could not queue background work: {e}")),
        }
    }
}
