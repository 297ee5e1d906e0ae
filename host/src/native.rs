//! Benchmarks only (cargo feature `native-resolver`, never in a shipped
//! build): the reference login-conflict resolver compiled into the host.
//!
//! It is the yardstick the sandbox is measured against. It plugs into the
//! host through a tenant's backend ([`crate::plugin::Backend::Native`]): with
//! the feature built in and `HOOKBOX_BENCH_NATIVE=1` in the environment,
//! `hookbox serve --dev` (what `bench/run` starts) binds its tenant to
//! [`LoginConflict`] instead of the plugin, so the request still takes the
//! whole real path (TLS, HTTP, routing, auth, decode, the tenant's
//! concurrency permit, encode) and only the plugin call differs. The request
//! is converted field by field into the SDK's types, as the component ABI
//! copies it into the guest, and the answer back.
//!
//! What the native path does not do: no store, no instance, no limits, no
//! deadline, and the resolver's log lines are dropped (the plugin's are only
//! emitted at debug level, which benchmarks do not enable).

use std::collections::BTreeMap;

use hookbox_sdk as sdk;

use crate::plugin::{NativeResolver, Outcome, Settings, wit};

/// Set (to anything but empty or `0`) to answer with the native resolver.
pub const ENV: &str = "HOOKBOX_BENCH_NATIVE";

/// Whether `HOOKBOX_BENCH_NATIVE` asks for the native resolver.
pub fn enabled() -> bool {
    let on = std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0");
    if on {
        tracing::warn!(
            "{ENV} is set: every tenant is answered by the native login-conflict resolver, \
             not by its plugin (benchmarks only)"
        );
    }
    on
}

/// The reference resolver as a tenant backend.
pub struct LoginConflict;

impl NativeResolver for LoginConflict {
    fn resolve(&self, request: &wit::ImportRequest, settings: &Settings) -> Outcome {
        resolve(request, settings)
    }
}

