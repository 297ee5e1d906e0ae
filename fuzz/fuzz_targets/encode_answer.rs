//! Arbitrary plugin answers (the WIT `response`, a decline, or a failure,
//! built from an `Arbitrary` mirror since the generated bindings have none)
//! → the answer encoder and validator (`hookbox::hook::encode`). Never
//! panics. An accepted answer is JSON of exactly Okta's shape, under
//! Okta's size limit, carrying what the plugin said; a refused one is an
//! `InvalidAnswer` whose body is Okta's error body. A small model of Okta's
//! rules decides which answers must be accepted and which refused.
#![no_main]

use arbitrary::Arbitrary;
use hookbox::hook::decode;
use hookbox::hook::encode::{self, DEBUG_PLUGIN_KEY, MAX_RESPONSE_BYTES};
use hookbox::plugin::{Failure, Outcome, wit};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
enum Input {
    Response {
        commands: Vec<Command>,
        debug_context: Vec<(String, String)>,
    },
    Declined(String),
    Failed(Fail),
}

#[derive(Arbitrary, Debug)]
enum Fail {
    Trap(String),
    Deadline,
    MemoryLimit,
    FuelExhausted,
    Instantiate(String),
    InvalidAnswer(String),
}

// The WIT variant's names, mirrored.
#[allow(clippy::enum_variant_names)]
#[derive(Arbitrary, Debug)]
enum Command {
    AppUserProfileUpdate(Vec<Attribute>),
    UserProfileUpdate(Vec<Attribute>),
    ActionUpdate(bool),
    UserUpdate(String),
}

#[derive(Arbitrary, Debug)]
struct Attribute {
    name: Name,
    value: ValueIn,
}

/// Attribute names: Okta's usual ones (so repeats happen), or anything.
#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Any(String),
}

const NAMES: &[&str] = &[
    "login",
    "email",
    "firstName",
    "lastName",
    "",
    " ",
    "middleName",
];

#[derive(Arbitrary, Debug)]
enum ValueIn {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    /// A string of `n` copies of a char: big answers without big inputs.
    Huge(char, u32),
    Array(Vec<ScalarIn>),
    /// Arbitrary text claimed to be JSON (mostly not).
    JsonText(String),
    /// Valid JSON text, from a small tree.
    Json(Tree),
}

#[derive(Arbitrary, Debug)]
enum ScalarIn {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    fn json(&self) -> Value {
        match self {
            Tree::Null => Value::Null,
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Int(i) => Value::from(*i),
            Tree::Uint(u) => Value::from(*u),
            Tree::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Tree::Str(s) => Value::String(s.clone()),
            Tree::Array(a) => Value::Array(a.iter().map(Tree::json).collect()),
            Tree::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), v.json())).collect())
            }
        }
    }
}

fn scalar(s: &ScalarIn) -> wit::Scalar {
    match s {
        ScalarIn::Null => wit::Scalar::Null,
        ScalarIn::Boolean(b) => wit::Scalar::Boolean(*b),
        ScalarIn::Integer(i) => wit::Scalar::Integer(*i),
        ScalarIn::Float(f) => wit::Scalar::Float(*f),
        ScalarIn::Text(t) => wit::Scalar::Text(t.clone()),
    }
}

fn value(v: &ValueIn) -> wit::Value {
    match v {
        ValueIn::Null => wit::Value::Null,
        ValueIn::Boolean(b) => wit::Value::Boolean(*b),
        ValueIn::Integer(i) => wit::Value::Integer(*i),
        ValueIn::Float(f) => wit::Value::Float(*f),
        ValueIn::Text(t) => wit::Value::Text(t.clone()),
        // Up to 512 KiB: either side of Okta's 256 KB limit.
        ValueIn::Huge(c, n) => wit::Value::Text(c.to_string().repeat(*n as usize % 131_072)),
        ValueIn::Array(a) => wit::Value::Array(a.iter().map(scalar).collect()),
        ValueIn::JsonText(t) => wit::Value::Json(t.clone()),
        ValueIn::Json(t) => wit::Value::Json(t.json().to_string()),
    }
}

fn profile(attributes: &[Attribute]) -> wit::Profile {
    attributes
        .iter()
        .map(|a| wit::Attribute {
            name: match &a.name {
                Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
                Name::Any(s) => s.clone(),
            },
            value: value(&a.value),
        })
        .collect()
}

