//! Arbitrary TOML text → the configuration parser and validator
//! (`hookbox::config::Config::parse`). Never panics; every refusal says why.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hookbox::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

/// Relative paths resolve here: a directory holding one secret file,
/// `SECRET_FILE` (the name the seeds use), so validation gets past the
/// secrets to everything after them. (`run.sh` sets `HOOKBOX_FUZZ_SECRET`
/// for the seeds' `secrets_env`.)
fn base() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("SECRET_FILE"), "fuzz-secret\n").expect("secret file");
        dir
    })
    .path()
}

/// Validation reads the secret files a config names, as it must: a path to
/// a device (`/dev/zero`, `/dev/stdin`) would read forever, which is the
/// operator's choice, not a bug. Such inputs are skipped, whichever way the
/// path is spelt in TOML (the check runs on the parsed strings).
fn names_a_device(text: &str) -> bool {
    fn any_string(v: &toml::Value, hit: &dyn Fn(&str) -> bool) -> bool {
        match v {
            toml::Value::String(s) => hit(s),
            toml::Value::Array(a) => a.iter().any(|v| any_string(v, hit)),
            toml::Value::Table(t) => t.values().any(|v| any_string(v, hit)),
            _ => false,
        }
    }
    let hit = |s: &str| ["/dev", "/proc", "/sys"].iter().any(|d| s.contains(d));
    match toml::from_str::<toml::Value>(text) {
        Ok(v) => any_string(&v, &hit),
        // Not TOML: the parser refuses it before any file is read.
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_device(text) {
        return;
    }
    if let Err(e) = Config::parse(text, base(), &Overrides::default()) {
        assert!(!e.to_string().is_empty(), "empty config error");
    }
});
