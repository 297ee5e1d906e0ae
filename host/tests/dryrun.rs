//! `hookbox dry-run` through the real binary and the reference plugin: a
//! generated CSV with the awkward cases (BOM, CRLF, quoted fields with commas,
//! quotes and newlines, accents, empty names, duplicate full names, a short
//! row, invalid UTF-8) gives the expected decisions file and summary; logins
//! already held are conflicts; a bad row is reported by number and the run
//! goes on; with claims (the 0.2.0 reference plugin) no login is handed to
//! two rows nor equals an existing one, and a stateless 0.1.0 plugin's
//! duplicates are caught; the claims go to a throwaway store unless
//! `--real-store`; a 100,000-row file streams, every decision checked.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::HashSet;

use hookbox_tests::{legacy_wasm, login_conflict_wasm};
use serde_json::Value;

fn hookbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbox"));
    cmd.env_remove("HOOKBOX_CONFIG").env("HOOKBOX_LOG", "warn");
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

fn dry_run(args: &[&str]) -> Run {
    let out = hookbox().arg("dry-run").args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The decisions file as rows of (column → value).
fn decisions(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "row",
            "external_id",
            "old_login",
            "conflict",
            "new_login",
            "rule",
            "outcome",
            "detail"
        ]
    );
    let mut reader = csv_rows(&text);
    reader.remove(0);
    reader
        .into_iter()
        .map(|r| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(r)
                .collect::<std::collections::HashMap<_, _>>()
        })
        .collect()
}

/// A minimal RFC 4180 reader for the test's own checks (quotes, doubled quotes).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    rows
}

fn is_hex6(s: &str) -> bool {
    s.len() == 6
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `prefix.<6 hex>@domain`.
fn suffixed(login: &str, prefix: &str, domain: &str) -> bool {
    login
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(domain))
        .and_then(|rest| rest.strip_suffix('@'))
        .is_some_and(is_hex6)
}

/// The generated import file: BOM, CRLF, and one row per case.
fn users_csv(dir: &Path) -> PathBuf {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    let lines: &[&[u8]] = &[
        b"externalId,login,email,firstName,middleName,lastName,department",
        // 1: no conflict: unchanged. A quoted comma.
        b"e1,john.smith@example.com,john.smith@example.com,John,,Smith,\"Sales, EMEA\"",
        // 2: same login as row 1, no middle name: hashed suffix.
        b"e2,john.smith@example.com,js2@example.com,John,,Smith,Sales",
        // 3: login held by an existing user; accents; a quoted field with quotes and a newline.
        "e3,jmuller@example.com,jm@example.com,José,,Müller-Lüdenscheidt,\"R&D \"\"Labs\"\"\r\nBuilding 2\""
            .as_bytes(),
        // 4 (line 6): empty names, login held: the login's own base.
        b"e4,nobody@example.com,,,,,",
        // 5 (line 7): one field short: a bad row.
        b"e5,short@example.com,short@example.com,Short,,Row",
        // 6, 7, 8: one full name with a middle name, three times, one login.
        b"e6,mary.obrien@example.com,m1@example.com,Mary Ann,Q,O'Brien,Ops",
        b"e7,mary.obrien@example.com,m2@example.com,Mary Ann,Q,O'Brien,Ops",
        b"e8,MARY.OBRIEN@example.com,m3@example.com,Mary Ann,Q,O'Brien,Ops",
        // 9 (line 11): invalid UTF-8: a bad row.
        b"e9,bad@example.com,bad@example.com,B\xFFd,,Row,Ops",
        // 10 (line 12): no login: a bad row.
        b"e10,,nologin@example.com,No,,Login,Ops",
        // 11: after the bad rows, the run goes on.
        b"e11,last@example.com,last@example.com,Last,,Row,Ops",
    ];
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\n");
    }
    let path = dir.join("users.csv");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn existing(dir: &Path, logins: &[&str]) -> PathBuf {
    let path = dir.join("existing.txt");
    std::fs::write(&path, format!("# held in Okta\n{}\n", logins.join("\n"))).unwrap();
    path
}

