//! End-to-end tests of the verifier against a real HTTPS issuer on loopback (`FakeIssuer`, with a
//! CA made per test), no mocks.

#![allow(clippy::unwrap_used)] // a failed step should stop the test loudly

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookbox_oauth::config::{DurationValue, OAuthConfig};
use hookbox_oauth::diagnose::{Outcome, diagnose_with};
use hookbox_oauth::http::{FetchError, HttpsClient};
use hookbox_oauth::testing::{
    self, CLIENT_ID, FakeIssuer, FakeIssuerOptions, KeyKind, SCOPE, alg_none_token, hs256_token,
    tamper_signature,
};
use hookbox_oauth::{Rejection, SetupError, Verifier};
use hyper::StatusCode;
use serde_json::{Value, json};

/// A guard so a hang fails the test instead of blocking the run (not a timing assertion).
const HANG: Duration = Duration::from_secs(30);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn full_config(issuer: &FakeIssuer) -> OAuthConfig {
    let mut config = issuer.config();
    config.client_id = Some(CLIENT_ID.into());
    config.scope = Some(SCOPE.into());
    config
}

async fn verifier_for(issuer: &FakeIssuer, config: &OAuthConfig) -> Verifier {
    Verifier::new(config.validate().unwrap(), issuer.client())
        .await
        .unwrap()
}

async fn setup() -> (FakeIssuer, Verifier) {
    let issuer = FakeIssuer::start().await.unwrap();
    let verifier = verifier_for(&issuer, &full_config(&issuer)).await;
    (issuer, verifier)
}

