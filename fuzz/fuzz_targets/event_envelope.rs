//! Arbitrary bytes → the event hook delivery decoder
//! (`hookbox::events::delivery::decode`), then each accepted event the way
//! the queue and the worker take it: its payload to bytes and back, its typed
//! view, and the WIT event the handler receives (`hookbox::events::to_wit`).
//! Never panics; a refusal is Okta's error body; an accepted event keeps every
//! field Okta sent.
#![no_main]

use hookbox::events::delivery::{self, MAX_EVENTS, MAX_UUID, Payload};
use hookbox::plugin::events as wit;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let delivery = match delivery::decode(body) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty decode error");
            let (status, rendered) = hookbox::fuzzing::refused_delivery(e);
            assert_eq!(status, 400);
            hookbox_fuzz::check_error_body(&rendered);
            return;
        }
    };
    assert!(!delivery.event_id.is_empty());
    assert!(delivery.events.len() <= MAX_EVENTS);
    for event in &delivery.events {
        assert!(!event.uuid.is_empty() && event.uuid.len() <= MAX_UUID);
        assert!(!event.event_type.is_empty());
        assert_eq!(
            event.raw.get("uuid").and_then(Value::as_str),
            Some(event.uuid.as_str())
        );
        // Through the queue: what is stored comes back whole.
        let payload = Payload::of(&delivery, event);
        let stored = payload.to_bytes();
        let back = match Payload::from_bytes(&stored) {
            Ok(p) => p,
            Err(e) => panic!("a queued payload does not decode: {e}"),
        };
        assert_eq!(back.event, event.raw, "the queued event changed");
        assert_eq!(back.event_id, delivery.event_id);
        // The worker's reading of it, and the handler's view.
        let typed = match delivery::log_event(&Value::Object(back.event.clone()), "event") {
            Ok(t) => t,
            Err(e) => panic!("an accepted event no longer reads back: {e}"),
        };
        let raw = match hookbox::events::to_wit(&back, typed) {
            wit::Event::Sync(s) => {
                assert_eq!(s.uuid, event.uuid);
                s.raw
            }
            wit::Event::Other(o) => {
                assert_eq!(o.uuid, event.uuid);
                o.raw
            }
        };
        let raw: Value = match serde_json::from_str(&raw) {
            Ok(v) => v,
            Err(e) => panic!("the handler's raw JSON is not JSON: {e}"),
        };
        assert_eq!(raw, Value::Object(event.raw.clone()), "raw lost a field");
    }
});
