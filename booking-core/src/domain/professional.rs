use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ids::ProfessionalId;
use super::money::{Currency, Money};
use crate::error::{Error, Result, Validator};

/// A lower-case slug naming a category of service, e.g. `massage` or `tax-advice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// Parses a slug: 1 to 64 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
    ///
    /// ```
    /// use booking_core::Category;
    /// assert!(Category::parse("physio-therapy").is_ok());
    /// assert!(Category::parse("Physio").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::invalid(
                "category",
                "must be a lower-case slug of 1-64 characters (a-z, 0-9, -)",
            ))
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Category {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<Category> for String {
    fn from(c: Category) -> Self {
        c.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point on Earth in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Latitude in `[-90, 90]`.
    pub lat: f64,
    /// Longitude in `[-180, 180]`.
    pub lng: f64,
}

impl GeoPoint {
    /// A validated point, its coordinates rounded to multiples of 1e-9 degrees.
    ///
    /// ```
    /// use booking_core::GeoPoint;
    /// assert!(GeoPoint::new(52.52, 13.40).is_ok());
    /// assert!(GeoPoint::new(91.0, 0.0).is_err());
    /// ```
    pub fn new(lat: f64, lng: f64) -> Result<Self> {
        let mut v = Validator::new();
        v.check(
            lat.is_finite() && (-90.0..=90.0).contains(&lat),
            "location.lat",
            "must be between -90 and 90",
        );
        v.check(
            lng.is_finite() && (-180.0..=180.0).contains(&lng),
            "location.lng",
            "must be between -180 and 180",
        );
        v.finish()?;
        Ok(Self {
            lat: quantize_degrees(lat),
            lng: quantize_degrees(lng),
        })
    }
}

/// Rounds degrees to a multiple of 1e-9 (about 0.1 mm on the ground).
///
/// Values written with at most nine decimals come back unchanged; what it removes is
/// subnormal and near-subnormal noise such as `1e-300`, whose products underflow (an error
/// in PostgreSQL's float arithmetic, which evaluates the same distance formula as
/// [`crate::search::distance_km`]).
fn quantize_degrees(deg: f64) -> f64 {
    (deg * 1e9).round() / 1e9
}

/// Parses an IANA time zone name such as `Europe/Berlin`.
///
/// ```
/// assert!(booking_core::domain::parse_timezone("Europe/Berlin").is_ok());
/// assert!(booking_core::domain::parse_timezone("Mars/Olympus").is_err());
/// ```
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| Error::invalid("timezone", "must be a known IANA time zone name"))
}

fn validate_name(v: &mut Validator, name: &str) -> String {
    let trimmed = name.trim();
    v.check(!trimmed.is_empty(), "name", "must not be empty");
    v.check(
        trimmed.chars().count() <= 200,
        "name",
        "must be at most 200 characters",
    );
    v.check(
        !trimmed.chars().any(char::is_control),
        "name",
        "must not contain control characters",
    );
    trimmed.to_owned()
}

/// A service provider that clients book time with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Professional {
    /// Identity.
    pub id: ProfessionalId,
    /// Display name.
    pub name: String,
    /// Service category.
    pub category: Category,
    /// Where the professional works.
    pub location: GeoPoint,
    /// Hourly rate in minor units of `currency`.
    pub hourly_rate_cents: i64,
    /// Currency of the rate and of every price.
    pub currency: Currency,
    /// The professional's IANA time zone.
    #[serde(with = "tz_serde")]
    pub timezone: Tz,
    /// Inactive professionals are hidden from search and cannot be booked.
    pub is_active: bool,
    /// When the professional was created.
    pub created_at: DateTime<Utc>,
    /// When the professional last changed.
    pub updated_at: DateTime<Utc>,
}

impl Professional {
    /// The hourly rate as [`Money`].
    pub fn hourly_rate(&self) -> Money {
        Money {
            amount_cents: self.hourly_rate_cents,
            currency: self.currency,
        }
    }

    /// Applies a partial update, validating every supplied field; `now` becomes `updated_at`.
    pub fn apply_patch(&self, patch: &ProfessionalPatch, now: DateTime<Utc>) -> Result<Self> {
        let mut v = Validator::new();
        let mut next = self.clone();
        if let Some(name) = &patch.name {
            next.name = validate_name(&mut v, name);
        }
        if let Some(c) = &patch.category
            && let Some(c) = v.take(Category::parse(c))
        {
            next.category = c;
        }
        if let Some(loc) = patch.location
            && let Some(p) = v.take(GeoPoint::new(loc.lat, loc.lng))
        {
            next.location = p;
        }
        if let Some(rate) = patch.hourly_rate_cents {
            v.check(rate >= 0, "hourly_rate_cents", "must not be negative");
            next.hourly_rate_cents = rate;
        }
        if let Some(cur) = &patch.currency
            && let Some(c) = v.take(Currency::parse(cur))
        {
            next.currency = c;
        }
        if let Some(tz) = &patch.timezone
            && let Some(tz) = v.take(parse_timezone(tz))
        {
            next.timezone = tz;
        }
        if let Some(active) = patch.is_active {
            next.is_active = active;
        }
        v.finish()?;
        next.updated_at = now;
        Ok(next)
    }
}

