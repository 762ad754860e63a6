//! The inbound webhook inbox: each provider event is recorded once, then processed by a
//! worker that claims it under a lease, and is finally processed, retried later or
//! dead-lettered.
//!
//! The storage operations are [`InboxStore`](crate::store::InboxStore); this module holds
//! the types they exchange. An event's life:
//!
//! ```text
//!   record ──► pending ──claim_due──► pending, leased ──mark_processed──► processed ──prune──► gone
//!                ▲                        │  │
//!                │   schedule_retry(at) ◄─┘  └─dead_letter──► dead-lettered
//!                └──────────────── replay_dead_letter ◄──────────┘
//! ```
//!
//! A claim gives the worker a [`LeaseId`] and hides the event from other claimers until the
//! lease runs out; only that lease may settle the event (`mark_processed`, `schedule_retry`,
//! `dead_letter`). A worker that crashes simply never settles: its lease runs out and the
//! event is due again, to be claimed under a new lease, so at most one worker ever holds a
//! live lease on an event.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::idempotency::LeaseId;
use crate::store::Cursor;

/// Longest accepted provider name, in bytes.
pub const MAX_PROVIDER_LEN: usize = 32;
/// Longest accepted provider event id, in bytes (Stripe's are about 30).
pub const MAX_EVENT_ID_LEN: usize = 255;
/// Longest accepted event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 255;
/// Longest `last_error` kept; longer messages are cut (at a character boundary).
pub const MAX_ERROR_LEN: usize = 1024;

/// The identity of an inbox event: the provider (e.g. `stripe`) and the provider's own event
/// id (e.g. `evt_1NG8...`). Unique in the inbox.
/// Built only through [`InboxKey::new`], so a key in hand is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboxKey {
    provider: String,
    event_id: String,
}

impl InboxKey {
    /// Validates a key: the provider is 1..=[`MAX_PROVIDER_LEN`] bytes of lowercase ASCII
    /// letters, digits, `-` or `_`; the event id is 1..=[`MAX_EVENT_ID_LEN`] bytes of
    /// printable ASCII.
    ///
    /// ```
    /// use booking_core::webhook::inbox::InboxKey;
    /// let key = InboxKey::new("stripe", "evt_1NG8Du2eZvKYlo2CUI79vXWy").unwrap();
    /// assert_eq!(key.provider(), "stripe");
    /// assert!(InboxKey::new("stripe", "").is_err());
    /// assert!(InboxKey::new("Stripe", "evt_1").is_err());
    /// ```
    pub fn new(provider: impl Into<String>, event_id: impl Into<String>) -> Result<Self> {
        let (provider, event_id) = (provider.into(), event_id.into());
        let provider_ok = (1..=MAX_PROVIDER_LEN).contains(&provider.len())
            && provider
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !provider_ok {
            return Err(Error::invalid(
                "provider",
                "must be 1 to 32 lowercase letters, digits, '-' or '_'",
            ));
        }
        let event_ok = (1..=MAX_EVENT_ID_LEN).contains(&event_id.len())
            && event_id.bytes().all(|b| b.is_ascii_graphic());
        if !event_ok {
            return Err(Error::invalid(
                "id",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(Self { provider, event_id })
    }

    /// The provider, e.g. `stripe`.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The provider's event id.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// A stable UUID derived from the key (the first 16 bytes of a SHA-256 of provider and
    /// event id): the tie breaker of the dead-letter list order. Adapters store it beside the
    /// key; it is not a second identity (the key is).
    pub fn list_id(&self) -> Uuid {
        let mut hash = Sha256::new();
        hash.update(self.provider.as_bytes());
        hash.update([0u8]);
        hash.update(self.event_id.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    }
}

impl fmt::Display for InboxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.event_id)
    }
}

/// A verified event as received, to be recorded with
/// [`InboxStore::record`](crate::store::InboxStore::record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboxEvent {
    /// Provider and provider event id.
    pub key: InboxKey,
    /// The provider's event type, e.g. `payment_intent.succeeded` (1..=255 bytes).
    pub event_type: String,
    /// The raw request body, exactly as signed.
    pub payload: Vec<u8>,
}

impl NewInboxEvent {
    /// An event to record; checks the event type's length.
    pub fn new(key: InboxKey, event_type: impl Into<String>, payload: Vec<u8>) -> Result<Self> {
        let event_type = event_type.into();
        if !(1..=MAX_EVENT_TYPE_LEN).contains(&event_type.len()) {
            return Err(Error::invalid("type", "must be 1 to 255 bytes"));
        }
        Ok(Self {
            key,
            event_type,
            payload,
        })
    }
}

/// Where an inbox event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxState {
    /// Waiting to be processed (due at `next_attempt_at`), or claimed by a worker whose
    /// lease has not run out yet.
    Pending,
    /// Its effect was applied; kept for the retention period so that a redelivery is still
    /// recognised as a duplicate, then pruned.
    Processed,
    /// Given up on after too many failures; waits for an operator to replay it.
    DeadLettered,
}

impl InboxState {
    /// The snake_case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxState::Pending => "pending",
            InboxState::Processed => "processed",
            InboxState::DeadLettered => "dead_lettered",
        }
    }

    /// Parses [`InboxState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InboxState::Pending,
            "processed" => InboxState::Processed,
            "dead_lettered" => InboxState::DeadLettered,
            _ => return None,
        })
    }
}

