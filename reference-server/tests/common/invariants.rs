//! What the abuse tests (torture, crash and restart) record while they run, and the
//! invariants they check afterwards against the database directly (sqlx), not through the
//! API under test.
//!
//! Each check returns the violations it found as sentences, so a test can print all of
//! them with the run's seed before it fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use sqlx::{PgPool, Row};

use super::wire::Reply;

/// What an idempotent request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /v1/bookings`.
    CreateBooking,
    /// `POST /v1/bookings/{id}/cancel`.
    Cancel,
    /// `POST /v1/bookings/{id}/reschedule`.
    Reschedule,
    /// `POST /v1/clients` or `/v1/professionals`.
    CreateSubject,
    /// A key sent again with a different body than its first use.
    KeyReuse,
}

/// One attempt of an idempotent request, as the client saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// What the request does.
    pub kind: Kind,
    /// Who sent it (its token).
    pub scope: String,
    /// The idempotency key.
    pub key: String,
    /// The body sent.
    pub body: Vec<u8>,
    /// The booking a cancel or reschedule targets.
    pub target: Option<String>,
    /// The answer, or why there was none (refused, reset, timed out).
    pub outcome: Result<Reply, String>,
}

impl Exchange {
    /// The answer when it is the request's own final answer: not a 409 "in flight" or a
    /// 422 "key reused", which answer the key, not the request.
    pub fn answer(&self) -> Option<&Reply> {
        let r = self.outcome.as_ref().ok()?;
        let about_key = matches!(
            r.code(),
            "idempotency_request_in_flight" | "idempotency_key_reused"
        );
        (r.is_final() && !about_key).then_some(r)
    }
}

/// Every exchange of a run, in the order they ended.
#[derive(Debug, Default)]
pub struct Ledger(Mutex<Vec<Exchange>>);