fn command(c: &Command) -> wit::Command {
    match c {
        Command::AppUserProfileUpdate(p) => wit::Command::AppUserProfileUpdate(profile(p)),
        Command::UserProfileUpdate(p) => wit::Command::UserProfileUpdate(profile(p)),
        Command::ActionUpdate(link) => wit::Command::ActionUpdate(if *link {
            wit::ActionResult::LinkUser
        } else {
            wit::ActionResult::CreateUser
        }),
        Command::UserUpdate(id) => wit::Command::UserUpdate(id.clone()),
    }
}

/// Okta's rules as the encoder documents them, written independently:
/// `None` if `response` obeys them (size aside), else which rule it breaks.
fn breaks_a_rule(response: &wit::Response) -> Option<&'static str> {
    // hookbox's own caps on a flood (more than any real answer holds).
    if response.commands.len() > encode::MAX_COMMANDS {
        return Some("too many commands");
    }
    let attributes: usize = response
        .commands
        .iter()
        .map(|c| match c {
            wit::Command::AppUserProfileUpdate(p) | wit::Command::UserProfileUpdate(p) => p.len(),
            _ => 0,
        })
        .sum();
    if attributes > encode::MAX_ATTRIBUTES {
        return Some("too many attributes");
    }
    if response.debug_context.len() > encode::MAX_DEBUG_ENTRIES {
        return Some("too many debug entries");
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &response.debug_context {
        if k.is_empty() || k == DEBUG_PLUGIN_KEY || !seen.insert(k.as_str()) {
            return Some("debug-context key");
        }
    }
    let (mut actions, mut links, mut users) = (0, 0, 0);
    for c in &response.commands {
        match c {
            wit::Command::ActionUpdate(a) => {
                actions += 1;
                links += usize::from(matches!(a, wit::ActionResult::LinkUser));
            }
            wit::Command::UserUpdate(id) => {
                users += 1;
                if id.trim().is_empty() {
                    return Some("empty user id");
                }
            }
            wit::Command::AppUserProfileUpdate(p) | wit::Command::UserProfileUpdate(p) => {
                let mut names = std::collections::HashSet::new();
                for a in p {
                    if a.name.trim().is_empty() || !names.insert(a.name.as_str()) {
                        return Some("attribute name");
                    }
                    let bad = match &a.value {
                        wit::Value::Float(f) => !f.is_finite(),
                        wit::Value::Array(items) => items
                            .iter()
                            .any(|s| matches!(s, wit::Scalar::Float(f) if !f.is_finite())),
                        wit::Value::Json(t) => serde_json::from_str::<Value>(t).is_err(),
                        _ => false,
                    };
                    if bad {
                        return Some("value");
                    }
                }
            }
        }
    }
    if actions > 1 {
        return Some("two actions");
    }
    if links != users {
        return Some("link pairing");
    }
    None
}

/// Accepted bytes: Okta's response shape exactly, and what `response` said.
fn check_response(bytes: &[u8], response: &wit::Response, plugin: &str) {
    assert!(
        bytes.len() < MAX_RESPONSE_BYTES,
        "{} bytes sent",
        bytes.len()
    );
    let v: Value = hookbox_fuzz::parse_unbounded(bytes).expect("an answer is JSON");
    let obj = v.as_object().expect("an answer is an object");
    for key in obj.keys() {
        assert!(
            ["commands", "debugContext"].contains(&key.as_str()),
            "key {key}"
        );
    }
    let commands = obj
        .get("commands")
        .map_or(&[][..], |c| c.as_array().expect("array"));
    assert_eq!(
        commands.len(),
        response.commands.len(),
        "a command was dropped"
    );
    for (json, command) in commands.iter().zip(&response.commands) {
        let c = json.as_object().expect("a command is an object");
        assert_eq!(c.len(), 2, "type and value only: {json}");
        let value = &c["value"];
        match command {
            wit::Command::AppUserProfileUpdate(p) | wit::Command::UserProfileUpdate(p) => {
                let kind = if matches!(command, wit::Command::UserProfileUpdate(_)) {
                    "com.okta.user.profile.update"
                } else {
                    "com.okta.appUser.profile.update"
                };
                assert_eq!(c["type"], kind);
                let map = value.as_object().expect("a profile is an object");
                assert_eq!(map.len(), p.len());
                for ((name, json), a) in map.iter().zip(p) {
                    assert_eq!(name, &a.name, "attribute order");
                    // What Okta gets reads back, through the request decoder,
                    // as the very value the plugin set.
                    let back = encode::value(&decode::value(json.clone())).expect("re-encodes");
                    assert_eq!(&back, json, "'{name}' does not round-trip");
                    if let wit::Value::Text(t) = &a.value {
                        assert_eq!(json.as_str(), Some(t.as_str()));
                    }
                }
            }
            wit::Command::ActionUpdate(a) => {
                assert_eq!(c["type"], "com.okta.action.update");
                let result = match a {
                    wit::ActionResult::CreateUser => "CREATE_USER",
                    wit::ActionResult::LinkUser => "LINK_USER",
                };
                assert_eq!(value, &serde_json::json!({ "result": result }));
            }
            wit::Command::UserUpdate(id) => {
                assert_eq!(c["type"], "com.okta.user.update");
                assert_eq!(value, &serde_json::json!({ "id": id }));
            }
        }
    }
    let debug = obj["debugContext"].as_object().expect("debugContext");
    assert_eq!(debug.len(), response.debug_context.len() + 1);
    assert_eq!(debug[DEBUG_PLUGIN_KEY], plugin);
    for (k, val) in &response.debug_context {
        assert_eq!(debug[k.as_str()], val.as_str());
    }
}

