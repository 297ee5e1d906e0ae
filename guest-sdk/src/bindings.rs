//! The code `wit-bindgen` generates from `wit/okta-import.wit`.
//!
//! Public only so that the [`export!`](crate::export) macro, which expands in
//! the plugin's crate, can name the generated export glue; plugin authors use
//! the re-exports at the crate root instead.

// The generated glue lifts and lowers values across the component ABI with raw
// pointers, which cannot be written without `unsafe`; everything else in the
// SDK stays under the workspace's `unsafe_code = "deny"`.
#![allow(unsafe_code)]
// Generated code: its docs come from the WIT and its style is not ours.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    // Relative to this crate's manifest directory, which cargo sets the same
    // way whether the crate is built from the workspace or by a nested cargo.
    path: "../wit",
    world: "import-hook",
    // The export macro expands in the plugin's crate, not here.
    pub_export_macro: true,
    // Lets tests compare requests, responses and commands with `assert_eq!`.
    additional_derives: [PartialEq],
});
