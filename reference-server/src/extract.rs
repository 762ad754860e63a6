//! Request parsing with problem+json rejections: JSON bodies, UUID path ids and query
//! strings.

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use booking_core::FieldError;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Reads a whole body, at most [`crate::BODY_LIMIT`] bytes (413 past it).
pub async fn read_body(body: Body) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Problem::payload_too_large();
                }
                source = err.source();
            }
            Problem::malformed("the request body could not be read")
        })
}

/// A JSON request body: `Content-Type: application/json` (or `+json`), deserialised with
/// unknown fields rejected. Any failure is a 400 `malformed_request`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(Problem::malformed(
                "the request body must be JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = read_body(req.into_body()).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON request body read but not yet parsed, for handlers that must decide permission
/// and existence first (403/404 before 400): [`DeferredJson::parse`] applies the same rules
/// as [`JsonBody`].
#[derive(Debug, Clone)]
pub struct DeferredJson {
    is_json: bool,
    bytes: axum::body::Bytes,
}

impl DeferredJson {
    /// Parses the body as [`JsonBody`] would have.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        if !self.is_json {
            return Err(Problem::malformed(
                "the request body must be JSON with `Content-Type: application/json`",
            ));
        }
        parse_json(&self.bytes)
    }
}

impl<S: Send + Sync> FromRequest<S> for DeferredJson {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = read_body(req.into_body()).await?;
        Ok(Self { is_json, bytes })
    }
}

/// Deserialises a JSON document; any error is 400 `malformed_request` with serde's
/// description (position and field name, never internals).
///
/// JSON has one kind of number, so `60.0` and `6e1` are the integer 60 (JSON Schema, and
/// so the OpenAPI document, says the same of its `integer` fields). serde reads such a
/// number only into a float field; a document that fails to deserialise is therefore
/// tried once more with its whole numbers written as integers (see [`whole_numbers`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).or_else(|e| {
        whole_numbers(bytes)
            .and_then(|rewritten| serde_json::from_slice(&rewritten).ok())
            .ok_or_else(|| {
                Problem::malformed(format!("the request body is not acceptable JSON: {e}"))
            })
    })
}

/// The JSON text with every number that has a fraction or an exponent but denotes a whole
/// number (`60.0`, `6e1`, `-1.5E1`... but not `0.5` or `1e-1`) written as an integer; `None`
/// if there is no such number. Strings are copied unchanged; the text is not otherwise
/// checked (the parser that reads the result does that). The value is computed in decimal,
/// never through a float, so `9007199254740993.0` stays exactly that integer.
pub fn whole_numbers(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if b == b'"' {
            // Copy the string, escapes included, through its closing quote.
            let mut j = i + 1;
            while let Some(&c) = json.get(j) {
                j += if c == b'\\' { 2 } else { 1 };
                if c == b'"' {
                    break;
                }
            }
            let end = j.min(json.len());
            out.extend_from_slice(&json[i..end]);
            i = end;
        } else if b == b'-' || b.is_ascii_digit() {
            let len = json[i..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
                .count();
            let token = &json[i..i + len];
            match whole_number(token) {
                Some(integer) => {
                    out.extend_from_slice(integer.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(token),
            }
            i += len;
        } else {
            out.push(b);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// The integer a JSON number token with a fraction or an exponent denotes, if it is whole
/// (at most 20 significant digits: anything longer is past every integer field anyway).
fn whole_number(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    if mantissa.len() == unsigned.len() && !mantissa.contains('.') {
        return None; // already an integer
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty()
        || !int_part.bytes().all(|c| c.is_ascii_digit())
        || !frac_part.bytes().all(|c| c.is_ascii_digit())
        || (mantissa.contains('.') && frac_part.is_empty())
    {
        return None;
    }
    // value = digits * 10^(exponent - frac_part.len())
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let scale = exponent.checked_sub(i32::try_from(frac_part.len()).ok()?)?;
    let integer = if digits.is_empty() {
        "0".to_owned()
    } else if scale >= 0 {
        let zeros = usize::try_from(scale).ok()?;
        if digits.len() + zeros > 20 {
            return None;
        }
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let cut = usize::try_from(-scale).ok()?;
        let keep = digits.len().checked_sub(cut)?;
        if !digits[keep..].bytes().all(|c| c == b'0') || keep > 20 {
            return None;
        }
        if keep == 0 {
            "0".to_owned()
        } else {
            digits[..keep].to_owned()
        }
    };
    Some(if negative && integer != "0" {
        format!("-{integer}")
    } else {
        integer
    })
}

/// A UUID path id; anything that does not parse is a 404 (as for an id that does not
/// exist).
#[derive(Debug, Clone, Copy)]
pub struct IdPath<T>(pub T);

impl<T: From<uuid::Uuid> + Send, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found("no such resource"))?;
        uuid::Uuid::try_parse(&raw)
            .map(|u| IdPath(T::from(u)))
            .map_err(|_| Problem::not_found("no such resource"))
    }
}

/// Middleware for routes whose `{id}` must be a UUID: any other id is a 404 before an
/// inner layer (the idempotency layer, which would first ask for an `Idempotency-Key`)
/// looks at the request, as `docs/http/README.md` orders it.
pub async fn require_uuid_id(_id: IdPath<uuid::Uuid>, req: Request, next: Next) -> Response {
    next.run(req).await
}

/// Query-string parameters, parsed by hand so that each bad value is reported as a field
/// error (422 `validation_failed`). Unknown parameters are ignored; a repeated parameter
/// keeps its last value.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query().unwrap_or("")))
    }
}

impl QueryParams {
    /// Parses an `application/x-www-form-urlencoded` query string.
    pub fn parse(query: &str) -> Self {
        Self {
            pairs: form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            errors: Vec::new(),
        }
    }

    /// The raw value of `name`, if present.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Records a field error.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// `name` parsed with `parse`; a failure records `message` for the field.
    pub fn get_with<T>(
        &mut self,
        name: &str,
        message: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.raw(name)?.to_owned();
        let parsed = parse(&raw);
        if parsed.is_none() {
            self.error(name, message);
        }
        parsed
    }

    /// The value of a core validation, or its field errors recorded.
    pub fn take<T>(&mut self, result: booking_core::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(booking_core::Error::Invalid(errs)) => {
                self.errors.extend(errs);
                None
            }
            Err(other) => {
                self.error("", other.to_string());
                None
            }
        }
    }

    /// `name` as a `FromStr` value.
    pub fn get<T: FromStr>(&mut self, name: &str, message: &str) -> Option<T> {
        self.get_with(name, message, |s| s.parse().ok())
    }

    /// `name` as an RFC 3339 instant, converted to UTC.
    pub fn instant(&mut self, name: &str) -> Option<DateTime<Utc>> {
        self.get_with(
            name,
            "must be an RFC 3339 instant such as 2027-03-01T09:00:00Z",
            parse_instant,
        )
    }

    /// Like [`QueryParams::instant`], but records an error when absent.
    pub fn required_instant(&mut self, name: &str) -> Option<DateTime<Utc>> {
        if self.raw(name).is_none() {
            self.error(name, "is required");
            return None;
        }
        self.instant(name)
    }

    /// `limit`: 1..=100, default 20.
    pub fn limit(&mut self) -> u32 {
        self.get_with("limit", "must be an integer from 1 to 100", |s| {
            s.parse::<u32>().ok().filter(|n| (1..=100).contains(n))
        })
        .unwrap_or(20)
    }

    /// Ends parsing: 422 `validation_failed` if anything was recorded.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.errors))
        }
    }
}

