//! A queued event → the WIT `event` the handler receives (as
//! `wit/0.2.0/`'s `events` interface and the README's "Event hooks"
//! specify): `application.provision.user.sync`
//! → `event::sync`, fully typed, its targets found by `type`; any other type
//! → `event::other`, generically. Both carry the whole LogEvent as JSON text
//! (`raw`), so nothing Okta sent is out of the handler's reach.

use serde_json::Value;

use super::SYNC_EVENT_TYPE;
use super::delivery::{Payload, WireActor, WireLogEvent, WireOutcome};
use crate::plugin::events as wit;

/// The handler's view of `event`, queued with `payload` (whose `event` it was
/// read from).
pub fn to_wit(payload: &Payload, event: WireLogEvent) -> wit::Event {
    let raw = Value::Object(payload.event.clone()).to_string();
    let debug_data = debug_data(&event);
    let outcome = event.outcome.map(outcome);
    let actor = actor(event.actor.unwrap_or_default());
    if event.event_type == SYNC_EVENT_TYPE {
        let find = |kind: &str| {
            event
                .target
                .iter()
                .position(|t| t.kind.as_deref() == Some(kind))
        };
        let (user, app_user, app) = (find("User"), find("AppUser"), find("AppInstance"));
        let mut targets: Vec<Option<WireActor>> = event.target.into_iter().map(Some).collect();
        let mut take = |i: Option<usize>| i.and_then(|i| targets[i].take()).map(self::actor);
        return wit::Event::Sync(wit::SyncEvent {
            published: event.published.unwrap_or_default(),
            display_message: event.display_message,
            event_id: payload.event_id.clone(),
            event_type: event.event_type,
            event_time: payload.event_time.clone(),
            version: event.version.unwrap_or_default(),
            uuid: event.uuid,
            actor,
            okta_user: take(user),
            app_user: take(app_user),
            application: take(app),
            debug_data,
            source: payload.source.clone(),
            outcome,
            raw,
        });
    }
    wit::Event::Other(wit::LogEvent {
        uuid: event.uuid,
        published: event.published.unwrap_or_default(),
        event_type: event.event_type,
        version: event.version.unwrap_or_default(),
        display_message: event.display_message,
        severity: event.severity.unwrap_or_default(),
        actor,
        targets: event.target.into_iter().map(self::actor).collect(),
        outcome,
        debug_data,
        raw,
    })
}

fn actor(a: WireActor) -> wit::Actor {
    wit::Actor {
        id: a.id.unwrap_or_default(),
        alternate_id: a.alternate_id,
        display_name: a.display_name,
        type_: a.kind.unwrap_or_default(),
    }
}

fn outcome(o: WireOutcome) -> wit::Outcome {
    wit::Outcome {
        result: o.result.unwrap_or_default(),
        reason: o.reason,
    }
}

/// `debugContext.debugData` in Okta's order; a value that is not a JSON
/// string is given as its JSON text.
fn debug_data(event: &WireLogEvent) -> Vec<(String, String)> {
    let Some(ctx) = &event.debug_context else {
        return Vec::new();
    };
    ctx.debug_data
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::delivery;

    fn mapped() -> Vec<wit::Event> {
        let body = include_str!("../../../tests/fixtures/events/delivery-mixed.json");
        let d = delivery::decode(body.as_bytes()).expect("fixture decodes");
        d.events
            .iter()
            .map(|e| {
                let payload = Payload::of(&d, e);
                let typed =
                    delivery::log_event(&Value::Object(payload.event.clone()), "e").expect("typed");
                to_wit(&payload, typed)
            })
            .collect()
    }

    #[test]
    fn sync_events_are_typed_with_targets_by_type() {
        let events = mapped();
        let wit::Event::Sync(first) = &events[0] else {
            panic!("the first event is a sync")
        };
        assert_eq!(first.event_id, "b5a188b9-5ece-4636-b041-482ffda96311");
        assert_eq!(first.event_time, "2024-05-14T09:12:33.000Z");
        assert_eq!(first.uuid, "7c9b5a1e-11f0-11ef-9c3a-7b1f0b0a0001");
        assert_eq!(first.actor.id, "00u1adm7Xa9pQ2rT40h8");
        assert_eq!(first.actor.type_, "User");
        assert!(first.source.contains("eventHooks"));
        assert_eq!(
            first.outcome.as_ref().map(|o| o.result.as_str()),
            Some("FAILURE")
        );
        assert!(
            first
                .debug_data
                .contains(&("error_code".into(), "notUniqueWithinOrg".into()))
        );
        // Targets in three different orders: found by type every time.
        for e in [&events[0], &events[2], &events[4]] {
            let wit::Event::Sync(s) = e else {
                panic!("a sync event")
            };
            assert_eq!(s.okta_user.as_ref().map(|a| a.type_.as_str()), Some("User"));
            assert!(
                s.okta_user
                    .as_ref()
                    .is_some_and(|a| a.id.starts_with("00u"))
            );
            assert_eq!(
                s.app_user.as_ref().map(|a| a.type_.as_str()),
                Some("AppUser")
            );
            assert_eq!(
                s.application.as_ref().map(|a| a.id.as_str()),
                Some("0oa7ey7aLRuBvcYUD0g4")
            );
        }
        let wit::Event::Sync(third) = &events[2] else {
            panic!("a sync event")
        };
        assert!(
            third
                .debug_data
                .contains(&("syncedAttributes".into(), "12".into()))
        );
        assert!(
            third
                .debug_data
                .contains(&("fullSync".into(), "true".into()))
        );
        let raw: Value = serde_json::from_str(&third.raw).expect("raw is JSON");
        assert_eq!(
            raw["oktaAddedThisLater"]["note"],
            "unknown fields are kept in raw"
        );
    }

    #[test]
    fn other_types_are_generic_log_events() {
        let events = mapped();
        let wit::Event::Other(create) = &events[1] else {
            panic!("user.lifecycle.create is generic")
        };
        assert_eq!(create.event_type, "user.lifecycle.create");
        assert_eq!(create.severity, "INFO");
        assert_eq!(create.targets.len(), 1);
        let wit::Event::Other(session) = &events[3] else {
            panic!("user.session.start is generic")
        };
        assert!(session.targets.is_empty());
        assert!(session.debug_data.is_empty());
    }
}
