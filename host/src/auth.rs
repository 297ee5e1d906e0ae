//! How Okta authenticates to hookbox: a header secret, OAuth 2.0, or both.
//!
//! **Header secret** (`authScheme` type `HEADER`, [`Auth`]): Okta sends a
//! configured header with a configured value verbatim. A tenant accepts one
//! or more values at once so a secret can be rotated without downtime: add
//! the new value, switch Okta over, remove the old one. Comparison is
//! constant-time in the value's content, so the time a wrong guess takes
//! does not tell how much of it was right.
//!
//! **OAuth 2.0** (`auth.oauth`, verified by [`hookbox_oauth::Verifier`]): Okta
//! sends `Authorization: Bearer <JWT>`, an access token of the tenant's
//! authorization server, checked against the server's published keys.
//!
//! A tenant has either or both ([`TenantAuth`]; both while it migrates from
//! one to the other). [`authenticate`] is the one place a tenant's request is
//! checked, in this order:
//! 1. the header secret, when configured: exactly one header of that name
//!    whose value is one of the secrets → accepted. It is exact and costs
//!    about 0.1 µs, so it goes first;
//! 2. OAuth, when configured: exactly one `Authorization` header whose value
//!    is `Bearer <token>` → the verifier's verdict is final: accepted, `401`,
//!    or `503` + `Retry-After` when the issuer's keys cannot be had in time;
//! 3. anything else → `401`.
//!
//! A bearer token is never compared as a secret unless the header-secret
//! check is configured on `Authorization` itself (then step 1 compares the
//! whole value, `Bearer ...` included, with the secrets, which only matches a
//! value the operator configured verbatim), and a failed secret never falls
//! through to anything but step 2. Nothing is read from the request body
//! before this passes. The caller learns only "invalid credentials" (or that
//! the keys are unavailable); the log says which check failed, never the
//! credential.

use std::fmt;

use hookbox_oauth::{OAuthConfig, Rejection, VerifiedToken, Verifier};
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

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

/// How Okta authenticates to one tenant: a header secret, OAuth 2.0, or both
/// while the tenant migrates (at least one; see the module docs for the order).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantAuth {
    /// The header-secret check, if configured.
    pub secret: Option<Auth>,
    /// The OAuth settings, if configured: validated, `ca_file` absolute.
    pub oauth: Option<OAuthConfig>,
}

impl TenantAuth {
    /// Header secrets only (what every tenant had before OAuth).
    pub fn secret(auth: Auth) -> TenantAuth {
        TenantAuth {
            secret: Some(auth),
            oauth: None,
        }
    }
}

/// How a request was let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// By one of the tenant's header secrets.
    Secret,
    /// By a verified OAuth access token.
    OAuth(VerifiedToken),
}

impl Authenticated {
    /// `secret` or `oauth`, for the log line.
    pub fn method(&self) -> &'static str {
        match self {
            Authenticated::Secret => "secret",
            Authenticated::OAuth(_) => "oauth",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No OAuth verdict applies (no bearer token, or the tenant has no OAuth),
    /// and the header secret is missing or wrong (or not configured).
    #[error("missing or invalid header secret")]
    Secret,
    /// The bearer token was refused ([`Rejection::status`]: `401`, or `503`).
    #[error("bearer token refused: {0}")]
    OAuth(Rejection),
}

impl Refusal {
    /// A short stable name of the failed check, for logs and metrics: `secret`,
    /// or the OAuth check ([`Rejection::check`], e.g. `exp`, `aud`, `kid`).
    pub fn check(&self) -> &'static str {
        match self {
            Refusal::Secret => "secret",
            Refusal::OAuth(r) => r.check(),
        }
    }
}

/// The one `Authorization` value, if it is `Bearer ...` (scheme case-insensitive).
fn bearer_value(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // Missing, or sent twice: ambiguous, never guessed at.
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, _) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(value)
}

/// Checks a tenant's request in the order the module docs give. `verifier` is
/// the tenant's (built from `auth.oauth`); a tenant with OAuth but no verifier
/// refuses bearer tokens as unavailable keys (fail closed). Waits for the
/// issuer's keys at most until `deadline`.
pub async fn authenticate(
    auth: &TenantAuth,
    verifier: Option<&Verifier>,
    headers: &HeaderMap,
    deadline: Instant,
) -> Result<Authenticated, Refusal> {
    if let Some(secret) = &auth.secret
        && secret.verify(headers)
    {
        return Ok(Authenticated::Secret);
    }
    if auth.oauth.is_none() {
        return Err(Refusal::Secret);
    }
    let Some(value) = bearer_value(headers) else {
        return Err(match auth.secret {
            // A migrating tenant's caller sent neither: say the secret failed.
            Some(_) => Refusal::Secret,
            None => Refusal::OAuth(Rejection::MissingBearer),
        });
    };
    let Some(verifier) = verifier else {
        return Err(Refusal::OAuth(Rejection::KeysUnavailable));
    };
    verifier
        .verify_by(value, deadline)
        .await
        .map(Authenticated::OAuth)
        .map_err(Refusal::OAuth)
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
    fn only_one_bearer_authorization_value_counts() {
        assert!(bearer_value(&headers(&[("authorization", "Bearer a.b.c")])).is_some());
        assert!(bearer_value(&headers(&[("authorization", "bearer a.b.c")])).is_some());
        assert!(bearer_value(&headers(&[("authorization", "Basic YWI6Y2Q=")])).is_none());
        assert!(bearer_value(&headers(&[("authorization", "a.b.c")])).is_none());
        assert!(bearer_value(&headers(&[("x-okta-secret", "Bearer a.b.c")])).is_none());
        assert!(
            bearer_value(&headers(&[
                ("authorization", "Bearer a.b.c"),
                ("authorization", "Bearer a.b.c")
            ]))
            .is_none()
        );
    }

    #[tokio::test]
    async fn secrets_first_then_oauth_and_nothing_else() {
        let deadline = Instant::now() + std::time::Duration::from_millis(10);
        let secret_only = TenantAuth::secret(auth());
        let both = TenantAuth {
            secret: Some(auth()),
            oauth: Some(OAuthConfig::new("https://issuer.example", "api://default")),
        };
        let oauth_only = TenantAuth {
            secret: None,
            ..both.clone()
        };
        let good = headers(&[("x-okta-secret", "new")]);
        let bearer = headers(&[("authorization", "Bearer a.b.c")]);
        let nothing = headers(&[]);
        let check = |a: &TenantAuth, h: &HeaderMap| {
            let (a, h) = (a.clone(), h.clone());
            async move { authenticate(&a, None, &h, deadline).await }
        };
        assert_eq!(check(&secret_only, &good).await, Ok(Authenticated::Secret));
        assert_eq!(check(&both, &good).await, Ok(Authenticated::Secret));
        // A bearer token on a secret-only tenant is a wrong secret, never verified.
        assert_eq!(check(&secret_only, &bearer).await, Err(Refusal::Secret));
        // Without a verifier, OAuth fails closed.
        assert_eq!(
            check(&both, &bearer).await,
            Err(Refusal::OAuth(Rejection::KeysUnavailable))
        );
        assert_eq!(check(&both, &nothing).await, Err(Refusal::Secret));
        assert_eq!(
            check(&oauth_only, &nothing).await,
            Err(Refusal::OAuth(Rejection::MissingBearer))
        );
        // The secret header is not a way in for an OAuth-only tenant.
        assert_eq!(
            check(&oauth_only, &good).await,
            Err(Refusal::OAuth(Rejection::MissingBearer))
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", auth()).contains("new"));
    }
}