/// Parses an RFC 3339 instant into UTC.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let mut q =
            QueryParams::parse("limit=5&from=2027-03-01T09%3A00%3A00%2B01%3A00&x=1&limit=7");
        assert_eq!(q.limit(), 7);
        assert_eq!(
            q.instant("from").unwrap().to_rfc3339(),
            "2027-03-01T08:00:00+00:00"
        );
        assert!(q.required_instant("to").is_none());
        assert!(q.finish().is_err());
        let mut q = QueryParams::parse("limit=0");
        assert_eq!(q.limit(), 20);
        assert!(q.finish().is_err());
    }

    #[test]
    fn whole_numbers_are_written_as_integers() {
        let rewrite = |s: &str| whole_numbers(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            rewrite(r#"{"a": 60.0, "b": [6e1, -1.5E1, 0.0, -0.0, 1.20e1], "c": 7}"#).as_deref(),
            Some(r#"{"a": 60, "b": [60, -15, 0, 0, 12], "c": 7}"#)
        );
        // Exact in decimal, not through a float.
        assert_eq!(
            rewrite("[9007199254740993.0, 9223372036854775807.000]").as_deref(),
            Some("[9007199254740993, 9223372036854775807]")
        );
        // Fractions, integers already, numbers inside strings: nothing to do.
        for unchanged in [
            r#"{"a": 0.5, "b": 1e-1, "c": 7, "d": -3}"#,
            r#"{"a": "60.0", "b\"1.0": "x\\", "c": 2.5}"#,
            "1e400",
            "123456789012345678901234.0",
            "",
        ] {
            assert_eq!(rewrite(unchanged), None, "{unchanged}");
        }
    }

    #[test]
    fn parse_json_reads_whole_numbers_into_integer_fields() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Body {
            n: i64,
            x: f64,
        }
        let ok: Body = parse_json(br#"{"n": 818.0, "x": 1.5}"#).unwrap();
        assert_eq!(ok, Body { n: 818, x: 1.5 });
        // A fraction is still not an integer; neither is anything past i64.
        for bad in [
            &br#"{"n": 818.5, "x": 1}"#[..],
            br#"{"n": 9223372036854775808.0, "x": 1}"#,
            br#"{"n": 1.0, "x": 1, "n": 2}"#,
            br#"{"n": 1.0, "x": 1, "y": 2}"#,
        ] {
            let err = parse_json::<Body>(bad).unwrap_err();
            assert_eq!(err.code, crate::problem::ProblemCode::MalformedRequest);
        }
    }
}
