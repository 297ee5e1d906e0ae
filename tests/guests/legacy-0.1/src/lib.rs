//! A plugin built for WIT `hookbox:okta-import@0.1.0` (`wit/okta-import.wit`,
//! world `import-hook`) with raw wit-bindgen, not the SDK (which targets
//! 0.2.0): what every plugin compiled before 0.2.0 looks like. hookbox must
//! keep loading it and answering exactly as it did.
//!
//! It answers like the 0.1.0 reference resolver for plain ASCII names (the
//! conformance sample, `tests/conformance/01-okta-sample.json`, gets
//! `sally2.admin2.272ed9@clouditude.net`, rule `hashed-suffix`, and no
//! `claim` key, since 0.1.0 has no claim store):
//!
//! - no `login` conflict: no commands;
//! - first, middle and last name: `first.middle.last` (rule `middle-name`);
//! - first and last name: `first.last.<suffix>` (rule `hashed-suffix`), the
//!   suffix being the top 24 bits of FNV-1a 64 of the app user's `externalId`;
//! - otherwise, or without a domain: an error summary.
//!
//! Names are ASCII-lowercased with everything but `[a-z0-9]` dropped. It logs
//! `legacy 0.1.0 plugin: <rule>` at debug level and reads the setting
//! `legacy_probe` (answered as debug-context `probe` when set), so tests can
//! see both 0.1.0 host imports work.

// wit-bindgen's generated glue is unsafe by nature; nothing hand-written here is.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    // The published 0.1.0 package; `wit/0.2.0/` beside it is not read.
    path: "../../../wit",
    world: "import-hook",
});

use exports::hookbox::okta_import::resolver::Guest;
use hookbox::okta_import::host::{Level, config_get, log};
use hookbox::okta_import::types::{Attribute, Command, ImportRequest, Response, Value};

struct Legacy;

fn text<'a>(profile: &'a [Attribute], name: &str) -> Option<&'a str> {
    profile
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| match &a.value {
            Value::Text(t) => Some(t.as_str()),
            _ => None,
        })
}

fn name(request: &ImportRequest, attr: &str) -> Option<String> {
    [&request.app_user_profile, &request.user_profile]
        .into_iter()
        .filter_map(|p| text(p, attr))
        .map(|t| {
            t.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect::<String>()
        })
        .find(|n| !n.is_empty())
}

fn suffix(identity: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in identity.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:06x}", hash >> 40)
}

impl Guest for Legacy {
    fn resolve(request: ImportRequest) -> Result<Response, String> {
        let mut debug_context = Vec::new();
        if !request.context.conflicts.iter().any(|c| c == "login") {
            return Ok(Response {
                commands: Vec::new(),
                debug_context,
            });
        }
        let domain = text(&request.user_profile, "login")
            .and_then(|l| l.rsplit_once('@'))
            .map(|(_, d)| d.to_owned())
            .filter(|d| !d.is_empty())
            .ok_or("legacy: no login domain")?;
        let (Some(first), Some(last)) = (name(&request, "firstName"), name(&request, "lastName"))
        else {
            return Err("legacy: no first or last name".into());
        };
        let (rule, local) = match name(&request, "middleName") {
            Some(middle) => ("middle-name", format!("{first}.{middle}.{last}")),
            None => {
                let identity = text(&request.app_user_profile, "externalId").unwrap_or("");
                (
                    "hashed-suffix",
                    format!("{first}.{last}.{}", suffix(identity)),
                )
            }
        };
        log(Level::Debug, &format!("legacy 0.1.0 plugin: {rule}"));
        debug_context.push(("resolver".to_owned(), "login-conflict".to_owned()));
        debug_context.push(("rule".to_owned(), rule.to_owned()));
        if let Some(probe) = config_get("legacy_probe") {
            debug_context.push(("probe".to_owned(), probe));
        }
        Ok(Response {
            commands: vec![Command::UserProfileUpdate(vec![Attribute {
                name: "login".into(),
                value: Value::Text(format!("{local}@{domain}")),
            }])],
            debug_context,
        })
    }
}

export!(Legacy);
