//! Write hookbox plugins for Okta's User Import Inline Hook (and Okta's event
//! hooks) in Rust.
//!
//! A resolver plugin is a WebAssembly component that exports one function:
//! given one imported user (a [`Request`]), answer what Okta should do (a
//! [`Response`]), or an error summary. The host does everything else: HTTPS,
//! authenticating Okta, JSON, limits. This crate hides the `wit-bindgen` glue
//! (WIT package `hookbox:okta-import@0.2.0`) behind a trait, [`Resolver`], and
//! a macro, [`export!`].
//!
//! The host also grants a claim store ([`Claims`], through [`Host::claims`]:
//! "this login belongs to that user", atomic, durable, shared by every
//! replica), a read-only lookup in the tenant's Okta directory
//! ([`Directory`], through [`Host::directory`]), and may deliver Okta events
//! to an [`EventHandler`]. All three have in-memory fakes ([`FakeClaims`],
//! [`FakeDirectory`], [`SyncEvent::builder`]) for plain `cargo test`.
//!
//! # A complete plugin
//!
//! `Cargo.toml`: a `cdylib` is the component; the `rlib` lets `cargo test`
//! run the resolver natively.
//!
//! ```toml
//! [package]
//! name = "work-login"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! hookbox-sdk = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use hookbox_sdk::{Host, Request, Resolver, Response};
//!
//! /// On a login conflict, moves the user to the domain in setting `domain`.
//! pub struct WorkLogin;
//!
//! impl Resolver for WorkLogin {
//!     fn resolve(request: &Request, host: &Host) -> Result<Response, String> {
//!         if !request.has_conflict("login") {
//!             return Ok(Response::none());
//!         }
//!         let domain = host.setting_or("domain", "example.com");
//!         let (Some(first), Some(last)) = (
//!             request.app_user().get_str("firstName"),
//!             request.app_user().get_str("lastName"),
//!         ) else {
//!             // The summary reaches Okta's System Log: no personal data in it.
//!             return Err("work-login: the imported user has no first or last name".into());
//!         };
//!         // Logs are not private either: say what happened, not to whom.
//!         host.debug("login moved to the work domain");
//!         let login = format!("{first}.{last}@{domain}").to_lowercase();
//!         Ok(Response::new()
//!             .update_user_profile("login", login)
//!             .debug("resolver", "work-login"))
//!     }
//! }
//!
//! hookbox_sdk::export!(WorkLogin);
//!
//! #[cfg(test)]
//! mod tests {
//!     use super::*;
//!     use hookbox_sdk::Value;
//!
//!     #[test]
//!     fn moves_conflicting_login_to_the_work_domain() {
//!         let request = Request::builder()
//!             .app_user_attr("firstName", "Ada")
//!             .app_user_attr("lastName", "Lovelace")
//!             .user_attr("login", "ada@example.org")
//!             .conflict("login")
//!             .build();
//!         let host = Host::fake([("domain", "corp.example")]);
//!         let response = WorkLogin::resolve(&request, &host).unwrap();
//!         assert_eq!(
//!             response.user_profile_value("login"),
//!             Some(&Value::from("ada.lovelace@corp.example"))
//!         );
//!         assert_eq!(host.logs().len(), 1);
//!     }
//! }
//! # fn main() {
//! #     use hookbox_sdk::Value;
//! #     let request = Request::builder()
//! #         .app_user_attr("firstName", "Ada")
//! #         .app_user_attr("lastName", "Lovelace")
//! #         .user_attr("login", "ada@example.org")
//! #         .conflict("login")
//! #         .build();
//! #     let host = Host::fake([("domain", "corp.example")]);
//! #     let response = WorkLogin::resolve(&request, &host).unwrap();
//! #     assert_eq!(
//! #         response.user_profile_value("login"),
//! #         Some(&Value::from("ada.lovelace@corp.example"))
//! #     );
//! #     assert_eq!(host.logs().len(), 1);
//! #     assert!(WorkLogin::resolve(&Request::builder().build(), &host).unwrap().is_empty());
//! # }
//! ```
//!
//! Build the component (a `wasm32-wasip2` cdylib is a component as is) and
//! test the logic natively:
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! # -> target/wasm32-wasip2/release/work_login.wasm
//! cargo test
//! ```
//!
//! # Rules a resolver must follow
//!
//! - Be deterministic: Okta retries the same event id once and both answers
//!   must agree. No clocks, no randomness, no hash-map iteration order; an
//!   answer may depend on the claim store, as long as the same user gets the
//!   same answer again (claim with a stable owner: a retry gets
//!   `already-yours`).
//! - Finish fast: Okta waits 3 seconds for the whole call, and the host
//!   enforces its own, shorter deadline and memory limit.
//! - Never log or put in the debug context profile values or anything
//!   personal; the error summary reaches Okta's System Log too.
//!
//! # The heap
//!
//! On `wasm32` the SDK installs the plugin's global allocator (default
//! feature `call-arena`): a 64 KiB bump arena in front of the system
//! allocator, which starts over whenever everything allocated in it has been
//! freed, normally at the end of every call. It makes the host's lowering of
//! a request (one allocation per string) and the resolver's temporaries a
//! pointer bump. Memory kept across calls (a `static` cache) is never reused
//! while alive; it only means later calls spill to the system allocator
//! sooner. To install your own `#[global_allocator]`, depend on `hookbox-sdk`
//! with `default-features = false`.
//!
//! # Outside WebAssembly
//!
//! On targets other than `wasm32`, [`export!`] only checks that the type
//! implements [`Resolver`], and the only [`Host`] is [`Host::fake`]: the
//! host imports are never called, so resolver logic runs under plain
//! `cargo test`.