impl Ledger {
    /// Records one exchange.
    pub fn record(&self, e: Exchange) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// All exchanges so far.
    pub fn all(&self) -> Vec<Exchange> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Counts of exchanges by kind and outcome (`CreateBooking 201`, `Cancel 409
/// invalid_state replay`, `Reschedule error`, ...), for the report.
pub fn tally(exchanges: &[Exchange]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in exchanges {
        let label = match &e.outcome {
            Ok(r) => format!(
                "{:?} {} {}{}",
                e.kind,
                r.status,
                r.code(),
                if r.replayed { " (replay)" } else { "" }
            ),
            Err(_) => format!("{:?} no answer", e.kind),
        };
        *counts.entry(label).or_insert(0) += 1;
    }
    counts
}

/// The exchanges of one request: one scope, key and body.
fn by_request(exchanges: &[Exchange]) -> BTreeMap<(&str, &str, &[u8]), Vec<&Exchange>> {
    let mut groups: BTreeMap<_, Vec<&Exchange>> = BTreeMap::new();
    for e in exchanges.iter().filter(|e| e.kind != Kind::KeyReuse) {
        groups
            .entry((e.scope.as_str(), e.key.as_str(), e.body.as_slice()))
            .or_default()
            .push(e);
    }
    groups
}

/// Every final answer of one request is the same, byte for byte (status and body), and at
/// most one of them is not a replay. A reused key with another body is refused (422
/// `idempotency_key_reused`, or 409 while the first is in flight). Booking answers are
/// also the bytes stored for the key (`stored`: key to status and body).
pub fn replays_match(
    exchanges: &[Exchange],
    stored: &HashMap<String, (i32, Vec<u8>)>,
) -> Vec<String> {
    let mut bad = Vec::new();
    for ((_, key, _), attempts) in by_request(exchanges) {
        let answers: Vec<&Reply> = attempts.iter().filter_map(|e| e.answer()).collect();
        let Some(first) = answers.first() else {
            continue;
        };
        for a in &answers[1..] {
            if a.status != first.status || a.bytes != first.bytes {
                bad.push(format!(
                    "key {key}: answer {} {} differs from the first {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.bytes),
                    first.status,
                    String::from_utf8_lossy(&first.bytes)
                ));
            }
        }
        let originals = answers.iter().filter(|a| !a.replayed).count();
        if originals > 1 {
            bad.push(format!(
                "key {key}: {originals} answers that are not replays"
            ));
        }
        let is_booking = attempts[0].kind != Kind::CreateSubject;
        if let (true, Some((status, body))) = (is_booking, stored.get(key))
            && (i64::from(*status) != i64::from(first.status) || *body != first.bytes)
        {
            bad.push(format!(
                "key {key}: the stored answer differs from the one sent"
            ));
        }
    }
    for e in exchanges.iter().filter(|e| e.kind == Kind::KeyReuse) {
        if let Ok(r) = &e.outcome {
            let refused = (r.status == 422 && r.code() == "idempotency_key_reused")
                || (r.status == 409 && r.code() == "idempotency_request_in_flight");
            if !refused && r.status < 500 {
                bad.push(format!(
                    "key {}: reused with another body answered {} {}",
                    e.key,
                    r.status,
                    String::from_utf8_lossy(&r.bytes)
                ));
            }
        }
    }
    bad
}

/// A booking row, read straight from the table.
#[derive(Debug, Clone)]
pub struct BookingRow {
    /// `id`.
    pub id: String,
    /// `professional_id`.
    pub professional_id: String,
    /// `client_id`.
    pub client_id: String,
    /// `status`.
    pub status: String,
    /// `starts_at`, Unix seconds.
    pub start: i64,
}

/// All booking rows.
pub async fn booking_rows(pool: &PgPool) -> Vec<BookingRow> {
    sqlx::query(
        "SELECT id::text, professional_id::text, client_id::text, status, \
         extract(epoch FROM starts_at)::bigint AS start FROM bookings",
    )
    .fetch_all(pool)
    .await
    .expect("read bookings")
    .into_iter()
    .map(|r| BookingRow {
        id: r.get(0),
        professional_id: r.get(1),
        client_id: r.get(2),
        status: r.get(3),
        start: r.get(4),
    })
    .collect()
}

/// Unix seconds of an RFC 3339 instant in a response.
pub fn epoch(v: &serde_json::Value) -> Option<i64> {
    v.as_str()?
        .parse::<chrono::DateTime<chrono::Utc>>()
        .ok()
        .map(|t| t.timestamp())
}

/// Every 201 of `POST /v1/bookings` names a booking that exists exactly once, two requests
/// never share a booking, and every row was created by a request that got its 201 or by
/// one left without a final answer (a 5xx, a reset, a crash) by the same client for the
/// same professional and start. Returns the violations and how many rows were explained
/// by unanswered requests.
pub fn creates_match(
    exchanges: &[Exchange],
    rows: &[BookingRow],
    client_of: &HashMap<String, String>,
) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut owner: HashMap<String, &str> = HashMap::new();
    let mut unanswered: HashSet<(String, String, i64)> = HashSet::new();
    for ((scope, key, body), attempts) in by_request(exchanges) {
        if attempts[0].kind != Kind::CreateBooking {
            continue;
        }
        let created = attempts
            .iter()
            .filter_map(|e| e.answer())
            .find(|r| r.status == 201);
        match created {
            Some(r) => {
                let id = r.json["id"].as_str().unwrap_or_default().to_owned();
                if let Some(other) = owner.insert(id.clone(), key)
                    && other != key
                {
                    bad.push(format!("booking {id} answered to keys {other} and {key}"));
                }
            }
            None if attempts.iter().all(|e| e.answer().is_none()) => {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let client = client_of.get(scope).cloned().unwrap_or_default();
                let pro = v["professional_id"].as_str().unwrap_or_default().to_owned();
                unanswered.insert((client, pro, epoch(&v["start"]).unwrap_or_default()));
            }
            None => {}
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        *count.entry(r.id.as_str()).or_insert(0) += 1;
    }
    for id in owner.keys() {
        match count.get(id.as_str()) {
            Some(1) => {}
            n => bad.push(format!("booking {id} got a 201 but has {n:?} rows")),
        }
    }
    let mut explained = 0;
    for r in rows.iter().filter(|r| !owner.contains_key(&r.id)) {
        let slot = (r.client_id.clone(), r.professional_id.clone(), r.start);
        if unanswered.contains(&slot) {
            explained += 1;
        } else {
            bad.push(format!(
                "booking {} ({}) exists without a 201 or an unanswered request",
                r.id, r.status
            ));
        }
    }
    (bad, explained)
}

/// No two active bookings (`pending_payment`, `confirmed`) of one professional have
/// overlapping blocked ranges.
pub async fn overlaps(pool: &PgPool) -> Vec<String> {
    let pairs: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.id::text, b.id::text FROM bookings a JOIN bookings b \
         ON a.professional_id = b.professional_id AND a.id < b.id \
         AND a.blocked_range && b.blocked_range \
         WHERE a.status IN ('pending_payment', 'confirmed') \
         AND b.status IN ('pending_payment', 'confirmed')",
    )
    .fetch_all(pool)
    .await
    .expect("overlap query");
    pairs
        .into_iter()
        .map(|(a, b)| format!("active bookings {a} and {b} overlap"))
        .collect()
}

