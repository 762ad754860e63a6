//! The race harness: every racer is built first, each waits on its own thread at one
//! barrier, and all are released at once; each records when it ran, so a check can assert
//! that attempts really overlapped instead of running one after the other.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// One racer: a future built (with all its setup done) before the race starts.
pub(super) type Racer<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Boxes a racer.
pub(super) fn racer<T, F>(f: F) -> Racer<T>
where
    F: Future<Output = T> + Send + 'static,
{
    Box::pin(f)
}

/// What a race gave: each racer's result, in the order the racers were given, and how many
/// attempts overlapped another attempt in time.
#[derive(Debug)]
pub(super) struct Raced<T> {
    /// The racers' results, in their order.
    pub(super) results: Vec<T>,
    /// How many attempts ran while at least one other attempt was running.
    pub(super) overlapped: usize,
}

/// Runs `racers` on threads of their own (the runtime's blocking pool, each driving its
/// racer with [`Handle::block_on`](tokio::runtime::Handle::block_on)), released together by
/// a [`Barrier`] and a gate once every thread waits on them. A store whose futures never
/// suspend still races: its critical sections run on different threads at the same time.
pub(super) async fn race<T: Send + 'static>(racers: Vec<Racer<T>>) -> Raced<T> {
    // Every racer, and the starter, wait at the barrier: then every racer is built and on
    // its thread. Racers spin on the gate (a barrier wakes its waiters one by one, slower
    // than a store's critical section) until the starter opens it.
    let barrier = Arc::new(Barrier::new(racers.len() + 1));
    let gate = Arc::new(AtomicBool::new(false));
    let handle = tokio::runtime::Handle::current();
    let threads: Vec<_> = racers
        .into_iter()
        .map(|fut| {
            let (barrier, gate) = (Arc::clone(&barrier), Arc::clone(&gate));
            let handle = handle.clone();
            tokio::task::spawn_blocking(move || {
                barrier.wait();
                while !gate.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                let start = Instant::now();
                let result = handle.block_on(fut);
                (result, start, Instant::now())
            })
        })
        .collect();
    let starter = tokio::task::spawn_blocking(move || {
        barrier.wait();
        std::thread::sleep(std::time::Duration::from_micros(500));
        gate.store(true, Ordering::Release);
    });
    let mut runs = Vec::with_capacity(threads.len());
    for t in threads {
        runs.push(t.await.expect("a racer panicked"));
    }
    starter.await.expect("the starter");
    let spans: Vec<(Instant, Instant)> = runs.iter().map(|(_, s, e)| (*s, *e)).collect();
    Raced {
        results: runs.into_iter().map(|(r, _, _)| r).collect(),
        overlapped: overlapping(&spans),
    }
}

/// How many of `spans` overlap at least one other span.
fn overlapping(spans: &[(Instant, Instant)]) -> usize {
    spans
        .iter()
        .enumerate()
        .filter(|(i, (s, e))| {
            spans
                .iter()
                .enumerate()
                .any(|(j, (s2, e2))| j != *i && s < e2 && s2 < e)
        })
        .count()
}

/// The most rounds [`keep_racing`] runs while waiting for attempts that overlap.
const MAX_ROUNDS: usize = 1000;

/// Runs `round` (one race on fresh state, asserting its outcome and returning how many of
/// its attempts overlapped) at least `min_rounds` times and then until at least two
/// attempts overlapped in time; fails if they never did. On a busy machine a store whose
/// critical sections take microseconds may need a few rounds before two of them collide.
pub(super) async fn keep_racing<F, Fut>(what: &str, min_rounds: usize, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut overlapped = 0;
    let mut rounds = 0;
    while rounds < min_rounds || (overlapped < 2 && rounds < MAX_ROUNDS) {
        overlapped += round().await;
        rounds += 1;
    }
    assert!(
        overlapped >= 2,
        "{what}: no two attempts overlapped in time in {rounds} rounds; the race did not race"
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn overlap_counts_attempts_that_ran_together() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        assert_eq!(overlapping(&[(at(0), at(10)), (at(10), at(20))]), 0);
        assert_eq!(
            overlapping(&[(at(0), at(10)), (at(5), at(20)), (at(30), at(40))]),
            2
        );
    }

    #[test]
    fn racers_on_threads_overlap() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let raced = runtime.block_on(race(
            (0..4)
                .map(|_| racer(async { std::thread::sleep(Duration::from_millis(50)) }))
                .collect(),
        ));
        assert_eq!(raced.results.len(), 4);
        assert_eq!(raced.overlapped, 4);
    }
}
