//! The shared conformance fixtures (`tests/conformance/*.json`) run through
//! the real host against every language's build of the login-conflict
//! resolver: Rust, Python (componentize-py) and JavaScript (componentize-js),
//! each in both instance modes (`fresh`, and `reuse`, where one warm instance
//! answers many requests in a row: the fixture set is sent several times).

use std::collections::BTreeMap;

use hookbox_tests::{TenantSpec, TestServer, fixture_path, login_conflict_languages};
use serde_json::Value;

struct Case {
    file: String,
    settings: BTreeMap<String, String>,
    request: Value,
    expected: Value,
}

fn cases() -> Vec<Case> {
    let mut files: Vec<_> = std::fs::read_dir(fixture_path("conformance"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let settings = v["settings"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            Case {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                settings,
                request: v["request"].clone(),
                expected: v["expected"].clone(),
            }
        })
        .collect()
}

/// The body minus the host's own `hookboxPlugin` key (and `debugContext` if that empties it).
fn without_plugin_key(mut body: Value) -> Value {
    if let Some(obj) = body.as_object_mut()
        && let Some(debug) = obj.get_mut("debugContext").and_then(Value::as_object_mut)
    {
        debug.remove("hookboxPlugin");
        if debug.is_empty() {
            obj.remove("debugContext");
        }
    }
    body
}

/// Instance modes: (name, times the fixture set is sent).
const MODES: &[(&str, usize)] = &[("fresh", 1), ("reuse", 3)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_gives_the_reference_answers_in_every_instance_mode() {
    let cases = cases();
    assert!(cases.len() >= 15, "fixtures missing: {}", cases.len());
    // One tenant per (language, mode, settings); tenants of one language share one compiled plugin.
    let mut settings_sets: Vec<&BTreeMap<String, String>> = Vec::new();
    for c in &cases {
        if !settings_sets.contains(&&c.settings) {
            settings_sets.push(&c.settings);
        }
    }
    let languages = login_conflict_languages();
    let mut tenants = Vec::new();
    for (lang, wasm) in &languages {
        for (mode, _) in MODES {
            for (i, set) in settings_sets.iter().enumerate() {
                let mut t = TenantSpec::new(&format!("{lang}-{mode}-{i}"), wasm.clone())
                    .instance_mode(mode);
                for (k, v) in *set {
                    t = t.setting(k, v);
                }
                tenants.push(t);
            }
        }
    }
    let server = TestServer::start(&tenants).await;
    let client = server.client();
    let mut failures = Vec::new();
    for (lang, _) in &languages {
        for (mode, rounds) in MODES {
            for round in 0..*rounds {
                for case in &cases {
                    let i = settings_sets
                        .iter()
                        .position(|s| *s == &case.settings)
                        .unwrap();
                    let tenant = format!("{lang}-{mode}-{i}");
                    let reply = client
                        .hook(&tenant, &format!("secret-{tenant}"), &case.request)
                        .await;
                    let got = without_plugin_key(reply.json());
                    if reply.status != 200 || got != case.expected {
                        failures.push(format!(
                            "{lang} {mode} (round {round}) {}: status {} got {got} expected {}",
                            case.file, reply.status, case.expected
                        ));
                    }
                }
            }
        }
    }
    // Reuse really happened: each reuse tenant kept its warm instance.
    for (lang, _) in &languages {
        for i in 0..settings_sets.len() {
            let idle = |mode: &str| {
                server
                    .tenant(&format!("{lang}-{mode}-{i}"))
                    .idle_instances()
            };
            assert_eq!(idle("fresh"), 0, "{lang} fresh {i}");
            assert_eq!(idle("reuse"), 1, "{lang} reuse {i}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