/// The input for creating a professional; [`NewProfessional::validate`] checks every field
/// and reports all problems at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProfessional {
    /// Display name (trimmed, 1..=200 characters).
    pub name: String,
    /// Category slug.
    pub category: String,
    /// Location.
    pub location: GeoPoint,
    /// Hourly rate in minor units, not negative.
    pub hourly_rate_cents: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// IANA time zone.
    pub timezone: String,
    /// Defaults to `true`.
    #[serde(default)]
    pub is_active: Option<bool>,
}

impl NewProfessional {
    /// Validates the input and builds the professional.
    ///
    /// ```
    /// use booking_core::{GeoPoint, NewProfessional, ProfessionalId};
    /// use chrono::Utc;
    /// let now = Utc::now();
    /// let p = NewProfessional {
    ///     name: "Ada".into(), category: "tutoring".into(),
    ///     location: GeoPoint { lat: 51.5, lng: -0.1 }, hourly_rate_cents: 6_000,
    ///     currency: "gbp".into(), timezone: "Europe/London".into(), is_active: None,
    /// }
    /// .validate(ProfessionalId::new_at(now), now)
    /// .unwrap();
    /// assert!(p.is_active);
    /// ```
    pub fn validate(&self, id: ProfessionalId, now: DateTime<Utc>) -> Result<Professional> {
        let mut v = Validator::new();
        let name = validate_name(&mut v, &self.name);
        let category = v.take(Category::parse(&self.category));
        let location = v.take(GeoPoint::new(self.location.lat, self.location.lng));
        v.check(
            self.hourly_rate_cents >= 0,
            "hourly_rate_cents",
            "must not be negative",
        );
        let currency = v.take(Currency::parse(&self.currency));
        let timezone = v.take(parse_timezone(&self.timezone));
        v.finish()?;
        match (category, location, currency, timezone) {
            (Some(category), Some(location), Some(currency), Some(timezone)) => Ok(Professional {
                id,
                name,
                category,
                location,
                hourly_rate_cents: self.hourly_rate_cents,
                currency,
                timezone,
                is_active: self.is_active.unwrap_or(true),
                created_at: now,
                updated_at: now,
            }),
            _ => Err(Error::Internal("validation accepted missing fields".into())),
        }
    }
}

/// A partial update of a professional: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfessionalPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New category slug.
    #[serde(default)]
    pub category: Option<String>,
    /// New location.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// New hourly rate.
    #[serde(default)]
    pub hourly_rate_cents: Option<i64>,
    /// New currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// New time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Activate or deactivate.
    #[serde(default)]
    pub is_active: Option<bool>,
}

pub(crate) mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Tz>()
            .map_err(|_| D::Error::custom("unknown IANA time zone"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn input() -> NewProfessional {
        NewProfessional {
            name: "  Grace  ".into(),
            category: "massage".into(),
            location: GeoPoint {
                lat: 52.5,
                lng: 13.4,
            },
            hourly_rate_cents: 9_000,
            currency: "EUR".into(),
            timezone: "Europe/Berlin".into(),
            is_active: Some(false),
        }
    }

    #[test]
    fn validates_and_normalises() {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let p = input().validate(ProfessionalId::new_at(now), now).unwrap();
        assert_eq!(p.name, "Grace");
        assert_eq!(p.currency.as_str(), "eur");
        assert!(!p.is_active);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["timezone"], "Europe/Berlin");
    }

    #[test]
    fn category_prints_and_serialises_as_its_slug() {
        let c = Category::parse("tax-advice").unwrap();
        assert_eq!(c.to_string(), "tax-advice");
        assert_eq!(String::from(c.clone()), "tax-advice");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"tax-advice\"");
        assert!(serde_json::from_str::<Category>("\"Tax Advice\"").is_err());
    }

    #[test]
    fn a_professional_reads_back_with_its_time_zone() {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let p = input().validate(ProfessionalId::new_at(now), now).unwrap();
        let json = serde_json::to_value(&p).unwrap();
        let back: Professional = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.timezone, chrono_tz::Europe::Berlin);
        let mut unknown = json;
        unknown["timezone"] = "Nowhere/Land".into();
        assert!(serde_json::from_value::<Professional>(unknown).is_err());
    }

    #[test]
    fn reports_every_bad_field() {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let bad = NewProfessional {
            name: " ".into(),
            category: "Bad Slug".into(),
            location: GeoPoint {
                lat: 100.0,
                lng: -200.0,
            },
            hourly_rate_cents: -1,
            currency: "dollars".into(),
            timezone: "Nowhere/Land".into(),
            is_active: None,
        };
        let Err(Error::Invalid(errs)) = bad.validate(ProfessionalId::new_at(now), now) else {
            panic!("expected validation errors");
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "name",
            "category",
            "location.lat",
            "location.lng",
            "hourly_rate_cents",
            "currency",
            "timezone",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn patch_validates_and_keeps_unchanged_fields() {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let p = input().validate(ProfessionalId::new_at(now), now).unwrap();
        let later = now + chrono::Duration::hours(1);
        let patched = p
            .apply_patch(
                &ProfessionalPatch {
                    hourly_rate_cents: Some(100),
                    ..Default::default()
                },
                later,
            )
            .unwrap();
        assert_eq!(patched.hourly_rate_cents, 100);
        assert_eq!(patched.name, p.name);
        assert_eq!(patched.updated_at, later);
        assert!(
            p.apply_patch(
                &ProfessionalPatch {
                    timezone: Some("x".into()),
                    ..Default::default()
                },
                later
            )
            .is_err()
        );
    }
}