/// The stored answers of completed idempotency keys: key to status and body.
pub async fn stored_answers(pool: &PgPool) -> HashMap<String, (i32, Vec<u8>)> {
    sqlx::query_as::<_, (String, i32, Vec<u8>)>(
        "SELECT key, response_status, response_body FROM idempotency_keys \
         WHERE state = 'completed'",
    )
    .fetch_all(pool)
    .await
    .expect("read idempotency keys")
    .into_iter()
    .map(|(k, s, b)| (k, (s, b)))
    .collect()
}

/// Idempotency keys still in flight.
pub async fn keys_in_flight(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'")
        .fetch_one(pool)
        .await
        .expect("count keys in flight")
}

/// Whether a status may follow `from` on one booking.
fn may_follow(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("pending_payment", "confirmed" | "cancelled" | "expired")
            | ("expired", "confirmed")
            | ("confirmed", "cancelled")
    )
}

/// The outbox tells each booking's story: one `booking_created` first, each event's
/// booking status follows the previous one by a legal transition (a reschedule keeps it),
/// the last event shows the row as it is (status and start), and every event names an
/// existing booking. Also: as many `booking_rescheduled` events as reschedules were
/// answered 200, at most as many as were tried, and a 200 cancel has its
/// `booking_cancelled`.
pub async fn outbox_tells_the_story(
    pool: &PgPool,
    rows: &[BookingRow],
    exchanges: &[Exchange],
) -> Vec<String> {
    let events: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT booking_id::text, kind, payload->'booking'->>'status', \
         extract(epoch FROM (payload->'booking'->'range'->>'start')::timestamptz)::bigint \
         FROM domain_events ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .expect("read the outbox");
    let mut story: HashMap<&str, Vec<(&str, &str, i64)>> = HashMap::new();
    for (booking, kind, status, start) in &events {
        story
            .entry(booking.as_str())
            .or_default()
            .push((kind.as_str(), status.as_str(), *start));
    }
    let mut bad = Vec::new();
    let by_id: HashMap<&str, &BookingRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    for id in story.keys().filter(|id| !by_id.contains_key(*id)) {
        bad.push(format!("events for booking {id}, which does not exist"));
    }
    for row in rows {
        let Some(events) = story.get(row.id.as_str()) else {
            bad.push(format!("booking {} has no events", row.id));
            continue;
        };
        let (first_kind, mut status, mut start) = events[0];
        if first_kind != "booking_created" || !matches!(status, "pending_payment" | "confirmed") {
            bad.push(format!(
                "booking {}: first event {first_kind} ({status})",
                row.id
            ));
        }
        for &(kind, next, next_start) in &events[1..] {
            let legal = match kind {
                "booking_rescheduled" => next == status,
                "booking_confirmed" => next == "confirmed" && may_follow(status, next),
                "booking_cancelled" => next == "cancelled" && may_follow(status, next),
                "booking_expired" => next == "expired" && may_follow(status, next),
                _ => false,
            };
            if !legal {
                bad.push(format!(
                    "booking {}: {kind} ({next}) after {status}",
                    row.id
                ));
            }
            status = next;
            start = next_start;
        }
        if status != row.status || start != row.start {
            bad.push(format!(
                "booking {}: last event shows {status} at {start}, the row {} at {}",
                row.id, row.status, row.start
            ));
        }
    }
    for ((_, key, _), attempts) in by_request(exchanges) {
        let Some(target) = attempts[0].target.as_deref() else {
            continue;
        };
        let kinds: Vec<&str> = story
            .get(target)
            .map(|s| s.iter().map(|e| e.0).collect())
            .unwrap_or_default();
        let ok = attempts
            .iter()
            .filter_map(|e| e.answer())
            .any(|r| r.status == 200);
        if ok && attempts[0].kind == Kind::Cancel && !kinds.contains(&"booking_cancelled") {
            bad.push(format!(
                "key {key}: cancel of {target} answered 200 without an event"
            ));
        }
    }
    for row in rows {
        let tried: Vec<_> = by_request(exchanges)
            .into_iter()
            .filter(|(_, a)| {
                a[0].kind == Kind::Reschedule && a[0].target.as_deref() == Some(&row.id)
            })
            .map(|(_, a)| a.iter().filter_map(|e| e.answer()).any(|r| r.status == 200))
            .collect();
        let answered = tried.iter().filter(|ok| **ok).count();
        let events = story.get(row.id.as_str()).map_or(0, |s| {
            s.iter().filter(|e| e.0 == "booking_rescheduled").count()
        });
        if events < answered || events > tried.len() {
            bad.push(format!(
                "booking {}: {events} reschedule events for {answered} answered of {} tried",
                row.id,
                tried.len()
            ));
        }
    }
    bad
}