// The crate example shows a plugin's unit test on purpose; its hidden `main`
// runs the same checks, so the doctest still tests what it shows.
#![allow(clippy::test_attr_in_doctest)]

// Compiled for tests too, where its unit tests run it natively.
#[cfg(any(
    test,
    all(
        feature = "call-arena",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    )
))]
mod arena;
pub mod claims;
pub mod directory;
pub mod events;
mod host;
mod request;
mod response;
mod value;

#[doc(hidden)]
pub mod bindings;

pub use bindings::hookbox::okta_import::types::{
    ActionResult, Application, Attribute, Command, Context, ImportRequest, Job, Scalar, Value,
};
pub use claims::{ClaimResult, Claims, FakeClaims, StoreError};
pub use directory::{Directory, DirectoryError, FakeDirectory};
pub use events::{Actor, Event, EventHandler, LogEvent, Outcome, SyncEvent, SyncEventBuilder};
pub use host::{Host, Level, LogLine};
pub use request::{Profile, Request, RequestBuilder};
pub use response::Response;

/// A guest's heap: a per-call bump arena in front of the system allocator
/// (see `arena.rs` for why and how). To bring your own `#[global_allocator]`,
/// turn off the default feature `call-arena`.
#[cfg(all(
    feature = "call-arena",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: arena::CallArena = arena::CallArena::new();

/// Runs `f` so that what it allocates may outlive the call without keeping
/// the arena (if any) from starting over.
#[cfg(target_arch = "wasm32")]
fn kept_across_calls<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "call-arena", not(target_feature = "atomics")))]
    return ALLOCATOR.outside(f);
    #[cfg(not(all(feature = "call-arena", not(target_feature = "atomics"))))]
    return f();
}

/// The logic of a plugin: decides what Okta should do with one imported user.
///
/// Implement it on a unit struct and export it with [`export!`].
pub trait Resolver {
    /// Answers one call of the hook.
    ///
    /// `Err(summary)` becomes Okta's `error.errorSummary`: Okta logs it and
    /// creates the user with its default action. Keep it one clear sentence,
    /// without personal data.
    fn resolve(request: &Request, host: &Host) -> Result<Response, String>;
}

