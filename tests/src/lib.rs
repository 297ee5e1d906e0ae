//! Support for hookbox's end-to-end tests: a test CA, the real server started
//! on `127.0.0.1:0` from a real config file, and an HTTPS client (HTTP/1.1
//! and HTTP/2) that trusts only that CA.
//!
//! The wasm guests are built from source by `build.rs`, once per build.

#![allow(clippy::unwrap_used)] // test support: a failed setup step should stop the test loudly

mod client;
mod logs;
mod pki;
mod server;
mod spec;

pub use client::{Client, Conn, Proto, Reply};
pub use logs::LogCapture;
pub use pki::Pki;
pub use server::TestServer;
pub use spec::{Setup, StoreSpec, TenantSpec};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Directory holding the guests built by `build.rs`.
pub fn guests_dir() -> PathBuf {
    PathBuf::from(env!("HOOKBOX_GUESTS_DIR"))
}

/// The reference login-conflict plugin, built from `plugins/login-conflict`.
pub fn login_conflict_wasm() -> PathBuf {
    guests_dir().join("login_conflict.wasm")
}

/// The misbehaving test plugin, built from `tests/guests/misbehave`.
pub fn misbehave_wasm() -> PathBuf {
    guests_dir().join("misbehave.wasm")
}

/// A resolver that grows its table until refused (`tests/guests/bombs`).
pub fn table_bomb_wasm() -> PathBuf {
    PathBuf::from(env!("HOOKBOX_BOMBS_DIR")).join("table_bomb.wasm")
}

/// A component past one share of a plugin's part of the instance pool:
/// `instances`, `memories`, `tables` or `table_size` (see `tests/build.rs`).
pub fn shape_bomb_wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("HOOKBOX_BOMBS_DIR")).join(format!("shape_{name}.wasm"))
}

/// A valid component of another world, built from `tests/guests/wrong-world`.
pub fn wrong_world_wasm() -> PathBuf {
    guests_dir().join("wrong_world.wasm")
}

/// A plugin built for WIT 0.1.0 (raw wit-bindgen), from `tests/guests/legacy-0.1`.
pub fn legacy_wasm() -> PathBuf {
    guests_dir().join("legacy_0_1.wasm")
}

/// A 0.2.0 plugin exporting only the event handler, from `tests/guests/events-only`.
pub fn events_only_wasm() -> PathBuf {
    guests_dir().join("events_only.wasm")
}

/// The login-conflict resolver in every language built for this run: Rust,
/// then Python and JavaScript unless `HOOKBOX_SKIP_LANGUAGES` left them out.
pub fn login_conflict_languages() -> Vec<(&'static str, PathBuf)> {
    let mut langs = vec![("rust", login_conflict_wasm())];
    for (name, path) in [
        ("python", env!("HOOKBOX_PY_WASM")),
        ("javascript", env!("HOOKBOX_JS_WASM")),
    ] {
        if path.is_empty() {
            eprintln!("{name} resolver skipped (HOOKBOX_SKIP_LANGUAGES)");
        } else {
            langs.push((name, path.into()));
        }
    }
    langs
}

/// `tests/<rel>` in the source tree.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// An event hook delivery fixture, `tests/fixtures/events/<name>`.
pub fn delivery(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(&format!("fixtures/events/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Okta's sample import request (`tests/fixtures/sample-request.json`).
///
/// Every call returns the same `eventId`: hookbox answers a repeated
/// `eventId` with the same body from its store (Okta's retry), without
/// running the plugin. A test that needs the plugin to run on every request
/// gives each one its own id ([`fresh_sample`], [`with_fresh_event_id`]).
pub fn sample_request() -> Value {
    let text = std::fs::read_to_string(fixture_path("fixtures/sample-request.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An `eventId` no other request of this test process has.
pub fn fresh_event_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `body` with a fresh `eventId` (a new Okta request, not a retry).
pub fn with_fresh_event_id(mut body: Value) -> Value {
    body["eventId"] = Value::String(fresh_event_id());
    body
}

/// Okta's sample with a fresh `eventId`.
pub fn fresh_sample() -> Value {
    with_fresh_event_id(sample_request())
}
