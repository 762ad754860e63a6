//! Outbound webhooks: the target guard, the HTTP sender and the two workers.
//!
//! * **Fan-out.** Claims outbox events for [`Consumer::Webhooks`] and hands them to
//!   [`booking_core::store::SubscriptionStore::record_deliveries`], which marks them and creates one delivery per
//!   matching subscription in one step, so each event is fanned out exactly once.
//! * **Deliveries.** Claims due deliveries (on PostgreSQL with `SKIP LOCKED`, so several
//!   instances share the work), POSTs each event as JSON with `Booking-Signature`
//!   (`t=<unix>,v1=<hex>`, [`booking_core::webhook::sign`] with the subscription's secret
//!   over the exact body), `Booking-Event-Id` and `Booking-Delivery-Id`, and records the
//!   outcome: any 2xx is delivered; anything else, or no answer within the timeout (10 s),
//!   is retried with exponential backoff and full jitter for 24 h
//!   ([`booking_core::webhook::outbound::after_attempt`]). Every attempt is logged.
//! * **Targets.** Only `http`/`https`. The host is resolved and refused if *any* address is
//!   loopback, private, link-local, unspecified, multicast, broadcast, documentation or
//!   unique-local (IPv4 and IPv6, IPv4-mapped included), unless
//!   `BOOKING_WEBHOOK_ALLOW_PRIVATE=true`. The check runs when a subscription is made (422)
//!   and again inside the connector at every delivery, on the very addresses it connects
//!   to, so a DNS change cannot slip a private address in later.
//!
//! Metrics: `webhook_deliveries_total{result}` (`delivered`, `retry`, `failed`),
//! `webhook_fan_out_events_total`, `webhook_deliveries_created_total`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use booking_core::events::Consumer;
use booking_core::webhook::outbound::{AttemptOutcome, AttemptResult, DueDelivery, after_attempt};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::AppState;
use crate::model::EventView;

/// Events claimed for the fan-out at once.
pub const FAN_OUT_BATCH: usize = 256;
/// How long a fan-out claim keeps its events from other instances.
pub const FAN_OUT_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Deliveries attempted at once.
pub const DELIVERY_BATCH: usize = 32;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The URL does not parse or has no host.
    #[error("not an absolute http(s) URL with a host")]
    BadUrl,
    /// The host did not resolve.
    #[error("the host {0} does not resolve")]
    Unresolvable(String),
    /// The host resolves to a loopback or private address.
    #[error("the host resolves to a loopback or private address ({0})")]
    Private(IpAddr),
}

/// Whether `ip` is an address outbound webhooks must not reach: loopback, private,
/// link-local, unspecified, multicast, broadcast, shared (CGNAT), documentation, benchmark
/// or reserved IPv4; loopback, unspecified, multicast, unique-local, link-local,
/// site-local or documentation IPv6; and IPv6 forms that embed such an IPv4 address
/// (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    // IPv4-compatible (deprecated) ::a.b.c.d, and NAT64 64:ff9b::/96.
    if (s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0] // discard-only 100::/64
}

/// The host and port of an `http`/`https` URL (brackets of an IPv6 literal removed).
pub fn host_and_port(url: &str) -> Result<(String, u16), TargetError> {
    let uri: Uri = url.parse().map_err(|_| TargetError::BadUrl)?;
    let default_port = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(TargetError::BadUrl),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or(TargetError::BadUrl)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(default_port)))
}

/// Resolves `host` and returns its addresses, refusing every one of them if any is
/// [`is_forbidden`] (unless `allow_private`).
pub async fn resolve_public(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host.to_owned()));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(TargetError::Private(bad.ip()));
    }
    Ok(addrs)
}

/// Checks that `url` may receive webhooks (see the module docs).
pub async fn check_target(url: &str, allow_private: bool) -> Result<(), TargetError> {
    let (host, port) = host_and_port(url)?;
    resolve_public(&host, port, allow_private).await.map(|_| ())
}

/// The connector's resolver: [`resolve_public`] on every name it connects to.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = TargetError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_private;
        Box::pin(async move {
            // The port is set by the connector; 0 here.
            resolve_public(name.as_str(), 0, allow)
                .await
                .map(Vec::into_iter)
        })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// Sends deliveries.
