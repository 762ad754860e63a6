//! Search latency of the memory store at scale (a benchmark, not a test).
//!
//! ```sh
//! cargo run --release -p booking-bench --bin memory_search_load -- 1000000 32
//! ```
//!
//! Seeds `n` professionals over 300 cities like `booking-postgres/bench/search_seed.sql`
//! (deterministic), then `clients` concurrent tasks run a mix of queries for a few seconds:
//! category + 10 km radius + rate range (first page, and following the cursor to deeper
//! pages), text, and rate-ordered pages. Prints p50/p99/max per query kind of the time each
//! `search_professionals` call takes.
//!
//! The tasks run on a Tokio runtime with one worker thread per core, as a server embedding
//! the store runs (Tokio's default): the store's calls do not wait for anything, so with
//! more threads than cores the figures would be the operating system preempting a thread in
//! the middle of a search, not the search. `MEMORY_SEARCH_THREADS` sets another count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use booking_bench::{CATEGORIES, percentile};
use booking_core::search::{GeoFilter, TextQuery};
use booking_core::store::{DirectoryStore, ProfessionalQuery};
use booking_core::{Category, GeoPoint, Professional, ProfessionalId, TokenHash};
use booking_memory::MemoryStore;
use chrono::Utc;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n
    }
    fn normal(&mut self) -> f64 {
        (-2.0 * (1.0 - self.unit()).ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

const FIRST: [&str; 20] = [
    "Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hanna", "Ivan", "Julia", "Karl",
    "Lena", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sven", "Tara", "Zoë",
];
const LAST: [&str; 16] = [
    "Schmidt", "Müller", "Smith", "Garcia", "Rossi", "Dubois", "Kowalski", "Novak", "Jensen",
    "Silva", "Yilmaz", "Popescu", "Nagy", "Horvat", "Ivanova", "Berg",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let threads = std::env::var("MEMORY_SEARCH_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()
        .expect("runtime");
    let store = Arc::new(MemoryStore::new());
    let mut rng = Rng(42);
    let cities: Vec<(f64, f64)> = (0..300)
        .map(|i| {
            if i == 0 {
                (52.520008, 13.404954)
            } else {
                (rng.unit() * 120.0 - 55.0, rng.unit() * 360.0 - 180.0)
            }
        })
        .collect();
    let seeded = Instant::now();
    runtime.block_on(async {
        let now = Utc::now();
        for i in 0..n {
            let city = ((300.0 * rng.unit().powi(2)) as usize).min(299);
            let (clat, clng) = cities[city];
            let lat = (clat + 0.08 * rng.normal()).clamp(-90.0, 90.0);
            let mut lng = clng + 0.12 * rng.normal();
            lng = (lng + 540.0).rem_euclid(360.0) - 180.0;
            let p = Professional {
                id: ProfessionalId::new_at(now),
                name: format!("{} {}", FIRST[rng.below(20)], LAST[rng.below(16)]),
                category: Category::parse(CATEGORIES[rng.below(20)]).expect("slug"),
                location: GeoPoint::new(lat, lng).expect("point"),
                hourly_rate_cents: 2_000 + 500 * rng.below(37) as i64,
                currency: booking_core::Currency::parse("eur").expect("eur"),
                timezone: chrono_tz::UTC,
                is_active: rng.unit() < 0.95,
                created_at: now,
                updated_at: now,
            };
            store
                .insert_professional(&p, TokenHash::of(&format!("t{i}")), None)
                .await
                .expect("insert");
        }
    });
    eprintln!("seeded {n} in {:?}", seeded.elapsed());

    let kinds = ["geo+category+rate", "geo deep pages", "text", "rate order"];
    let run_for = Duration::from_secs(5);
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = store.clone();
            let cities = cities.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(1000 + c as u64);
                let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); 4];
                let start = Instant::now();
                while start.elapsed() < run_for {
                    let kind = rng.below(4);
                    let city = ((300.0 * rng.unit().powi(2)) as usize).min(299);
                    let (clat, clng) = cities[city];
                    let mut q = ProfessionalQuery::all(20);
                    match kind {
                        0 | 1 => {
                            q.near = Some(GeoFilter::new(clat, clng, 10.0).expect("filter"));
                            if kind == 0 {
                                q.category =
                                    Some(Category::parse(CATEGORIES[rng.below(20)]).expect("c"));
                                q.min_rate_cents = Some(4_000);
                                q.max_rate_cents = Some(12_000);
                            }
                        }
                        2 => {
                            let text = format!(
                                "{} {}",
                                FIRST[rng.below(20)].to_lowercase(),
                                &LAST[rng.below(16)][..4]
                            );
                            q.text = Some(TextQuery::parse(&text).expect("text"));
                        }
                        _ => {
                            q.category =
                                Some(Category::parse(CATEGORIES[rng.below(20)]).expect("c"));
                        }
                    }
                    // First page, then up to four more pages through the cursor.
                    let pages = if kind == 1 { 5 } else { 1 };
                    for _ in 0..pages {
                        let t = Instant::now();
                        let page = store.search_professionals(&q).await.expect("search");
                        lat[kind].push(t.elapsed());
                        match page.next_cursor {
                            Some(c) => q.after = Some(c),
                            None => break,
                        }
                    }
                }
                lat
            }));
        }
        let mut all: Vec<Vec<Duration>> = vec![Vec::new(); 4];
        for t in tasks {
            for (k, v) in t.await.expect("task").into_iter().enumerate() {
                all[k].extend(v);
            }
        }
        all
    });
    println!(
        "memory store, {n} professionals, {clients} concurrent clients on {threads} worker \
         threads, {run_for:?}"
    );
    println!("| query | count | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (k, mut v) in results.into_iter().enumerate() {
        v.sort();
        println!(
            "| {} | {} | {:?} | {:?} | {:?} |",
            kinds[k],
            v.len(),
            percentile(&v, 0.50),
            percentile(&v, 0.99),
            percentile(&v, 1.0)
        );
    }
}
