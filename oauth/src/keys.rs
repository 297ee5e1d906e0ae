//! The issuer's signing keys: a JWKS document turned into verification keys, and how long a
//! fetched set may be used.
//!
//! Invariants:
//! - A key's algorithms are fixed by the key, never by a token: an RSA key verifies
//!   RS256/384/512 and PS256/384/512, an EC P-256 key ES256 only, an EC P-384 key ES384 only; a
//!   JWK that names an `alg` verifies that algorithm only.
//! - Only signature keys are kept: a JWK whose `use` is present and not `sig`, whose `key_ops`
//!   lacks `verify`, which has no `kid`, whose type is not `RSA`/`EC` (in particular `oct`: an
//!   HMAC secret is never a verification key), whose RSA modulus is under 2048 bits or whose EC
//!   coordinates have the wrong length is skipped (and the reason kept for diagnostics).
//! - A set with no usable key is an error, never an empty cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::header::{CACHE_CONTROL, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Shortest time a fetched key set is used before a background refresh.
pub const MIN_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest time a fetched key set is used before a background refresh.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Cache lifetime when the response has no `Cache-Control: max-age`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// One verification key.
pub struct VerifyKey {
    /// The JWK's `kid`.
    pub kid: String,
    /// `RSA` or `EC`.
    pub kty: &'static str,
    /// The algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
    pub(crate) decoding: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys of one JWKS document, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Usable keys by `kid`.
    pub keys: HashMap<String, Arc<VerifyKey>>,
    /// JWKs that were skipped: (`kid` or `?`, why).
    pub skipped: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not `{"keys": [...]}`.
    #[error("not a JWKS document (an object with a \"keys\" array)")]
    Shape,
    /// No key survived the rules in the module documentation.
    #[error("no usable signing key (skipped: {0})")]
    NoUsableKey(String),
}

impl KeySet {
    /// Parses a JWKS document (see the module documentation for what is kept).
    pub fn from_jwks(doc: &serde_json::Value) -> Result<KeySet, JwksError> {
        let list = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or(JwksError::Shape)?;
        let mut set = KeySet::default();
        for raw in list {
            let kid_hint = raw
                .get("kid")
                .and_then(|k| k.as_str())
                .unwrap_or("?")
                .to_owned();
            match parse_jwk(raw) {
                Ok(key) => {
                    if set.keys.contains_key(&key.kid) {
                        set.skipped.push((kid_hint, "duplicate kid".into()));
                    } else {
                        set.keys.insert(key.kid.clone(), Arc::new(key));
                    }
                }
                Err(why) => set.skipped.push((kid_hint, why)),
            }
        }
        if set.keys.is_empty() {
            let why = set
                .skipped
                .iter()
                .map(|(k, w)| format!("{k}: {w}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(JwksError::NoUsableKey(if why.is_empty() {
                "the set is empty".into()
            } else {
                why
            }));
        }
        Ok(set)
    }
}

fn b64_len(field: &str, v: &Option<String>) -> Result<(String, Vec<u8>), String> {
    let s = v.as_deref().ok_or_else(|| format!("no '{field}'"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("'{field}' is not base64url"))?;
    Ok((s.to_owned(), bytes))
}

fn parse_jwk(value: &serde_json::Value) -> Result<VerifyKey, String> {
    let raw: RawJwk = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let kid = raw
        .kid
        .filter(|k| !k.is_empty())
        .ok_or("no kid (a token cannot name it)")?;
    if let Some(u) = &raw.use_
        && u != "sig"
    {
        return Err(format!("use is '{u}', not 'sig'"));
    }
    if let Some(ops) = &raw.key_ops
        && !ops.iter().any(|o| o == "verify")
    {
        return Err("key_ops lacks 'verify'".into());
    }
    let named: Option<Algorithm> = match raw.alg.as_deref() {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| format!("unsupported alg '{a}'"))?),
    };
    let kty = raw.kty.as_deref().unwrap_or("");
    let (kty, family, decoding): (&'static str, Vec<Algorithm>, DecodingKey) = match kty {
        "RSA" => {
            let (n, n_bytes) = b64_len("n", &raw.n)?;
            let (e, _) = b64_len("e", &raw.e)?;
            let significant = n_bytes.iter().skip_while(|b| **b == 0).count();
            let bits = significant * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus of {bits} bits (< {MIN_RSA_BITS})"));
            }
            let key = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            ("RSA", RSA_ALGORITHMS.to_vec(), key)
        }
        "EC" => {
            let (alg, len) = match raw.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            let (x, xb) = b64_len("x", &raw.x)?;
            let (y, yb) = b64_len("y", &raw.y)?;
            if xb.len() != len || yb.len() != len {
                return Err("EC coordinates of the wrong length".into());
            }
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            ("EC", vec![alg], key)
        }
        other => {
            return Err(format!(
                "key type '{other}' is not a signature key type here"
            ));
        }
    };
    let algorithms = match named {
        None => family,
        Some(a) if family.contains(&a) => vec![a],
        Some(a) => return Err(format!("alg {a:?} does not fit a {kty} key")),
    };
    Ok(VerifyKey {
        kid,
        kty,
        algorithms,
        decoding,
    })
}

