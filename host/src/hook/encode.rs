//! The plugin's typed answer → Okta's exact response JSON, after checking it
//! obeys Okta's rules. An answer that breaks a rule is never sent in part or
//! "fixed": it becomes an error body, and the reason goes to the log.

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::plugin::{Failure, Outcome, truncate, wit};

/// Okta refuses response bodies of 256 KB or more.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Most commands one answer may hold. Okta has four command types and a real
/// answer holds a handful; the cap refuses a flood before any of it is
/// encoded, rather than after building megabytes of JSON to measure.
pub const MAX_COMMANDS: usize = 100;

/// Most profile attributes one answer may set, over all its commands (an
/// Okta profile has at most a few hundred), for the same reason.
pub const MAX_ATTRIBUTES: usize = 10_000;

/// Most `debugContext` entries one answer may hold.
pub const MAX_DEBUG_ENTRIES: usize = 100;

/// Longest `errorSummary` passed on from a plugin's own error.
const MAX_SUMMARY: usize = 1024;

/// The `errorSummary` of a decline whose summary is blank: Okta shows the
/// summary to the admin reviewing the import, and an empty one says nothing.
pub const BLANK_DECLINE: &str = "hookbox: the plugin declined without a reason";

/// The debug-context key naming the plugin version that decided.
pub const DEBUG_PLUGIN_KEY: &str = "hookboxPlugin";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    commands: Vec<WireCommand>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<WireError>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    debug_context: Map<String, Value>,
}