/// The login-conflict resolver, called natively: request in, outcome out.
pub fn resolve(request: &wit::ImportRequest, settings: &BTreeMap<String, String>) -> Outcome {
    let host = sdk::Host::fake(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let request = sdk::Request::from(to_sdk_request(request));
    match login_conflict::resolve(&request, &host) {
        Ok(response) => Outcome::Response(from_sdk_response(response.into_raw())),
        Err(summary) => Outcome::Declined(summary),
    }
}

fn to_sdk_request(r: &wit::ImportRequest) -> sdk::ImportRequest {
    let c = &r.context;
    sdk::ImportRequest {
        event_id: r.event_id.clone(),
        event_time: r.event_time.clone(),
        source: r.source.clone(),
        action: to_sdk_action(r.action),
        app_user_profile: to_sdk_profile(&r.app_user_profile),
        user_profile: to_sdk_profile(&r.user_profile),
        user_id: r.user_id.clone(),
        context: sdk::Context {
            conflicts: c.conflicts.clone(),
            application: c.application.as_ref().map(|a| sdk::Application {
                name: a.name.clone(),
                id: a.id.clone(),
                label: a.label.clone(),
                status: a.status.clone(),
            }),
            job: c.job.as_ref().map(|j| sdk::Job {
                id: j.id.clone(),
                type_: j.type_.clone(),
            }),
            matches: c.matches.iter().map(to_sdk_value).collect(),
            policy: c.policy.clone(),
        },
    }
}

fn to_sdk_action(a: wit::ActionResult) -> sdk::ActionResult {
    match a {
        wit::ActionResult::CreateUser => sdk::ActionResult::CreateUser,
        wit::ActionResult::LinkUser => sdk::ActionResult::LinkUser,
    }
}

fn to_sdk_profile(p: &[wit::Attribute]) -> Vec<sdk::Attribute> {
    p.iter()
        .map(|a| sdk::Attribute {
            name: a.name.clone(),
            value: to_sdk_value(&a.value),
        })
        .collect()
}

fn to_sdk_value(v: &wit::Value) -> sdk::Value {
    match v {
        wit::Value::Null => sdk::Value::Null,
        wit::Value::Boolean(b) => sdk::Value::Boolean(*b),
        wit::Value::Integer(i) => sdk::Value::Integer(*i),
        wit::Value::Float(f) => sdk::Value::Float(*f),
        wit::Value::Text(t) => sdk::Value::Text(t.clone()),
        wit::Value::Array(items) => sdk::Value::Array(items.iter().map(to_sdk_scalar).collect()),
        wit::Value::Json(t) => sdk::Value::Json(t.clone()),
    }
}

fn to_sdk_scalar(s: &wit::Scalar) -> sdk::Scalar {
    match s {
        wit::Scalar::Null => sdk::Scalar::Null,
        wit::Scalar::Boolean(b) => sdk::Scalar::Boolean(*b),
        wit::Scalar::Integer(i) => sdk::Scalar::Integer(*i),
        wit::Scalar::Float(f) => sdk::Scalar::Float(*f),
        wit::Scalar::Text(t) => sdk::Scalar::Text(t.clone()),
    }
}

fn from_sdk_response(r: sdk::bindings::hookbox::okta_import::types::Response) -> wit::Response {
    wit::Response {
        commands: r.commands.into_iter().map(from_sdk_command).collect(),
        debug_context: r.debug_context,
    }
}

fn from_sdk_command(c: sdk::Command) -> wit::Command {
    match c {
        sdk::Command::AppUserProfileUpdate(p) => {
            wit::Command::AppUserProfileUpdate(from_sdk_profile(p))
        }
        sdk::Command::UserProfileUpdate(p) => wit::Command::UserProfileUpdate(from_sdk_profile(p)),
        sdk::Command::ActionUpdate(a) => wit::Command::ActionUpdate(match a {
            sdk::ActionResult::CreateUser => wit::ActionResult::CreateUser,
            sdk::ActionResult::LinkUser => wit::ActionResult::LinkUser,
        }),
        sdk::Command::UserUpdate(id) => wit::Command::UserUpdate(id),
    }
}

fn from_sdk_profile(p: Vec<sdk::Attribute>) -> wit::Profile {
    p.into_iter()
        .map(|a| wit::Attribute {
            name: a.name,
            value: from_sdk_value(a.value),
        })
        .collect()
}

fn from_sdk_value(v: sdk::Value) -> wit::Value {
    match v {
        sdk::Value::Null => wit::Value::Null,
        sdk::Value::Boolean(b) => wit::Value::Boolean(b),
        sdk::Value::Integer(i) => wit::Value::Integer(i),
        sdk::Value::Float(f) => wit::Value::Float(f),
        sdk::Value::Text(t) => wit::Value::Text(t),
        sdk::Value::Array(items) => wit::Value::Array(
            items
                .into_iter()
                .map(|s| match s {
                    sdk::Scalar::Null => wit::Scalar::Null,
                    sdk::Scalar::Boolean(b) => wit::Scalar::Boolean(b),
                    sdk::Scalar::Integer(i) => wit::Scalar::Integer(i),
                    sdk::Scalar::Float(f) => wit::Scalar::Float(f),
                    sdk::Scalar::Text(t) => wit::Scalar::Text(t),
                })
                .collect(),
        ),
        sdk::Value::Json(t) => wit::Value::Json(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/fixtures/sample-request.json");

    #[test]
    fn answers_okta_sample_like_the_reference_plugin() {
        let request = crate::hook::decode::decode(SAMPLE.as_bytes()).expect("sample decodes");
        let Outcome::Response(response) = resolve(&request, &BTreeMap::new()) else {
            panic!("the sample has a login conflict and a domain");
        };
        let login = response.commands.iter().find_map(|c| match c {
            wit::Command::UserProfileUpdate(p) => p.iter().find(|a| a.name == "login"),
            _ => None,
        });
        assert!(
            matches!(login.map(|a| &a.value), Some(wit::Value::Text(t)) if t == "sally2.admin2.272ed9@clouditude.net")
        );
    }
}
