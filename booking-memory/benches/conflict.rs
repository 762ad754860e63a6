//! Create-or-reject decisions against one professional holding 1k .. 1M bookings.
//!
//! The professional's calendar is `n` confirmed 30-minute bookings, one per hour, so every
//! hour has a booked half and a free half. A **decision** is one `insert_booking` call on
//! the store, through the async trait method (polled once with a no-op waker: the store's
//! futures never suspend, so no runtime is measured), answered either way:
//!
//! * a **rejected** request overlaps the booked half of an hour: `SlotUnavailable`;
//! * an **accepted** request fills the free half exactly (back-to-back on both sides):
//!   `Created`. It is then cancelled with `transition_booking` so the interval index keeps
//!   its size `n`; the cancel is measured as part of the accept. (The store keeps cancelled
//!   bookings, as it must, so its *total* booking count grows by one per accept: after a
//!   few seconds of accepts it holds a million or more bookings at every size. The conflict
//!   set, the index, stays at `n`.)
//!
//! Two request patterns, precomputed so that no time arithmetic is measured:
//!
//! * `recent`: hours drawn from the latest 1,000 of the calendar: the upcoming weeks where
//!   new bookings really land, while older bookings lie in the past;
//! * `uniform`: hours drawn from the whole calendar, a worst case in which at 1M bookings
//!   nearly every lookup misses the CPU caches.
//!
//! Workloads, per size `n`:
//!
//! | id | one iteration | throughput counted |
//! |---|---|---|
//! | `store/alternate_{recent,uniform}` | one rejected + one accepted request (+ its cancel) | 2 decisions |
//! | `store/reject_{recent,uniform}` | one rejected request | 1 decision |
//! | `store/accept_cancel_{recent,uniform}` | one accepted request + its cancel | 1 decision |
//! | `index/reject_{recent,uniform}` | `IntervalIndex::first_active_conflict` alone | 1 |
//! | `index/accept_remove_uniform` | conflict check + `insert` + `remove` on the bare index | 1 |
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that other
//! processes on a shared machine do not inflate it.
//!
//! ```text
//! cargo bench -p booking-memory --bench conflict -- --warm-up-time 1 --measurement-time 3
//! ```

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration as StdDuration;