#[derive(Serialize)]
struct WireCommand {
    #[serde(rename = "type")]
    kind: &'static str,
    value: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireError {
    error_summary: String,
}

/// Encodes how an invocation ended as Okta's response body (always sent with status 200).
///
/// `plugin` (the digest of the version that ran) is added to `debugContext`
/// so an operator can tell which version answered a given Okta event.
pub fn encode(result: &Result<Outcome, Failure>, plugin: &str) -> Result<Vec<u8>, Failure> {
    let mut debug = Map::new();
    let body = match result {
        Ok(Outcome::Response(response)) => {
            check_counts(response)?;
            for (k, v) in &response.debug_context {
                if k.is_empty() || k == DEBUG_PLUGIN_KEY || debug.contains_key(k) {
                    return Err(invalid(format!(
                        "debug-context key '{k}' is empty, reserved or repeated"
                    )));
                }
                debug.insert(k.clone(), Value::String(v.clone()));
            }
            debug.insert(DEBUG_PLUGIN_KEY.into(), Value::String(plugin.into()));
            WireResponse {
                commands: commands(&response.commands)?,
                error: None,
                debug_context: debug,
            }
        }
        Ok(Outcome::Declined(summary)) => {
            debug.insert(DEBUG_PLUGIN_KEY.into(), Value::String(plugin.into()));
            WireResponse {
                commands: Vec::new(),
                error: Some(error(if summary.trim().is_empty() {
                    BLANK_DECLINE
                } else {
                    truncate(summary, MAX_SUMMARY)
                })),
                debug_context: debug,
            }
        }
        Err(failure) => return Ok(failure_body(failure, plugin)),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| invalid(format!("cannot encode: {e}")))?;
    if bytes.len() >= MAX_RESPONSE_BYTES {
        return Err(invalid(format!(
            "answer is {} bytes; Okta accepts under {MAX_RESPONSE_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// What Okta receives for how an invocation ended, and the failure behind it if
/// any: the plugin's own (trap, limit…) or an answer that broke Okta's rules.
pub fn respond(result: &Result<Outcome, Failure>, plugin: &str) -> (Vec<u8>, Option<Failure>) {
    match encode(result, plugin) {
        Ok(body) => (body, result.as_ref().err().cloned()),
        Err(invalid) => (failure_body(&invalid, plugin), Some(invalid)),
    }
}

/// The body for a failed invocation: the failure's fixed summary, nothing internal.
pub fn failure_body(failure: &Failure, plugin: &str) -> Vec<u8> {
    let mut debug = Map::new();
    debug.insert(DEBUG_PLUGIN_KEY.into(), Value::String(plugin.into()));
    let body = WireResponse {
        commands: Vec::new(),
        error: Some(error(failure.summary())),
        debug_context: debug,
    };
    // Serialising strings into a map cannot fail; fall back to a constant anyway.
    serde_json::to_vec(&body)
        .unwrap_or_else(|_| crate::error::error_body(failure.summary()).to_vec())
}

fn error(summary: &str) -> WireError {
    WireError {
        error_summary: summary.to_owned(),
    }
}

fn invalid(reason: String) -> Failure {
    Failure::InvalidAnswer(reason)
}

/// Refuses an answer with more items than any real one, before encoding it.
fn check_counts(response: &wit::Response) -> Result<(), Failure> {
    let commands = response.commands.len();
    if commands > MAX_COMMANDS {
        return Err(invalid(format!(
            "{commands} commands; at most {MAX_COMMANDS}"
        )));
    }
    let attributes: usize = response
        .commands
        .iter()
        .map(|c| match c {
            wit::Command::AppUserProfileUpdate(p) | wit::Command::UserProfileUpdate(p) => p.len(),
            wit::Command::ActionUpdate(_) | wit::Command::UserUpdate(_) => 0,
        })
        .sum();
    if attributes > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "{attributes} profile attributes; at most {MAX_ATTRIBUTES}"
        )));
    }
    let debug = response.debug_context.len();
    if debug > MAX_DEBUG_ENTRIES {
        return Err(invalid(format!(
            "{debug} debugContext entries; at most {MAX_DEBUG_ENTRIES}"
        )));
    }
    Ok(())
}

fn commands(commands: &[wit::Command]) -> Result<Vec<WireCommand>, Failure> {
    check_pairing(commands)?;
    commands
        .iter()
        .map(|c| {
            Ok(match c {
                wit::Command::AppUserProfileUpdate(p) => WireCommand {
                    kind: "com.okta.appUser.profile.update",
                    value: profile(p)?,
                },
                wit::Command::UserProfileUpdate(p) => WireCommand {
                    kind: "com.okta.user.profile.update",
                    value: profile(p)?,
                },
                wit::Command::ActionUpdate(a) => WireCommand {
                    kind: "com.okta.action.update",
                    value: serde_json::json!({ "result": match a {
                        wit::ActionResult::CreateUser => "CREATE_USER",
                        wit::ActionResult::LinkUser => "LINK_USER",
                    }}),
                },
                wit::Command::UserUpdate(id) => WireCommand {
                    kind: "com.okta.user.update",
                    value: serde_json::json!({ "id": id }),
                },
            })
        })
        .collect()
}

/// Okta's rule: `LINK_USER` always comes with the user to link to, and a user
/// to link to only makes sense with `LINK_USER`. One decision per answer.
fn check_pairing(commands: &[wit::Command]) -> Result<(), Failure> {
    let mut actions = 0;
    let mut links = 0;
    let mut user_updates = 0;
    for c in commands {
        match c {
            wit::Command::ActionUpdate(a) => {
                actions += 1;
                links += usize::from(matches!(a, wit::ActionResult::LinkUser));
            }
            wit::Command::UserUpdate(id) => {
                user_updates += 1;
                if id.trim().is_empty() {
                    return Err(invalid("user-update with an empty user id".into()));
                }
            }
            _ => {}
        }
    }
    if actions > 1 {
        return Err(invalid(format!(
            "{actions} action-update commands; send at most one"
        )));
    }
    if links != user_updates {
        return Err(invalid(
            "LINK_USER must be paired with exactly one user-update, and user-update with LINK_USER"
                .into(),
        ));
    }
    Ok(())
}

fn profile(p: &wit::Profile) -> Result<Value, Failure> {
    let mut map = Map::with_capacity(p.len());
    for a in p {
        if a.name.trim().is_empty() {
            return Err(invalid("an attribute name is empty".into()));
        }
        if map.insert(a.name.clone(), value(&a.value)?).is_some() {
            return Err(invalid(format!(
                "attribute '{}' is set twice in one command",
                a.name
            )));
        }
    }
    Ok(Value::Object(map))
}

/// WIT value → JSON. The inverse of [`super::decode::value`].
pub fn value(v: &wit::Value) -> Result<Value, Failure> {
    Ok(match v {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Bool(*b),
        wit::Value::Integer(i) => Value::from(*i),
        wit::Value::Float(f) => float(*f)?,
        wit::Value::Text(t) => Value::String(t.clone()),
        wit::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|s| match s {
                    wit::Scalar::Null => Ok(Value::Null),
                    wit::Scalar::Boolean(b) => Ok(Value::Bool(*b)),
                    wit::Scalar::Integer(i) => Ok(Value::from(*i)),
                    wit::Scalar::Float(f) => float(*f),
                    wit::Scalar::Text(t) => Ok(Value::String(t.clone())),
                })
                .collect::<Result<_, _>>()?,
        ),
        wit::Value::Json(text) => serde_json::from_str(text)
            .map_err(|e| invalid(format!("a json value is not valid JSON: {e}")))?,
    })
}

