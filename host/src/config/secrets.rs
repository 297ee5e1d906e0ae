//! Reading secrets: an `auth` table's values from environment variables and
//! files. The only place configuration touches the environment or reads a
//! secret; what it reads never appears in an error or a log.

use std::path::{Path, PathBuf};

use super::file::AuthFile;
use super::{ConfigError, err};
use crate::auth::{self, Auth, Secret};

/// An `auth` table (a tenant's or `[admin]`): its header name and its
/// secrets, read from the environment and from files; `key` prefixes errors.
/// The files read are added to `files_read`.
pub(super) fn auth(
    key: &str,
    file: AuthFile,
    base: &Path,
    files_read: &mut Vec<PathBuf>,
) -> Result<Auth, ConfigError> {
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
            "{key}: give at least one secret (secrets_env or secrets_file); hookbox never serves without auth"
        )),
        e => ConfigError::new(format!("{key}: {e}")),
    })
}
