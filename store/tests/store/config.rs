//! `[store]` as the host will embed it in its TOML config.

use std::time::Duration;

use hookbox_store::{DEFAULT_ANSWER_TTL, StoreConfig};

#[derive(Debug, serde::Deserialize)]
struct HostConfig {
    store: StoreConfig,
}

fn parse(s: &str) -> Result<StoreConfig, toml::de::Error> {
    toml::from_str::<HostConfig>(s).map(|c| c.store)
}

#[test]
fn embedded_with_defaults() {
    let c = parse("[store]\nbackend = \"embedded\"\npath = \"/var/lib/hookbox/s.redb\"\n").unwrap();
    assert_eq!(c, StoreConfig::embedded("/var/lib/hookbox/s.redb"));
    assert_eq!(c.answer_ttl(), DEFAULT_ANSWER_TTL);
}

#[test]
fn redis_with_everything() {
    let c = parse(
        "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\nprefix = \"hb\"\n\
         call_timeout = \"250ms\"\nconnect_timeout = \"1s\"\nanswer_ttl = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(
        c,
        StoreConfig::Redis {
            url: "redis://127.0.0.1:6379/2".into(),
            prefix: "hb".into(),
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            answer_ttl: Duration::from_secs(300),
        }
    );
}

#[test]
fn unknown_fields_backends_and_durations_are_refused() {
    for bad in [
        "[store]\nbackend = \"embedded\"\npath = \"x\"\nurl = \"redis://x\"\n",
        "[store]\nbackend = \"sqlite\"\npath = \"x\"\n",
        "[store]\npath = \"x\"\n",
        "[store]\nbackend = \"embedded\"\npath = \"x\"\nanswer_ttl = \"10\"\n",
        "[store]\nbackend = \"embedded\"\npath = \"x\"\nanswer_ttl = \"0s\"\n",
        "[store]\nbackend = \"redis\"\nurl = \"redis://x\"\ncall_timeout = \"fast\"\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}