/// An event as stored in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    /// Provider and provider event id.
    pub key: InboxKey,
    /// The provider's event type.
    pub event_type: String,
    /// The raw request body.
    pub payload: Vec<u8>,
    /// When it was first recorded.
    pub received_at: DateTime<Utc>,
    /// How many times it was claimed (processing attempts started, including one in
    /// progress); reset to 0 by a replay.
    pub attempts: u32,
    /// When it is due: for a pending event not yet claimed, its next attempt; while claimed,
    /// the end of the claim's lease. Meaningless once processed or dead-lettered.
    pub next_attempt_at: DateTime<Utc>,
    /// Where it is in its life.
    pub state: InboxState,
    /// The error of the last failed attempt, if any (at most [`MAX_ERROR_LEN`] bytes).
    pub last_error: Option<String>,
    /// When it was marked processed (only in [`InboxState::Processed`]).
    pub processed_at: Option<DateTime<Utc>>,
    /// When it was dead-lettered (only in [`InboxState::DeadLettered`]).
    pub dead_lettered_at: Option<DateTime<Utc>>,
}

impl InboxEvent {
    /// A freshly recorded event: pending, due at `now`, no attempts.
    pub fn received(event: &NewInboxEvent, now: DateTime<Utc>) -> Self {
        Self {
            key: event.key.clone(),
            event_type: event.event_type.clone(),
            payload: event.payload.clone(),
            received_at: now,
            attempts: 0,
            next_attempt_at: now,
            state: InboxState::Pending,
            last_error: None,
            processed_at: None,
            dead_lettered_at: None,
        }
    }

    /// The dead-letter list position of this event: `(dead_lettered_at, list_id)`; `None`
    /// unless dead-lettered.
    pub fn dead_letter_cursor(&self) -> Option<Cursor> {
        self.dead_lettered_at.map(|at| Cursor {
            primary: at.timestamp_micros(),
            id: self.key.list_id(),
        })
    }
}

/// The result of [`InboxStore::record`](crate::store::InboxStore::record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The event was new and is now pending.
    New,
    /// An event with the same key is already in the inbox (in any state); nothing changed.
    Duplicate,
}

/// An event claimed by a worker, with the lease that lets it settle the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The event as claimed (`attempts` already counts this attempt; `next_attempt_at` is
    /// the end of the lease).
    pub event: InboxEvent,
    /// The claim's lease: pass it to `mark_processed`, `schedule_retry` or `dead_letter`.
    pub lease: LeaseId,
}

/// The end of a claim's lease taken at `now`: `now + lease`. A lease must be positive (a
/// claim that hid nothing would let two workers take one event) and end within the range
/// of instants ([`Error::Invalid`] otherwise). Adapters call it before claiming.
pub fn lease_end(now: DateTime<Utc>, lease: chrono::Duration) -> Result<DateTime<Utc>> {
    if lease <= chrono::Duration::zero() {
        return Err(Error::invalid("lease", "must be positive"));
    }
    now.checked_add_signed(lease)
        .ok_or_else(|| Error::invalid("lease", "ends beyond the range of instants"))
}

/// `error`, cut to at most [`MAX_ERROR_LEN`] bytes at a character boundary (what adapters
/// store as `last_error`).
pub fn clip_error(error: &str) -> String {
    if error.len() <= MAX_ERROR_LEN {
        return error.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_id_is_stable_and_separates_provider_from_id() {
        let a = InboxKey::new("stripe", "evt_1").unwrap();
        assert_eq!(
            a.list_id(),
            InboxKey::new("stripe", "evt_1").unwrap().list_id()
        );
        // Without the separator, ("ab", "c") and ("a", "bc") would hash alike.
        let x = InboxKey::new("ab", "c").unwrap();
        let y = InboxKey::new("a", "bc").unwrap();
        assert_ne!(x.list_id(), y.list_id());
    }

    #[test]
    fn keys_are_validated() {
        assert!(InboxKey::new("", "evt").is_err());
        assert!(InboxKey::new("a".repeat(33), "evt").is_err());
        assert!(InboxKey::new("stripe", "evt 1").is_err());
        assert!(InboxKey::new("stripe", "e".repeat(256)).is_err());
        assert!(InboxKey::new("stripe", "e".repeat(255)).is_ok());
        assert!(NewInboxEvent::new(InboxKey::new("s", "e").unwrap(), "", vec![]).is_err());
    }

    #[test]
    fn errors_are_clipped_at_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let clipped = clip_error(&long);
        assert!(clipped.len() <= MAX_ERROR_LEN && clipped.len() >= MAX_ERROR_LEN - 1);
        assert!(long.starts_with(&clipped));
        assert_eq!(clip_error("short"), "short");
    }

    #[test]
    fn leases_must_be_positive_and_end_in_range() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let minute = chrono::Duration::minutes(1);
        assert_eq!(lease_end(now, minute).unwrap(), now + minute);
        assert!(lease_end(now, chrono::Duration::zero()).is_err());
        assert!(lease_end(now, -minute).is_err());
        assert!(lease_end(DateTime::<Utc>::MAX_UTC, minute).is_err());
    }

    #[test]
    fn state_names_round_trip() {
        for s in [
            InboxState::Pending,
            InboxState::Processed,
            InboxState::DeadLettered,
        ] {
            assert_eq!(InboxState::parse(s.as_str()), Some(s));
        }
        assert_eq!(InboxState::parse("done"), None);
    }
}
