//! When to retry a webhook that failed, when to give up, and how long to remember one that
//! succeeded.
//!
//! [`RetryPolicy::next`] is exponential backoff with *full jitter*, as in the AWS
//! Architecture Blog post "Exponential Backoff And Jitter" (Marc Brooker, 2015):
//!
//! ```text
//! ceiling(n) = min(cap, base * 2^(n - 1))      n = failed attempts so far (n >= 1)
//! delay      = random_between(0, ceiling(n))
//! ```
//!
//! Full jitter spreads the retries of many events that failed together (a database restart)
//! over the whole window instead of sending them back in synchronised waves. After
//! [`RetryPolicy::max_attempts`] failed attempts the event is dead-lettered ([`Next::DeadLetter`]):
//! kept, but no longer retried, for a human to look at.
//!
//! The policy is pure: the randomness is an argument (a uniform `f64` in `[0, 1)` from the
//! caller's RNG), and so is the current instant in [`RetryPolicy::next_at`], so every decision
//! can be replayed in a test. Every method is total: any attempt count, any duration (even a
//! negative one) and any `random` (even NaN) gives an answer without panicking or overflowing;
//! arithmetic saturates.
//!
//! The same shape serves outbound deliveries ("retried with exponential backoff and jitter for
//! 24 h"): set [`RetryPolicy::give_up_after`] and call [`RetryPolicy::next_at`] with the instant
//! of the first attempt.
//!
//! ```
//! use booking_core::webhook::{Next, RetryPolicy};
//! use chrono::Duration;
//!
//! let policy = RetryPolicy::default();
//! // After the first failure, wait somewhere in [0, 2 s).
//! assert_eq!(policy.next(1, 0.5), Next::RetryIn(Duration::seconds(1)));
//! // After the last allowed attempt, stop.
//! assert_eq!(policy.next(policy.max_attempts, 0.5), Next::DeadLetter);
//! ```

use chrono::{DateTime, Duration, Utc};

/// What to do with an event after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again once this delay (never negative, never above [`RetryPolicy::cap`]) has passed.
    RetryIn(Duration),
    /// Stop retrying: move the event to the dead letters.
    DeadLetter,
}

/// Backoff, attempt limit, optional deadline and retention of processed events.
///
/// Fields are public so a deployment can tune them; every combination is accepted (a
/// non-positive `base` or `cap` means "retry immediately", `max_attempts == 0` dead-letters
/// at once).
///
/// # Defaults
///
/// [`RetryPolicy::default`] is meant for processing inbound Stripe events from the inbox:
///
/// * `base` 2 s, `cap` 15 min: the first retries come quickly (a lock timeout, a
///   serialization failure), later ones at most every 15 minutes, so the backlog after an
///   outage drains soon after it ends without hammering a database that is still down.
/// * `max_attempts` 20: the 19 delays between them have ceilings summing to about 2.8 h
///   (an expected total wait of about 1.4 h), which rides out a restart or a failover. An
///   event still failing after that is most likely a bug that a retry will not fix, and
///   Stripe keeps redelivering it for three days anyway.
/// * `give_up_after` none: the attempt count alone bounds inbox processing.
/// * `retention` 30 days: ten times Stripe's three-day redelivery window, and as long as
///   Stripe's events API lists events, so any redelivery or replay of a processed event is
///   recognised as a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's delay; it doubles with each further failure.
    pub base: Duration,
    /// The largest ceiling, hence the longest delay between two attempts.
    pub cap: Duration,
    /// The number of failed attempts (the first one included) after which the event is
    /// dead-lettered.
    pub max_attempts: u32,
    /// If set, no attempt is scheduled later than this long after the first attempt
    /// (see [`RetryPolicy::next_at`]).
    pub give_up_after: Option<Duration>,
    /// How long a processed event id is remembered, so a redelivery is recognised as a
    /// duplicate (see [`RetryPolicy::retention_cutoff`]).
    pub retention: Duration,
}

/// See [`RetryPolicy`]'s "Defaults" for the reasons behind each number.
impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::seconds(2),
            cap: Duration::minutes(15),
            max_attempts: 20,
            give_up_after: None,
            retention: Duration::days(30),
        }
    }
}

