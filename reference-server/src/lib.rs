//! # reference-server
//!
//! The reference HTTP server over [`booking_core`]: a thin axum application with
//! bearer-token auth, an idempotency layer, RFC 9457 problem responses, an OpenAPI 3.1
//! document, Prometheus metrics and background workers. The HTTP guide is the repository's
//! `docs/http/`; `WALKTHROUGH.md` beside this crate shows it with curl.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reference_server::{Application, Config};
//! let app = Application::build(Config { listen: "127.0.0.1:0".into(), ..Config::default() }).await?;
//! println!("listening on {}", app.local_addr());
//! app.run_until_stopped().await?;
//! # Ok(()) }
//! ```
//!
//! ## Where things live
//!
//! | module | what |
//! |---|---|
//! | [`config`] | every setting, read from the environment, grouped by its user |
//! | [`state`] | [`AppState`]: the engine and what the handlers share |
//! | [`startup`] | the [`router`] with its layers, [`Application`] (store, bind, serve, workers), [`shutdown_signal`] |
//! | [`telemetry`] | the `tracing` subscriber and the request span |
//! | [`metrics`] | Prometheus metrics and their middleware |
//! | [`routes`] | one module per resource: parse, call one engine use case, render |
//! | [`model`] | the JSON shapes of requests and responses |
//! | [`problem`] | errors as RFC 9457 problem documents, [`problem::ProblemCode`] |
//! | [`auth`], [`secrets`] | bearer tokens: who calls, and tokens derived for replays |
//! | [`idempotency`] | the `Idempotency-Key` layer |
//! | [`extract`], [`cursor`] | request parsing, list cursors |
//! | [`openapi`] | the OpenAPI 3.1 document (`/openapi.json`) and its documentation-only schemas |
//! | [`stripe`] | the Stripe payment gateway |
//! | [`workers`], [`relay`], [`outbound`] | background work: the sweep and inbox, the NATS relay, outbound webhooks |
//! | [`search_cache`] | cached search pages (in-process or Redis) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod cursor;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod outbound;
pub mod problem;
pub mod relay;
pub mod routes;
pub mod search_cache;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod stripe;
pub mod telemetry;
pub mod workers;

pub use config::{Config, ConfigError};
pub use startup::{Application, BODY_LIMIT, StartupError, router, shutdown_signal};
pub use state::{AppState, Engine};
pub use telemetry::init_tracing;
