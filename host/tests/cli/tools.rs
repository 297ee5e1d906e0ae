//! `hookbox check` and `hookbox run`, and the perf map they and `serve` can write.

use super::*;

#[test]
fn check_names_the_world_the_version_the_exports_and_the_imports() {
    let (code, out, _) = output(hookbox().arg("check").arg(login_conflict_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "implements: hookbox:okta-import/import-and-event-hook@0.2.0 \
             (WIT 0.2.0; exports resolver + event-handler)"
        ),
        "{out}"
    );
    assert!(
        out.contains("event-handler@0.2.0: handles event hooks (POST /hooks/{tenant}/events)"),
        "{out}"
    );
    assert!(
        out.contains("hookbox:okta-import/host@0.2.0: granted"),
        "{out}"
    );
    assert!(
        out.contains("hookbox:okta-import/claims@0.2.0: granted (the tenant's claim store)"),
        "{out}"
    );
    assert!(out.contains("hookbox can load this plugin"), "{out}");

    let (code, out, _) = output(hookbox().arg("check").arg(legacy_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "implements: hookbox:okta-import/import-hook@0.1.0 (WIT 0.1.0; exports resolver)"
        ),
        "{out}"
    );
    assert!(
        out.contains("hookbox:okta-import/host@0.1.0: granted"),
        "{out}"
    );
    assert!(out.contains("WIT 0.1.0 has no claim store"), "{out}");

    // A handler-only plugin serves event hooks; its import route answers 404.
    let (code, out, _) = output(hookbox().arg("check").arg(events_only_wasm()));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "implements: hookbox:okta-import/event-hook@0.2.0 (WIT 0.2.0; exports event-handler)"
        ),
        "{out}"
    );
    assert!(!out.contains("answers the import hook"), "{out}");
}

#[test]
fn check_refuses_another_world_and_non_components_in_plain_sentences() {
    let (code, out, _) = output(hookbox().arg("check").arg(wrong_world_wasm()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not implement hookbox:okta-import/import-hook"),
        "{out}"
    );
    assert!(out.contains("serves WIT 0.1.0 and 0.2.0"), "{out}");
    assert!(out.contains("greet"), "names what it does export: {out}");

    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (code, out, _) = output(hookbox().arg("check").arg(&module));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("core WebAssembly module, not a component"),
        "{out}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let (code, out, _) = output(hookbox().arg("check").arg(&junk));
    assert_eq!(code, Some(1));
    assert!(out.contains("not a WebAssembly file"), "{out}");
}

#[test]
fn run_prints_the_okta_answer_and_its_cost_in_every_language() {
    let sample = fixture_path("fixtures/sample-request.json");
    for (language, plugin) in login_conflict_languages() {
        run_prints_the_okta_answer_and_its_cost(language, &plugin, &sample);
    }
}

fn run_prints_the_okta_answer_and_its_cost(
    language: &str,
    plugin: &std::path::Path,
    sample: &std::path::Path,
) {
    let (code, out, err) = output(hookbox().arg("run").arg(plugin).arg(sample));
    assert_eq!(code, Some(0), "{language}: {err}");
    let body: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        body["commands"][0]["value"]["login"],
        "sally2.admin2.272ed9@clouditude.net"
    );
    for needle in [
        "answered 1 command(s)",
        "ms of 500 ms deadline",
        "fuel:",
        "bytes peak of 33554432",
        "of 262144",
        "store:    3 claim-store call(s) of 64 per request, embedded store (a throwaway one",
    ] {
        assert!(
            err.contains(needle),
            "{language}: expected '{needle}' in {err}"
        );
    }
    assert!(
        !err.contains("fuel:     0 "),
        "{language}: the plugin ran, so it burnt fuel: {err}"
    );
    assert!(
        err.contains("debug: login claimed by rule hashed-suffix"),
        "{language}: plugin log lines are shown: {err}"
    );
}

#[test]
fn run_explains_limits_and_traps_with_the_guests_function_names() {
    let sample = fixture_path("fixtures/sample-request.json");
    let run = |mode: &str, extra: &[&str]| {
        output(
            hookbox()
                .arg("run")
                .arg(misbehave_wasm())
                .arg(&sample)
                .arg("--settings")
                .arg(format!("mode={mode}"))
                .args(extra),
        )
    };
    let (code, out, err) = run("loop", &["--deadline", "100ms"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("exceeded its deadline") && err.contains("ran past its deadline"),
        "{out}{err}"
    );
    assert!(
        err.contains("fuel:     at least ") && err.contains("not counted"),
        "after a deadline the fuel figure is a lower bound, and says so: {err}"
    );
    let (code, _, err) = run("loop", &["--fuel", "1000000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("used up limits.fuel"), "{err}");
    let (code, _, err) = run("memory-bomb", &["--memory", "8MiB"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("past limits.memory"), "{err}");
    let (code, _, err) = run("trap", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the plugin trapped") && err.contains("misbehave::Misbehave"),
        "backtrace names the guest function: {err}"
    );
    let (code, _, err) = run("unpaired-link", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("breaks Okta's rules: LINK_USER"), "{err}");
}

/// `HOOKBOX_PERFMAP=1` leaves `/tmp/perf-<pid>.map` naming the plugin's own
/// functions, for `perf report`; without it nothing is written.
#[test]
fn perfmap_names_the_plugins_functions_for_perf() {
    let sample = fixture_path("fixtures/sample-request.json");
    for on in [true, false] {
        let mut cmd = hookbox();
        cmd.arg("run").arg(login_conflict_wasm()).arg(&sample);
        if on {
            cmd.env("HOOKBOX_PERFMAP", "1");
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = std::fs::read_to_string(&map).unwrap_or_default();
        let _ = std::fs::remove_file(&map);
        assert_eq!(
            text.contains("login_conflict::resolve"),
            on,
            "HOOKBOX_PERFMAP={on}: {}",
            text.lines().take(3).collect::<Vec<_>>().join("\n")
        );
    }
}