fn float(f: f64) -> Result<Value, Failure> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| invalid("a float is NaN or infinite".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, v: &str) -> wit::Attribute {
        wit::Attribute {
            name: name.into(),
            value: wit::Value::Text(v.into()),
        }
    }

    fn respond(commands: Vec<wit::Command>) -> Result<Value, Failure> {
        let r = Ok(Outcome::Response(wit::Response {
            commands,
            debug_context: vec![("rule".into(), "x".into())],
        }));
        encode(&r, "abc").map(|b| serde_json::from_slice(&b).expect("json"))
    }

    #[test]
    fn encodes_okta_format_exactly() {
        let v = respond(vec![
            wit::Command::UserProfileUpdate(vec![text("login", "a.b@c.d")]),
            wit::Command::ActionUpdate(wit::ActionResult::LinkUser),
            wit::Command::UserUpdate("00u1".into()),
        ])
        .expect("valid");
        assert_eq!(
            v,
            serde_json::json!({
                "commands": [
                    {"type": "com.okta.user.profile.update", "value": {"login": "a.b@c.d"}},
                    {"type": "com.okta.action.update", "value": {"result": "LINK_USER"}},
                    {"type": "com.okta.user.update", "value": {"id": "00u1"}}
                ],
                "debugContext": {"rule": "x", "hookboxPlugin": "abc"}
            })
        );
    }

    #[test]
    fn json_floats_round_trip_exactly() {
        // Found by the `encode_answer` fuzz target: without serde_json's
        // `float_roundtrip`, this one came back one unit in the last place off.
        let v = respond(vec![wit::Command::UserProfileUpdate(vec![
            wit::Attribute {
                name: "n".into(),
                value: wit::Value::Json("{\"\": 2.6873340255978326e-212}".into()),
            },
        ])])
        .expect("valid");
        let n = &v["commands"][0]["value"]["n"][""];
        assert_eq!(n.as_f64(), Some(2.6873340255978326e-212), "{n}");
    }

    #[test]
    fn floods_are_refused_by_count_before_encoding() {
        let profile = |n: usize| {
            wit::Command::UserProfileUpdate((0..n).map(|i| text(&format!("a{i}"), "x")).collect())
        };
        let many = (0..=MAX_COMMANDS).map(|_| profile(0)).collect();
        let err = respond(many).expect_err("too many commands");
        assert!(
            matches!(&err, Failure::InvalidAnswer(r) if r == "101 commands; at most 100"),
            "{err:?}"
        );
        let err = respond(vec![profile(MAX_ATTRIBUTES), profile(1)]).expect_err("too many");
        assert!(
            matches!(&err, Failure::InvalidAnswer(r) if r.starts_with("10001 profile attributes")),
            "{err:?}"
        );
        let r = Ok(Outcome::Response(wit::Response {
            commands: Vec::new(),
            debug_context: (0..=MAX_DEBUG_ENTRIES)
                .map(|i| (format!("k{i}"), String::new()))
                .collect(),
        }));
        let err = encode(&r, "abc").expect_err("too many debug entries");
        assert!(
            matches!(&err, Failure::InvalidAnswer(r) if r.starts_with("101 debugContext entries")),
            "{err:?}"
        );
        // At the limits, the counts pass (the size check may still refuse).
        assert!(respond(vec![profile(10)]).is_ok());
    }

    #[test]
    fn rejects_answers_that_break_okta_rules() {
        let link = wit::Command::ActionUpdate(wit::ActionResult::LinkUser);
        let create = wit::Command::ActionUpdate(wit::ActionResult::CreateUser);
        let cases = vec![
            vec![link.clone()],
            vec![wit::Command::UserUpdate("00u1".into())],
            vec![link.clone(), wit::Command::UserUpdate(" ".into())],
            vec![create.clone(), create],
            vec![wit::Command::UserProfileUpdate(vec![text("", "x")])],
            vec![wit::Command::UserProfileUpdate(vec![
                text("a", "x"),
                text("a", "y"),
            ])],
            vec![wit::Command::AppUserProfileUpdate(vec![wit::Attribute {
                name: "x".into(),
                value: wit::Value::Json("{nope".into()),
            }])],
            vec![wit::Command::UserProfileUpdate(vec![wit::Attribute {
                name: "x".into(),
                value: wit::Value::Float(f64::NAN),
            }])],
            vec![wit::Command::UserProfileUpdate(vec![text(
                "big",
                &"x".repeat(MAX_RESPONSE_BYTES),
            )])],
        ];
        for c in cases {
            let desc = format!("{c:?}");
            assert!(
                matches!(respond(c), Err(Failure::InvalidAnswer(_))),
                "should be refused: {:.80}",
                desc
            );
        }
    }

    #[test]
    fn failures_say_only_their_kind() {
        let body = encode(&Err(Failure::Trap("secret internals".into())), "abc").expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v["error"]["errorSummary"],
            Failure::Trap(String::new()).summary()
        );
        assert!(!String::from_utf8_lossy(&body).contains("internals"));
    }

    #[test]
    fn values_round_trip_through_decode() {
        for s in [
            r#"null"#,
            "true",
            "-7",
            "2.5",
            r#""é""#,
            r#"[1,"a",null]"#,
            r#"{"k":[{}]}"#,
            "18446744073709551615",
        ] {
            let json: Value = serde_json::from_str(s).expect("json");
            let back = value(&super::super::decode::value(json.clone())).expect("encodes");
            assert_eq!(back, json, "{s}");
        }
    }

    #[test]
    fn a_blank_decline_says_so() {
        for blank in ["", "  \n"] {
            let bytes = encode(&Ok(Outcome::Declined(blank.into())), "p").expect("encodes");
            let v: Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(v["error"]["errorSummary"], BLANK_DECLINE);
        }
        let bytes = encode(&Ok(Outcome::Declined("no".into())), "p").expect("encodes");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["error"]["errorSummary"], "no");
    }
}
