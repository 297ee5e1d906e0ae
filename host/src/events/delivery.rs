//! An Okta event hook delivery's JSON → the events to queue, and a queued
//! event's payload → what the handler is given.
//!
//! Lenient but lossless: unknown fields are accepted everywhere and kept (each
//! event is kept whole as JSON, in Okta's key order); optional fields may be
//! missing or `null`. What a consumer relies on is checked, and a delivery
//! breaking it is refused as a whole with the offending field path (a 400;
//! Okta does not retry it): the envelope's `eventType`, `eventId`,
//! `data.events`, and in each event `uuid` (the deduplication key) and
//! `eventType` (what the tenant subscribes to), plus the type of every field
//! the handler's typed view reads (`actor`, `target`, `outcome`,
//! `debugContext.debugData`, the strings). Targets are never looked up by
//! position: see [`WireLogEvent::target_of`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hook::decode::{
    DecodeError, describe, json_object_text, null_as_default, object, objects_or_null,
    optional_object,
};

/// The only envelope `eventType` Okta's event hooks send.
pub const ENVELOPE_TYPE: &str = "com.okta.event_hook";

/// Longest event `uuid` accepted, in bytes (the queue's own bound).
pub const MAX_UUID: usize = hookbox_store::queue::MAX_EVENT_UUID;

/// Most events one delivery may carry (the queue enqueues a delivery in one
/// all-or-nothing step of at most this many). Okta batches far fewer.
pub const MAX_EVENTS: usize = hookbox_store::queue::MAX_EVENTS_PER_ENQUEUE;

/// One decoded delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The delivery's id (`eventId`), shared by its events.
    pub event_id: String,
    /// When Okta sent it (`eventTime`; empty if absent).
    pub event_time: String,
    /// The event hook that sent it (`source`; empty if absent).
    pub source: String,
    /// Its events, in Okta's order.
    pub events: Vec<Event>,
}

/// One event of a delivery: what routing needs, and the whole event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its unique id (the deduplication key).
    pub uuid: String,
    /// Its type, e.g. `application.provision.user.sync`.
    pub event_type: String,
    /// The whole LogEvent, every field kept, in Okta's order.
    pub raw: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDelivery {
    event_type: String,
    event_id: String,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(deserialize_with = "object")]
    data: WireData,
}

#[derive(Deserialize)]
struct WireData {
    events: Vec<Value>,
}

/// A LogEvent as the handler's typed view reads it (everything else stays in
/// the raw JSON).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireLogEvent {
    /// `uuid`.
    pub uuid: String,
    /// `eventType`.
    pub event_type: String,
    /// `published`.
    #[serde(default)]
    pub published: Option<String>,
    /// `version`.
    #[serde(default)]
    pub version: Option<String>,
    /// `displayMessage`.
    #[serde(default)]
    pub display_message: Option<String>,
    /// `severity`.
    #[serde(default)]
    pub severity: Option<String>,
    /// `actor`.
    #[serde(default, deserialize_with = "optional_object")]
    pub actor: Option<WireActor>,
    /// `target`, in Okta's order (`null` = none).
    #[serde(default, deserialize_with = "objects_or_null")]
    pub target: Vec<WireActor>,
    /// `outcome`.
    #[serde(default, deserialize_with = "optional_object")]
    pub outcome: Option<WireOutcome>,
    /// `debugContext`.
    #[serde(default, deserialize_with = "optional_object")]
    pub debug_context: Option<WireDebugContext>,
}

/// An `actor` or a `target`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireActor {
    /// `id`.
    #[serde(default)]
    pub id: Option<String>,
    /// `type`: `User`, `AppUser`, `AppInstance`…
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `alternateId`.
    #[serde(default)]
    pub alternate_id: Option<String>,
    /// `displayName`.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `outcome`.
#[derive(Debug, Deserialize)]
pub struct WireOutcome {
    /// `result`.
    #[serde(default)]
    pub result: Option<String>,
    /// `reason`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `debugContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireDebugContext {
    /// `debugData` (`null` = none), in Okta's order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub debug_data: Map<String, Value>,
}

impl WireLogEvent {
    /// The first target of type `kind` (by type, never by position).
    pub fn target_of(&self, kind: &str) -> Option<&WireActor> {
        self.target.iter().find(|t| t.kind.as_deref() == Some(kind))
    }
}

