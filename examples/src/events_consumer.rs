//! A consumer of the booking engine's domain events, through NATS JetStream: the seam other
//! modules (payments, notifications, analytics) use instead of the bookings tables.
//!
//! The reference server's relay publishes every booking change to the stream `BOOKINGS`,
//! subject `bookings.<event_type>`, header `Nats-Msg-Id` = the event id; delivery is at
//! least once, so a consumer deduplicates by event id. This one keeps a durable pull
//! consumer (it resumes where it stopped), prints each event and acknowledges it.
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p reference-server &   # the server relays
//! cargo run -p examples --bin events_consumer -- [--max N]
//! ```

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut args = std::env::args().skip(1);
    let mut max = usize::MAX;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--max", Some(n)) => max = n.parse()?,
            _ => return Err("usage: events_consumer [--max N]".into()),
        }
    }
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url.as_str())
        .await?;
    let js = jetstream::new(client);
    let stream = js.get_stream("BOOKINGS").await?;
    let consumer = stream
        .get_or_create_consumer(
            "example-events-consumer",
            pull::Config {
                durable_name: Some("example-events-consumer".into()),
                filter_subject: "bookings.>".into(),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let mut seen = HashSet::new();
    let mut handled = 0;
    while handled < max {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.map_err(|e| e.to_string())?;
        let event: serde_json::Value = serde_json::from_slice(&message.payload)?;
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        if seen.insert(id.clone()) {
            println!(
                "{} {} booking {} ({})",
                event["occurred_at"].as_str().unwrap_or("?"),
                event["type"].as_str().unwrap_or("?"),
                event["booking_id"].as_str().unwrap_or("?"),
                event["data"]["booking"]["status"].as_str().unwrap_or("?"),
            );
        } else {
            println!("duplicate delivery of {id} ignored");
        }
        message.ack().await.map_err(|e| e.to_string())?;
        handled += 1;
    }
    Ok(())
}