use booking_core::conflict::{IndexEntry, IntervalIndex};
use booking_core::store::BookingStore;
use booking_core::{
    Booking, BookingId, BookingStatus, ClientId, Currency, Error, Inserted, Money, ProfessionalId,
    TimeRange, Transition,
};
use booking_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`), so that other
/// processes competing for the machine's cores do not inflate the figures the way
/// wall-clock time would (they still share the caches). Wall-clock time off Linux.
struct CpuTime {
    #[cfg(not(target_os = "linux"))]
    epoch: std::time::Instant,
}

impl CpuTime {
    fn new() -> Self {
        Self {
            #[cfg(not(target_os = "linux"))]
            epoch: std::time::Instant::now(),
        }
    }

    #[cfg(target_os = "linux")]
    fn now(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let ns = i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
        u64::try_from(ns).unwrap_or(0)
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        self.now()
    }

    fn end(&self, start: u64) -> u64 {
        self.now().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

/// Formats nanoseconds like criterion's wall-clock formatter, throughput as elements/s.
struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, ns: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per = match t {
            Throughput::Elements(e) => *e as f64,
            _ => 1.0,
        };
        let rate = per * 1e9 / ns;
        let (div, unit) = if rate < 1e3 {
            (1.0, " elem/s")
        } else if rate < 1e6 {
            (1e3, "Kelem/s")
        } else {
            (1e6, "Melem/s")
        };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v / div);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// Polls `f` once; the store's futures are always ready at the first poll.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStore future suspended"),
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0)
        .single()
        .expect("valid instant")
}

/// `[t0 + hour h + from min, t0 + hour h + to min)`.
fn slot(h: usize, from: i64, to: i64) -> TimeRange {
    let base = t0() + Duration::hours(h as i64);
    TimeRange::new(base + Duration::minutes(from), base + Duration::minutes(to)).expect("range")
}

/// Deterministic xorshift64*, to pick hours without measuring an RNG of note.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Where requests land.
#[derive(Clone, Copy)]
enum Pattern {
    /// Uniformly over the whole calendar: at 1M bookings most lookups miss the caches.
    Uniform,
    /// Among the latest 1,000 hours: the upcoming weeks where new bookings really land,
    /// while older bookings sit in the past.
    Recent,
}

/// How many precomputed requests a workload cycles through (2^14).
const PICKS: usize = 1 << 14;

/// Request ranges computed before measuring, so time arithmetic is not measured.
struct Requests {
    reject: Vec<TimeRange>,
    accept: Vec<TimeRange>,
    next: usize,
}

impl Requests {
    fn new(n: usize, pattern: Pattern) -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (lo, span) = match pattern {
            Pattern::Uniform => (0, n),
            Pattern::Recent => (n.saturating_sub(1_000), n.min(1_000)),
        };
        let hours: Vec<usize> = (0..PICKS).map(|_| lo + rng.below(span)).collect();
        Self {
            // Overlaps the booked half of the hour.
            reject: hours.iter().map(|h| slot(*h, 10, 40)).collect(),
            // Fills the free half exactly.
            accept: hours.iter().map(|h| slot(*h, 30, 60)).collect(),
            next: 0,
        }
    }

    fn take(&mut self) -> (TimeRange, TimeRange) {
        self.next = (self.next + 1) % PICKS;
        (self.reject[self.next], self.accept[self.next])
    }
}

struct Calendar {
    store: MemoryStore,
    template: Booking,
    next_id: u128,
}

impl Calendar {
    fn new(n: usize) -> Self {
        let pro = ProfessionalId::from_uuid(uuid::Uuid::from_u128(1));
        let template = Booking {
            id: BookingId::from_uuid(uuid::Uuid::from_u128(0)),
            professional_id: pro,
            client_id: ClientId::from_uuid(uuid::Uuid::from_u128(2)),
            range: slot(0, 0, 30),
            blocked: slot(0, 0, 30),
            status: BookingStatus::Confirmed,
            price: Money {
                amount_cents: 3_000,
                currency: Currency::parse("usd").expect("currency"),
            },
            hold_expires_at: None,
            request_ref: None,
            payment: None,
            created_at: t0(),
            updated_at: t0(),
        };
        let mut cal = Calendar {
            store: MemoryStore::new(),
            template,
            next_id: 1 << 64,
        };
        for h in 0..n {
            let b = cal.request(slot(h, 0, 30));
            let r = block_on(cal.store.insert_booking(&b, t0()));
            assert!(matches!(r, Ok(Inserted::Created(_))), "populate: {r:?}");
        }
        assert_eq!(cal.store.shard_stats(pro), (n, n));
        cal
    }

    /// A request for `range` with a fresh id (a counter: no RNG on the measured path).
    fn request(&mut self, range: TimeRange) -> Booking {
        self.next_id += 1;
        let mut b = self.template.clone();
        b.id = BookingId::from_uuid(uuid::Uuid::from_u128(self.next_id));
        b.range = range;
        b.blocked = range;
        b
    }

    /// One rejected decision.
    fn reject(&mut self, req: &mut Booking, range: TimeRange) {
        req.range = range;
        req.blocked = range;
        let r = block_on(self.store.insert_booking(black_box(req), t0()));
        debug_assert_eq!(r, Err(Error::SlotUnavailable));
        black_box(r).ok();
    }

    /// One accepted decision, then the cancel that frees the slot again.
    fn accept_and_cancel(&mut self, range: TimeRange) {
        let b = self.request(range);
        let r = block_on(self.store.insert_booking(black_box(&b), t0()));
        debug_assert!(matches!(r, Ok(Inserted::Created(_))), "{r:?}");
        black_box(r).ok();
        let c = block_on(
            self.store
                .transition_booking(b.id, Transition::Cancel, t0()),
        );
        debug_assert!(c.is_ok(), "{c:?}");
        black_box(c).ok();
    }
}

fn bench_store(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("store");
    for n in SIZES {
        let mut cal = Calendar::new(n);
        let mut req = cal.request(slot(0, 10, 40));
        let mut uniform = Requests::new(n, Pattern::Uniform);
        let mut recent = Requests::new(n, Pattern::Recent);
        group.throughput(Throughput::Elements(2));
        group.bench_function(BenchmarkId::new("alternate_recent", n), |b| {
            b.iter(|| {
                let (no, yes) = recent.take();
                cal.reject(&mut req, no);
                cal.accept_and_cancel(yes);
            });
        });
        group.bench_function(BenchmarkId::new("alternate_uniform", n), |b| {
            b.iter(|| {
                let (no, yes) = uniform.take();
                cal.reject(&mut req, no);
                cal.accept_and_cancel(yes);
            });
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("reject_recent", n), |b| {
            b.iter(|| {
                let (no, _) = recent.take();
                cal.reject(&mut req, no);
            });
        });
        group.bench_function(BenchmarkId::new("reject_uniform", n), |b| {
            b.iter(|| {
                let (no, _) = uniform.take();
                cal.reject(&mut req, no);
            });
        });
        group.bench_function(BenchmarkId::new("accept_cancel_recent", n), |b| {
            b.iter(|| {
                let (_, yes) = recent.take();
                cal.accept_and_cancel(yes);
            });
        });
        group.bench_function(BenchmarkId::new("accept_cancel_uniform", n), |b| {
            b.iter(|| {
                let (_, yes) = uniform.take();
                cal.accept_and_cancel(yes);
            });
        });
        let pro = cal.template.professional_id;
        assert_eq!(cal.store.shard_stats(pro).1, n, "index size kept constant");
    }
    group.finish();
}

fn bench_index(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("index");
    for n in SIZES {
        let mut index = IntervalIndex::default();
        for h in 0..n {
            let e = IndexEntry {
                id: BookingId::from_uuid(uuid::Uuid::from_u128(h as u128)),
                blocked: slot(h, 0, 30),
                hold_expires_at: None,
            };
            index.insert(e).expect("populate index");
        }
        let mut uniform = Requests::new(n, Pattern::Uniform);
        let mut recent = Requests::new(n, Pattern::Recent);
        let id = BookingId::from_uuid(uuid::Uuid::from_u128(u128::MAX));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("reject_uniform", n), |b| {
            b.iter(|| {
                let (no, _) = uniform.take();
                black_box(index.first_active_conflict(black_box(&no), t0()).is_some())
            });
        });
        group.bench_function(BenchmarkId::new("reject_recent", n), |b| {
            b.iter(|| {
                let (no, _) = recent.take();
                black_box(index.first_active_conflict(black_box(&no), t0()).is_some())
            });
        });
        group.bench_function(BenchmarkId::new("accept_remove_uniform", n), |b| {
            b.iter(|| {
                let (_, yes) = uniform.take();
                let ok = index.first_active_conflict(&yes, t0()).is_none()
                    && index
                        .insert(IndexEntry {
                            id,
                            blocked: yes,
                            hold_expires_at: None,
                        })
                        .is_ok();
                black_box(ok && index.remove(yes.start(), id))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(CpuTime::new())
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = bench_store, bench_index
}
criterion_main!(benches);
