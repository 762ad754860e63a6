//! Professional search: the great-circle distance and the text match, each defined once.
//!
//! Both are pure functions that every store computes identically (the memory store calls
//! them; the PostgreSQL store evaluates the same formulas in SQL, and its tests compare the
//! two bit for bit), so that filters, the order and keyset cursors agree across stores.
//!
//! # Distance
//!
//! [`distance_mm`] is the haversine great-circle distance on a sphere of radius
//! [`EARTH_RADIUS_KM`] (the IUGG mean radius), in whole millimetres rounded down. Results of a
//! geo search are ordered by `(distance_mm, id)`, and a professional is inside the radius when
//! `distance_mm <= floor(radius_km * 1e6)`. Integers make ties and the keyset exact: no float
//! is ever compared across two implementations.
//!
//! # Text
//!
//! A query `q` is trimmed (1 to [`MAX_TEXT_CHARS`] characters, no control characters) and
//! split at whitespace into terms. A professional matches when **every** term, ASCII
//! case-folded, is a substring of their [`search_document`]: the name with ASCII letters
//! lower-cased, a line feed, then the category. So `q = "ann yog"` matches "Anna" in `yoga`,
//! a term never matches across the name/category boundary, and letters outside ASCII match
//! only in the same case (`É` does not match `é`). The folding is ASCII-only on purpose: it
//! does not depend on a database's locale, so PostgreSQL computes exactly the same document
//! (`translate(name, 'A..Z', 'a..z') || E'\n' || category`) and answers each term with a
//! case-sensitive `LIKE '%term%'` that a trigram index serves.

use serde::{Deserialize, Serialize};

use crate::domain::GeoPoint;
use crate::error::{Error, Result, Validator};

/// Radius of the sphere distances are measured on, in kilometres (IUGG mean Earth radius).
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The largest accepted search radius in kilometres (half the circumference is ~20,015 km).
pub const MAX_RADIUS_KM: f64 = 20_000.0;

/// The longest accepted text query, in characters after trimming.
pub const MAX_TEXT_CHARS: usize = 100;

/// Degrees to radians: the constant both the Rust and the SQL formula multiply by.
pub const RADIANS_PER_DEGREE: f64 = std::f64::consts::PI / 180.0;

/// The haversine great-circle distance between `a` and `b` in kilometres, on a sphere of
/// radius [`EARTH_RADIUS_KM`].
///
/// The operations and their order are part of the contract: the PostgreSQL store evaluates
/// exactly this expression (`booking_distance_mm` in its migrations).
///
/// ```
/// use booking_core::GeoPoint;
/// use booking_core::search::distance_km;
/// let berlin = GeoPoint { lat: 52.520008, lng: 13.404954 };
/// let paris = GeoPoint { lat: 48.856613, lng: 2.352222 };
/// assert!((distance_km(berlin, paris) - 877.5).abs() < 1.0);
/// assert_eq!(distance_km(berlin, berlin), 0.0);
/// ```
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let s_lat = ((b.lat - a.lat) * RADIANS_PER_DEGREE / 2.0).sin();
    let s_lng = ((b.lng - a.lng) * RADIANS_PER_DEGREE / 2.0).sin();
    let h = s_lat * s_lat
        + (a.lat * RADIANS_PER_DEGREE).cos() * (b.lat * RADIANS_PER_DEGREE).cos() * s_lng * s_lng;
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// [`distance_km`] in whole millimetres, rounded down: the sort key of a geo search.
pub fn distance_mm(a: GeoPoint, b: GeoPoint) -> i64 {
    km_to_mm(distance_km(a, b))
}

/// Kilometres to whole millimetres, rounded down (saturating; inputs here are below 2e4).
fn km_to_mm(km: f64) -> i64 {
    // `as` saturates and maps NaN to 0; distances and radii are finite and non-negative.
    (km * 1_000_000.0).floor() as i64
}

/// Millimetres back to kilometres, for display (`distance_km` in API answers).
pub fn mm_to_km(mm: i64) -> f64 {
    mm as f64 / 1_000_000.0
}

/// "Within `radius_km` of `center`": the geo filter of a search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoFilter {
    center: GeoPoint,
    radius_km: f64,
}

