//! Okta event hooks: the events a plugin's [`EventHandler`] receives.
//!
//! The host acknowledges Okta's delivery once it is durably queued, then hands
//! each subscribed LogEvent to the handler, one at a time: an app-user sync
//! (`application.provision.user.sync`) fully typed as [`SyncEvent`], any
//! other type as a generic [`LogEvent`]. Every event also carries its whole
//! LogEvent as JSON text (`raw`).
//!
//! ```
//! use hookbox_sdk::{Event, EventHandler, Host, SyncEvent};
//!
//! /// Warns when a sync failed.
//! pub struct SyncAudit;
//!
//! impl EventHandler for SyncAudit {
//!     fn handle(event: &Event, host: &Host) -> Result<(), String> {
//!         if let Event::Sync(sync) = event {
//!             if sync.debug_value("error_code").is_some() {
//!                 // Ids only: never names or logins in a log.
//!                 host.warn(&format!("sync {} failed", sync.uuid));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! hookbox_sdk::export!(handler: SyncAudit);
//! # fn main() {
//! let event = Event::Sync(
//!     SyncEvent::builder().uuid("e1").debug("error_code", "notUniqueWithinOrg").build(),
//! );
//! let host = Host::fake([("k", "v")]);
//! SyncAudit::handle(&event, &host).unwrap();
//! assert_eq!(host.logs()[0].message, "sync e1 failed");
//! # }
//! ```

pub use crate::bindings::event_hook::hookbox::okta_import::events::{
    Actor, Event, LogEvent, Outcome, SyncEvent,
};

use crate::Host;

/// The event type of an app-user sync, delivered as [`Event::Sync`].
pub const SYNC_EVENT_TYPE: &str = "application.provision.user.sync";

/// The logic of a plugin that handles Okta events.
///
/// Implement it on a unit struct and export it with
/// [`export!`](crate::export)`(handler: Type)` (or beside a resolver).
pub trait EventHandler {
    /// Handles one event, after Okta's delivery was acknowledged.
    ///
    /// Events arrive at least once and out of order: handling one twice must
    /// do no harm. `Err(reason)` makes the host retry the event a bounded
    /// number of times with backoff, then record it as dead with the reason;
    /// never put personal data in it.
    fn handle(event: &Event, host: &Host) -> Result<(), String>;
}

fn debug_value<'a>(data: &'a [(String, String)], key: &str) -> Option<&'a str> {
    data.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl Event {
    /// The LogEvent's unique id (`uuid`).
    pub fn uuid(&self) -> &str {
        match self {
            Event::Sync(e) => &e.uuid,
            Event::Other(e) => &e.uuid,
        }
    }

    /// The LogEvent's `eventType`.
    pub fn event_type(&self) -> &str {
        match self {
            Event::Sync(e) => &e.event_type,
            Event::Other(e) => &e.event_type,
        }
    }

    /// The value of debug-data entry `key` (`debugContext.debugData`), if any.
    pub fn debug_value(&self, key: &str) -> Option<&str> {
        match self {
            Event::Sync(e) => e.debug_value(key),
            Event::Other(e) => e.debug_value(key),
        }
    }

    /// The whole LogEvent as JSON text.
    pub fn raw(&self) -> &str {
        match self {
            Event::Sync(e) => &e.raw,
            Event::Other(e) => &e.raw,
        }
    }
}

impl SyncEvent {
    /// A builder for test events (see [`SyncEventBuilder`] for the defaults).
    pub fn builder() -> SyncEventBuilder {
        SyncEventBuilder::default()
    }

    /// The value of debug-data entry `key` (e.g. `error_code`), if any.
    pub fn debug_value(&self, key: &str) -> Option<&str> {
        debug_value(&self.debug_data, key)
    }
}

impl LogEvent {
    /// The value of debug-data entry `key`, if any.
    pub fn debug_value(&self, key: &str) -> Option<&str> {
        debug_value(&self.debug_data, key)
    }

    /// The first target of type `kind` (`User`, `AppUser`, `AppInstance`…).
    pub fn target(&self, kind: &str) -> Option<&Actor> {
        self.targets.iter().find(|t| t.type_ == kind)
    }
}

