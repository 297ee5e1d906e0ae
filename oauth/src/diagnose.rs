//! An operator's check of a tenant's OAuth setup (`hookbox check-auth`): [`diagnose`] runs each
//! step a verifier runs, and says which passed.
//!
//! The report never contains the token. For a token it shows the values of the claims checked
//! (issuer, audience, times, client id, scopes) next to what the configuration expects, read
//! without verification for the failing steps' sake: they are labelled as the token's claims,
//! not as facts.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::config::OAuthConfig;
use crate::http::HttpsClient;
use crate::verify::{Rejection, SetupError, Verifier};

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step passed; the detail says what was found.
    Pass(String),
    /// The step failed, and why.
    Fail(String),
    /// Not run because an earlier step failed.
    Skipped,
}

/// One step of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// A short name, e.g. `metadata`, `token.exp`.
    pub name: &'static str,
    /// What happened.
    pub outcome: Outcome,
}

/// Every step, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Report {
    /// No step failed.
    pub fn ok(&self) -> bool {
        !self
            .steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Fail(_)))
    }

    /// The outcome of the step `name`, if it is in the report.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.outcome)
    }

    fn push(&mut self, name: &'static str, outcome: Outcome) {
        self.steps.push(Step { name, outcome });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match &step.outcome {
                Outcome::Pass(d) => writeln!(f, "pass  {:<16} {d}", step.name)?,
                Outcome::Fail(d) => writeln!(f, "FAIL  {:<16} {d}", step.name)?,
                Outcome::Skipped => {
                    writeln!(f, "skip  {:<16} (an earlier step failed)", step.name)?
                }
            }
        }
        Ok(())
    }
}

/// The token checks, in the verifier's order, and the rejection that means each failed.
const TOKEN_STEPS: [&str; 10] = [
    "token.bearer",
    "token.alg",
    "token.kid",
    "token.signature",
    "token.exp",
    "token.nbf",
    "token.iss",
    "token.aud",
    "token.cid",
    "token.scp",
];

fn step_of(rejection: &Rejection) -> usize {
    match rejection {
        Rejection::MissingBearer | Rejection::Malformed(_) => 0,
        Rejection::Algorithm(_) => 1,
        Rejection::UnknownKey | Rejection::KeysUnavailable => 2,
        Rejection::Signature => 3,
        Rejection::Expired => 4,
        Rejection::NotYetValid => 5,
        Rejection::Issuer => 6,
        Rejection::Audience => 7,
        Rejection::ClientId => 8,
        Rejection::Scope => 9,
    }
}