impl GeoFilter {
    /// A validated filter: `lat` in `[-90, 90]`, `lng` in `[-180, 180]` (rounded like
    /// [`GeoPoint::new`]), `radius_km` in `(0, MAX_RADIUS_KM]`. Errors name the query
    /// parameters `lat`, `lng` and `radius_km`.
    ///
    /// ```
    /// use booking_core::search::GeoFilter;
    /// assert!(GeoFilter::new(52.5, 13.4, 10.0).is_ok());
    /// assert!(GeoFilter::new(52.5, 13.4, 0.0).is_err());
    /// assert!(GeoFilter::new(95.0, 13.4, 10.0).is_err());
    /// ```
    pub fn new(lat: f64, lng: f64, radius_km: f64) -> Result<Self> {
        let mut v = Validator::new();
        v.check(
            lat.is_finite() && (-90.0..=90.0).contains(&lat),
            "lat",
            "must be between -90 and 90",
        );
        v.check(
            lng.is_finite() && (-180.0..=180.0).contains(&lng),
            "lng",
            "must be between -180 and 180",
        );
        v.check(
            radius_km.is_finite() && radius_km > 0.0 && radius_km <= MAX_RADIUS_KM,
            "radius_km",
            "must be greater than 0 and at most 20000",
        );
        v.finish()?;
        Ok(Self {
            center: GeoPoint::new(lat, lng)?,
            radius_km,
        })
    }

    /// The centre.
    pub fn center(&self) -> GeoPoint {
        self.center
    }

    /// The radius in kilometres.
    pub fn radius_km(&self) -> f64 {
        self.radius_km
    }

    /// The radius in whole millimetres, rounded down: `p` is inside when
    /// `distance_mm(center, p) <= radius_mm()`.
    pub fn radius_mm(&self) -> i64 {
        km_to_mm(self.radius_km)
    }

    /// The distance from the centre to `p` in millimetres (the sort key).
    pub fn distance_mm(&self, p: GeoPoint) -> i64 {
        distance_mm(self.center, p)
    }

    /// Whether `p` lies within the radius.
    pub fn contains(&self, p: GeoPoint) -> bool {
        self.distance_mm(p) <= self.radius_mm()
    }
}

/// A validated text query: its trimmed text and its ASCII-lower-cased terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TextQuery {
    text: String,
    terms: Vec<String>,
}

impl TextQuery {
    /// Parses `q`: trimmed, 1 to [`MAX_TEXT_CHARS`] characters, no control characters.
    /// Errors name the query parameter `q`.
    ///
    /// ```
    /// use booking_core::search::TextQuery;
    /// let q = TextQuery::parse("  Anna  YOG ").unwrap();
    /// assert_eq!(q.as_str(), "Anna  YOG");
    /// assert_eq!(q.terms(), ["anna", "yog"]);
    /// assert!(TextQuery::parse("   ").is_err());
    /// ```
    pub fn parse(q: &str) -> Result<Self> {
        let text = q.trim();
        let mut v = Validator::new();
        v.check(!text.is_empty(), "q", "must not be empty");
        v.check(
            text.chars().count() <= MAX_TEXT_CHARS,
            "q",
            "must be at most 100 characters",
        );
        v.check(
            !text.chars().any(char::is_control),
            "q",
            "must not contain control characters",
        );
        v.finish()?;
        Ok(Self {
            text: text.to_owned(),
            terms: text
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect(),
        })
    }

    /// The trimmed query as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The terms, ASCII-lower-cased, in query order (never empty).
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// Whether every term is a substring of [`search_document`]`(name, category)`.
    ///
    /// Computed without building the document: a term holds no whitespace, so it never
    /// spans the line feed, and it lies in the ASCII-lower-cased name or in the category.
    pub fn matches(&self, name: &str, category: &str) -> bool {
        self.terms
            .iter()
            .all(|t| category.contains(t.as_str()) || contains_ascii_folded(name, t))
    }
}