/// Exports a [`Resolver`], an [`EventHandler`], or both, as the plugin's
/// `resolve` and `handle` functions.
///
/// Use it once, at the root of a `cdylib` crate:
///
/// - `export!(MyResolver)` or `export!(resolver: MyResolver)`: the import
///   hook only (world `import-hook`);
/// - `export!(handler: MyHandler)`: Okta event hooks only (world `event-hook`);
/// - `export!(resolver: MyResolver, handler: MyHandler)`: both (world
///   `import-and-event-hook`); one type may implement both traits.
///
/// ```
/// # use hookbox_sdk::{Event, EventHandler, Host, Request, Resolver, Response};
/// pub struct Nothing;
///
/// impl Resolver for Nothing {
///     fn resolve(_: &Request, _: &Host) -> Result<Response, String> {
///         Ok(Response::none())
///     }
/// }
///
/// impl EventHandler for Nothing {
///     fn handle(_: &Event, _: &Host) -> Result<(), String> {
///         Ok(())
///     }
/// }
///
/// hookbox_sdk::export!(resolver: Nothing, handler: Nothing);
/// # fn main() {}
/// ```
///
/// On `wasm32` it generates the component exports (only those asked for: the
/// host tells a resolver from a handler by what the component exports);
/// elsewhere it only checks that the types implement the traits, so the
/// crate also builds natively for tests.
#[macro_export]
macro_rules! export {
    (resolver: $resolver:ty, handler: $handler:ty $(,)?) => {
        $crate::export!(@resolver $resolver);
        $crate::export!(@handler $handler);
    };
    (handler: $handler:ty, resolver: $resolver:ty $(,)?) => {
        $crate::export!(@resolver $resolver);
        $crate::export!(@handler $handler);
    };
    (resolver: $resolver:ty $(,)?) => {
        $crate::export!(@resolver $resolver);
    };
    (handler: $handler:ty $(,)?) => {
        $crate::export!(@handler $handler);
    };
    (@resolver $resolver:ty) => {
        const _: () = {
            fn __hookbox_assert_resolver<R: $crate::Resolver>() {}
            let _ = __hookbox_assert_resolver::<$resolver>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __HookboxExport;

            impl $crate::__private::Guest for __HookboxExport {
                fn resolve(
                    request: $crate::ImportRequest,
                ) -> ::core::result::Result<
                    $crate::__private::RawResponse,
                    $crate::__private::String,
                > {
                    $crate::__private::resolve::<$resolver>(request)
                }
            }

            $crate::__private::export_world!(
                __HookboxExport with_types_in $crate::bindings
            );
        };
    };
    (@handler $handler:ty) => {
        const _: () = {
            fn __hookbox_assert_handler<H: $crate::EventHandler>() {}
            let _ = __hookbox_assert_handler::<$handler>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __HookboxHandlerExport;

            impl $crate::__private::HandlerGuest for __HookboxHandlerExport {
                fn handle(
                    event: $crate::Event,
                ) -> ::core::result::Result<(), $crate::__private::String> {
                    $crate::__private::handle::<$handler>(event)
                }
            }

            $crate::__private::export_event_world!(
                __HookboxHandlerExport with_types_in $crate::bindings::event_hook
            );
        };
    };
    ($resolver:ty) => {
        $crate::export!(@resolver $resolver);
    };
}

/// Used by [`export!`] only; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::event_hook::export as export_event_world;
    pub use crate::bindings::event_hook::exports::hookbox::okta_import::event_handler::Guest as HandlerGuest;
    pub use crate::bindings::export as export_world;
    pub use crate::bindings::exports::hookbox::okta_import::resolver::Guest;
    pub use crate::bindings::hookbox::okta_import::types::Response as RawResponse;
    pub use std::string::String;

    /// Runs resolver `R` on one call from the host.
    #[cfg(target_arch = "wasm32")]
    pub fn resolve<R: crate::Resolver>(
        request: crate::ImportRequest,
    ) -> Result<RawResponse, String> {
        let host = crate::Host::component();
        R::resolve(&crate::Request::from(request), &host).map(crate::Response::into_raw)
    }

    /// Runs event handler `H` on one event from the host.
    #[cfg(target_arch = "wasm32")]
    pub fn handle<H: crate::EventHandler>(event: crate::Event) -> Result<(), String> {
        let host = crate::Host::component();
        H::handle(&event, &host)
    }
}
