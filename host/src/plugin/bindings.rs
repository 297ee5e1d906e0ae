//! The generated bindings of every WIT version hookbox serves, side by side.
//!
//! - [`v0_1`]: `hookbox:okta-import@0.1.0` (`wit/okta-import.wit`), world
//!   `import-hook`: `host` imported, `resolver` exported.
//! - [`v0_2`]: `hookbox:okta-import@0.2.0` (`wit/0.2.0/okta-import.wit`),
//!   world `import-and-event-hook`: `host`, `claims` and `directory`
//!   imported; `resolver` and `event-handler` exported (a plugin may export
//!   either or both).
//!
//! Invariant: the two versions share ONE set of Rust types for the request
//! and the answer. `interface types` is identical in both packages, so
//! 0.2.0's is mapped (`with`) onto 0.1.0's generated module: the decoder,
//! the encoder and `resolve`'s typed call are written once, for both. The
//! component model type-checks records and variants structurally, so a
//! 0.2.0 component accepts the very same values. `host` is generated twice
//! (its instance name carries the version), with one implementation behind
//! both (`state.rs`).

/// WIT 0.1.0: the world every plugin built before 0.2.0 implements.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "import-hook",
        path: "../wit",
        exports: { default: async },
    });
}

/// WIT 0.2.0: claims, the directory and event handlers.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "import-and-event-hook",
        path: "../wit/0.2.0",
        // Claims reach the store (redb on the blocking pool, or Redis): async.
        imports: {
            "hookbox:okta-import/claims": async,
            "hookbox:okta-import/directory": async,
        },
        exports: { default: async },
        with: {
            "hookbox:okta-import/types@0.2.0": super::v0_1::hookbox::okta_import::types,
        },
    });
}
