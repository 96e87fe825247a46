//! The contract suites on the engine's in-memory doubles.

use crate::memstore::MemStore;
use crate::provision::host::{Event, Task};
use crate::provision::memlms::MemLms;

impl super::lms::Observed for MemLms {
    fn queued(&mut self) -> Vec<Task> {
        self.outbox.clone()
    }

    fn logged(&mut self) -> Vec<Event> {
        self.events.clone()
    }
}

#[test]
fn memstore_keeps_the_store_contract() {
    super::store::run_all(MemStore::new);
}

#[test]
fn memlms_keeps_the_lms_contract() {
    super::lms::run_all(MemLms::new);
    super::lms::run_observed(MemLms::new);
}
