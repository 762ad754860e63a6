//! A local stand-in for Stripe's API, for trying payments without a Stripe account (the
//! walkthrough uses it): `POST /v1/payment_intents`, `POST /v1/payment_intents/{id}/cancel`
//! and `POST /v1/refunds`, with Stripe's idempotency-key semantics. The tests use the very
//! same fake.
//!
//! ```text
//! cargo run -p reference-server --example fake_stripe -- [listen address, default 127.0.0.1:12111]
//! ```
//!
//! Then start the server with `STRIPE_API_BASE=http://127.0.0.1:12111`.

#![allow(clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../tests/common/fake_stripe.rs"]
mod fake_stripe;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:12111".to_owned());
    let fake = fake_stripe::FakeStripe::start_on(&addr).await;
    println!("fake Stripe API at {} (Ctrl-C stops it)", fake.base_url());
    let _ = tokio::signal::ctrl_c().await;
    for r in fake.requests() {
        println!("{} idempotency-key={:?}", r.path, r.idempotency_key);
    }
}
