//! The directory use cases of [`BookingEngine`]: professionals, clients and who may
//! manage a professional.

use super::BookingEngine;
use crate::auth::{Actor, Principal, TokenHash};
use crate::clock::Clock;
use crate::domain::{
    Client, ClientId, NewClient, NewProfessional, Professional, ProfessionalId, ProfessionalPatch,
};
use crate::error::{Entity, Error, Result};
use crate::store::{Page, ProfessionalQuery, Registered, Store};

impl<S: Store + ?Sized, C: Clock> BookingEngine<S, C> {
    /// Validates and stores a professional whose API token hashes to `token`.
    pub async fn create_professional(
        &self,
        input: &NewProfessional,
        token: TokenHash,
    ) -> Result<Professional> {
        self.register_professional(input, token, None)
            .await
            .map(Registered::into_inner)
    }

    /// [`create_professional`](Self::create_professional) for an idempotent request: with
    /// `request_ref` (see [`crate::idempotency::request_ref`]) a retry of the same request
    /// returns [`Registered::Existing`] with the professional its first attempt stored
    /// (whose token hash is the first attempt's), and stores nothing.
    pub async fn register_professional(
        &self,
        input: &NewProfessional,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Professional>> {
        let now = self.now();
        let p = input.validate(ProfessionalId::new_at(now), now)?;
        self.store.insert_professional(&p, token, request_ref).await
    }

    /// A professional by id.
    pub async fn get_professional(&self, id: ProfessionalId) -> Result<Professional> {
        self.store
            .get_professional(id)
            .await?
            .ok_or(Error::NotFound(Entity::Professional))
    }

    /// Updates a professional: the admin or the professional themself.
    pub async fn update_professional(
        &self,
        actor: Actor,
        id: ProfessionalId,
        patch: &ProfessionalPatch,
    ) -> Result<Professional> {
        self.may_manage_professional(actor, id).await?;
        self.store.update_professional(id, patch, self.now()).await
    }

    /// Active professionals matching the query.
    pub async fn search_professionals(
        &self,
        query: &ProfessionalQuery,
    ) -> Result<Page<Professional>> {
        crate::store::check_limit(query.limit)?;
        self.store.search_professionals(query).await
    }

    /// Validates and stores a client whose API token hashes to `token`.
    pub async fn create_client(&self, input: &NewClient, token: TokenHash) -> Result<Client> {
        self.register_client(input, token, None)
            .await
            .map(Registered::into_inner)
    }

    /// [`create_client`](Self::create_client) for an idempotent request; `request_ref` as
    /// for [`register_professional`](Self::register_professional).
    pub async fn register_client(
        &self,
        input: &NewClient,
        token: TokenHash,
        request_ref: Option<&str>,
    ) -> Result<Registered<Client>> {
        let now = self.now();
        let c = input.validate(ClientId::new_at(now), now)?;
        self.store.insert_client(&c, token, request_ref).await
    }

    /// A client by id.
    pub async fn get_client(&self, id: ClientId) -> Result<Client> {
        self.store
            .get_client(id)
            .await?
            .ok_or(Error::NotFound(Entity::Client))
    }

    /// The owner of a bearer token, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        self.store.principal_for_token(TokenHash::of(token)).await
    }

    /// Whether `actor` may change professional `id` (profile, schedule): the admin or the
    /// professional themself. [`Error::NotFound`] if there is no such professional,
    /// [`Error::Forbidden`] otherwise. Servers call it before validating a body, so that a
    /// caller who may not change anything learns that first.
    pub async fn may_manage_professional(&self, actor: Actor, id: ProfessionalId) -> Result<()> {
        // Existence first, so that a missing professional is a 404 for everybody.
        self.get_professional(id).await?;
        match actor {
            Actor::Admin => Ok(()),
            Actor::Professional(p) if p == id => Ok(()),
            _ => Err(Error::Forbidden(
                "only the professional or an admin may change this".into(),
            )),
        }
    }
}
