//! Create-or-reject decisions against one professional holding 1k .. 1M bookings.
//!
//! The professional's calendar is `n` confirmed 30-minute bookings, one per hour, so every
//! hour has a booked half and a free half. Requests pick an hour uniformly at random over
//! the whole calendar (so at 1M bookings most lookups miss the CPU caches):
//!
//! * a **rejected** request overlaps the booked half: `insert_booking` answers
//!   `SlotUnavailable`;
//! * an **accepted** request fills the free half exactly (back-to-back on both sides):
//!   `insert_booking` answers `Created`. It is then cancelled with `transition_booking`
//!   so the interval index keeps its size; the cancel is measured too.
//!
//! A **decision** is one `insert_booking` call answered either way. The headline workload,
//! `store/mixed`, alternates one rejected and one accepted request (plus the accepted one's
//! cancel), so its time per decision is `(reject + accept + cancel) / 2`. `store/reject`
//! and `store/accept_cancel` split the two kinds apart, and `index/*` runs the same
//! decisions against a bare `IntervalIndex` to show what the store adds.
//!
//! Every store call goes through the async trait method, driven by polling it once with a
//! no-op waker (the store's futures never suspend), so no runtime overhead is measured.
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
    Booking, BookingId, BookingStatus, ClientId, Currency, Error, Inserted, Money,
    ProfessionalId, TimeRange, Transition,
};
use booking_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

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

struct Calendar {
    store: MemoryStore,
    template: Booking,
    next_id: u128,
    rng: Rng,
    n: usize,
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
            created_at: t0(),
            updated_at: t0(),
        };
        let mut cal = Calendar {
            store: MemoryStore::new(),
            template,
            next_id: 1 << 64,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            n,
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

    fn reject(&mut self, req: &mut Booking) {
        let h = self.rng.below(self.n);
        req.range = slot(h, 10, 40);
        req.blocked = req.range;
        let r = block_on(self.store.insert_booking(black_box(req), t0()));
        debug_assert_eq!(r, Err(Error::SlotUnavailable));
        black_box(r).ok();
    }

    fn accept_and_cancel(&mut self) {
        let h = self.rng.below(self.n);
        let b = self.request(slot(h, 30, 60));
        let r = block_on(self.store.insert_booking(black_box(&b), t0()));
        debug_assert!(matches!(r, Ok(Inserted::Created(_))), "{r:?}");
        black_box(r).ok();
        let c = block_on(self.store.transition_booking(b.id, Transition::Cancel, t0()));
        debug_assert!(c.is_ok(), "{c:?}");
        black_box(c).ok();
    }
}

fn bench_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    for n in SIZES {
        let mut cal = Calendar::new(n);
        let mut req = cal.request(slot(0, 10, 40));
        group.throughput(Throughput::Elements(2));
        group.bench_function(BenchmarkId::new("mixed", n), |b| {
            b.iter(|| {
                cal.reject(&mut req);
                cal.accept_and_cancel();
            });
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("reject", n), |b| {
            b.iter(|| cal.reject(&mut req));
        });
        group.bench_function(BenchmarkId::new("accept_cancel", n), |b| {
            b.iter(|| cal.accept_and_cancel());
        });
        let pro = cal.template.professional_id;
        assert_eq!(cal.store.shard_stats(pro).1, n, "index size kept constant");
    }
    group.finish();
}

fn bench_index(c: &mut Criterion) {
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
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let id = BookingId::from_uuid(uuid::Uuid::from_u128(u128::MAX));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("reject", n), |b| {
            b.iter(|| {
                let r = slot(rng.below(n), 10, 40);
                black_box(index.first_active_conflict(black_box(&r), t0()).is_some())
            });
        });
        group.bench_function(BenchmarkId::new("accept_remove", n), |b| {
            b.iter(|| {
                let r = slot(rng.below(n), 30, 60);
                let ok = index.first_active_conflict(&r, t0()).is_none()
                    && index
                        .insert(IndexEntry {
                            id,
                            blocked: r,
                            hold_expires_at: None,
                        })
                        .is_ok();
                black_box(ok && index.remove(r.start(), id))
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3));
    targets = bench_store, bench_index
}
criterion_main!(benches);