async fn check(
    verifier: &Verifier,
    token: &str,
) -> Result<hookbox_oauth::VerifiedToken, Rejection> {
    tokio::time::timeout(HANG, verifier.verify(&format!("Bearer {token}")))
        .await
        .expect("verify hung")
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

#[tokio::test]
async fn valid_token_is_accepted() {
    let (issuer, verifier) = setup().await;
    let claims = issuer.claims();
    let token = issuer.mint(&claims, &issuer.current_kid());
    let verified = check(&verifier, &token).await.unwrap();
    assert_eq!(verified.sub.as_deref(), Some(CLIENT_ID));
    assert_eq!(verified.cid.as_deref(), Some(CLIENT_ID));
    assert_eq!(verified.scopes, [SCOPE]);
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(verified.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    // The scheme is case-insensitive.
    assert!(verifier.verify(&format!("bearer {token}")).await.is_ok());
    assert_eq!(issuer.fetch_count(), 1);
    assert_eq!(verifier.fetch_count(), 1);
    assert!(verifier.health().is_ready());
    assert!(
        verifier
            .metadata_url()
            .unwrap()
            .ends_with("/oauth-authorization-server")
    );
}

#[tokio::test]
async fn every_key_type_verifies() {
    for kind in [
        KeyKind::Rs256,
        KeyKind::Ps256,
        KeyKind::Es256,
        KeyKind::Es384,
    ] {
        let issuer = FakeIssuer::start_with(FakeIssuerOptions {
            key: kind,
            ..FakeIssuerOptions::default()
        })
        .await
        .unwrap();
        let verifier = verifier_for(&issuer, &full_config(&issuer)).await;
        let token = issuer.mint(&issuer.claims(), &issuer.current_kid());
        assert!(check(&verifier, &token).await.is_ok(), "{kind:?}");
    }
}

#[tokio::test]
async fn rotation_is_accepted_after_exactly_one_refresh() {
    let (issuer, verifier) = setup().await;
    let old = issuer.current_kid();
    let new = issuer.rotate();
    assert_ne!(old, new);
    assert_eq!(issuer.fetch_count(), 1);
    let token = issuer.mint(&issuer.claims(), &new);
    assert!(check(&verifier, &token).await.is_ok());
    assert_eq!(issuer.fetch_count(), 2);
    // Now cached: no further fetch, and the old key still works.
    assert!(check(&verifier, &token).await.is_ok());
    let old_token = issuer.mint(&issuer.claims(), &old);
    assert!(check(&verifier, &old_token).await.is_ok());
    assert_eq!(issuer.fetch_count(), 2);
}

#[tokio::test]
async fn each_failed_check_has_its_rejection() {
    let (issuer, verifier) = setup().await;
    let kid = issuer.current_kid();
    let good = issuer.claims();
    let t = now();
    let cases: Vec<(&str, String, Rejection)> = vec![
        (
            "expired",
            issuer.mint(&with(good.clone(), "exp", json!(t - 3600)), &kid),
            Rejection::Expired,
        ),
        (
            "expired beyond the 30 s leeway",
            issuer.mint(&with(good.clone(), "exp", json!(t - 40)), &kid),
            Rejection::Expired,
        ),
        (
            "no exp",
            issuer.mint(&without(good.clone(), "exp"), &kid),
            Rejection::Expired,
        ),
        (
            "exp as a string",
            issuer.mint(
                &with(good.clone(), "exp", json!((t + 300).to_string())),
                &kid,
            ),
            Rejection::Expired,
        ),
        (
            "not yet valid",
            issuer.mint(&with(good.clone(), "nbf", json!(t + 3600)), &kid),
            Rejection::NotYetValid,
        ),
        (
            "wrong audience",
            issuer.mint(&with(good.clone(), "aud", json!("api://other")), &kid),
            Rejection::Audience,
        ),
        (
            "audience array without ours",
            issuer.mint(&with(good.clone(), "aud", json!(["a", "b"])), &kid),
            Rejection::Audience,
        ),
        (
            "no audience",
            issuer.mint(&without(good.clone(), "aud"), &kid),
            Rejection::Audience,
        ),
        (
            "wrong issuer",
            issuer.mint(
                &with(
                    good.clone(),
                    "iss",
                    json!("https://evil.example/oauth2/default"),
                ),
                &kid,
            ),
            Rejection::Issuer,
        ),
        (
            "issuer with a trailing slash",
            issuer.mint(
                &with(good.clone(), "iss", json!(format!("{}/", issuer.issuer()))),
                &kid,
            ),
            Rejection::Issuer,
        ),
        (
            "wrong cid",
            issuer.mint(&with(good.clone(), "cid", json!("0oa-someone-else")), &kid),
            Rejection::ClientId,
        ),
        (
            "no cid",
            issuer.mint(&without(good.clone(), "cid"), &kid),
            Rejection::ClientId,
        ),
        (
            "missing scope",
            issuer.mint(&with(good.clone(), "scp", json!(["okta.users.read"])), &kid),
            Rejection::Scope,
        ),
        (
            "tampered signature",
            tamper_signature(&issuer.mint(&good, &kid)),
            Rejection::Signature,
        ),
        (
            "tampered claims",
            {
                let token = issuer.mint(&good, &kid);
                let parts: Vec<&str> = token.split('.').collect();
                let other = issuer.mint(&with(good.clone(), "sub", json!("admin")), &kid);
                let other_claims = other.split('.').nth(1).unwrap().to_owned();
                format!("{}.{}.{}", parts[0], other_claims, parts[2])
            },
            Rejection::Signature,
        ),
        (
            "alg none",
            alg_none_token(&good, &kid),
            Rejection::Algorithm("alg none"),
        ),
        (
            "HS256 signed with the public key",
            hs256_token(&good, &kid, issuer.public_key_pem(&kid).as_bytes()),
            Rejection::Algorithm("HMAC (HS*) is never accepted"),
        ),
        (
            "HS256 signed with the JWK",
            hs256_token(&good, &kid, issuer.jwk(&kid).to_string().as_bytes()),
            Rejection::Algorithm("HMAC (HS*) is never accepted"),
        ),
        (
            "not a JWT",
            "abc.def".into(),
            Rejection::Malformed("not three dot-separated parts"),
        ),
    ];
    for (name, token, want) in &cases {
        let got = check(&verifier, token).await;
        assert_eq!(got.as_ref().err(), Some(want), "{name}");
        let shown = format!("{} {:?}", want, got);
        assert!(!shown.contains(token.as_str()), "{name}: the token leaked");
        assert_eq!(want.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(
        verifier.verify("Basic dXNlcjpwYXNz").await.err(),
        Some(Rejection::MissingBearer)
    );
    // Within the leeway, and a scope in a space-separated `scope` claim, are accepted.
    let lenient = with(
        without(good.clone(), "scp"),
        "scope",
        json!(format!("a {SCOPE}")),
    );
    let lenient = with(lenient, "exp", json!(t - 5));
    assert!(check(&verifier, &issuer.mint(&lenient, &kid)).await.is_ok());
    let aud_array = with(good.clone(), "aud", json!(["x", testing::AUDIENCE]));
    assert!(
        check(&verifier, &issuer.mint(&aud_array, &kid))
            .await
            .is_ok()
    );
    // None of this needed the issuer.
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn algorithm_is_fixed_by_the_key() {
    let issuer = FakeIssuer::start().await.unwrap();
    let rsa = issuer.current_kid();
    let ec = issuer.add_key(KeyKind::Es256);
    let verifier = verifier_for(&issuer, &issuer.config()).await;
    assert_eq!(verifier.keys().len(), 2);
    // An RS256 token naming the EC key: the key does not allow RS256.
    let token = issuer.mint_as(&issuer.claims(), &rsa, &ec);
    assert_eq!(
        check(&verifier, &token).await.err(),
        Some(Rejection::Algorithm("not allowed by the key"))
    );
    // An ES256 token naming the RSA key.
    let token = issuer.mint_as(&issuer.claims(), &ec, &rsa);
    assert_eq!(
        check(&verifier, &token).await.err(),
        Some(Rejection::Algorithm("not allowed by the key"))
    );
    // Signed by one RSA key, naming another: the signature fails.
    let other_rsa = issuer.add_key(KeyKind::Rs256);
    verifier.refresh_now().await.unwrap();
    let token = issuer.mint_as(&issuer.claims(), &other_rsa, &rsa);
    assert_eq!(
        check(&verifier, &token).await.err(),
        Some(Rejection::Signature)
    );
}

#[tokio::test]
async fn forged_kids_cannot_hammer_the_issuer() {
    let (issuer, verifier) = setup().await;
    let kid = issuer.current_kid();
    let claims = issuer.claims();
    // One real signature, 1,000 headers naming random kids (signing 1,000 tokens would only
    // slow the test: an unknown kid is refused before any signature is checked).
    let real = issuer.mint(&claims, &kid);
    let (_, rest) = real.split_once('.').unwrap();
    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("forged-{}", rand::random::<u64>())});
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
        })
        .collect();
    // Half at once (single flight), half one after the other (rate limit).
    let (concurrent, sequential) = tokens.split_at(500);
    let results = futures::future::join_all(concurrent.iter().map(|t| check(&verifier, t))).await;
    for r in results {
        assert_eq!(r.err(), Some(Rejection::UnknownKey));
    }
    for t in sequential {
        assert_eq!(check(&verifier, t).await.err(), Some(Rejection::UnknownKey));
    }
    // One fetch at start, at most one for the forged kids (min_refresh_interval is 10 s).
    assert!(
        issuer.fetch_count() <= 2,
        "{} fetches",
        issuer.fetch_count()
    );
    assert_eq!(issuer.fetch_count(), verifier.fetch_count());
    // And real tokens still pass.
    assert!(check(&verifier, &issuer.mint(&claims, &kid)).await.is_ok());
}

#[tokio::test]
async fn issuer_down_unknown_kid_is_unavailable_known_kids_still_verify() {
    let (issuer, verifier) = setup().await;
    let kid = issuer.current_kid();
    issuer.set_down(true);
    let new = issuer.rotate();
    let unknown = issuer.mint(&issuer.claims(), &new);
    let err = check(&verifier, &unknown).await.unwrap_err();
    assert_eq!(err, Rejection::KeysUnavailable);
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(err.retry_after().is_some());
    // Rate-limited now: still unavailable, without another fetch.
    let fetches = issuer.fetch_count();
    assert_eq!(
        check(&verifier, &unknown).await.err(),
        Some(Rejection::KeysUnavailable)
    );
    assert_eq!(issuer.fetch_count(), fetches);
    // Known keys keep working from the cache.
    assert!(
        check(&verifier, &issuer.mint(&issuer.claims(), &kid))
            .await
            .is_ok()
    );
    // Still ready on the cached key; the failed fetch is reported.
    let health = verifier.health();
    assert!(health.is_ready());
    assert!(!health.last_fetch_ok);
    assert!(health.last_error.unwrap().contains("503"));
    assert_eq!(health.keys, 1);
    // A reload's refresh is not rate-limited, and brings the new key.
    assert!(verifier.refresh_now().await.is_err());
    issuer.set_down(false);
    assert_eq!(verifier.refresh_now().await.unwrap(), 2);
    assert!(verifier.health().is_ready());
    assert!(check(&verifier, &unknown).await.is_ok());
}

#[tokio::test]
async fn stalled_issuer_is_answered_within_the_deadline() {
    let issuer = FakeIssuer::start().await.unwrap();
    let mut config = full_config(&issuer);
    config.fetch_timeout = Some(DurationValue::Text("300ms".into()));
    let verifier = verifier_for(&issuer, &config).await;
    let kid = issuer.current_kid();
    issuer.set_stall(true);
    let new = issuer.rotate();
    let token = issuer.mint(&issuer.claims(), &new);
    assert_eq!(
        check(&verifier, &token).await.err(),
        Some(Rejection::KeysUnavailable)
    );
    // With an explicit, earlier deadline too.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    let r = tokio::time::timeout(
        HANG,
        verifier.verify_by(&format!("Bearer {token}"), deadline),
    )
    .await
    .expect("verify_by hung");
    assert_eq!(r.err(), Some(Rejection::KeysUnavailable));
    assert!(
        check(&verifier, &issuer.mint(&issuer.claims(), &kid))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration() {
    let issuer = FakeIssuer::start_with(FakeIssuerOptions {
        oauth_metadata: false,
        ..FakeIssuerOptions::default()
    })
    .await
    .unwrap();
    let verifier = verifier_for(&issuer, &issuer.config()).await;
    assert!(
        verifier
            .metadata_url()
            .unwrap()
            .ends_with("/.well-known/openid-configuration")
    );
    assert_eq!(verifier.jwks_uri(), issuer.jwks_uri());
    assert_eq!(issuer.metadata_fetch_count(), 2);
    let token = issuer.mint(&issuer.claims(), &issuer.current_kid());
    assert!(check(&verifier, &token).await.is_ok());
}

#[tokio::test]
async fn configured_jwks_uri_skips_discovery() {
    let issuer = FakeIssuer::start().await.unwrap();
    let mut config = issuer.config();
    config.jwks_uri = Some(issuer.jwks_uri());
    let verifier = verifier_for(&issuer, &config).await;
    assert_eq!(verifier.metadata_url(), None);
    assert_eq!(issuer.metadata_fetch_count(), 0);
    assert_eq!(issuer.fetch_count(), 1);
}

#[tokio::test]
async fn setup_errors_name_what_failed() {
    // No metadata document at all.
    let issuer = FakeIssuer::start_with(FakeIssuerOptions {
        oauth_metadata: false,
        openid_metadata: false,
        ..FakeIssuerOptions::default()
    })
    .await
    .unwrap();
    let err = Verifier::new(issuer.config().validate().unwrap(), issuer.client())
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Discovery(_)), "{err}");
    assert!(err.to_string().contains("404"), "{err}");

    // A CA we do not trust.
    let issuer = FakeIssuer::start().await.unwrap();
    let err = Verifier::new(
        issuer.config().validate().unwrap(),
        HttpsClient::new(None).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // Metadata for another issuer (RFC 8414: the issuer must match).
    let mut config = issuer.config();
    config.issuer.push('/');
    let err = Verifier::new(config.validate().unwrap(), issuer.client())
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Metadata { .. }), "{err}");

    // The issuer is down at start.
    issuer.set_down(true);
    let err = Verifier::new(issuer.config().validate().unwrap(), issuer.client())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");

    // The JWKS is down but not the metadata: only with an explicit jwks_uri can we tell.
    issuer.set_down(false);
    let mut config = issuer.config();
    config.jwks_uri = Some(format!("{}/v1/nokeys", issuer.issuer()));
    let err = Verifier::new(config.validate().unwrap(), issuer.client())
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Jwks { .. }), "{err}");
    assert!(err.to_string().contains("/v1/nokeys"), "{err}");
}

