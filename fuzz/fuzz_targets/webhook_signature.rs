#![no_main]
//! Fuzz target: see `booking_core::testing::fuzz::webhook_signature`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    booking_core::testing::fuzz::webhook_signature(data);
});
