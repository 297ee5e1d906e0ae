//! Properties shared by the fuzz targets (`fuzz_targets/`). Each `check_*`
//! panics, which libFuzzer reports as a crash, when hookbox breaks a promise
//! its module docs make for the input; it returns normally otherwise.

use hookbox::hook::{decode, encode};
use hookbox::plugin::wit;
use serde_json::{Map, Value};

/// Slack allowed between a refused input's length and its error message:
/// the message may quote the input (a field, a variant) but never amplify it.
const MESSAGE_SLACK: usize = 512;

/// The import request decoder on `body`: refusals are Okta error bodies
/// (400, `{"error":{"errorSummary": ...}}`), and an accepted request
/// carries every profile value losslessly (decode's documented promise).
pub fn check_request(body: &[u8]) {
    match decode::decode(body) {
        Ok(request) => check_accepted(body, &request),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty(), "empty decode error");
            assert!(
                message.len() <= body.len() + MESSAGE_SLACK,
                "decode error of {} bytes for a {}-byte body",
                message.len(),
                body.len()
            );
            let (status, rendered) = hookbox::fuzzing::refused_import(e);
            assert_eq!(status, 400);
            check_error_body(&rendered);
        }
    }
}

/// `body` is what Okta receives on a refusal: `{"error":{"errorSummary": "..."}}`, nothing else.
pub fn check_error_body(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).expect("error body is JSON");
    let obj = v.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 1, "error body has only `error`: {v}");
    let err = obj["error"].as_object().expect("`error` is an object");
    assert_eq!(err.len(), 1, "`error` has only `errorSummary`: {v}");
    let summary = err["errorSummary"]
        .as_str()
        .expect("errorSummary is a string");
    assert!(!summary.is_empty(), "empty errorSummary");
    summary.to_owned()
}

/// serde_json's reading of `bytes` without its nesting limit (128 levels).
/// The reference reading must not have one: the decoder skips unknown
/// members without recursing, so an accepted body may nest them deeper (a
/// long-run finding, harmless: nothing deep is kept), and an answer holds a
/// plugin's `json` value (itself up to 128 deep) five levels down.
/// `unbounded_depth` is a feature of this crate's build only; it changes
/// nothing unless a parser disables its limit, as here.
pub fn parse_unbounded(bytes: &[u8]) -> serde_json::Result<Value> {
    use serde::Deserialize as _;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

fn check_accepted(body: &[u8], request: &wit::ImportRequest) {
    // The decoder accepted it, so it is JSON; serde_json's own Value is the
    // reference reading (same parser, same duplicate-key rule: last wins).
    let v: Value = match parse_unbounded(body) {
        Ok(v) => v,
        // JSON allows any exponent (RFC 8259 lets readers limit the range);
        // serde_json's Value refuses one past f64, but the decoder skips
        // unknown members unread, so such a number there is accepted, and
        // rightly: nothing is kept of it (a kept one is refused). There is no
        // reference reading of such a body to compare with.
        Err(e) if e.to_string().starts_with("number out of range") => return,
        // The same for a `\u` escape of half a surrogate pair: JSON's
        // grammar allows it (RFC 8259 §8.2), a Rust string cannot hold it,
        // and serde_json checks pairs only in strings it keeps. Skipped, it
        // is harmless; kept, the decoder refuses it (a long-run finding).
        Err(e) if e.to_string().contains("surrogate") => return,
        Err(e) => panic!("an accepted body is JSON: {e}"),
    };
    assert_eq!(v["eventType"], decode::EVENT_TYPE);
    assert_eq!(v["eventId"].as_str(), Some(request.event_id.as_str()));
    let data = &v["data"];
    check_profile(&data["appUser"]["profile"], &request.app_user_profile);
    check_profile(&data["user"]["profile"], &request.user_profile);
    match data["action"]["result"].as_str() {
        Some("CREATE_USER") => assert!(matches!(request.action, wit::ActionResult::CreateUser)),
        Some("LINK_USER") => assert!(matches!(request.action, wit::ActionResult::LinkUser)),
        other => panic!("accepted action {other:?}"),
    }
    let matches = data["context"]["matches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(matches.len(), request.context.matches.len());
    for (json, value) in matches.iter().zip(&request.context.matches) {
        assert_eq!(&round_trip(value), json, "a match did not round-trip");
    }
}

/// Every attribute, in order, and its value back to the very JSON Okta sent.
fn check_profile(json: &Value, profile: &wit::Profile) {
    let map: &Map<String, Value> = json.as_object().expect("an accepted profile is an object");
    assert_eq!(map.len(), profile.len(), "attribute count");
    for ((name, value), attribute) in map.iter().zip(profile) {
        assert_eq!(name, &attribute.name, "attribute order");
        assert_eq!(
            &round_trip(&attribute.value),
            value,
            "attribute '{name}' did not round-trip"
        );
    }
}

/// The WIT value back to JSON, as the encoder would send it.
pub fn round_trip(value: &wit::Value) -> Value {
    match encode::value(value) {
        Ok(v) => v,
        Err(e) => panic!("a decoded value does not encode: {e:?} ({value:?})"),
    }
}

/// `body` is an answer carrying an error (a decline or a failure): exactly
/// `{"error":{"errorSummary": s},"debugContext":{"hookboxPlugin": plugin}}`.
/// Returns `s` (which may be empty: a plugin may decline with no summary).
pub fn check_error_body_with_debug(body: &[u8], plugin: &str) -> String {
    let v: Value = serde_json::from_slice(body).expect("an error answer is JSON");
    let obj = v.as_object().expect("an error answer is an object");
    assert_eq!(obj.len(), 2, "error and debugContext only: {v}");
    let debug = obj["debugContext"]
        .as_object()
        .expect("debugContext is an object");
    assert_eq!(debug.len(), 1);
    assert_eq!(debug[encode::DEBUG_PLUGIN_KEY], plugin);
    let err = obj["error"].as_object().expect("`error` is an object");
    assert_eq!(err.len(), 1, "`error` has only `errorSummary`: {v}");
    err["errorSummary"]
        .as_str()
        .expect("errorSummary is a string")
        .to_owned()
}
