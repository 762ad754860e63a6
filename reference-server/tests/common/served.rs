//! A server running on a real listener with parts replaced (an injected clock, a payment
//! gateway that misbehaves on demand), for tests of time and faults over HTTP.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use booking_core::payment::{
    CancelOutcome, CreatedIntent, IntentRequest, PaymentError, PaymentGateway, RefundRequest,
};
use reference_server::startup::Overrides;
use reference_server::{AppState, Application, Config};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::{ADMIN, HttpClient, http_client};

/// What the next [`TestGateway::create_intent`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Creates the intent.
    Create,
    /// Never answers (after signalling [`TestGateway::entered`]).
    Hang,
    /// Panics.
    Panic,
}

/// A payment gateway that creates intents, or hangs or panics once on demand.
#[derive(Debug)]
pub struct TestGateway {
    next: Mutex<Intent>,
    /// Notified when a call starts to hang.
    pub entered: Notify,
}

impl TestGateway {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            next: Mutex::new(Intent::Create),
            entered: Notify::new(),
        })
    }

    /// The next `create_intent` call does `what`; the ones after it create again.
    pub fn next_intent(&self, what: Intent) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = what;
    }
}

#[async_trait]
impl PaymentGateway for TestGateway {
    fn provider(&self) -> &str {
        "stripe"
    }

    async fn create_intent(&self, request: &IntentRequest) -> Result<CreatedIntent, PaymentError> {
        let what = std::mem::replace(
            &mut *self.next.lock().unwrap_or_else(PoisonError::into_inner),
            Intent::Create,
        );
        match what {
            Intent::Create => Ok(CreatedIntent {
                id: format!("pi_{}", request.booking_id),
                client_secret: format!("pi_{}_secret", request.booking_id),
            }),
            Intent::Hang => {
                self.entered.notify_one();
                std::future::pending().await
            }
            Intent::Panic => panic!("the test gateway panics on purpose"),
        }
    }

    async fn cancel_intent(
        &self,
        _intent_id: &str,
        _idempotency_key: &str,
    ) -> Result<CancelOutcome, PaymentError> {
        Ok(CancelOutcome::Cancelled)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<String, PaymentError> {
        Ok(format!("re_{}", request.idempotency_key))
    }
}

/// A response, decoded.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `Idempotent-Replayed: true` was sent.
    pub replayed: bool,
    pub body: Value,
}

impl Answer {
    /// Asserts the status (and, for errors, the problem `code`); returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        if let Some(code) = code {
            assert_eq!(self.body["code"], code, "{}", self.body);
        }
        &self.body
    }
}

/// A server serving on `127.0.0.1:0` until dropped or stopped.
pub struct Served {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: HttpClient,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Builds the server from `config` (listen and admin token set here) with `overrides`,
    /// and serves it with its background workers.
    pub async fn start(config: Config, overrides: Overrides) -> Self {
        let config = Config {
            listen: "127.0.0.1:0".into(),
            admin_token: Some(ADMIN.into()),
            ..config
        };
        let app = Application::build_with(config, overrides)
            .await
            .expect("server starts");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            addr,
            client: http_client(),
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Sends a JSON request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        use http_body_util::BodyExt;
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        let bytes = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                serde_json::to_vec(v).expect("json")
            }
            None => Vec::new(),
        };
        let req = b
            .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
            .expect("request");
        let res = self.client.request(req).await.expect("server reachable");
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            replayed,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// Stops serving and waits for the workers.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}