/// Parses and validates a delivery body; see the module docs.
pub fn decode(body: &[u8]) -> Result<Delivery, DecodeError> {
    let text = json_object_text(body, "an Okta event hook delivery")?;
    let de = &mut serde_json::Deserializer::from_str(text);
    let wire: WireDelivery = serde_path_to_error::deserialize(de).map_err(|e| describe(e, ""))?;
    if wire.event_type != ENVELOPE_TYPE {
        return Err(DecodeError::new(format!(
            "eventType: expected \"{ENVELOPE_TYPE}\", got \"{}\"",
            wire.event_type
        )));
    }
    if wire.event_id.is_empty() {
        return Err(DecodeError::new("eventId: must not be empty"));
    }
    if wire.data.events.len() > MAX_EVENTS {
        return Err(DecodeError::new(format!(
            "data.events: {} events, more than {MAX_EVENTS} in one delivery",
            wire.data.events.len()
        )));
    }
    let mut events = Vec::with_capacity(wire.data.events.len());
    for (i, value) in wire.data.events.into_iter().enumerate() {
        let at = format!("data.events[{i}]");
        let typed = log_event(&value, &at)?;
        let Value::Object(raw) = value else {
            // `log_event` refused anything but an object already.
            return Err(DecodeError::new(format!(
                "{at}: expected a LogEvent object"
            )));
        };
        events.push(Event {
            uuid: typed.uuid,
            event_type: typed.event_type,
            raw,
        });
    }
    Ok(Delivery {
        event_id: wire.event_id,
        event_time: wire.event_time.unwrap_or_default(),
        source: wire.source.unwrap_or_default(),
        events,
    })
}

/// Reads one LogEvent's typed view; errors name the path under `at`.
pub fn log_event(value: &Value, at: &str) -> Result<WireLogEvent, DecodeError> {
    if !value.is_object() {
        return Err(DecodeError::new(format!(
            "{at}: expected a LogEvent object"
        )));
    }
    let typed: WireLogEvent =
        serde_path_to_error::deserialize(value).map_err(|e| describe(e, at))?;
    if typed.uuid.is_empty() || typed.uuid.len() > MAX_UUID {
        return Err(DecodeError::new(format!(
            "{at}.uuid: must be 1 to {MAX_UUID} bytes"
        )));
    }
    if typed.event_type.is_empty() {
        return Err(DecodeError::new(format!(
            "{at}.eventType: must not be empty"
        )));
    }
    Ok(typed)
}

/// What the queue keeps for one event: the delivery's context and the whole
/// event, as JSON (so an operator can read a dead event).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// The delivery's `eventId`.
    pub event_id: String,
    /// The delivery's `eventTime`.
    pub event_time: String,
    /// The delivery's `source`.
    pub source: String,
    /// The LogEvent, whole.
    pub event: Map<String, Value>,
}

impl Payload {
    /// The payload of `event` of `delivery`.
    pub fn of(delivery: &Delivery, event: &Event) -> Payload {
        Payload {
            event_id: delivery.event_id.clone(),
            event_time: delivery.event_time.clone(),
            source: delivery.source.clone(),
            event: event.raw.clone(),
        }
    }

    /// The bytes the queue keeps.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A payload back from the queue.
    pub fn from_bytes(bytes: &[u8]) -> Result<Payload, DecodeError> {
        serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::new(format!("queued payload does not decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &str = include_str!("../../../tests/fixtures/events/delivery-mixed.json");

    #[test]
    fn decodes_a_mixed_delivery_in_order_keeping_every_field() {
        let d = decode(MIXED.as_bytes()).expect("fixture decodes");
        assert_eq!(d.event_id, "b5a188b9-5ece-4636-b041-482ffda96311");
        assert!(d.source.ends_with("/eventHooks/whoql0HfiLGPWc8Tz0g7"));
        let types: Vec<_> = d.events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "application.provision.user.sync",
                "user.lifecycle.create",
                "application.provision.user.sync",
                "user.session.start",
                "application.provision.user.sync"
            ]
        );
        let third = &d.events[2];
        assert_eq!(
            third.raw["oktaAddedThisLater"]["note"],
            "unknown fields are kept in raw"
        );
        let keys: Vec<_> = third.raw.keys().take(3).map(String::as_str).collect();
        assert_eq!(
            keys,
            ["uuid", "published", "eventType"],
            "Okta's order kept"
        );
    }

    #[test]
    fn targets_are_found_by_type_whatever_their_order() {
        let d = decode(MIXED.as_bytes()).expect("fixture decodes");
        for i in [0, 2, 4] {
            let e = log_event(&Value::Object(d.events[i].raw.clone()), "e").expect("typed");
            let user = e.target_of("User").expect("a User target");
            assert!(user.id.as_deref().is_some_and(|id| id.starts_with("00u")));
            let app = e.target_of("AppInstance").expect("an AppInstance target");
            assert_eq!(app.id.as_deref(), Some("0oa7ey7aLRuBvcYUD0g4"));
            let app_user = e.target_of("AppUser").expect("an AppUser target");
            assert!(
                app_user
                    .id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("csv-"))
            );
        }
        let session = log_event(&Value::Object(d.events[3].raw.clone()), "e").expect("typed");
        assert!(session.target.is_empty(), "target: null is none");
        assert!(
            session
                .debug_context
                .expect("present")
                .debug_data
                .is_empty()
        );
    }

