//! A structure-aware generator of near-valid Okta import requests → the
//! request decoder. The input is a small model of Okta's request
//! (`data.action`, `data.appUser.profile`, `data.user.profile`/`id`,
//! `data.context.conflicts`/`application`/`job`/`matches`/`policy`, the
//! envelope) where every field may be well-formed, missing, `null`, of the
//! wrong type, or given twice (duplicated keys); strings may be huge, any
//! Unicode, or `\u` escapes with lone surrogates; values may nest deeply or
//! be numbers at the edges of their range. It is rendered as JSON text by
//! hand (so duplicates and malformed numbers survive) and decoded: never a
//! panic, and an accepted request keeps every value losslessly
//! (`hookbox_fuzz::check_request`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Field<T> {
    Ok(T),
    Missing,
    Null,
    Wrong(Json),
    /// The key twice: the good value, then another.
    Twice(T, Json),
}

#[derive(Arbitrary, Debug)]
struct Request {
    event_type: Field<EventType>,
    event_id: Field<Str>,
    event_time: Field<Str>,
    source: Field<Str>,
    data: Field<Data>,
    extra: Vec<(Str, Json)>,
    /// Rotates the order of the envelope's keys.
    rotate: u8,
    trailer: Trailer,
}

#[derive(Arbitrary, Debug)]
enum EventType {
    Import,
    Other(Str),
    Upper,
}

#[derive(Arbitrary, Debug)]
struct Data {
    action: Field<Action>,
    app_user: Field<Holder>,
    user: Field<User>,
    context: Field<Context>,
    extra: Vec<(Str, Json)>,
}

#[derive(Arbitrary, Debug)]
struct Action {
    result: Field<ActionResult>,
}

#[derive(Arbitrary, Debug)]
enum ActionResult {
    Create,
    Link,
    Other(Str),
}

#[derive(Arbitrary, Debug)]
struct Holder {
    profile: Field<Profile>,
    extra: Vec<(Str, Json)>,
}

#[derive(Arbitrary, Debug)]
struct User {
    profile: Field<Profile>,
    id: Field<Str>,
}

#[derive(Arbitrary, Debug)]
struct Profile(Vec<(Key, Json)>);

#[derive(Arbitrary, Debug)]
struct Context {
    conflicts: Field<Vec<Key>>,
    application: Field<Application>,
    job: Field<Job>,
    matches: Field<Vec<Json>>,
    policy: Field<Vec<Str>>,
}

#[derive(Arbitrary, Debug)]
struct Application {
    name: Field<Str>,
    id: Field<Str>,
    label: Field<Str>,
    status: Field<Str>,
}

#[derive(Arbitrary, Debug)]
struct Job {
    id: Field<Str>,
    kind: Field<Str>,
}

/// Attribute names: Okta's own (so duplicates are likely), or any string.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(Str),
}

const KNOWN: &[&str] = &[
    "login",
    "email",
    "firstName",
    "lastName",
    "middleName",
    "mobilePhone",
    "groups",
    "displayName",
    "",
    "__proto__",
];

#[derive(Arbitrary, Debug)]
enum Str {
    Text(String),
    /// `n` copies of one char: huge strings from small inputs.
    Huge(char, u32),
    /// `\uXXXX` escapes, lone surrogates included.
    Escaped(Vec<u16>),
    /// A string with a raw control character (invalid JSON).
    Control(u8),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A decimal written out: `[-]mantissa.fraction e exponent`, at and past
    /// f64's range and precision.
    Decimal(bool, u64, u64, i16),
    Str(Str),
    Array(Vec<Json>),
    Object(Vec<(Str, Json)>),
    /// Arrays (or objects) nested `n` deep around a value.
    Deep(u16, bool),
    /// Anything at all in a value's place.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Trailer {
    None,
    Whitespace,
    Garbage(String),
    AnotherObject,
}

fn str_(s: &Str, out: &mut String) {
    match s {
        Str::Text(t) => out.push_str(&serde_json::Value::String(t.clone()).to_string()),
        Str::Huge(c, n) => {
            let text = c.to_string().repeat(*n as usize % 300_000);
            out.push_str(&serde_json::Value::String(text).to_string());
        }
        Str::Escaped(units) => {
            out.push('"');
            for u in units {
                out.push_str(&format!("\\u{u:04x}"));
            }
            out.push('"');
        }
        Str::Control(c) => {
            out.push('"');
            out.push(char::from(*c % 0x20));
            out.push('"');
        }
    }
}

fn key(k: &Key, out: &mut String) {
    match k {
        Key::Known(i) => {
            let name = KNOWN[*i as usize % KNOWN.len()];
            out.push_str(&serde_json::Value::String(name.into()).to_string());
        }
        Key::Any(s) => str_(s, out),
    }
}

fn json(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::Uint(u) => out.push_str(&u.to_string()),
        // Non-finite floats come out as NaN/inf: invalid JSON, on purpose.
        Json::Float(f) => out.push_str(&format!("{f:?}")),
        Json::Decimal(neg, m, f, e) => {
            out.push_str(&format!("{}{m}.{f}e{e}", if *neg { "-" } else { "" }))
        }
        Json::Str(s) => str_(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(item, out);
            }
            out.push(']');
        }
        Json::Object(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                str_(k, out);
                out.push(':');
                json(v, out);
            }
            out.push('}');
        }
        Json::Deep(n, arrays) => {
            let n = *n as usize % 2048;
            let (open, close) = if *arrays {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            out.push_str(&open.repeat(n));
            out.push('1');
            out.push_str(&close.repeat(n));
        }
        Json::Raw(r) => out.push_str(r),
    }
}

