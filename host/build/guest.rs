//! Builds wasm guest crates of this workspace from a build script, with a
//! nested `cargo build --target wasm32-wasip2` into `target/guests` (its own
//! target directory, so it never waits on the outer build's lock).
//!
//! Shared by `host/build/main.rs` (the embedded reference plugin) and
//! `tests/build.rs` (every guest the end-to-end tests load).

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// Variables the outer cargo sets for its own compilation that must not leak
/// into the nested build: flags meant for the host target, and clippy's
/// wrapper (which would lint the guests as a side effect of building them).
const SCRUB: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

/// Builds `packages` in release mode and returns the directory holding their
/// `.wasm` components (`<name with underscores>.wasm`).
pub fn build(workspace: &Path, packages: &[&str]) -> Result<PathBuf, String> {
    let target_dir = workspace.join("target").join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for var in SCRUB {
        cmd.env_remove(var);
    }
    // Guests need function names (for trap backtraces) but not DWARF, which
    // would multiply their size; the workspace's release profile keeps line
    // tables for the host.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains(TARGET) && stderr.contains("target may not be installed") {
            format!(" (run `rustup target add {TARGET}`)")
        } else {
            String::new()
        };
        return Err(format!(
            "building {packages:?} for {TARGET} failed{hint}:\n{stderr}"
        ));
    }
    Ok(target_dir.join(TARGET).join("release"))
}

/// Tells cargo to rerun the build script when guest sources change.
pub fn rerun_if_changed(workspace: &Path, dirs: &[&str]) {
    for d in dirs {
        println!("cargo:rerun-if-changed={}", workspace.join(d).display());
    }
}
