//! Builds every wasm guest the end-to-end tests load, once per build (not per
//! test), from source: the reference plugin and the misbehaving test plugin.

use std::path::PathBuf;

#[path = "../host/build/guest.rs"]
mod guest;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest.parent().map(PathBuf::from).unwrap_or_default();
    guest::rerun_if_changed(
        &workspace,
        &["plugins/login-conflict", "tests/guests", "guest-sdk", "wit"],
    );
    match guest::build(&workspace, &["login-conflict", "misbehave"]) {
        Ok(dir) => println!("cargo:rustc-env=HOOKBOX_GUESTS_DIR={}", dir.display()),
        // The tests cannot mean anything without their guests: fail the build, loudly.
        Err(e) => panic!("{e}"),
    }
}
