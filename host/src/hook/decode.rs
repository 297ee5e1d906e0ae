//! Okta's request JSON → the typed WIT request.
//!
//! The wire structs mirror Okta's JSON and accept unknown fields (Okta adds
//! fields over time). Required fields missing, wrong types or a wrong
//! `eventType` are rejected with the offending field path. Profile values are
//! converted losslessly: every JSON value has a WIT representation.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::plugin::wit;

/// The only event type the User Import Inline Hook sends.
pub const EVENT_TYPE: &str = "com.okta.import.transform";

/// Why a body was refused; `Display` names the field path.
///
/// Invariant: the message is at most [`DecodeError::MAX_LEN`] bytes. It
/// quotes the client (field paths hold its keys, serde quotes its values),
/// and it is both sent back and logged, so an attacker's megabyte key never
/// becomes a megabyte error body or log line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    /// The longest message kept, in bytes (a longer one is cut at a
    /// character boundary and ends with `…`).
    pub const MAX_LEN: usize = 300;

    /// A refusal saying `message`, bounded to [`DecodeError::MAX_LEN`].
    pub fn new(message: impl Into<String>) -> DecodeError {
        let mut message = message.into();
        if message.len() > Self::MAX_LEN {
            let ellipsis = '…';
            let mut cut = Self::MAX_LEN - ellipsis.len_utf8();
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push(ellipsis);
        }
        DecodeError(message)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The body as JSON text, if it is UTF-8 and starts (after whitespace) with
/// an object, which is all Okta ever sends. `what` names the expected body.
///
/// UTF-8 is checked up front because serde_json validates only the strings
/// it keeps: one skipped as unknown could hold any bytes (RFC 8259 requires
/// UTF-8 of the whole text).
pub(crate) fn json_object_text<'a>(body: &'a [u8], what: &str) -> Result<&'a str, DecodeError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::new(format!(
            "the body must be a JSON object ({what})"
        )));
    }
    std::str::from_utf8(body).map_err(|e| {
        DecodeError::new(format!(
            "malformed JSON: invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })
}

/// A serde refusal with the path of the field it concerns (`at`, then the
/// path inside it, or nothing at the top).
pub(crate) fn describe(e: serde_path_to_error::Error<serde_json::Error>, at: &str) -> DecodeError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        DecodeError::new(format!("malformed JSON: {inner}"))
    } else if path == "." {
        if at.is_empty() {
            DecodeError::new(inner.to_string())
        } else {
            DecodeError::new(format!("{at}: {inner}"))
        }
    } else if at.is_empty() {
        DecodeError::new(format!("{path}: {inner}"))
    } else {
        DecodeError::new(format!("{at}.{path}: {inner}"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest {
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
#[serde(rename_all = "camelCase")]
struct WireData {
    #[serde(deserialize_with = "object")]
    action: WireAction,
    #[serde(deserialize_with = "object")]
    app_user: WireProfileHolder,
    #[serde(deserialize_with = "object")]
    user: WireUser,
    #[serde(default, deserialize_with = "null_or_object")]
    context: WireContext,
}

#[derive(Deserialize)]
struct WireAction {
    result: WireActionResult,
}

#[derive(Deserialize)]
enum WireActionResult {
    #[serde(rename = "CREATE_USER")]
    CreateUser,
    #[serde(rename = "LINK_USER")]
    LinkUser,
}

#[derive(Deserialize)]
struct WireProfileHolder {
    profile: Map<String, Value>,
}

#[derive(Deserialize)]
struct WireUser {
    profile: Map<String, Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireContext {
    #[serde(default, deserialize_with = "null_as_default")]
    conflicts: Vec<String>,
    #[serde(default, deserialize_with = "optional_object")]
    application: Option<WireApplication>,
    #[serde(default, deserialize_with = "optional_object")]
    job: Option<WireJob>,
    #[serde(default, deserialize_with = "null_as_default")]
    matches: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    policy: Vec<String>,
}

#[derive(Deserialize)]
struct WireApplication {
    name: String,
    id: String,
    label: String,
    status: String,
}

#[derive(Deserialize)]
struct WireJob {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Okta may send `null` where a list or object is expected; that means "none".
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object read as `T`, and only an object.
///
/// Why: serde's derived structs also accept an *array*, read by position
/// (`"appUser": [{...}]` as `{"profile": {...}}`, a long-fuzz-run finding).
/// Okta never sends one, and reading it so would silently change what the
/// request says, so every struct of a wire format is read through this
/// (`object`, `optional_object`, `null_or_object`, `objects_or_null`).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

/// A struct field that must be a JSON object (see [`Object`]).
pub(crate) fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Object::<T>::deserialize(d)?.0)
}

/// An optional object: `null` is `None` (with `#[serde(default)]`, so is a
/// missing member).
pub(crate) fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// An object where `null` means "none" (as [`null_as_default`]).
pub(crate) fn null_or_object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(optional_object(d)?.unwrap_or_default())
}

/// A list of objects, `null` meaning none.
pub(crate) fn objects_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let list = Option::<Vec<Object<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(list.into_iter().map(|o| o.0).collect())
}

/// Parses and validates an Okta import hook request body.
pub fn decode(body: &[u8]) -> Result<wit::ImportRequest, DecodeError> {
    // serde would also read a struct from a JSON array; Okta only ever sends an object.
    let text = json_object_text(body, "an Okta import hook request")?;
    // Path tracking costs on every field; valid requests (nearly all of them)
    // take the plain parse, and only a failed one is parsed again to name the path.
    let wire: WireRequest = match serde_json::from_str(text) {
        Ok(wire) => wire,
        Err(_) => return Err(explain(text)),
    };
    if wire.event_type != EVENT_TYPE {
        return Err(DecodeError::new(format!(
            "eventType: expected \"{EVENT_TYPE}\", got \"{}\"",
            wire.event_type
        )));
    }
    let data = wire.data;
    let context = data.context;
    Ok(wit::ImportRequest {
        event_id: wire.event_id,
        event_time: wire.event_time.unwrap_or_default(),
        source: wire.source.unwrap_or_default(),
        action: match data.action.result {
            WireActionResult::CreateUser => wit::ActionResult::CreateUser,
            WireActionResult::LinkUser => wit::ActionResult::LinkUser,
        },
        app_user_profile: profile(data.app_user.profile),
        user_profile: profile(data.user.profile),
        user_id: data.user.id,
        context: wit::Context {
            conflicts: context.conflicts,
            application: context.application.map(|a| wit::Application {
                name: a.name,
                id: a.id,
                label: a.label,
                status: a.status,
            }),
            job: context.job.map(|j| wit::Job {
                id: j.id,
                type_: j.kind,
            }),
            matches: context.matches.into_iter().map(value).collect(),
            policy: context.policy,
        },
    })
}

/// Parses `body` again with path tracking to say which field is wrong.
fn explain(text: &str) -> DecodeError {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, WireRequest>(de) {
        Err(e) => describe(e, ""),
        // Unreachable in practice: the plain parse of the same text failed.
        Ok(_) => DecodeError::new("invalid request"),
    }
}

fn profile(map: Map<String, Value>) -> wit::Profile {
    map.into_iter()
        .map(|(name, v)| wit::Attribute {
            name,
            value: value(v),
        })
        .collect()
}

/// JSON → WIT value. Total: anything without a typed case keeps its JSON text.
pub fn value(v: Value) -> wit::Value {
    match scalar(v) {
        Ok(s) => from_scalar(s),
        Err(Value::Array(items)) if items.iter().all(is_scalar) => {
            wit::Value::Array(items.into_iter().filter_map(|i| scalar(i).ok()).collect())
        }
        // Objects, nested arrays, integers beyond 64 bits.
        Err(other) => wit::Value::Json(other.to_string()),
    }
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_f64(),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The scalar case of `v`, or `v` back when it has none.
fn scalar(v: Value) -> Result<wit::Scalar, Value> {
    Ok(match v {
        Value::Null => wit::Scalar::Null,
        Value::Bool(b) => wit::Scalar::Boolean(b),
        Value::Number(ref n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => wit::Scalar::Integer(i),
            (None, Some(f)) if n.is_f64() => wit::Scalar::Float(f),
            // A u64 above i64::MAX: a float would round it.
            _ => return Err(v),
        },
        Value::String(s) => wit::Scalar::Text(s),
        Value::Array(_) | Value::Object(_) => return Err(v),
    })
}

fn from_scalar(s: wit::Scalar) -> wit::Value {
    match s {
        wit::Scalar::Null => wit::Value::Null,
        wit::Scalar::Boolean(b) => wit::Value::Boolean(b),
        wit::Scalar::Integer(i) => wit::Value::Integer(i),
        wit::Scalar::Float(f) => wit::Value::Float(f),
        wit::Scalar::Text(t) => wit::Value::Text(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../tests/fixtures/sample-request.json");

    fn get<'a>(p: &'a wit::Profile, name: &str) -> Option<&'a wit::Value> {
        p.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    #[test]
    fn decodes_okta_sample() {
        let r = decode(SAMPLE.as_bytes()).expect("sample decodes");
        assert_eq!(r.event_id, "JUGOUiYZTaKPmH6db0nDag");
        assert_eq!(r.context.conflicts, vec!["login".to_owned()]);
        assert!(matches!(r.action, wit::ActionResult::CreateUser));
        assert!(matches!(
            get(&r.app_user_profile, "mobilePhone"),
            Some(wit::Value::Null)
        ));
        assert!(
            matches!(get(&r.app_user_profile, "groups"), Some(wit::Value::Array(g)) if g.len() == 2),
            "string arrays stay typed"
        );
        assert_eq!(
            r.context.job.as_ref().map(|j| j.type_.as_str()),
            Some("import:users")
        );
        assert_eq!(
            r.app_user_profile.first().map(|a| a.name.as_str()),
            Some("firstName"),
            "order kept"
        );
    }

    #[test]
    fn values_without_a_typed_case_keep_their_json() {
        let v = |s: &str| value(serde_json::from_str(s).expect("json"));
        assert!(matches!(v("42"), wit::Value::Integer(42)));
        assert!(matches!(v("1.5"), wit::Value::Float(f) if f == 1.5));
        assert!(
            matches!(v("18446744073709551615"), wit::Value::Json(t) if t == "18446744073709551615")
        );
        assert!(
            matches!(v(r#"{"a":[1,{"b":null}]}"#), wit::Value::Json(t) if t == r#"{"a":[1,{"b":null}]}"#)
        );
        assert!(matches!(v("[[1],2]"), wit::Value::Json(t) if t == "[[1],2]"));
        assert!(matches!(v("[1,\"x\",null,true,2.5]"), wit::Value::Array(a) if a.len() == 5));
    }

    #[test]
    fn errors_name_the_field_path() {
        let cases = [
            ("{", "malformed JSON"),
            (r#"[]"#, "JSON object"),
            ("", "JSON object"),
            (&SAMPLE.replace("\"eventId\"", "\"eventIdX\""), "eventId"),
            (
                &SAMPLE.replace(
                    "com.okta.import.transform",
                    "com.okta.oauth2.tokens.transform",
                ),
                "eventType",
            ),
            (
                &SAMPLE.replace("\"CREATE_USER\"", "\"DELETE_USER\""),
                "data.action.result",
            ),
            (
                &SAMPLE.replace("\"appUser\"", "\"appUserX\""),
                "data: missing field `appUser`",
            ),
            (
                &SAMPLE.replace("\"conflicts\": [\"login\"]", "\"conflicts\": \"login\""),
                "data.context.conflicts",
            ),
            (
                &SAMPLE.replace("\"appUser\": {", "\"appUser\": {\"profile\": 5, \"x\": 0,"),
                "data.appUser.profile",
            ),
            (
                &SAMPLE.replace("\"user\": {", "\"user\": {\"id\": 7,"),
                "data.user.id",
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
    fn an_array_where_an_object_belongs_is_refused() {
        // serde's derived structs would read `[{...}]` by position: the
        // profile of `"appUser": [{...}]` would be read from the array.
        let sample: Value = serde_json::from_str(SAMPLE).expect("json");
        let mut with_context = sample.clone();
        with_context["data"]["context"]["application"] =
            serde_json::json!({"name": "n", "id": "i", "label": "l", "status": "s"});
        with_context["data"]["context"]["job"] = serde_json::json!({"id": "j", "type": "t"});
        decode(with_context.to_string().as_bytes()).expect("the objects decode");
        for path in [
            "/data",
            "/data/action",
            "/data/appUser",
            "/data/user",
            "/data/context",
            "/data/context/application",
            "/data/context/job",
        ] {
            let mut body = with_context.clone();
            let v = body.pointer_mut(path).expect("in the sample");
            *v = Value::Array(vec![v.take()]);
            let e = decode(body.to_string().as_bytes()).expect_err(path);
            let field = path[1..].replace('/', ".");
            assert!(
                e.message().starts_with(&field) && e.message().contains("object"),
                "{path}: {e}"
            );
        }
    }

    #[test]
    fn half_a_surrogate_pair_is_refused_where_kept_and_skipped_where_unknown() {
        // JSON's grammar allows a lone `\uDF97`; a Rust string cannot hold it.
        let kept = SAMPLE.replacen("\"firstName\": \"", "\"firstName\": \"\\uDF97", 1);
        assert_ne!(kept, SAMPLE);
        let e = decode(kept.as_bytes()).expect_err("a kept value cannot hold it");
        assert!(e.message().contains("surrogate"), "{e}");
        let skipped = SAMPLE.replacen(
            "\"eventTypeVersion\"",
            "\"someNewField\": \"\\uDF97\", \"eventTypeVersion\"",
            1,
        );
        assert_ne!(skipped, SAMPLE);
        decode(skipped.as_bytes()).expect("an unknown member is skipped unread");
    }

    #[test]
    fn unknown_fields_and_nulls_are_accepted() {
        let body = SAMPLE
            .replace(
                "\"eventTypeVersion\"",
                "\"someNewField\": {\"x\": 1}, \"eventTypeVersion\"",
            )
            .replace("\"matches\": []", "\"matches\": null");
        let r = decode(body.as_bytes()).expect("decodes");
        assert!(r.context.matches.is_empty());
    }

    #[test]
    fn invalid_utf8_is_refused_even_in_an_ignored_member() {
        // `eventTypeVersion` is not kept, so serde_json alone would skip its
        // bytes unchecked (a fuzz finding, kept in fuzz/regressions).
        let mut body = SAMPLE.as_bytes().to_vec();
        let at = SAMPLE
            .find("\"eventTypeVersion\": \"")
            .expect("the sample has it")
            + 21;
        body[at] = 0xff;
        let e = decode(&body).expect_err("not UTF-8");
        assert_eq!(
            e.message(),
            format!("malformed JSON: invalid UTF-8 at byte {at}")
        );
    }

    #[test]
    fn an_error_quoting_the_client_is_bounded() {
        let key = "k".repeat(100_000);
        let body = SAMPLE.replace("com.okta.import.transform", &key);
        let e = decode(body.as_bytes()).expect_err("wrong eventType");
        assert!(e.message().starts_with("eventType: expected"), "{e}");
        assert_eq!(e.message().len(), DecodeError::MAX_LEN);
        assert!(e.message().ends_with('…'));
        // Cut at a character boundary, whatever the text.
        let e = DecodeError::new("é".repeat(1_000));
        assert!(e.message().len() <= DecodeError::MAX_LEN);
        assert!(e.message().ends_with("é…"));
    }
}
