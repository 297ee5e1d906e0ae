//! Embeds the reference login-conflict plugin into the `hookbox` binary so
//! that `hookbox serve --dev` works with nothing else on disk.
//!
//! If the guest cannot be built (most often: the wasm32-wasip2 target is not
//! installed), the host still builds; `--dev` then explains what is missing.

use std::path::PathBuf;

#[path = "guest.rs"]
mod guest;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest.parent().map(PathBuf::from).unwrap_or_default();
    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("login_conflict.wasm");
    guest::rerun_if_changed(&workspace, &["plugins/login-conflict", "guest-sdk", "wit"]);

    let (bytes, error) = match guest::build(&workspace, &["login-conflict"]) {
        Ok(dir) => match std::fs::read(dir.join("login_conflict.wasm")) {
            Ok(b) => (b, String::new()),
            Err(e) => (
                Vec::new(),
                format!("built, but cannot read login_conflict.wasm: {e}"),
            ),
        },
        Err(e) => (Vec::new(), e),
    };
    if !error.is_empty() {
        println!(
            "cargo:warning=the reference plugin is not embedded: {}",
            error.lines().next().unwrap_or("")
        );
    }
    if let Err(e) = std::fs::write(&out, &bytes) {
        panic!("cannot write {}: {e}", out.display());
    }
    // Only the first line: the full compiler output belongs in the build log, not the binary.
    println!(
        "cargo:rustc-env=HOOKBOX_EMBED_ERROR={}",
        error.lines().next().unwrap_or("")
    );
}
