#![no_main]
//! Fuzz target: see `booking_core::testing::fuzz::stripe_event`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    booking_core::testing::fuzz::stripe_event(data);
});