/// One member of an object, as its field says (possibly none, possibly two).
fn member<T>(
    name: &str,
    field: &Field<T>,
    render: impl Fn(&T, &mut String),
    members: &mut Vec<String>,
) {
    let mut one = |value: &dyn Fn(&mut String)| {
        let mut m = serde_json::Value::String(name.into()).to_string();
        m.push(':');
        value(&mut m);
        members.push(m);
    };
    match field {
        Field::Ok(t) => one(&|out| render(t, out)),
        Field::Missing => {}
        Field::Null => one(&|out| out.push_str("null")),
        Field::Wrong(j) => one(&|out| json(j, out)),
        Field::Twice(t, j) => {
            one(&|out| render(t, out));
            one(&|out| json(j, out));
        }
    }
}

fn extra(entries: &[(Str, Json)], members: &mut Vec<String>) {
    for (k, v) in entries {
        let mut m = String::new();
        str_(k, &mut m);
        m.push(':');
        json(v, &mut m);
        members.push(m);
    }
}

fn object(members: &[String], out: &mut String) {
    out.push('{');
    out.push_str(&members.join(","));
    out.push('}');
}

fn list<T>(items: &[T], render: impl Fn(&T, &mut String), out: &mut String) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render(item, out);
    }
    out.push(']');
}

fn profile(p: &Profile, out: &mut String) {
    let members: Vec<String> =
        p.0.iter()
            .map(|(k, v)| {
                let mut m = String::new();
                key(k, &mut m);
                m.push(':');
                json(v, &mut m);
                m
            })
            .collect();
    object(&members, out);
}

fn data(d: &Data, out: &mut String) {
    let mut m = Vec::new();
    member(
        "action",
        &d.action,
        |a: &Action, out| {
            let mut m = Vec::new();
            member(
                "result",
                &a.result,
                |r: &ActionResult, out| match r {
                    ActionResult::Create => out.push_str("\"CREATE_USER\""),
                    ActionResult::Link => out.push_str("\"LINK_USER\""),
                    ActionResult::Other(s) => str_(s, out),
                },
                &mut m,
            );
            object(&m, out);
        },
        &mut m,
    );
    member(
        "appUser",
        &d.app_user,
        |h: &Holder, out| {
            let mut m = Vec::new();
            member("profile", &h.profile, profile, &mut m);
            extra(&h.extra, &mut m);
            object(&m, out);
        },
        &mut m,
    );
    member(
        "user",
        &d.user,
        |u: &User, out| {
            let mut m = Vec::new();
            member("profile", &u.profile, profile, &mut m);
            member("id", &u.id, str_, &mut m);
            object(&m, out);
        },
        &mut m,
    );
    member(
        "context",
        &d.context,
        |c: &Context, out| {
            let mut m = Vec::new();
            member(
                "conflicts",
                &c.conflicts,
                |k: &Vec<Key>, out| list(k, key, out),
                &mut m,
            );
            member(
                "application",
                &c.application,
                |a: &Application, out| {
                    let mut m = Vec::new();
                    member("name", &a.name, str_, &mut m);
                    member("id", &a.id, str_, &mut m);
                    member("label", &a.label, str_, &mut m);
                    member("status", &a.status, str_, &mut m);
                    object(&m, out);
                },
                &mut m,
            );
            member(
                "job",
                &c.job,
                |j: &Job, out| {
                    let mut m = Vec::new();
                    member("id", &j.id, str_, &mut m);
                    member("type", &j.kind, str_, &mut m);
                    object(&m, out);
                },
                &mut m,
            );
            member(
                "matches",
                &c.matches,
                |v: &Vec<Json>, out| list(v, json, out),
                &mut m,
            );
            member(
                "policy",
                &c.policy,
                |v: &Vec<Str>, out| list(v, str_, out),
                &mut m,
            );
            object(&m, out);
        },
        &mut m,
    );
    extra(&d.extra, &mut m);
    object(&m, out);
}

fn render(r: &Request) -> String {
    let mut m = Vec::new();
    member(
        "eventType",
        &r.event_type,
        |t: &EventType, out| match t {
            EventType::Import => out.push_str("\"com.okta.import.transform\""),
            EventType::Upper => out.push_str("\"COM.OKTA.IMPORT.TRANSFORM\""),
            EventType::Other(s) => str_(s, out),
        },
        &mut m,
    );
    member("eventId", &r.event_id, str_, &mut m);
    member("eventTime", &r.event_time, str_, &mut m);
    member("source", &r.source, str_, &mut m);
    member("data", &r.data, data, &mut m);
    extra(&r.extra, &mut m);
    if !m.is_empty() {
        let k = r.rotate as usize % m.len();
        m.rotate_left(k);
    }
    let mut out = String::new();
    object(&m, &mut out);
    match &r.trailer {
        Trailer::None => {}
        Trailer::Whitespace => out.push_str(" \n\t\r"),
        Trailer::Garbage(g) => out.push_str(g),
        Trailer::AnotherObject => out.push_str("{}"),
    }
    out
}

fuzz_target!(|request: Request| {
    hookbox_fuzz::check_request(render(&request).as_bytes());
});