fuzz_target!(|input: (Input, String)| {
    let (input, plugin) = input;
    let result = match &input {
        Input::Response {
            commands,
            debug_context,
        } => Ok(Outcome::Response(wit::Response {
            commands: commands.iter().map(command).collect(),
            debug_context: debug_context.clone(),
        })),
        Input::Declined(s) => Ok(Outcome::Declined(s.clone())),
        Input::Failed(f) => Err(match f {
            Fail::Trap(s) => Failure::Trap(s.clone()),
            Fail::Deadline => Failure::Deadline,
            Fail::MemoryLimit => Failure::MemoryLimit,
            Fail::FuelExhausted => Failure::FuelExhausted,
            Fail::Instantiate(s) => Failure::Instantiate(s.clone()),
            Fail::InvalidAnswer(s) => Failure::InvalidAnswer(s.clone()),
        }),
    };
    let encoded = encode::encode(&result, &plugin);
    match (&result, &encoded) {
        (Ok(Outcome::Response(r)), Ok(bytes)) => {
            assert_eq!(
                breaks_a_rule(r),
                None,
                "accepted an answer that breaks a rule"
            );
            check_response(bytes, r, &plugin);
        }
        (Ok(Outcome::Response(r)), Err(Failure::InvalidAnswer(why))) => {
            assert!(!why.is_empty());
            // Refused: a rule is broken, or it is too big for Okta.
            assert!(
                breaks_a_rule(r).is_some() || why.contains("bytes; Okta accepts under"),
                "refused a valid answer: {why}"
            );
        }
        (Ok(Outcome::Declined(summary)), Ok(bytes)) => {
            let sent = hookbox_fuzz::check_error_body_with_debug(bytes, &plugin);
            if summary.trim().is_empty() {
                assert_eq!(sent, encode::BLANK_DECLINE);
            } else {
                assert!(
                    summary.starts_with(&sent) && sent.len() <= 1024,
                    "summary {sent:?}"
                );
            }
        }
        (Ok(Outcome::Declined(_)), Err(Failure::InvalidAnswer(why))) => {
            // Only a summary so long it cannot fit.
            assert!(
                why.contains("bytes; Okta accepts under"),
                "declined refused: {why}"
            );
        }
        (Err(failure), Ok(bytes)) => {
            let sent = hookbox_fuzz::check_error_body_with_debug(bytes, &plugin);
            assert_eq!(sent, failure.summary(), "a failure leaked its details");
        }
        (_, Err(other)) => panic!("the encoder failed with {other:?}, not InvalidAnswer"),
    }
    // What the pipeline sends in every case: Okta's body.
    let (body, failure) = encode::respond(&result, &plugin);
    let v: Value = hookbox_fuzz::parse_unbounded(&body).expect("respond gives JSON");
    assert!(v.is_object());
    if encoded.is_err() {
        let sent = hookbox_fuzz::check_error_body_with_debug(&body, &plugin);
        assert_eq!(Some(sent.as_str()), failure.as_ref().map(Failure::summary));
    }
});