/// How long a key set fetched with these response headers is used: `Cache-Control: max-age`
/// clamped to [[`MIN_CACHE_TTL`], [`MAX_CACHE_TTL`]] (`no-cache`/`no-store` count as the
/// minimum), [`DEFAULT_CACHE_TTL`] without it.
pub fn cache_ttl(headers: &HeaderMap) -> Duration {
    let mut ttl = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-cache" || directive == "no-store" {
                ttl = Some(Duration::ZERO);
            } else if let Some(age) = directive.strip_prefix("max-age=")
                && let Ok(secs) = age.trim_matches('"').parse::<u64>()
            {
                ttl = Some(ttl.map_or(Duration::from_secs(secs), |t: Duration| {
                    t.min(Duration::from_secs(secs))
                }));
            }
        }
    }
    ttl.unwrap_or(DEFAULT_CACHE_TTL)
        .clamp(MIN_CACHE_TTL, MAX_CACHE_TTL)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn headers(cc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        h
    }

    #[test]
    fn ttl_is_clamped() {
        assert_eq!(cache_ttl(&HeaderMap::new()), DEFAULT_CACHE_TTL);
        assert_eq!(
            cache_ttl(&headers("public, max-age=7200")),
            Duration::from_secs(7200)
        );
        assert_eq!(cache_ttl(&headers("max-age=1")), MIN_CACHE_TTL);
        assert_eq!(cache_ttl(&headers("max-age=99999999")), MAX_CACHE_TTL);
        assert_eq!(cache_ttl(&headers("no-store")), MIN_CACHE_TTL);
        assert_eq!(cache_ttl(&headers("max-age=soon")), DEFAULT_CACHE_TTL);
    }

    fn ec_jwk(kid: &str) -> serde_json::Value {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": x, "y": x, "use": "sig"})
    }

    #[test]
    fn key_rules() {
        let n = URL_SAFE_NO_PAD.encode([0xC1u8; 256]);
        let short_n = URL_SAFE_NO_PAD.encode([0xC1u8; 128]);
        let doc = json!({"keys": [
            ec_jwk("ec"),
            {"kty": "RSA", "kid": "rsa", "n": n, "e": "AQAB", "alg": "RS256"},
            {"kty": "RSA", "kid": "rsa-any", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "short", "n": short_n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "n": n, "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "kid": "ops", "n": n, "e": "AQAB", "key_ops": ["encrypt"]},
            {"kty": "RSA", "kid": "misfit", "n": n, "e": "AQAB", "alg": "ES256"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            ec_jwk("ec"),
        ]});
        let set = KeySet::from_jwks(&doc).unwrap();
        let mut kids: Vec<_> = set.keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["ec", "rsa", "rsa-any"]);
        assert_eq!(set.keys["rsa"].algorithms, [Algorithm::RS256]);
        assert_eq!(set.keys["rsa-any"].algorithms.len(), 6);
        assert_eq!(set.keys["ec"].algorithms, [Algorithm::ES256]);
        assert_eq!(set.skipped.len(), 8, "{:?}", set.skipped);

        assert_eq!(
            KeySet::from_jwks(&json!({"nokeys": []})).unwrap_err(),
            JwksError::Shape
        );
        assert!(matches!(
            KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "kid": "h", "k": "AA"}]})),
            Err(JwksError::NoUsableKey(_))
        ));
    }
}
