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

    build_bombs(&workspace).unwrap_or_else(|e| panic!("building the bomb guests: {e}"));

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

/// Components past one share each of a plugin's part of the instance pool
/// (`plugin::engine`): `(name, core module, instances of it)`. Each is
/// refused at load, before it could take other calls' slots; none needs a
/// world. 1,000 core instances is far below what an attacker would write,
/// which the same check refuses the same way.
const SHAPE_BOMBS: &[(&str, &str, usize)] = &[
    ("instances", "(core module $m)", 1_000),
    ("memories", "(core module $m (memory 1))", 3),
    ("tables", "(core module $m (table 1 funcref))", 9),
    ("table_size", "(core module $m (table 20001 funcref))", 1),
];

/// The hand-written adversarial guests, into `OUT_DIR` (its path in
/// `HOOKBOX_BOMBS_DIR`):
/// - `table_bomb.wasm`: `tests/guests/bombs/table-bomb.wat`, a core module,
///   given the 0.1.0 world's metadata and made a component (what
///   `wasm-tools component embed` and `component new` do);
/// - `shape_<name>.wasm`: the components of [`SHAPE_BOMBS`], generated here.
fn build_bombs(workspace: &Path) -> Result<(), String> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let source = workspace.join("tests/guests/bombs/table-bomb.wat");
    println!("cargo:rerun-if-changed={}", source.display());
    let mut core = wat::parse_file(&source).map_err(|e| e.to_string())?;
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(workspace.join("wit"))
        .map_err(|e| format!("{e:#}"))?;
    let world = resolve
        .select_world(&[package], Some("import-hook"))
        .map_err(|e| format!("{e:#}"))?;
    wit_component::embed_component_metadata(
        &mut core,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| format!("{e:#}"))?;
    let table_bomb = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{e:#}"))?;
    std::fs::write(out_dir.join("table_bomb.wasm"), table_bomb).map_err(|e| e.to_string())?;

    for (name, module, instances) in SHAPE_BOMBS {
        let instances = "  (core instance (instantiate $m))\n".repeat(*instances);
        let text = format!("(component\n  {module}\n{instances})\n");
        let wasm = wat::parse_str(&text).map_err(|e| format!("{name}: {e}"))?;
        std::fs::write(out_dir.join(format!("shape_{name}.wasm")), wasm)
            .map_err(|e| e.to_string())?;
    }
    println!("cargo:rustc-env=HOOKBOX_BOMBS_DIR={}", out_dir.display());
    Ok(())
}