#[test]
fn a_generated_import_gives_the_expected_decisions_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let csv = users_csv(dir.path());
    let existing = existing(dir.path(), &["JMuller@Example.com", "nobody@example.com"]);
    let out = dir.path().join("decisions.csv");
    let run = dry_run(&[
        s(&csv),
        "--plugin",
        s(&login_conflict_wasm()),
        "--existing",
        s(&existing),
        "--out",
        s(&out),
        "--json",
    ]);
    let summary = run.json();

    // The bad rows are named by row and line on stderr, as they are met.
    for needle in [
        "row 5 (line 7): 6 fields where the header has 7",
        "row 9 (line 11): field 4 is not valid UTF-8",
        "row 10 (line 12): the login column is empty",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }

    let d = decisions(&out);
    assert_eq!(d.len(), 11, "one line per row, bad rows included");
    let rows: Vec<&str> = d.iter().map(|r| r["row"].as_str()).collect();
    assert_eq!(
        rows,
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
    );
    let col = |row: usize, c: &str| d[row - 1][c].clone();

    assert_eq!(col(1, "outcome"), "unchanged");
    assert_eq!(col(1, "conflict"), "");
    assert_eq!(col(1, "new_login"), "");

    assert_eq!(col(2, "conflict"), "earlier-row");
    assert_eq!(col(2, "outcome"), "login-changed");
    assert_eq!(col(2, "rule"), "hashed-suffix");
    assert!(suffixed(&col(2, "new_login"), "john.smith", "example.com"));

    assert_eq!(col(3, "conflict"), "existing");
    assert_eq!(col(3, "rule"), "hashed-suffix");
    assert!(
        suffixed(
            &col(3, "new_login"),
            "jose.muller-ludenscheidt",
            "example.com"
        ),
        "{}",
        col(3, "new_login")
    );

    assert_eq!(col(4, "conflict"), "existing");
    assert_eq!(col(4, "rule"), "login-base-hashed-suffix");
    assert!(suffixed(&col(4, "new_login"), "nobody", "example.com"));

    assert_eq!(col(5, "outcome"), "bad-row");
    assert_eq!(col(5, "detail"), "6 fields where the header has 7");

    assert_eq!(col(6, "outcome"), "unchanged");
    // Rows 7 and 8 want one login (one full name, one middle name) and run
    // concurrently: the claim store gives it to one of them, the other gets
    // the hashed suffix.
    let mut pair = Vec::new();
    for row in [7, 8] {
        assert_eq!(col(row, "conflict"), "earlier-row", "row {row}");
        assert_eq!(col(row, "external_id"), format!("e{row}"));
        pair.push((col(row, "rule"), col(row, "new_login")));
    }
    pair.sort();
    assert_eq!(pair[0].0, "hashed-suffix");
    assert!(
        suffixed(&pair[0].1, "mary-ann.obrien", "example.com"),
        "{pair:?}"
    );
    assert_eq!(
        pair[1],
        (
            "middle-name".to_owned(),
            "mary-ann.q.obrien@example.com".to_owned()
        )
    );
    // No new login is another row's, new or old, nor an existing one.
    let mut held: HashSet<String> = ["jmuller@example.com", "nobody@example.com"]
        .map(str::to_owned)
        .into();
    held.extend(d.iter().map(|r| r["old_login"].to_lowercase()));
    for r in &d {
        if !r["new_login"].is_empty() {
            assert!(held.insert(r["new_login"].to_lowercase()), "{r:?}");
        }
    }
    assert_eq!(col(9, "outcome"), "bad-row");
    assert_eq!(col(10, "outcome"), "bad-row");
    assert_eq!(col(11, "outcome"), "unchanged");
    assert_eq!(col(11, "old_login"), "last@example.com");

    assert_eq!(summary["rows"], 11);
    assert_eq!(
        summary["conflicts"],
        serde_json::json!({"earlier-row": 3, "existing": 2})
    );
    assert_eq!(
        summary["outcomes"],
        serde_json::json!({"bad-row": 3, "login-changed": 5, "unchanged": 3})
    );
    assert_eq!(
        summary["commands"],
        serde_json::json!({"com.okta.user.profile.update": 5})
    );
    assert_eq!(
        summary["rules"],
        serde_json::json!({"hashed-suffix": 3, "login-base-hashed-suffix": 1, "middle-name": 1})
    );
    assert_eq!(summary["failures"], serde_json::json!({}));
    assert_eq!(summary["bad_rows"]["count"], 3);
    assert_eq!(summary["bad_rows"]["examples"][0]["row"], 5);
    assert_eq!(summary["bad_rows"]["examples"][0]["line"], 7);
    assert_eq!(summary["new_logins_existing"]["count"], 0);
    assert_eq!(summary["unresolved_conflicts"]["count"], 0);
    assert!(summary["time_per_row"]["p99_ms"].as_f64().unwrap() > 0.0);
    // With claims, no login is handed to two rows.
    assert_eq!(summary["logins_to_two_rows"]["count"], 0);
    // Bad rows (1), no login held twice (2).
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(run.code, Some(1), "{}", run.stderr);

    // The same run for people: the text summary says the same.
    let text = dry_run(&[s(&csv), "--existing", s(&existing), "--quiet"]);
    assert_eq!(text.code, Some(1));
    for needle in [
        "rows:          11",
        "conflicts:     5 (earlier-row 3, existing 2)",
        "rules:         hashed-suffix 3, login-base-hashed-suffix 1, middle-name 1",
        "row 5 (line 7): 6 fields where the header has 7",
        "new logins equal to an existing one:   0",
        "a throwaway store",
        "PROBLEMS: rows failed (exit code 1)",
    ] {
        assert!(text.stdout.contains(needle), "{needle}:\n{}", text.stdout);
    }
}