#[derive(Clone)]
pub struct Sender {
    client: Client<Connector, Full<Bytes>>,
    allow_private: bool,
    timeout: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender with the given guard and per-attempt timeout (HTTP/1.1, TLS with the
    /// webpki roots).
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, String> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("TLS setup: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            allow_private,
            timeout,
        })
    }

    /// Makes one attempt of `due` and says what happened (never an error: failures are
    /// results).
    pub async fn attempt(
        &self,
        due: &DueDelivery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AttemptResult {
        let body = match serde_json::to_vec(&EventView::from(&due.event)) {
            Ok(b) => b,
            Err(e) => return AttemptResult::NoAnswer(format!("serialising the event: {e}")),
        };
        let secret = match due.signing_key() {
            Ok(s) => s,
            Err(e) => return AttemptResult::NoAnswer(format!("signing key: {e}")),
        };
        // IP literals never reach the resolver: check them (and everything else) here too.
        if let Err(e) = check_target(&due.url, self.allow_private).await {
            return AttemptResult::NoAnswer(format!("target refused: {e}"));
        }
        let signature = booking_core::webhook::sign(&secret, now, &body);
        let request = Request::post(due.url.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "booking-engine-webhooks/1")
            .header("booking-signature", signature)
            .header("booking-event-id", due.event.id.to_string())
            .header("booking-delivery-id", due.delivery.id.to_string())
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(r) => r,
            Err(e) => return AttemptResult::NoAnswer(format!("building the request: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => AttemptResult::Answered(response.status().as_u16()),
            Ok(Err(e)) => AttemptResult::NoAnswer(error_chain(&e)),
            Err(_) => {
                AttemptResult::NoAnswer(format!("no answer within {} ms", self.timeout.as_millis()))
            }
        }
    }
}

/// `e` and its sources, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// One fan-out round: claims events for [`Consumer::Webhooks`] and records their
/// deliveries; returns how many events it marked.
pub async fn fan_out(state: &AppState) -> Result<usize, booking_core::Error> {
    let engine = state.engine();
    let store = engine.store();
    let claim = store
        .claim_events(
            Consumer::Webhooks,
            engine.now(),
            FAN_OUT_BATCH,
            FAN_OUT_LEASE,
        )
        .await?;
    if claim.events.is_empty() {
        return Ok(0);
    }
    let done = store
        .record_deliveries(claim.lease, &claim.events, engine.now())
        .await?;
    metrics::counter!("webhook_fan_out_events_total").increment(done.events_marked as u64);
    metrics::counter!("webhook_deliveries_created_total").increment(done.deliveries_created as u64);
    Ok(done.events_marked)
}

/// One delivery round: claims due deliveries and attempts them concurrently; returns how
/// many were attempted.
pub async fn deliver(state: &AppState, sender: &Sender) -> Result<usize, booking_core::Error> {
    let engine = state.engine();
    let lease = chrono::Duration::from_std(sender.timeout).unwrap_or(chrono::Duration::seconds(10))
        + chrono::Duration::seconds(30);
    let due = engine
        .store()
        .claim_deliveries(engine.now(), DELIVERY_BATCH, lease)
        .await?;
    let n = due.len();
    let mut tasks = JoinSet::new();
    for d in due {
        let state = state.clone();
        let sender = sender.clone();
        tasks.spawn(async move { deliver_one(&state, &sender, &d).await });
    }
    while tasks.join_next().await.is_some() {}
    Ok(n)
}

async fn deliver_one(state: &AppState, sender: &Sender, due: &DueDelivery) {
    let engine = state.engine();
    let result = sender.attempt(due, engine.now()).await;
    let now = engine.now();
    let outcome = after_attempt(
        state.outbound_policy(),
        &due.delivery,
        &result,
        now,
        crate::workers::jitter(),
    );
    let label = match &outcome {
        AttemptOutcome::Delivered { response_status } => {
            tracing::info!(delivery = %due.delivery.id, event = %due.event.id, url = %due.url,
                attempt = due.delivery.attempt, status = response_status, "webhook delivered");
            "delivered"
        }
        AttemptOutcome::Retry { at, error, .. } => {
            tracing::info!(delivery = %due.delivery.id, event = %due.event.id, url = %due.url,
                attempt = due.delivery.attempt, %error, retry_at = %at, "webhook attempt failed; will retry");
            "retry"
        }
        AttemptOutcome::Failed { error, .. } => {
            tracing::warn!(delivery = %due.delivery.id, event = %due.event.id, url = %due.url,
                attempt = due.delivery.attempt, %error, "webhook delivery failed for good");
            "failed"
        }
    };
    metrics::counter!("webhook_deliveries_total", "result" => label).increment(1);
    match engine
        .store()
        .settle_delivery(due.delivery.id, due.lease, &outcome, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::info!(delivery = %due.delivery.id,
            "webhook delivery was redelivered or deleted meanwhile; outcome not recorded"),
        Err(e) => tracing::warn!(delivery = %due.delivery.id, error = %e,
            "recording a webhook outcome failed; the attempt repeats when its claim runs out"),
    }
}

/// Spawns the fan-out and delivery loop; ends soon after `shutdown` becomes `true`.
pub fn spawn(
    state: AppState,
    sender: Sender,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let poll = state.outbound_config().poll;
        loop {
            let fanned = match fan_out(&state).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook fan-out failed");
                    0
                }
            };
            let sent = match deliver(&state, &sender).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    0
                }
            };
            let pause = if fanned >= FAN_OUT_BATCH || sent >= DELIVERY_BATCH {
                Duration::ZERO
            } else {
                poll
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("outbound webhooks stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an IP address")
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(is_forbidden(ip(s)), "{s} must be forbidden");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn hosts_and_ports_come_from_the_url() {
        assert_eq!(
            host_and_port("https://example.com/x").expect("ok"),
            ("example.com".to_owned(), 443)
        );
        assert_eq!(
            host_and_port("http://[::1]:8080/x").expect("ok"),
            ("::1".to_owned(), 8080)
        );
        assert!(host_and_port("ftp://example.com").is_err());
        assert!(host_and_port("/relative").is_err());
    }

    #[tokio::test]
    async fn literal_private_targets_are_refused_unless_allowed() {
        assert_eq!(
            check_target("http://127.0.0.1:9/hook", false).await,
            Err(TargetError::Private(ip("127.0.0.1")))
        );
        assert!(
            check_target("http://[::ffff:192.168.0.1]/", false)
                .await
                .is_err()
        );
        assert!(check_target("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(
            check_target("http://localhost:9/hook", false)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_connector_resolver_refuses_private_names() {
        use std::str::FromStr;
        use tower::Service;
        let name = Name::from_str("localhost").expect("name");
        let refused = GuardedResolver {
            allow_private: false,
        }
        .call(name.clone())
        .await;
        assert!(
            matches!(refused, Err(TargetError::Private(_))),
            "{refused:?}"
        );
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .call(name)
        .await
        .expect("resolves");
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
