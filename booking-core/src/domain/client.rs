use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::ClientId;
use crate::error::{Result, Validator};

/// Someone who books time with professionals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Identity.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    /// Contact e-mail address.
    pub email: String,
    /// When the client was created.
    pub created_at: DateTime<Utc>,
}

/// The input for creating a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Display name (trimmed, 1..=200 characters).
    pub name: String,
    /// E-mail address (a plausibility check only: one `@`, no spaces, at most 254 characters).
    pub email: String,
}

impl NewClient {
    /// Validates the input and builds the client.
    ///
    /// ```
    /// use booking_core::{ClientId, NewClient};
    /// let now = chrono::Utc::now();
    /// let c = NewClient { name: "Lin".into(), email: "lin@example.com".into() };
    /// assert!(c.validate(ClientId::new_at(now), now).is_ok());
    /// let bad = NewClient { name: "Lin".into(), email: "not-an-address".into() };
    /// assert!(bad.validate(ClientId::new_at(now), now).is_err());
    /// ```
    pub fn validate(&self, id: ClientId, now: DateTime<Utc>) -> Result<Client> {
        let mut v = Validator::new();
        let name = self.name.trim();
        v.check(!name.is_empty(), "name", "must not be empty");
        v.check(
            name.chars().count() <= 200,
            "name",
            "must be at most 200 characters",
        );
        v.check(
            !name.chars().any(char::is_control),
            "name",
            "must not contain control characters",
        );
        let email = self.email.trim();
        let plausible = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
        v.check(plausible, "email", "must be an e-mail address");
        v.finish()?;
        Ok(Client {
            id,
            name: name.to_owned(),
            email: email.to_owned(),
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn check(name: &str, email: &str) -> Result<Client> {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        NewClient {
            name: name.into(),
            email: email.into(),
        }
        .validate(ClientId::new_at(now), now)
    }

    #[test]
    fn a_valid_client_is_trimmed() {
        let c = check("  Lin ", " lin@example.com ").unwrap();
        assert_eq!(
            (c.name.as_str(), c.email.as_str()),
            ("Lin", "lin@example.com")
        );
    }

    #[test]
    fn names_must_be_present_short_and_printable() {
        let email = "lin@example.com";
        assert!(check("   ", email).is_err());
        assert!(check(&"é".repeat(200), email).is_ok());
        assert!(check(&"é".repeat(201), email).is_err());
        assert!(check("Li\u{7}n", email).is_err());
    }

    #[test]
    fn emails_need_one_at_between_two_non_empty_parts() {
        let domain = "@example.com";
        let longest = format!("{}{domain}", "a".repeat(254 - domain.len()));
        assert!(check("Lin", &longest).is_ok());
        assert!(check("Lin", &format!("a{longest}")).is_err());
        for bad in [
            "lin example.com",
            "lin@exa mple.com",
            "lin@exa\u{7}mple.com",
            "@example.com",
            "lin@",
            "lin@exa@mple.com",
            "lin.example.com",
        ] {
            assert!(check("Lin", bad).is_err(), "{bad}");
        }
    }
}