/// The largest shift applied to `base`: `2^62` still fits an `i64` multiplier.
const MAX_DOUBLINGS: u32 = 62;

impl RetryPolicy {
    /// The ceiling of the delay after `attempts_so_far` failed attempts:
    /// `min(cap, base * 2^(attempts_so_far - 1))`, in whole milliseconds, never negative.
    /// `0` attempts is read as `1`.
    pub fn ceiling(&self, attempts_so_far: u32) -> Duration {
        let base = self.base.num_milliseconds().max(0);
        let cap = self.cap.num_milliseconds().max(0);
        let doublings = attempts_so_far.saturating_sub(1).min(MAX_DOUBLINGS);
        let grown = base.saturating_mul(1_i64 << doublings);
        Duration::milliseconds(grown.min(cap))
    }

    /// What to do after `attempts_so_far` failed attempts, counting attempts only
    /// ([`RetryPolicy::give_up_after`] is ignored; see [`RetryPolicy::next_at`]).
    ///
    /// `random` is a uniform sample from `[0, 1)`; values outside are clamped into it and
    /// NaN counts as `0`. The delay is `floor(random * ceiling)` milliseconds.
    ///
    /// ```
    /// use booking_core::webhook::{Next, RetryPolicy};
    /// use chrono::Duration;
    ///
    /// let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
    /// assert_eq!(policy.next(2, 0.75), Next::RetryIn(Duration::seconds(3))); // of [0, 4 s)
    /// assert_eq!(policy.next(3, 0.75), Next::DeadLetter);
    /// ```
    pub fn next(&self, attempts_so_far: u32, random: f64) -> Next {
        if attempts_so_far >= self.max_attempts {
            return Next::DeadLetter;
        }
        Next::RetryIn(jittered(self.ceiling(attempts_so_far), random))
    }

    /// Like [`RetryPolicy::next`], and also honours [`RetryPolicy::give_up_after`], measured
    /// from `first_attempt_at`: the event is dead-lettered once `now` has reached the deadline,
    /// and a retry that would land after it is moved to the deadline itself, so the last
    /// attempt happens exactly when the window closes.
    ///
    /// ```
    /// use booking_core::webhook::{Next, RetryPolicy};
    /// use chrono::{Duration, TimeZone, Utc};
    ///
    /// // Outbound deliveries: retry for 24 hours, however many attempts that takes.
    /// let policy = RetryPolicy {
    ///     base: Duration::seconds(30),
    ///     cap: Duration::hours(2),
    ///     max_attempts: u32::MAX,
    ///     give_up_after: Some(Duration::hours(24)),
    ///     ..RetryPolicy::default()
    /// };
    /// let first = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
    /// let late = first + Duration::hours(23) + Duration::minutes(30);
    /// assert_eq!(policy.next_at(12, first, late, 0.99), Next::RetryIn(Duration::minutes(30)));
    /// assert_eq!(policy.next_at(13, first, first + Duration::hours(24), 0.0), Next::DeadLetter);
    /// ```
    pub fn next_at(
        &self,
        attempts_so_far: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
        random: f64,
    ) -> Next {
        let delay = match self.next(attempts_so_far, random) {
            Next::DeadLetter => return Next::DeadLetter,
            Next::RetryIn(delay) => delay,
        };
        let Some(window) = self.give_up_after else {
            return Next::RetryIn(delay);
        };
        // The span between two `DateTime`s always fits a `Duration`; only subtracting it from
        // a huge window can overflow, and then plenty of time is left.
        let elapsed = now.signed_duration_since(first_attempt_at);
        let left = window.checked_sub(&elapsed).unwrap_or(Duration::MAX);
        if left <= Duration::zero() {
            Next::DeadLetter
        } else {
            Next::RetryIn(delay.min(left))
        }
    }

    /// Processed events recorded before this instant may be forgotten: `now - retention`
    /// (the earliest representable instant if that underflows; `now` for a negative
    /// retention).
    pub fn retention_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.retention.max(Duration::zero()))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// `floor(random * ceiling)` milliseconds, with `random` clamped into `[0, 1)`.
