//! Who is calling: API token hashes, stored principals and the acting party.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ClientId, ProfessionalId};

/// SHA-256 of an API token. Stores keep only this, never the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a bearer token.
    ///
    /// ```
    /// use booking_core::TokenHash;
    /// assert_eq!(TokenHash::of("secret"), TokenHash::of("secret"));
    /// assert_ne!(TokenHash::of("secret"), TokenHash::of("Secret"));
    /// ```
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &hex::encode(self.0)[..8])
    }
}

/// A subject that owns an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Principal {
    /// A client.
    Client(ClientId),
    /// A professional.
    Professional(ProfessionalId),
}

/// The party acting on the engine; authorisation decisions are made on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The operator: sees and may change everything.
    Admin,
    /// A client, acting on their own bookings.
    Client(ClientId),
    /// A professional, acting on their own profile, schedule and bookings.
    Professional(ProfessionalId),
}

impl From<Principal> for Actor {
    fn from(p: Principal) -> Self {
        match p {
            Principal::Client(id) => Actor::Client(id),
            Principal::Professional(id) => Actor::Professional(id),
        }
    }
}

impl Actor {
    /// A stable name usable as an idempotency scope, e.g. `client:0190…`.
    pub fn scope_name(&self) -> String {
        match self {
            Actor::Admin => "admin".to_owned(),
            Actor::Client(id) => format!("client:{id}"),
            Actor::Professional(id) => format!("professional:{id}"),
        }
    }
}