fn part(token: &str, index: usize) -> Option<Value> {
    let segment = token.split('.').nth(index)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

fn relative(t: Option<&Value>) -> String {
    let Some(secs) = t.and_then(Value::as_f64) else {
        return "absent".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    let delta = secs - now;
    if delta >= 0.0 {
        format!("{secs} (in {:.0} s)", delta)
    } else {
        format!("{secs} ({:.0} s ago)", -delta)
    }
}

/// Runs every step for `config` and, if given, `token` (an `Authorization` value `Bearer ...`
/// or the bare token). Uses the configuration's `ca_file`.
pub async fn diagnose(config: &OAuthConfig, token: Option<&str>) -> Report {
    let client = match config.ca_file.as_deref().map(|p| HttpsClient::new(Some(p))) {
        Some(Err(e)) => {
            let mut report = Report::default();
            report.push("config", Outcome::Fail(e.to_string()));
            return report;
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    diagnose_with(config, client, token).await
}

/// [`diagnose`] with a given client (`None`: one built from `ca_file`).
pub async fn diagnose_with(
    config: &OAuthConfig,
    client: Option<HttpsClient>,
    token: Option<&str>,
) -> Report {
    let mut report = Report::default();
    let settings = match config.validate() {
        Ok(s) => {
            report.push("config", Outcome::Pass(format!("issuer {}", s.issuer)));
            s
        }
        Err(e) => {
            report.push("config", Outcome::Fail(e.to_string()));
            return report;
        }
    };
    let client = match client {
        Some(c) => c,
        None => match HttpsClient::new(settings.ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                report.push("config", Outcome::Fail(e.to_string()));
                return report;
            }
        },
    };
    let verifier = match Verifier::new(settings, client).await {
        Ok(v) => {
            report.push(
                "metadata",
                Outcome::Pass(match v.metadata_url() {
                    Some(url) => format!("{url} -> jwks_uri {}", v.jwks_uri()),
                    None => format!("not used (jwks_uri {} configured)", v.jwks_uri()),
                }),
            );
            let keys = v.keys();
            let list = keys
                .iter()
                .map(|k| format!("{} ({}: {})", k.kid, k.kty, k.algorithms.join("/")))
                .collect::<Vec<_>>()
                .join(", ");
            let skipped = v
                .skipped_keys()
                .iter()
                .map(|(kid, why)| format!("; skipped {kid}: {why}"))
                .collect::<String>();
            report.push(
                "jwks",
                Outcome::Pass(format!("{} key(s): {list}{skipped}", keys.len())),
            );
            v
        }
        Err(e) => {
            let (metadata, jwks) = match &e {
                SetupError::Config(_) | SetupError::Client(_) => {
                    report.push("config", Outcome::Fail(e.to_string()));
                    return report;
                }
                SetupError::Discovery(_) | SetupError::Metadata { .. } => {
                    (Outcome::Fail(e.to_string()), Outcome::Skipped)
                }
                SetupError::Jwks { .. } | SetupError::Keys { .. } => (
                    Outcome::Pass("discovered (or jwks_uri configured)".into()),
                    Outcome::Fail(e.to_string()),
                ),
            };
            report.push("metadata", metadata);
            report.push("jwks", jwks);
            if token.is_some() {
                for name in TOKEN_STEPS {
                    report.push(name, Outcome::Skipped);
                }
            }
            return report;
        }
    };
    let Some(token) = token else {
        return report;
    };
    let token = token.trim();
    let header_value = if token.contains(' ') {
        token.to_owned()
    } else {
        format!("Bearer {token}")
    };
    let raw = header_value
        .split_once(' ')
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    let header = part(raw, 0).unwrap_or(Value::Null);
    let claims = part(raw, 1).unwrap_or(Value::Null);
    let s = verifier.settings();
    let show = |v: Option<&Value>| v.map_or("absent".to_owned(), Value::to_string);
    let details: [String; 10] = [
        "Bearer token present".into(),
        format!("alg {}", show(header.get("alg"))),
        format!("kid {}", show(header.get("kid"))),
        "verifies with the issuer's key".into(),
        format!(
            "exp {} (leeway {:?})",
            relative(claims.get("exp")),
            s.leeway
        ),
        format!("nbf {}", relative(claims.get("nbf"))),
        format!(
            "token iss {}, expected {:?}",
            show(claims.get("iss")),
            s.issuer
        ),
        format!(
            "token aud {}, expected {:?}",
            show(claims.get("aud")),
            s.audience
        ),
        match &s.client_id {
            Some(c) => format!("token cid {}, expected {c:?}", show(claims.get("cid"))),
            None => "not configured".into(),
        },
        match &s.scope {
            Some(c) => format!(
                "token scp {} scope {}, expected {c:?}",
                show(claims.get("scp")),
                show(claims.get("scope"))
            ),
            None => "not configured".into(),
        },
    ];
    let failed = match verifier.verify(&header_value).await {
        Ok(_) => None,
        Err(r) => Some((step_of(&r), r)),
    };
    for (i, (name, detail)) in TOKEN_STEPS.iter().zip(details).enumerate() {
        let outcome = match &failed {
            Some((at, _)) if i > *at => Outcome::Skipped,
            Some((at, r)) if i == *at => Outcome::Fail(format!("{r}; {detail}")),
            _ => Outcome::Pass(detail),
        };
        report.push(name, outcome);
    }
    report
}