#[tokio::test]
async fn ca_file_is_trusted() {
    let issuer = FakeIssuer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("hookbox-oauth-ca-{}", issuer.addr().port()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, issuer.ca_pem()).unwrap();
    let mut config = issuer.config();
    config.ca_file = Some(ca.clone());
    let verifier = Verifier::from_config(&config).await.unwrap();
    assert!(verifier.health().is_ready());
    std::fs::write(&ca, "not a certificate").unwrap();
    let err = Verifier::from_config(&config).await.unwrap_err();
    assert!(matches!(err, SetupError::Client(_)), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn https_client_reports_statuses_and_refuses_http() {
    let issuer = FakeIssuer::start().await.unwrap();
    let client = issuer.client();
    let response = client
        .get(
            &format!("{}/nowhere", issuer.issuer()),
            &Default::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let err = client
        .get_json(
            &format!("{}/nowhere", issuer.issuer()),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Status(StatusCode::NOT_FOUND));
    let http = format!("http://{}/oauth2/default/v1/keys", issuer.addr());
    assert!(matches!(
        client.get_json(&http, Duration::from_secs(5)).await,
        Err(FetchError::InvalidUrl(_))
    ));
    let (jwks, _) = client
        .get_json(&issuer.jwks_uri(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn diagnose_reports_each_step() {
    let issuer = FakeIssuer::start().await.unwrap();
    let config = full_config(&issuer);
    let kid = issuer.current_kid();

    let good = issuer.mint(&issuer.claims(), &kid);
    let report = diagnose_with(&config, Some(issuer.client()), Some(&good)).await;
    assert!(report.ok(), "{report}");
    assert!(matches!(report.outcome("jwks"), Some(Outcome::Pass(d)) if d.contains(&kid)));
    assert!(matches!(
        report.outcome("token.scp"),
        Some(Outcome::Pass(_))
    ));
    assert!(!report.to_string().contains(&good));

    let expired = issuer.mint(&with(issuer.claims(), "exp", json!(now() - 3600)), &kid);
    let report = diagnose_with(&config, Some(issuer.client()), Some(&expired)).await;
    assert!(!report.ok());
    assert!(matches!(
        report.outcome("token.signature"),
        Some(Outcome::Pass(_))
    ));
    assert!(matches!(report.outcome("token.exp"), Some(Outcome::Fail(d)) if d.contains("ago")));
    assert_eq!(report.outcome("token.iss"), Some(&Outcome::Skipped));

    let wrong_aud = issuer.mint(&with(issuer.claims(), "aud", json!("api://x")), &kid);
    let report = diagnose_with(
        &config,
        Some(issuer.client()),
        Some(&format!("Bearer {wrong_aud}")),
    )
    .await;
    assert!(matches!(report.outcome("token.aud"), Some(Outcome::Fail(d)) if d.contains("api://x")));

    // Without a token: only the setup steps.
    let report = diagnose_with(&config, Some(issuer.client()), None).await;
    assert!(report.ok());
    assert_eq!(report.steps.len(), 3);

    issuer.set_down(true);
    let report = diagnose_with(&config, Some(issuer.client()), Some(&good)).await;
    assert!(
        matches!(report.outcome("metadata"), Some(Outcome::Fail(_))),
        "{report}"
    );
    assert_eq!(report.outcome("token.signature"), Some(&Outcome::Skipped));

    let mut bad = config.clone();
    bad.issuer = "http://insecure.example".into();
    let report = diagnose_with(&bad, None, None).await;
    assert!(matches!(report.outcome("config"), Some(Outcome::Fail(d)) if d.contains("https")));
}
