//! Helpers for the black-box tests that need more than the simulator.

pub mod redis_server;
