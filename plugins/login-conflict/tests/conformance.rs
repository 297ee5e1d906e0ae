//! Every shared conformance case (`tests/conformance/*.json`), run natively:
//! the request decoded as the host decodes it, the tenant's claim store and
//! directory faked as the case describes, the answer rendered as the host's
//! response body (minus `hookboxPlugin`) and compared with `expected`, and
//! the store's content after the call with `claims_after`.
//!
//! `LOGIN_CONFLICT_WRITE_EXPECTED=1 cargo test -p login-conflict --test conformance`
//! rewrites `expected` and `claims_after` from this reference resolver.

// In tests a panic is the failure report, with the line that failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hookbox_sdk::{
    Command, DirectoryError, FakeClaims, FakeDirectory, Host, Request, Scalar, StoreError, Value,
};
use serde_json::{Map, Value as Json, json};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn scalar(v: &Json) -> Option<Scalar> {
    Some(match v {
        Json::Null => Scalar::Null,
        Json::Bool(b) => Scalar::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Integer(i),
            None if n.is_u64() => return None,
            None => Scalar::Float(n.as_f64()?),
        },
        Json::String(s) => Scalar::Text(s.clone()),
        _ => return None,
    })
}

/// A JSON value as the host lowers it (`hookbox::hook::decode`).
fn value(v: &Json) -> Value {
    match v {
        Json::Array(items) => match items.iter().map(scalar).collect::<Option<Vec<_>>>() {
            Some(scalars) => Value::Array(scalars),
            None => Value::Json(v.to_string()),
        },
        Json::Object(_) => Value::Json(v.to_string()),
        other => match scalar(other) {
            Some(Scalar::Null) => Value::Null,
            Some(Scalar::Boolean(b)) => Value::Boolean(b),
            Some(Scalar::Integer(i)) => Value::Integer(i),
            Some(Scalar::Float(f)) => Value::Float(f),
            Some(Scalar::Text(t)) => Value::Text(t),
            None => Value::Json(other.to_string()),
        },
    }
}

fn decode(request: &Json) -> Request {
    let data = &request["data"];
    let mut b = Request::builder().event_id(request["eventId"].as_str().unwrap_or_default());
    if let Some(profile) = data["appUser"]["profile"].as_object() {
        for (k, v) in profile {
            b = b.app_user_attr(k.clone(), value(v));
        }
    }
    if let Some(profile) = data["user"]["profile"].as_object() {
        for (k, v) in profile {
            b = b.user_attr(k.clone(), value(v));
        }
    }
    if let Some(id) = data["user"]["id"].as_str() {
        b = b.user_id(id);
    }
    for c in data["context"]["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        b = b.conflict(c.as_str().unwrap_or_default());
    }
    b.build()
}

fn store_error(kind: &str) -> StoreError {
    match kind {
        "timeout" => StoreError::Timeout,
        "invalid" => StoreError::Invalid("conformance".into()),
        _ => StoreError::Unavailable("conformance: store down".into()),
    }
}

fn directory_error(kind: &str) -> DirectoryError {
    match kind {
        "rate-limited" => DirectoryError::RateLimited,
        "timed-out" => DirectoryError::TimedOut,
        "denied" => DirectoryError::Denied,
        _ => DirectoryError::Unavailable("conformance: directory down".into()),
    }
}

/// Runs one case: (the response body, the store's content after).
fn run(case: &Json) -> (Json, Json) {
    let settings: Vec<(String, String)> = case["settings"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let claims = FakeClaims::new();
    for (key, owner) in case["claims"].as_object().into_iter().flatten() {
        claims.insert(key.clone(), owner.as_str().unwrap());
    }
    if let Some(kind) = case["store"].as_str().filter(|k| *k != "ok") {
        claims.fail_with(store_error(kind));
    }
    let directory = match case["directory"].as_object() {
        None => FakeDirectory::not_configured(),
        Some(users) => {
            let d = FakeDirectory::new();
            for (login, id) in users {
                d.add_user(login, id.as_str().unwrap());
            }
            d
        }
    };
    if let Some(kind) = case["directory_error"].as_str() {
        directory.fail_with(directory_error(kind));
    }
    let host = Host::fake(settings)
        .with_claims(claims.clone())
        .with_directory(directory);

    let body = match login_conflict::resolve(&decode(&case["request"]), &host) {
        Err(summary) => json!({"error": {"errorSummary": summary}}),
        Ok(response) => {
            let mut body = Map::new();
            let commands: Vec<Json> = response
                .commands()
                .iter()
                .map(|c| match c {
                    Command::UserProfileUpdate(profile) => {
                        let value: Map<String, Json> = profile
                            .iter()
                            .map(|a| (a.name.clone(), json!(a.value.as_str().unwrap())))
                            .collect();
                        json!({"type": "com.okta.user.profile.update", "value": value})
                    }
                    other => panic!("the resolver never answers {other:?}"),
                })
                .collect();
            if !commands.is_empty() {
                body.insert("commands".into(), Json::Array(commands));
            }
            let debug: Map<String, Json> = response
                .debug_context()
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            if !debug.is_empty() {
                body.insert("debugContext".into(), Json::Object(debug));
            }
            Json::Object(body)
        }
    };
    let after: Map<String, Json> = claims
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    (body, Json::Object(after))
}

/// Compact JSON text: compared as text because key order matters, as it
/// does through the host (`Map` equality ignores it).
fn text(v: &Json) -> String {
    v.to_string()
}

#[test]
fn every_conformance_case() {
    let write = std::env::var_os("LOGIN_CONFLICT_WRITE_EXPECTED").is_some_and(|v| v == "1");
    let mut paths: Vec<_> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 22, "conformance cases missing: {paths:?}");
    let mut failures = Vec::new();
    for path in paths {
        let source = std::fs::read_to_string(&path).unwrap();
        let mut case: Json = serde_json::from_str(&source).unwrap();
        let (body, after) = run(&case);
        if write {
            case["expected"] = body;
            case["claims_after"] = after;
            let mut out = serde_json::to_string_pretty(&case).unwrap();
            out.push('\n');
            std::fs::write(&path, out).unwrap();
            continue;
        }
        // Compared as text: key order matters, as it does through the host.
        if text(&body) != text(&case["expected"]) {
            failures.push(format!(
                "{}: got {body}, expected {}",
                path.display(),
                case["expected"]
            ));
        }
        if !case["claims_after"].is_null() && text(&after) != text(&case["claims_after"]) {
            failures.push(format!(
                "{}: store after {after}, expected {}",
                path.display(),
                case["claims_after"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
