//! Reading secrets: an `auth` table's values from environment variables and
//! files. The only place configuration touches the environment or reads a
//! secret; what it reads never appears in an error or a log.

use std::path::{Path, PathBuf};

use super::file::AuthFile;
use super::{ConfigError, err};
use crate::auth::{self, Auth, Secret, TenantAuth};

/// A tenant's `auth` table: header secrets, `oauth`, or both (at least one).
/// `oauth` is validated here (every value, nothing fetched), with a relative
/// `ca_file` resolved against `base` like every other path.
pub(super) fn tenant_auth(
    key: &str,
    mut file: AuthFile,
    base: &Path,
    files_read: &mut Vec<PathBuf>,
) -> Result<TenantAuth, ConfigError> {
    let Some(mut oauth) = file.oauth.take() else {
        return Ok(TenantAuth::secret(auth(key, file, base, files_read)?));
    };
    oauth.ca_file = oauth.ca_file.map(|p| base.join(p));
    oauth
        .validate()
        .map_err(|e| ConfigError::new(format!("{key}.{e}")))?;
    let has_secrets = !file.secrets_env.is_empty() || !file.secrets_file.is_empty();
    if !has_secrets && file.header.is_some() {
        return err(format!(
            "{key}.header: applies to header secrets only; give secrets_env or secrets_file, or remove it"
        ));
    }
    let secret = if has_secrets {
        Some(auth(key, file, base, files_read)?)
    } else {
        None
    };
    Ok(TenantAuth {
        secret,
        oauth: Some(oauth),
    })
}

/// An `auth` table (a tenant's or `[admin]`): its header name and its
/// secrets, read from the environment and from files; `key` prefixes errors.
/// The files read are added to `files_read`.
pub(super) fn auth(
    key: &str,
    file: AuthFile,
    base: &Path,
    files_read: &mut Vec<PathBuf>,
) -> Result<Auth, ConfigError> {
    if file.oauth.is_some() {
        return err(format!(
            "{key}.oauth: only a tenant's auth takes oauth (Okta's hook calls); use a secret here"
        ));
    }
    let header = file.header.as_deref().unwrap_or("Authorization");
    let header =
        auth::header_name(header).map_err(|e| ConfigError::new(format!("{key}.header: {e}")))?;
    let mut secrets = Vec::new();
    for var in &file.secrets_env {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => secrets.push(Secret::new(v)),
            _ => {
                return err(format!(
                    "{key}.secrets_env: environment variable {var} is unset or empty"
                ));
            }
        }
    }
    for path in &file.secrets_file {
        let path = base.join(path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new(format!(
                "{key}.secrets_file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        // A trailing newline is an artefact of how secret files are written, not part of the secret.
        let v = text.trim_end_matches(['\r', '\n']);
        if v.is_empty() {
            return err(format!("{key}.secrets_file: {} is empty", path.display()));
        }
        secrets.push(Secret::new(v.to_owned()));
        files_read.push(path);
    }
    Auth::new(header, secrets).map_err(|e| match e {
        // Said the way a config author understands it (the file has no `secrets` key).
        auth::AuthError::NoSecret => ConfigError::new(format!(
            "{key}: give at least one secret (secrets_env or secrets_file) or, for a tenant, oauth; hookbox never serves without auth"
        )),
        e => ConfigError::new(format!("{key}: {e}")),
    })
}
