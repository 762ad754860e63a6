//! Professionals, clients, API tokens and schedules.

use async_trait::async_trait;
use booking_core::auth::{Principal, TokenHash};
use booking_core::domain::{Client, ClientId, Professional, ProfessionalId, ProfessionalPatch};
use booking_core::store::{
    DirectoryStore, Page, ProfessionalQuery, Registered, ScheduleStore, check_limit,
};
use booking_core::{Entity, Error, Result, Schedule};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use super::PgStore;
use crate::error::{PgError, retrying, sqlstate};
use crate::rows::{self, principal_kind, professional_columns};

mod search;

pub(crate) use search::first_statement as search_statement;

/// `get_professional`: `$1` the id.
pub(crate) const SELECT_PROFESSIONAL: &str = concat!(
    "SELECT ",
    professional_columns!(),
    " FROM professionals WHERE id = $1"
);

/// `get_client`: `$1` the id.
pub(crate) const SELECT_CLIENT: &str =
    "SELECT id, name, email, created_at FROM clients WHERE id = $1";

/// `principal_for_token`: `$1` the token's SHA-256.
pub(crate) const SELECT_PRINCIPAL: &str =
    "SELECT principal_kind, principal_id FROM api_tokens WHERE token_hash = $1";

/// `get_schedule`: `$1` the professional's id.
pub(crate) const SELECT_SCHEDULE: &str = "SELECT body FROM schedules WHERE professional_id = $1";

/// `insert_token`: `$1` token hash, `$2` kind, `$3` id, `$4` the request reference or
/// `NULL`. Does nothing when a token row already carries the reference; a row of another
/// attempt of the same request that is not committed yet is waited for.
pub(crate) const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
         (token_hash, principal_kind, principal_id, request_ref) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (request_ref) WHERE request_ref IS NOT NULL DO NOTHING";

/// The subject stored by a request reference: `$1` the reference.
pub(crate) const SELECT_BY_REQUEST: &str =
    "SELECT principal_kind, principal_id FROM api_tokens WHERE request_ref = $1";

/// Stores the token row of a new subject, first in its transaction. Returns the subject
/// that an earlier attempt of the same request stored instead, if there is one (and then
/// writes nothing).
async fn insert_token(
    conn: &mut PgConnection,
    token: TokenHash,
    principal: Principal,
    request_ref: Option<&str>,
) -> Result<Option<Principal>, PgError> {
    let (kind, id) = principal_kind(&principal);
    let done = sqlx::query(INSERT_TOKEN)
        .bind(token.0.as_slice())
        .bind(kind)
        .bind(id)
        .bind(request_ref)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(None);
    }
    // Only the request reference can make the insert do nothing.
    let row = sqlx::query(SELECT_BY_REQUEST)
        .bind(request_ref)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| PgError::corrupt("a request reference conflicted but is not stored"))?;
    rows::principal(&row).map(Some)
}

/// A token hash that is already taken is reported as the entity being created.
fn token_taken_as(e: PgError, entity: Entity) -> PgError {
    if e.violates(sqlstate::UNIQUE_VIOLATION, "api_tokens_pkey") {
        PgError::Domain(Error::AlreadyExists(entity))
    } else {
        e
    }
}

async fn write_professional(
    conn: &mut PgConnection,
    p: &Professional,
    insert: bool,
) -> Result<Professional, PgError> {
    let sql = if insert {
        concat!(
            "INSERT INTO professionals (id, name, category, lat, lng, hourly_rate_cents, \
                 currency, timezone, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
            professional_columns!()
        )
    } else {
        concat!(
            "UPDATE professionals SET name = $2, category = $3, lat = $4, lng = $5, \
                 hourly_rate_cents = $6, currency = $7, timezone = $8, is_active = $9, \
                 created_at = $10, updated_at = $11 \
             WHERE id = $1 RETURNING ",
            professional_columns!()
        )
    };
    let row = sqlx::query(sql)
        .bind(p.id.as_uuid())
        .bind(&p.name)
        .bind(p.category.as_str())
        .bind(p.location.lat)
        .bind(p.location.lng)
        .bind(p.hourly_rate_cents)
        .bind(p.currency.as_str())
        .bind(p.timezone.name())
        .bind(p.is_active)
        .bind(p.created_at)
        .bind(p.updated_at)
        .fetch_one(conn)
        .await?;
    rows::professional(&row)
}

