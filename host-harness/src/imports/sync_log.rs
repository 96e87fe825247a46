//! The WIT `sync-log` interface: events are kept with the request and
//! written just before it commits, stamped with its duration.

use crate::bindings::lms::scim::sync_log::{Event, EventStatus, Host};
use crate::events::EventRow;

use super::SqlStore;

impl Host for SqlStore {
    fn append(&mut self, events: Vec<Event>) {
        self.journal.events.extend(events.into_iter().map(|e| {
            EventRow {
                action: e.action,
                resource_type: e.resource_type,
                resource_id: e.resource_id,
                resource_name: e.resource_name,
                status: match e.status {
                    EventStatus::Success => "success",
                    EventStatus::Failure => "failure",
                    EventStatus::Skipped => "skipped",
                },
                reason: e.reason,
                detail: e.detail,
                changes: e
                    .changes
                    .into_iter()
                    .map(|c| (c.name, c.old, c.new))
                    .collect(),
            }
        }));
    }
}