fn jittered(ceiling: Duration, random: f64) -> Duration {
    let ceiling_ms = ceiling.num_milliseconds().max(0);
    let random = if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    };
    // `as` saturates on overflow; the `min` keeps the result below the ceiling even where
    // `f64` rounds a large ceiling up, and `random == 1.0` (clamped) at the ceiling.
    let delay_ms = (ceiling_ms as f64 * random) as i64;
    Duration::milliseconds(delay_ms.clamp(0, ceiling_ms))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::seconds(1),
            cap: Duration::seconds(60),
            max_attempts: 10,
            give_up_after: None,
            retention: Duration::days(30),
        }
    }

    fn at(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0)
            .single()
            .expect("valid test instant")
    }

    #[test]
    fn ceiling_doubles_from_base_then_stops_at_cap() {
        let p = policy();
        let ceilings: Vec<i64> = (1..=9).map(|n| p.ceiling(n).num_seconds()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Zero attempts is read as one: the first retry's ceiling is `base`, not `base / 2`.
        assert_eq!(p.ceiling(0), Duration::seconds(1));
    }

    #[test]
    fn full_jitter_scales_the_ceiling_by_random() {
        let p = policy();
        assert_eq!(p.next(3, 0.0), Next::RetryIn(Duration::zero()));
        assert_eq!(p.next(3, 0.5), Next::RetryIn(Duration::seconds(2)));
        assert_eq!(p.next(3, 0.25), Next::RetryIn(Duration::seconds(1)));
        // Just below 1: the ceiling itself is never reached.
        assert_eq!(
            p.next(3, 0.999_999),
            Next::RetryIn(Duration::milliseconds(3999))
        );
    }

    #[test]
    fn out_of_range_random_is_clamped() {
        let p = policy();
        assert_eq!(p.next(2, -3.0), Next::RetryIn(Duration::zero()));
        assert_eq!(p.next(2, f64::NAN), Next::RetryIn(Duration::zero()));
        assert_eq!(p.next(2, 7.0), Next::RetryIn(Duration::seconds(2)));
        assert_eq!(
            p.next(2, f64::INFINITY),
            Next::RetryIn(Duration::seconds(2))
        );
    }

    #[test]
    fn dead_letters_exactly_after_max_attempts() {
        let p = policy();
        assert!(matches!(p.next(9, 0.5), Next::RetryIn(_)));
        assert_eq!(p.next(10, 0.5), Next::DeadLetter);
        assert_eq!(p.next(u32::MAX, 0.5), Next::DeadLetter);
        let none = RetryPolicy {
            max_attempts: 0,
            ..p
        };
        assert_eq!(none.next(0, 0.5), Next::DeadLetter);
    }

    #[test]
    fn huge_and_negative_settings_saturate() {
        let p = RetryPolicy {
            base: Duration::MAX,
            cap: Duration::MAX,
            max_attempts: u32::MAX,
            ..policy()
        };
        let Next::RetryIn(d) = p.next(u32::MAX - 1, 0.999_999) else {
            panic!("max_attempts not reached");
        };
        assert!(d > Duration::zero() && d <= p.cap);
        let negative = RetryPolicy {
            base: Duration::seconds(-5),
            cap: Duration::seconds(-1),
            ..policy()
        };
        assert_eq!(negative.next(4, 0.9), Next::RetryIn(Duration::zero()));
    }

    #[test]
    fn default_documents_its_numbers() {
        let p = RetryPolicy::default();
        assert_eq!(p.base, Duration::seconds(2));
        assert_eq!(p.cap, Duration::minutes(15));
        assert_eq!(p.max_attempts, 20);
        assert_eq!(p.give_up_after, None);
        assert_eq!(p.retention, Duration::days(30));
        // "the ceilings sum to about 2.8 h"
        let total: i64 = (1..p.max_attempts)
            .map(|n| p.ceiling(n).num_seconds())
            .sum();
        assert_eq!(total, 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512 + 10 * 900);
    }

    #[test]
    fn deadline_clamps_the_last_retry_and_then_dead_letters() {
        let p = RetryPolicy {
            max_attempts: u32::MAX,
            give_up_after: Some(Duration::seconds(100)),
            ..policy()
        };
        let first = at(1_000);
        // Far from the deadline: the plain backoff.
        assert_eq!(
            p.next_at(7, first, at(1_010), 0.5),
            Next::RetryIn(Duration::seconds(30))
        );
        // 10 s left: a 30 s delay is cut to 10 s.
        assert_eq!(
            p.next_at(7, first, at(1_090), 0.5),
            Next::RetryIn(Duration::seconds(10))
        );
        // At and past the deadline: stop.
        assert_eq!(p.next_at(7, first, at(1_100), 0.5), Next::DeadLetter);
        assert_eq!(p.next_at(7, first, at(5_000), 0.0), Next::DeadLetter);
        // Without a deadline, time does not matter.
        let plain = RetryPolicy {
            give_up_after: None,
            ..p
        };
        assert_eq!(
            plain.next_at(7, first, at(5_000), 0.5),
            Next::RetryIn(Duration::seconds(30))
        );
        // The attempt count still applies under a deadline.
        let few = RetryPolicy {
            max_attempts: 3,
            ..p
        };
        assert_eq!(few.next_at(3, first, at(1_001), 0.5), Next::DeadLetter);
    }

    #[test]
    fn retention_cutoff_is_now_minus_retention_and_saturates() {
        let p = policy();
        assert_eq!(
            p.retention_cutoff(at(40 * 86_400)),
            at(10 * 86_400),
            "30 days before"
        );
        let forever = RetryPolicy {
            retention: Duration::MAX,
            ..p
        };
        assert_eq!(forever.retention_cutoff(at(0)), DateTime::<Utc>::MIN_UTC);
        let negative = RetryPolicy {
            retention: Duration::seconds(-10),
            ..p
        };
        assert_eq!(negative.retention_cutoff(at(50)), at(50));
    }

    fn any_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            -1_000_i64..10_000_000,
            -1_000_i64..100_000_000,
            0_u32..100,
            proptest::option::of(0_i64..1_000_000),
        )
            .prop_map(|(base, cap, max_attempts, window)| RetryPolicy {
                base: Duration::milliseconds(base),
                cap: Duration::milliseconds(cap),
                max_attempts,
                give_up_after: window.map(Duration::seconds),
                retention: Duration::days(30),
            })
    }

    proptest! {
        #[test]
        fn delay_is_within_zero_and_cap(p in any_policy(), n in any::<u32>(), r in any::<f64>()) {
            if let Next::RetryIn(d) = p.next(n, r) {
                prop_assert!(d >= Duration::zero());
                prop_assert!(d <= p.cap.max(Duration::zero()));
                prop_assert!(d <= p.ceiling(n));
            }
        }

        #[test]
        fn ceiling_doubles_until_the_cap(p in any_policy(), n in 1_u32..200) {
            let (now, next) = (p.ceiling(n), p.ceiling(n + 1));
            let cap = Duration::milliseconds(p.cap.num_milliseconds().max(0));
            prop_assert!(next >= now);
            prop_assert!(next <= cap);
            if next < cap {
                prop_assert_eq!(next, now * 2);
            }
            if now * 2 <= cap {
                prop_assert_eq!(next, now * 2);
            }
        }

        #[test]
        fn dead_letter_iff_max_attempts_reached(
            p in any_policy(),
            n in any::<u32>(),
            r in 0.0_f64..1.0,
        ) {
            prop_assert_eq!(p.next(n, r) == Next::DeadLetter, n >= p.max_attempts);
        }

        #[test]
        fn next_at_never_schedules_past_the_deadline(
            p in any_policy(),
            n in any::<u32>(),
            elapsed in -1_000_i64..2_000_000,
            r in any::<f64>(),
        ) {
            let first = at(1_700_000_000);
            let now = first + Duration::seconds(elapsed);
            match (p.next_at(n, first, now, r), p.give_up_after) {
                (Next::RetryIn(d), Some(window)) => {
                    prop_assert!(d >= Duration::zero());
                    prop_assert!(now + d <= first + window);
                    prop_assert!(now < first + window);
                }
                (Next::RetryIn(_), None) => prop_assert!(n < p.max_attempts),
                (Next::DeadLetter, window) => prop_assert!(
                    n >= p.max_attempts || window.is_some_and(|w| now >= first + w)
                ),
            }
        }
    }
}
