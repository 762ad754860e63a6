//! The whole booking-core conformance suite (races and the state-machine model included)
//! against PostgreSQL, each check on a fresh database.

mod common;

booking_core::conformance_suite!(common::PgFactory);
