//! A plugin that exports only the event handler (WIT 0.2.0, world
//! `event-hook`), no resolver: the host must serve its events and refuse it
//! as an import-hook plugin (`hookbox check` says which exports it has).
//!
//! For every event it logs `events-only: <event type> <uuid>` at info level
//! and counts how often it saw the event in the claim store: it claims
//! `seen:<uuid>:<n>` for owner `events-only` with the first `n` from 1 that
//! is free, so a test reads (with the claim tools) how many times each event
//! was handled. The tenant setting `fail` = `true` makes it decline every
//! event (`Err("events-only: asked to fail")`) after logging.

use hookbox_sdk::{ClaimResult, Event, EventHandler, Host};

/// The handler; exported as the component's `handle`.
pub struct EventsOnly;

impl EventHandler for EventsOnly {
    fn handle(event: &Event, host: &Host) -> Result<(), String> {
        host.info(&format!(
            "events-only: {} {}",
            event.event_type(),
            event.uuid()
        ));
        if host.setting("fail").as_deref() == Some("true") {
            return Err("events-only: asked to fail".into());
        }
        for n in 1..=100 {
            let key = format!("seen:{}:{n}", event.uuid());
            match host.claims().claim(&key, "events-only") {
                Ok(ClaimResult::Claimed) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(format!("events-only: claim store failed: {e}")),
            }
        }
        Err("events-only: seen more than 100 times".into())
    }
}

hookbox_sdk::export!(handler: EventsOnly);
