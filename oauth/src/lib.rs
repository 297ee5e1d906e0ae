//! OAuth 2.0 bearer-token verification for hookbox: Okta's hook calls authenticated with
//! `Authorization: Bearer <JWT>` (issue 13).
//!
//! - [`OAuthConfig`] is the tenant's `auth = { oauth = { ... } }` table; [`OAuthConfig::validate`]
//!   turns it into typed [`OAuthSettings`].
//! - [`Verifier`] (one per tenant, cheap to clone, `Send + Sync`) fetches the issuer's metadata
//!   and keys when built, then verifies header values: [`Verifier::verify`] →
//!   [`VerifiedToken`] or a [`Rejection`] naming the failed check, whose
//!   [`Rejection::status`] is `401`, or `503` when the keys are unavailable. The checks, their
//!   order, the key cache and the 401/503 decision are documented in [`verify`].
//! - [`http::HttpsClient`] is the HTTPS client it uses (rustls + ring, web PKI roots plus an
//!   optional CA), reusable for other calls to identity providers.
//! - [`diagnose`](diagnose::diagnose) runs every step for an operator (`hookbox check-auth`).
//! - With the `test-support` feature, `testing::FakeIssuer` is a real HTTPS issuer on loopback.

pub mod config;
pub mod diagnose;
pub mod http;
pub mod keys;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod verify;

pub use config::{ConfigError, OAuthConfig, OAuthSettings};
pub use diagnose::{Report, diagnose};
pub use verify::{Health, Rejection, SetupError, VerifiedToken, Verifier};
