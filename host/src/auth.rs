//! Okta's header-secret authentication (`authScheme` type `HEADER`).
//!
//! Okta sends a configured header with a configured value verbatim. A tenant
//! accepts one or more values at once so a secret can be rotated without
//! downtime: add the new value, switch Okta over, remove the old one.
//! Comparison is constant-time in the value's content, so the time a wrong
//! guess takes does not tell how much of it was right.

use std::fmt;

use hyper::header::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

/// A secret value. `Debug` never prints it, so it cannot leak into logs by accident.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret with this content.
    pub fn new(value: impl Into<Vec<u8>>) -> Secret {
        Secret(value.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Equal content, compared in constant time (a reload compares old and new secrets).
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

/// Why an `Auth` cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a header name HTTP allows.
    #[error("'{0}' is not a valid header name")]
    InvalidHeader(String),
    /// No secret: hookbox never serves without auth.
    #[error("at least one secret is required")]
    NoSecret,
}

/// The one check of a header name (a tenant's, the admin's), so every
/// configured header is one HTTP allows.
pub fn header_name(name: &str) -> Result<HeaderName, AuthError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| AuthError::InvalidHeader(name.to_owned()))
}

/// How one tenant authenticates Okta.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    header: HeaderName,
    secrets: Vec<Secret>,
}

impl Auth {
    /// `header` is the header Okta sends (any name Okta allows, usually
    /// `Authorization`; see [`header_name`]), `secrets` the values it accepts.
    pub fn new(header: HeaderName, secrets: Vec<Secret>) -> Result<Auth, AuthError> {
        if secrets.is_empty() {
            return Err(AuthError::NoSecret);
        }
        Ok(Auth { header, secrets })
    }

    /// The header Okta must send.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// True when the request carries exactly one auth header whose value is one of the secrets.
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            // Missing, or sent twice: an ambiguous credential is refused, not guessed at.
            return false;
        };
        let presented = value.as_bytes();
        // Check every secret (no early exit) so timing does not reveal which one matched.
        self.secrets
            .iter()
            .fold(subtle::Choice::from(0), |acc, s| {
                acc | s.0.as_slice().ct_eq(presented)
            })
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn auth() -> Auth {
        Auth::new(
            header_name("X-Okta-Secret").expect("a header name"),
            vec![Secret::new("old"), Secret::new("new")],
        )
        .expect("auth")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepts_any_configured_secret() {
        assert!(auth().verify(&headers(&[("x-okta-secret", "old")])));
        assert!(auth().verify(&headers(&[("x-okta-secret", "new")])));
    }

    #[test]
    fn refuses_wrong_missing_prefix_and_duplicate() {
        assert!(!auth().verify(&headers(&[("x-okta-secret", "ne")])));
        assert!(!auth().verify(&headers(&[("x-okta-secret", "newer")])));
        assert!(!auth().verify(&headers(&[("authorization", "new")])));
        assert!(!auth().verify(&headers(&[])));
        assert!(!auth().verify(&headers(&[
            ("x-okta-secret", "new"),
            ("x-okta-secret", "new")
        ])));
    }

    #[test]
    fn header_names_are_checked_and_secrets_required() {
        assert_eq!(
            header_name("bad header").err(),
            Some(AuthError::InvalidHeader("bad header".into()))
        );
        let header = header_name("Authorization").expect("valid");
        assert_eq!(
            Auth::new(header, Vec::new()).err(),
            Some(AuthError::NoSecret)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", auth()).contains("new"));
    }
}