impl Actor {
    /// An actor with only an id and a type.
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        Actor {
            id: id.into(),
            alternate_id: None,
            display_name: None,
            type_: kind.into(),
        }
    }

    /// Sets the alternate id.
    pub fn with_alternate_id(mut self, alternate_id: impl Into<String>) -> Self {
        self.alternate_id = Some(alternate_id.into());
        self
    }

    /// Sets the display name.
    pub fn with_display_name(mut self, display_name: impl Into<String>) -> Self {
        self.display_name = Some(display_name.into());
        self
    }
}

/// Builds a [`SyncEvent`] for tests.
///
/// Defaults: uuid `test-uuid`, event id `test-delivery`, event type
/// [`SYNC_EVENT_TYPE`], version `0`, times `1970-01-01T00:00:00.000Z`, an
/// actor `00u-admin` of type `User`, no targets, no debug data, source
/// `test-hook`, no outcome, `raw` `{}`.
#[derive(Debug, Clone)]
pub struct SyncEventBuilder {
    event: SyncEvent,
}

impl Default for SyncEventBuilder {
    fn default() -> Self {
        SyncEventBuilder {
            event: SyncEvent {
                published: "1970-01-01T00:00:00.000Z".into(),
                display_message: None,
                event_id: "test-delivery".into(),
                event_type: SYNC_EVENT_TYPE.into(),
                event_time: "1970-01-01T00:00:00.000Z".into(),
                version: "0".into(),
                uuid: "test-uuid".into(),
                actor: Actor::new("00u-admin", "User"),
                okta_user: None,
                app_user: None,
                application: None,
                debug_data: Vec::new(),
                source: "test-hook".into(),
                outcome: None,
                raw: "{}".into(),
            },
        }
    }
}

impl SyncEventBuilder {
    /// Sets the LogEvent's uuid.
    pub fn uuid(mut self, uuid: impl Into<String>) -> Self {
        self.event.uuid = uuid.into();
        self
    }

    /// Sets the admin who synced.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.event.actor = actor;
        self
    }

    /// Sets the Okta user (target `User`).
    pub fn okta_user(mut self, user: Actor) -> Self {
        self.event.okta_user = Some(user);
        self
    }

    /// Sets the app user (target `AppUser`).
    pub fn app_user(mut self, user: Actor) -> Self {
        self.event.app_user = Some(user);
        self
    }

    /// Sets the application (target `AppInstance`).
    pub fn application(mut self, app: Actor) -> Self {
        self.event.application = Some(app);
        self
    }

    /// Adds a debug-data entry.
    pub fn debug(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.event.debug_data.push((key.into(), value.into()));
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, result: impl Into<String>, reason: Option<&str>) -> Self {
        self.event.outcome = Some(Outcome {
            result: result.into(),
            reason: reason.map(str::to_owned),
        });
        self
    }

    /// Sets the raw LogEvent JSON.
    pub fn raw(mut self, raw: impl Into<String>) -> Self {
        self.event.raw = raw.into();
        self
    }

    /// The event.
    pub fn build(self) -> SyncEvent {
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let sync = SyncEvent::builder()
            .uuid("u")
            .okta_user(Actor::new("00u1", "User").with_alternate_id("a@b"))
            .debug("error_code", "notUniqueWithinOrg")
            .debug("error_field", "login")
            .build();
        assert_eq!(sync.debug_value("error_field"), Some("login"));
        assert_eq!(sync.debug_value("missing"), None);
        let event = Event::Sync(sync);
        assert_eq!(event.uuid(), "u");
        assert_eq!(event.event_type(), SYNC_EVENT_TYPE);
        assert_eq!(event.debug_value("error_code"), Some("notUniqueWithinOrg"));
        assert_eq!(event.raw(), "{}");

        let other = LogEvent {
            uuid: "o".into(),
            published: String::new(),
            event_type: "user.lifecycle.create".into(),
            version: "0".into(),
            display_message: None,
            severity: "INFO".into(),
            actor: Actor::new("00u-admin", "User"),
            targets: vec![
                Actor::new("0oa1", "AppInstance"),
                Actor::new("00u1", "User"),
            ],
            outcome: None,
            debug_data: vec![],
            raw: "{}".into(),
        };
        assert_eq!(other.target("User").map(|a| a.id.as_str()), Some("00u1"));
        assert_eq!(other.target("AppUser"), None);
    }
}
