//! The code `wit-bindgen` generates from `wit/0.2.0/okta-import.wit`.
//!
//! Public only so that the [`export!`](crate::export) macro, which expands in
//! the plugin's crate, can name the generated export glue; plugin authors use
//! the re-exports at the crate root instead.
//!
//! A component's world is the union of the component-type sections linked
//! into it, and wit-component insists that every export of that world is
//! implemented. So the two exports live in two worlds generated separately:
//! `import-hook` here (the types, the imports and the resolver's glue) and
//! `event-hook` in [`event_hook`] (the event types and the handler's glue,
//! reusing the imports through `with`). With `pub_export_macro` each world's
//! export section is only emitted where the plugin invokes that world's
//! export macro, so a resolver-only plugin never carries the handler (the
//! host tells them apart by their exports) and a plugin exporting both
//! invokes both macros: the union of the two worlds is
//! `import-and-event-hook`.

// The generated glue lifts and lowers values across the component ABI with raw
// pointers, which cannot be written without `unsafe`; everything else in the
// SDK stays under the workspace's `unsafe_code = "deny"`.
#![allow(unsafe_code)]
// Generated code: its docs come from the WIT and its style is not ours.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    // Relative to this crate's manifest directory, which cargo sets the same
    // way whether the crate is built from the workspace or by a nested cargo.
    path: "../wit/0.2.0",
    world: "import-hook",
    // The export macro expands in the plugin's crate, not here.
    pub_export_macro: true,
    // Lets tests compare requests, responses and commands with `assert_eq!`.
    additional_derives: [PartialEq],
});

/// The event types and the export glue of world `event-hook`.
pub mod event_hook {
    wit_bindgen::generate!({
        path: "../wit/0.2.0",
        world: "event-hook",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        with: {
            "hookbox:okta-import/host@0.2.0": crate::bindings::hookbox::okta_import::host,
            "hookbox:okta-import/claims@0.2.0": crate::bindings::hookbox::okta_import::claims,
            "hookbox:okta-import/directory@0.2.0": crate::bindings::hookbox::okta_import::directory,
            "hookbox:okta-import/events@0.2.0": generate,
        },
    });
}