/// No acknowledged change is lost: the last status a 2xx reported for each booking is the
/// row's status, or one that may legally follow it.
pub fn nothing_acknowledged_lost(exchanges: &[Exchange], rows: &[BookingRow]) -> Vec<String> {
    let by_id: HashMap<&str, &BookingRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut bad = Vec::new();
    for e in exchanges {
        let Some(r) = e.answer().filter(|r| (200..300).contains(&r.status)) else {
            continue;
        };
        let (Some(id), Some(seen)) = (r.json["id"].as_str(), r.json["status"].as_str()) else {
            continue;
        };
        if e.kind == Kind::CreateSubject {
            continue;
        }
        match by_id.get(id) {
            None => bad.push(format!(
                "booking {id} answered {seen} is not in the database"
            )),
            Some(row) if row.status != seen && !reachable(seen, &row.status) => bad.push(format!(
                "booking {id} answered {seen}, now {} in the database",
                row.status
            )),
            Some(_) => {}
        }
    }
    bad
}

/// Whether `to` can be reached from `from` by legal transitions.
fn reachable(from: &str, to: &str) -> bool {
    let mut seen = vec![from];
    let mut i = 0;
    while i < seen.len() {
        for next in ["pending_payment", "confirmed", "cancelled", "expired"] {
            if may_follow(seen[i], next) && !seen.contains(&next) {
                seen.push(next);
            }
        }
        i += 1;
    }
    seen.contains(&to)
}

/// What the checks shared by the abuse tests found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Every violation, as a sentence.
    pub violations: Vec<String>,
    /// Rows explained only by requests that never got an answer.
    pub explained: usize,
    /// Booking rows by status.
    pub statuses: BTreeMap<String, usize>,
}

/// Runs every booking check against the database after a load: no overlap, 201s and rows
/// match ([`creates_match`]; `client_of` maps a client's token to its id), replays match,
/// the outbox tells the story, nothing acknowledged is lost, no key in flight.
pub async fn check_bookings(
    pool: &PgPool,
    exchanges: &[Exchange],
    client_of: &HashMap<String, String>,
) -> Findings {
    let rows = booking_rows(pool).await;
    let stored = stored_answers(pool).await;
    let mut violations = overlaps(pool).await;
    let (bad, explained) = creates_match(exchanges, &rows, client_of);
    violations.extend(bad);
    violations.extend(replays_match(exchanges, &stored));
    violations.extend(outbox_tells_the_story(pool, &rows, exchanges).await);
    violations.extend(nothing_acknowledged_lost(exchanges, &rows));
    let in_flight = keys_in_flight(pool).await;
    if in_flight != 0 {
        violations.push(format!("{in_flight} idempotency keys still in flight"));
    }
    let mut statuses = BTreeMap::new();
    for r in &rows {
        *statuses.entry(r.status.clone()).or_insert(0) += 1;
    }
    Findings {
        violations,
        explained,
        statuses,
    }
}

/// Prints the counts of a run (its exchanges by outcome, then `notes`) and every
/// violation, then fails if there was one, naming the seed.
pub fn report(seed: u64, exchanges: &[Exchange], notes: &[String], findings: &Findings) {
    for (label, n) in tally(exchanges) {
        eprintln!("  {n:>6}  {label}");
    }
    for note in notes {
        eprintln!("  {note}");
    }
    eprintln!(
        "  bookings by status: {:?}; rows explained by unanswered requests: {}; \
         invariant violations: {}",
        findings.statuses,
        findings.explained,
        findings.violations.len()
    );
    for v in &findings.violations {
        eprintln!("  VIOLATION: {v}");
    }
    assert!(
        findings.violations.is_empty(),
        "seed {seed}: {} violations",
        findings.violations.len()
    );
}