impl PgStore {
    async fn insert_professional_tx(
        &self,
        p: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>, PgError> {
        let mut tx = self.pool.begin().await?;
        let earlier = insert_token(&mut tx, token, Principal::Professional(p.id), request_ref)
            .await
            .map_err(|e| token_taken_as(e, Entity::Professional))?;
        match earlier {
            None => {}
            Some(Principal::Professional(id)) => {
                let row = sqlx::query(SELECT_PROFESSIONAL)
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| PgError::corrupt("a token row names a missing professional"))?;
                return Ok(Registered::Existing(rows::professional(&row)?));
            }
            Some(Principal::Client(_)) => {
                return Err(PgError::Domain(Error::AlreadyExists(Entity::Professional)));
            }
        }
        let stored = write_professional(&mut tx, p, true).await?;
        tx.commit().await?;
        Ok(Registered::Created(stored))
    }

    async fn insert_client_tx(
        &self,
        c: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>, PgError> {
        let mut tx = self.pool.begin().await?;
        let earlier = insert_token(&mut tx, token, Principal::Client(c.id), request_ref)
            .await
            .map_err(|e| token_taken_as(e, Entity::Client))?;
        match earlier {
            None => {}
            Some(Principal::Client(id)) => {
                let row = sqlx::query(SELECT_CLIENT)
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| PgError::corrupt("a token row names a missing client"))?;
                return Ok(Registered::Existing(rows::client(&row)?));
            }
            Some(Principal::Professional(_)) => {
                return Err(PgError::Domain(Error::AlreadyExists(Entity::Client)));
            }
        }
        sqlx::query("INSERT INTO clients (id, name, email, created_at) VALUES ($1, $2, $3, $4)")
            .bind(c.id.as_uuid())
            .bind(&c.name)
            .bind(&c.email)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Registered::Created(c.clone()))
    }

    async fn update_professional_tx(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional, PgError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            professional_columns!(),
            " FROM professionals WHERE id = $1 FOR UPDATE"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound(Entity::Professional))?;
        let next = rows::professional(&row)?.apply_patch(patch, now)?;
        let stored = write_professional(&mut tx, &next, false).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn search_once(
        &self,
        query: &ProfessionalQuery,
        pool: &PgPool,
    ) -> Result<Page<Professional>, PgError> {
        let limit = check_limit(query.limit)?;
        search::search(pool, query, limit).await
    }
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn insert_professional(
        &self,
        professional: &Professional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        retrying!(
            self.retry,
            self.insert_professional_tx(professional, token, request_ref)
        )
    }

    async fn get_professional(&self, id: ProfessionalId) -> Result<Option<Professional>> {
        retrying!(self.retry, async {
            sqlx::query(SELECT_PROFESSIONAL)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::professional)
                .transpose()
        })
    }

    async fn update_professional(
        &self,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
        now: DateTime<Utc>,
    ) -> Result<Professional> {
        retrying!(self.retry, self.update_professional_tx(id, patch, now))
    }

    async fn search_professionals(&self, query: &ProfessionalQuery) -> Result<Page<Professional>> {
        check_limit(query.limit)?;
        if let Some(read) = &self.read_pool {
            match self.search_once(query, read).await {
                Ok(page) => return Ok(page),
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: search on the read replica failed; using the primary");
                }
            }
        }
        retrying!(self.retry, self.search_once(query, &self.pool))
    }

    async fn insert_client(
        &self,
        client: &Client,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        retrying!(
            self.retry,
            self.insert_client_tx(client, token, request_ref)
        )
    }

    async fn get_client(&self, id: ClientId) -> Result<Option<Client>> {
        retrying!(self.retry, async {
            sqlx::query(SELECT_CLIENT)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::client)
                .transpose()
        })
    }

    async fn principal_for_token(&self, token: TokenHash) -> Result<Option<Principal>> {
        retrying!(self.retry, async {
            sqlx::query(SELECT_PRINCIPAL)
                .bind(token.0.as_slice())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::principal)
                .transpose()
        })
    }
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn put_schedule(
        &self,
        professional_id: ProfessionalId,
        schedule: &Schedule,
    ) -> Result<()> {
        // The foreign key answers "no such professional" (mapped to NotFound).
        retrying!(self.retry, async {
            sqlx::query(
                "INSERT INTO schedules (professional_id, body) VALUES ($1, $2) \
                 ON CONFLICT (professional_id) DO UPDATE SET body = EXCLUDED.body",
            )
            .bind(professional_id.as_uuid())
            .bind(Json(schedule))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(PgError::from)
        })
    }

    async fn get_schedule(&self, professional_id: ProfessionalId) -> Result<Option<Schedule>> {
        retrying!(self.retry, async {
            let body: Option<Json<Schedule>> = sqlx::query_scalar(SELECT_SCHEDULE)
                .bind(professional_id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(body.map(|Json(s)| s))
        })
    }
}