impl TryFrom<String> for TextQuery {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<TextQuery> for String {
    fn from(q: TextQuery) -> Self {
        q.text
    }
}

/// Whether `needle` (ASCII-lower-case already) is a substring of `haystack` with its ASCII
/// letters lower-cased. Byte windows of UTF-8 match exactly where characters do.
fn contains_ascii_folded(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// What a text query searches: the name with ASCII letters lower-cased, `'\n'`, the category.
///
/// ```
/// assert_eq!(booking_core::search::search_document("Zoë Ab", "yoga"), "zoë ab\nyoga");
/// ```
pub fn search_document(name: &str, category: &str) -> String {
    let mut doc = String::with_capacity(name.len() + 1 + category.len());
    doc.push_str(&name.to_ascii_lowercase());
    doc.push('\n');
    doc.push_str(category);
    doc
}

/// A term as a SQL `LIKE` pattern with the default escape character `\`: `%term%` with `\`,
/// `%` and `_` escaped, so that `doc LIKE like_pattern(t)` is exactly `doc.contains(t)`.
///
/// ```
/// assert_eq!(booking_core::search::like_pattern("50%_a\\b"), r"%50\%\_a\\b%");
/// ```
pub fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 4);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_symmetric_enough_and_bounded() {
        let a = GeoPoint { lat: 0.0, lng: 0.0 };
        let antipode = GeoPoint {
            lat: 0.0,
            lng: 180.0,
        };
        let half = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert!((distance_km(a, antipode) - half).abs() < 1e-6);
        let pole = GeoPoint {
            lat: 90.0,
            lng: 0.0,
        };
        assert!((distance_km(a, pole) - half / 2.0).abs() < 1e-6);
        // One degree of latitude is ~111.195 km on this sphere.
        let north = GeoPoint { lat: 1.0, lng: 0.0 };
        assert_eq!(distance_mm(a, north), 111_195_080);
    }

    #[test]
    fn radius_filter_is_inclusive_in_millimetres() {
        let g = GeoFilter::new(0.0, 0.0, 111.195_080).expect("valid");
        assert_eq!(g.radius_mm(), 111_195_080);
        assert!(g.contains(GeoPoint { lat: 1.0, lng: 0.0 }));
        assert!(!g.contains(GeoPoint {
            lat: 1.000_001,
            lng: 0.0
        }));
    }

    #[test]
    fn geo_filter_validation_names_each_parameter() {
        let Err(Error::Invalid(errs)) = GeoFilter::new(f64::NAN, 181.0, 20_000.5) else {
            panic!("invalid filter accepted");
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lat", "lng", "radius_km"]);
        assert!(GeoFilter::new(-90.0, 180.0, MAX_RADIUS_KM).is_ok());
        assert!(GeoFilter::new(0.0, 0.0, -1.0).is_err());
    }

    #[test]
    fn text_query_rules() {
        assert!(TextQuery::parse(&"a".repeat(100)).is_ok());
        assert!(TextQuery::parse(&"a".repeat(101)).is_err());
        assert!(TextQuery::parse(&format!("  {}  ", "é".repeat(100))).is_ok());
        assert!(TextQuery::parse("a\u{0}b").is_err());
        let q = TextQuery::parse("ANN yoga").expect("valid");
        assert!(q.matches("Anna Smith", "yoga"));
        assert!(!q.matches("Anna Smith", "massage"));
        // Every term must match; a term never spans name and category.
        assert!(
            !TextQuery::parse("smithyoga")
                .expect("valid")
                .matches("Anna Smith", "yoga")
        );
        // ASCII-only folding: non-ASCII letters match in their own case only.
        assert!(TextQuery::parse("zoë").expect("valid").matches("ZOë", "x"));
        assert!(!TextQuery::parse("zoë").expect("valid").matches("ZOË", "x"));
    }

    #[test]
    fn matches_equals_substring_of_the_document() {
        let names = [
            "Anna Smith",
            "ZOË zoë",
            "50% Off_Joe\\",
            "ÄB ab",
            "x",
            "Lee-Ann",
        ];
        let cats = ["yoga", "tax-advice", "a"];
        let terms = [
            "ann", "zoë", "ë", "_", "%", "ab", "äb", "ga", "x", "lee-", "\\", "h y",
        ];
        for name in names {
            for cat in cats {
                for term in terms {
                    let q = TextQuery::parse(term).expect("valid");
                    let doc = search_document(name, cat);
                    let spec = q.terms().iter().all(|t| doc.contains(t.as_str()));
                    assert_eq!(q.matches(name, cat), spec, "{term:?} in {name:?}/{cat:?}");
                }
            }
        }
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("ab"), "%ab%");
        assert_eq!(like_pattern("%"), r"%\%%");
    }
}
