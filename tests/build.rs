//! Builds every wasm guest the end-to-end tests load, once per build (not per
//! test), from source: the reference plugin, the misbehaving test plugin, a
//! component of another world, a plugin built for WIT 0.1.0 (`legacy-0-1`),
//! a plugin exporting only the event handler (`events-only`), and
//! the Python and JavaScript ports of the reference plugin (with their real
//! tool chains: componentize-py, componentize-js).
//!
//! `HOOKBOX_SKIP_LANGUAGES=python,javascript` skips those builds (and the
//! conformance runs that need them) on a machine without the tool chains;
//! `.ci/test` installs them, so CI never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../host/build/guest.rs"]
mod guest;

/// Other-language guests: (language, env var for the test, build script, sources to watch).
const OTHER_LANGUAGES: &[(&str, &str, &str, &[&str])] = &[
    (
        "python",
        "HOOKBOX_PY_WASM",
        "plugins/login-conflict-py/build.sh",
        &[
            "plugins/login-conflict-py/src",
            "plugins/login-conflict-py/build.sh",
        ],
    ),
    (
        "javascript",
        "HOOKBOX_JS_WASM",
        "plugins/login-conflict-js/build.sh",
        &[
            "plugins/login-conflict-js/src",
            "plugins/login-conflict-js/build.mjs",
            "plugins/login-conflict-js/build.sh",
            "plugins/login-conflict-js/package-lock.json",
        ],
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest.parent().map(PathBuf::from).unwrap_or_default();
    guest::rerun_if_changed(
        &workspace,
        &["plugins/login-conflict", "tests/guests", "guest-sdk", "wit"],
    );
    match guest::build(
        &workspace,
        &[
            "login-conflict",
            "misbehave",
            "wrong-world",
            "legacy-0-1",
            "events-only",
        ],
    ) {
        Ok(dir) => println!("cargo:rustc-env=HOOKBOX_GUESTS_DIR={}", dir.display()),
        // The tests cannot mean anything without their guests: fail the build, loudly.
        Err(e) => panic!("{e}"),
    }

    println!("cargo:rerun-if-env-changed=HOOKBOX_SKIP_LANGUAGES");
    let skip = std::env::var("HOOKBOX_SKIP_LANGUAGES").unwrap_or_default();
    let out_dir = workspace.join("target").join("guests").join("other");
    for (language, var, script, sources) in OTHER_LANGUAGES {
        guest::rerun_if_changed(&workspace, sources);
        if skip.split(',').any(|s| s.trim() == *language) {
            println!("cargo:warning={language} guests skipped (HOOKBOX_SKIP_LANGUAGES)");
            println!("cargo:rustc-env={var}=");
            continue;
        }
        let out = out_dir.join(format!("login_conflict_{language}.wasm"));
        build_other(&workspace, script, &out).unwrap_or_else(|e| panic!("{e}"));
        println!("cargo:rustc-env={var}={}", out.display());
    }
}

fn build_other(workspace: &Path, script: &str, out: &Path) -> Result<(), String> {
    let output = Command::new("bash")
        .arg(workspace.join(script))
        .arg(out)
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{script} failed (install the tool chains with `bash .ci/test`, or set \
         HOOKBOX_SKIP_LANGUAGES=python,javascript to skip them):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
