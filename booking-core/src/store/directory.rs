//! Professionals, clients, their API tokens and schedules: the search query,
//! [`DirectoryStore`] and [`ScheduleStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Cursor, Page};
use crate::auth::{Principal, TokenHash};
use crate::domain::{Category, Client, ClientId, Professional, ProfessionalId, ProfessionalPatch};
use crate::error::Result;
use crate::schedule::Schedule;
use crate::search::{GeoFilter, TextQuery};

/// A professional search over active professionals.
///
/// Ordered by `(hourly_rate_cents, id)`, or by `(distance_mm, id)` when [`near`] is set (see
/// [`crate::search`] for the distance and the text match). [`ProfessionalQuery::matches`] and
/// [`ProfessionalQuery::sort_key`] are the specification every store implements.
///
/// [`near`]: ProfessionalQuery::near
#[derive(Debug, Clone, PartialEq)]
pub struct ProfessionalQuery {
    /// Only this category.
    pub category: Option<Category>,
    /// Minimum hourly rate, inclusive.
    pub min_rate_cents: Option<i64>,
    /// Maximum hourly rate, inclusive.
    pub max_rate_cents: Option<i64>,
    /// Only professionals within this radius; also switches the order to distance.
    pub near: Option<GeoFilter>,
    /// Only professionals whose name and category match this text.
    pub text: Option<TextQuery>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Continue after this position (a cursor of the same query).
    pub after: Option<Cursor>,
}

impl ProfessionalQuery {
    /// A query without filters: the first `limit` active professionals by rate.
    pub fn all(limit: u32) -> Self {
        Self {
            category: None,
            min_rate_cents: None,
            max_rate_cents: None,
            near: None,
            text: None,
            limit,
            after: None,
        }
    }

    /// Whether `p` matches the filters (not the cursor).
    pub fn matches(&self, p: &Professional) -> bool {
        p.is_active
            && self.category.as_ref().is_none_or(|c| &p.category == c)
            && self.min_rate_cents.is_none_or(|m| p.hourly_rate_cents >= m)
            && self.max_rate_cents.is_none_or(|m| p.hourly_rate_cents <= m)
            && self.near.is_none_or(|g| g.contains(p.location))
            && self
                .text
                .as_ref()
                .is_none_or(|t| t.matches(&p.name, p.category.as_str()))
    }

    /// `p`'s position in this query's order: `(distance_mm, id)` with a geo filter,
    /// `(hourly_rate_cents, id)` otherwise. Pages hold the keys after `after`, ascending.
    pub fn sort_key(&self, p: &Professional) -> Cursor {
        match &self.near {
            Some(g) => Cursor {
                primary: g.distance_mm(p.location),
                id: p.id.as_uuid(),
            },
            None => Cursor::after_professional(p),
        }
    }

    /// Whether `p` comes after the cursor (always, without one).
    pub fn is_after_cursor(&self, p: &Professional) -> bool {
        self.after.is_none_or(|c| self.sort_key(p) > c)
    }

    /// The distance from the geo filter's centre to `p` in kilometres (whole millimetres,
    /// as ordered), if the query has a geo filter.
    pub fn distance_km(&self, p: &Professional) -> Option<f64> {
        self.near
            .map(|g| crate::search::mm_to_km(g.distance_mm(p.location)))
    }
}

/// The result of storing a professional or a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered<T> {
    /// The subject was stored with its token hash.
    Created(T),
    /// A subject stored by the same request (same `request_ref`) already exists: it is
    /// returned as it is now, and nothing changed (its token hash is the first attempt's).
    Existing(T),
}

impl<T> Registered<T> {
    /// The subject, either way.
    pub fn get(&self) -> &T {
        match self {
            Registered::Created(t) | Registered::Existing(t) => t,
        }
    }

    /// The subject, either way, by value.
    pub fn into_inner(self) -> T {
        match self {
            Registered::Created(t) | Registered::Existing(t) => t,
        }
    }
}

/// Professionals, clients and their API tokens.
///
/// A subject may carry the reference of the idempotent request that created it (see
/// [`crate::idempotency::request_ref`]); references are unique across professionals and
/// clients, so a retry of a create after a crash finds the first attempt's subject.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Stores a new professional with the hash of their API token. If `request_ref` is set
    /// and a professional stored with it exists, that one is returned as
    /// [`Registered::Existing`] before any other check, and nothing changes (a client
    /// stored with it: [`Error::AlreadyExists`](crate::Error::AlreadyExists)).
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>>;

    /// One professional by id.
    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>>;

    /// Applies a validated partial update atomically.
    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional>;

    /// A page of active professionals matching the query.
    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>>;

    /// Stores a new client with the hash of their API token; `request_ref` as for
    /// [`DirectoryStore::insert_professional`].
    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>>;

    /// One client by id.
    async fn get_client(&self, id: ClientId) -> Result<Option<Client>>;

    /// The owner of an API token, if any.
    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>>;
}

/// Professionals' weekly schedules.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Replaces the professional's schedule ([`Error::NotFound`](crate::Error::NotFound) if no
    /// such professional).
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()>;

    /// The professional's schedule, if one was set.
    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>>;
}