/// Distinct new logins that are neither an existing login nor any row's own.
fn assert_no_login_held_twice(d: &[std::collections::HashMap<String, String>], existing: &[&str]) {
    let mut held: HashSet<String> = existing.iter().map(|l| l.to_lowercase()).collect();
    held.extend(d.iter().map(|r| r["old_login"].to_lowercase()));
    for r in d {
        if !r["new_login"].is_empty() {
            assert!(
                held.insert(r["new_login"].to_lowercase()),
                "held twice: {r:?}"
            );
        }
    }
}

#[test]
fn with_claims_no_login_is_held_twice_and_a_stateless_plugin_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "externalId,login,firstName,middleName,lastName\n\
         a1,alice.jones@example.com,Alice,B,Jones\n\
         b1,bob.stone@example.com,Bob,,Stone\n\
         c1,carl.ray@example.com,Carl,D,Ray\n\
         c2,carl.ray@example.com,Carl,D,Ray\n\
         c3,carl.ray@example.com,Carl,D,Ray\n",
    )
    .unwrap();
    // alice.jones is held, and so is what the middle-name rule makes of it.
    let held = ["alice.jones@example.com", "Alice.B.Jones@example.com"];
    let existing = existing(dir.path(), &held);
    let out = dir.path().join("decisions.csv");

    // The reference plugin claims its logins; the existing ones are claimed
    // in the throwaway store first, as Okta users hold them.
    let run = dry_run(&[
        s(&csv),
        "--existing",
        s(&existing),
        "--out",
        s(&out),
        "--json",
        "-q",
    ]);
    let summary = run.json();
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        summary["conflicts"],
        serde_json::json!({"existing": 1, "earlier-row": 2})
    );
    assert_eq!(summary["new_logins_existing"]["count"], 0);
    assert_eq!(summary["logins_to_two_rows"]["count"], 0);
    assert_eq!(summary["unresolved_conflicts"]["count"], 0);
    assert_eq!(summary["outcomes"]["login-changed"], 3);
    let d = decisions(&out);
    assert_no_login_held_twice(&d, &held);
    assert!(
        suffixed(&d[0]["new_login"], "alice.jones", "example.com"),
        "{:?}",
        d[0]
    );

    // A stateless 0.1.0 plugin cannot know the infixed login is held, and
    // gives rows 4 and 5 the same one: the checks must say both.
    let run = dry_run(&[
        s(&csv),
        "--plugin",
        s(&legacy_wasm()),
        "--existing",
        s(&existing),
        "--json",
        "-q",
    ]);
    let summary = run.json();
    assert_eq!(summary["new_logins_existing"]["count"], 1);
    assert_eq!(
        summary["new_logins_existing"]["examples"][0]["login"],
        "alice.b.jones@example.com"
    );
    assert_eq!(summary["logins_to_two_rows"]["count"], 1);
    let shared = &summary["logins_to_two_rows"]["examples"][0];
    assert_eq!(shared["login"], "carl.d.ray@example.com");
    assert_eq!(
        (shared["first_row"].as_u64(), shared["row"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

#[test]
fn a_configured_tenant_runs_with_its_settings_and_mapping_flags_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let config = dir.path().join("hookbox.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n\
             [[tenants]]\nid = \"acme\"\nplugin = {:?}\n\
             auth = {{ secrets_file = [\"secret\"] }}\n\
             limits = {{ max_concurrency = 3, instance_mode = \"reuse\" }}\n\
             [tenants.settings]\nmiddle_name_attribute = \"second\"\n",
            login_conflict_wasm()
        ),
    )
    .unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "id,user,first,second,last\n\
         1,pat.kim@example.com,Pat,Lee,Kim\n\
         2,pat.kim@example.com,Pat,Lee,Kim\n",
    )
    .unwrap();
    let mapping = dir.path().join("mapping.txt");
    std::fs::write(
        &mapping,
        "# Okta attribute = column\nlogin = user\nfirstName=first\n",
    )
    .unwrap();
    let run = dry_run(&[
        s(&csv),
        "--config",
        s(&config),
        "--tenant",
        "acme",
        "--map-file",
        s(&mapping),
        "--map",
        "lastName=last",
        "--json",
        "-q",
    ]);
    let summary = run.json();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(summary["instance_mode"], "reuse");
    // The tenant's setting names the middle-name column: the middle-name rule applies.
    assert_eq!(summary["rules"], serde_json::json!({"middle-name": 1}));

    // By default the claims went to a throwaway store: the configured one has none.
    let claims_show = |key: &str| {
        let out = hookbox()
            .args([
                "claims",
                "show",
                "--config",
                s(&config),
                "--tenant",
                "acme",
                key,
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(claims_show("pat.lee.kim@example.com").0, Some(1));
    // With --real-store, the plugin's claim is made in the configured store.
    let real = dry_run(&[
        s(&csv),
        "--config",
        s(&config),
        "--tenant",
        "acme",
        "--map-file",
        s(&mapping),
        "--map",
        "lastName=last",
        "--real-store",
        "-q",
    ]);
    assert_eq!(real.code, Some(0), "{}", real.stderr);
    assert!(real.stdout.contains("REAL"), "{}", real.stdout);
    let (code, owner) = claims_show("pat.lee.kim@example.com");
    assert_eq!(code, Some(0), "the claim is real");
    assert!(owner.starts_with("id:"), "{owner}");

    let cases: &[(&[&str], &str)] = &[
        (&["--tenant", "nope"], "no tenant 'nope'"),
        (&["--map", "login=nope"], "no column 'nope'"),
        (&[], "no login column"),
    ];
    for (extra, needle) in cases {
        let mut args = vec![s(&csv), "--config", s(&config)];
        if !extra.contains(&"--tenant") {
            args.extend(["--tenant", "acme"]);
        }
        args.extend(*extra);
        if extra.is_empty() {
            args.extend(["--map", "login="]);
        }
        let run = dry_run(&args);
        assert_eq!(run.code, Some(64), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
}

#[test]
fn a_hundred_thousand_rows_stream_in_bounded_memory() {
    const ROWS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let write = |rows: usize, name: &str| {
        let path = dir.path().join(name);
        let mut text = String::from("externalId,login,firstName,middleName,lastName,notes\n");
        for i in 0..rows {
            // Every 10th row repeats an earlier login: a conflict, resolved by the plugin.
            let login = if i % 10 == 9 { i - 1 } else { i };
            text.push_str(&format!(
                "x{i},user{login}@example.com,Given{i},,Family{i},\"a note, with a comma, {i}\"\n"
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let small = write(ROWS / 10, "small.csv");
    let big = write(ROWS, "big.csv");
    let mut peaks = Vec::new();
    for (csv, rows) in [(&small, ROWS / 10), (&big, ROWS)] {
        let out = dir.path().join("decisions.csv");
        let run = dry_run(&[s(csv), "--out", s(&out), "--json", "-q"]);
        let summary = run.json();
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(summary["rows"], rows);
        assert_eq!(summary["conflicts"]["earlier-row"], rows / 10);
        assert_eq!(summary["outcomes"]["login-changed"], rows / 10);
        assert_eq!(summary["logins_to_two_rows"]["count"], 0);
        assert_eq!(summary["new_logins_existing"]["count"], 0);
        assert_eq!(summary["unresolved_conflicts"]["count"], 0);
        // Every row's decision, in order: the right row, its own login, and
        // a new login exactly for the repeated ones, none held twice.
        let d = decisions(&out);
        assert_eq!(d.len(), rows);
        for (i, r) in d.iter().enumerate() {
            let login = if i % 10 == 9 { i - 1 } else { i };
            assert_eq!(r["row"], (i + 1).to_string());
            assert_eq!(r["external_id"], format!("x{i}"));
            assert_eq!(r["old_login"], format!("user{login}@example.com"));
            if i % 10 == 9 {
                assert_eq!(r["outcome"], "login-changed", "{r:?}");
                assert!(
                    suffixed(
                        &r["new_login"],
                        &format!("given{i}.family{i}"),
                        "example.com"
                    ),
                    "{r:?}"
                );
            } else {
                assert_eq!(r["outcome"], "unchanged", "{r:?}");
            }
        }
        assert_no_login_held_twice(&d, &[]);
        let rss = summary["peak_rss_bytes"].as_u64().unwrap_or(0);
        eprintln!(
            "{rows} rows: {:.0} rows/s, peak RSS {:.1} MiB",
            summary["rows_per_s"].as_f64().unwrap(),
            rss as f64 / 1048576.0
        );
        peaks.push(rss);
    }
    // Ten times the rows must not cost anywhere near ten times the memory:
    // what grows is one hash per login (about 3 MB for 100,000 rows), not the rows.
    if let [small, big] = peaks[..]
        && small > 0
    {
        assert!(
            big < small + 64 * 1024 * 1024,
            "peak RSS grew from {small} to {big} bytes for 10x the rows"
        );
    }
}