    #[test]
    fn an_array_where_an_object_belongs_is_refused() {
        // serde's derived structs would read `[{...}]` by position.
        let wrapped = |v: &mut Value| *v = Value::Array(vec![v.take()]);
        let mut body: Value = serde_json::from_str(MIXED).expect("json");
        wrapped(&mut body["data"]);
        let e = decode(body.to_string().as_bytes()).expect_err("data as an array");
        assert!(
            e.message().contains("data") && e.message().contains("object"),
            "{e}"
        );

        let d = decode(MIXED.as_bytes()).expect("fixture decodes");
        for member in ["actor", "outcome", "debugContext"] {
            let mut event = Value::Object(d.events[0].raw.clone());
            assert!(event.get(member).is_some(), "{member} in the fixture");
            wrapped(&mut event[member]);
            let e = log_event(&event, "e").expect_err(member);
            assert!(e.message().starts_with(&format!("e.{member}")), "{e}");
        }
        let mut event = Value::Object(d.events[0].raw.clone());
        wrapped(&mut event["target"][0]);
        let e = log_event(&event, "e").expect_err("a target as an array");
        assert!(e.message().starts_with("e.target"), "{e}");
    }

    #[test]
    fn payloads_round_trip() {
        let d = decode(MIXED.as_bytes()).expect("fixture decodes");
        let p = Payload::of(&d, &d.events[0]);
        let back = Payload::from_bytes(&p.to_bytes()).expect("round trip");
        assert_eq!(back.event, d.events[0].raw);
        assert_eq!(back.event_id, d.event_id);
    }

    #[test]
    fn errors_name_the_field_path() {
        let cases = [
            ("{", "malformed JSON"),
            ("[]", "JSON object"),
            (
                &MIXED.replace("com.okta.event_hook", "com.okta.import.transform"),
                "eventType: expected",
            ),
            (&MIXED.replace("\"eventId\"", "\"eventIdX\""), "eventId"),
            (
                &MIXED.replace("\"events\": [", "\"events\": 5, \"x\": ["),
                "data.events",
            ),
            (
                &MIXED.replacen(
                    "\"uuid\": \"7c9b5a1e-11f0-11ef-9c3a-7b1f0b0a0002\"",
                    "\"uuid\": 2",
                    1,
                ),
                "data.events[1].uuid",
            ),
            (
                &MIXED.replacen("\"uuid\": \"7c9b5a1e-11f0-11ef-9c3a-7b1f0b0a0003\",", "", 1),
                "data.events[2]: missing field `uuid`",
            ),
            (
                &MIXED.replacen("\"type\": \"AppUser\"", "\"type\": [\"AppUser\"]", 1),
                "data.events[0].target[1].type",
            ),
            (
                &MIXED.replacen(
                    "\"outcome\": { \"result\": \"SUCCESS\" }",
                    "\"outcome\": \"SUCCESS\"",
                    1,
                ),
                "data.events[4].outcome",
            ),
            (
                &MIXED.replacen(
                    "\"debugData\": { \"AppName\": \"test_app\" }",
                    "\"debugData\": [\"AppName\"]",
                    1,
                ),
                "data.events[4].debugContext.debugData",
            ),
        ];
        for (body, needle) in cases {
            let e = decode(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{needle}: should fail"));
            assert!(e.message().contains(needle), "expected '{needle}' in '{e}'");
        }
    }

    #[test]
    fn an_event_that_is_not_an_object_is_named() {
        let body = r#"{"eventType":"com.okta.event_hook","eventId":"x","data":{"events":[{"uuid":"a","eventType":"t"}, 7]}}"#;
        let e = decode(body.as_bytes()).expect_err("refused");
        assert!(e.message().contains("data.events[1]"), "{e}");
    }
}
