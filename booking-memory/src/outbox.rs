//! The outbox: domain events in one global recording order.

use std::collections::HashMap;

use booking_core::events::DomainEvent;
use booking_core::{Error, EventId, Result};

/// Events in recording order; the position map turns an [`EventId`] cursor into an offset.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    events: Vec<DomainEvent>,
    positions: HashMap<EventId, usize>,
}

impl Outbox {
    /// Appends a batch (one critical section's events) at the end.
    pub(crate) fn append(&mut self, batch: Vec<DomainEvent>) {
        self.events.reserve(batch.len());
        for e in batch {
            self.positions.insert(e.id, self.events.len());
            self.events.push(e);
        }
    }

    /// Up to `limit` events after `after` (exclusive), in recording order.
    ///
    /// An `after` that names no recorded event is refused: it can only be a cursor from
    /// another store, and silently restarting (duplicates) or returning nothing (a stalled
    /// relay) would both hide that bug.
    pub(crate) fn after(&self, after: Option<EventId>, limit: usize) -> Result<Vec<DomainEvent>> {
        let from = match after {
            None => 0,
            Some(id) => match self.positions.get(&id) {
                Some(p) => p + 1,
                None => {
                    return Err(Error::invalid(
                        "after",
                        "is not the id of an event in this outbox",
                    ));
                }
            },
        };
        Ok(self
            .events
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }

    /// Number of recorded events.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Every event, in order (for invariant checks).
    pub(crate) fn all(&self) -> &[DomainEvent] {
        &self.events
    }
}
