//! hookbox end to end: the real server over real TLS on loopback, real wasm
//! components built from source. One test binary, a module per area.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod cache;
mod claims;
mod conformance;
mod deadlines;
mod directory;
mod events;
mod fairness;
mod faults;
mod instance_mode;
mod misbehave;
mod oauth;
mod okta;
mod process;
mod recycle;
mod reload;
