//! CSV columns → the import request Okta would send for one row.
//!
//! Every column goes into `data.appUser.profile` under its header name, as
//! the text of the cell (what Okta's CSV Directory agent sends: the columns
//! are the app user's attributes). The Okta user profile (`data.user.profile`)
//! is what Okta builds from them with its attribute mappings; the dry run
//! stands in for those mappings with a [`Mapping`] from Okta attribute to
//! column, by default `login ← login`, `email ← email`, `firstName ←
//! firstName`, `lastName ← lastName`. An empty cell leaves the Okta attribute
//! out (Okta maps nothing from an empty value); in the app-user profile it is
//! kept as `""`, as in the file.
//!
//! Invariants: a row without a login is a bad row (Okta cannot import a
//! user without one) and never reaches the plugin; the request of a row is a
//! function of the row, its number, the conflict found for it and the run's
//! fixed context only, so two runs of one file send the same requests
//! (except `eventTime`).

use std::collections::HashSet;
use std::path::Path;

use csv::StringRecord;
use serde_json::{Map, Value, json};

use super::DryRunError;

/// Okta attribute → CSV column, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    okta: String,
    /// Empty: the attribute is not mapped (a `--map okta=` removes a default).
    column: String,
    /// Given by the user (a missing column is then an error, not a skip).
    explicit: bool,
}

/// The default mapping, documented in the README and `--help`.
pub const DEFAULT_MAPPING: &[(&str, &str)] = &[
    ("login", "login"),
    ("email", "email"),
    ("firstName", "firstName"),
    ("lastName", "lastName"),
];

/// The Okta attribute every row needs.
pub const LOGIN: &str = "login";

/// The app-user attribute read as the row's external id (when the file has it).
pub const EXTERNAL_ID: &str = "externalId";

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            entries: DEFAULT_MAPPING
                .iter()
                .map(|(okta, column)| Entry {
                    okta: (*okta).to_owned(),
                    column: (*column).to_owned(),
                    explicit: false,
                })
                .collect(),
        }
    }
}

/// Parses one `okta=column` pair (a `--map` flag, or a line of a mapping file).
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (okta, column) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not OKTA_ATTRIBUTE=COLUMN"))?;
    let okta = okta.trim();
    if okta.is_empty() {
        return Err(format!("'{text}': the Okta attribute name is empty"));
    }
    Ok((okta.to_owned(), column.trim().to_owned()))
}

impl Mapping {
    /// The default mapping with `pairs` applied in order: a pair replaces the
    /// attribute's column, adds an attribute, or (with an empty column)
    /// removes it.
    pub fn with(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Mapping {
        for (okta, column) in pairs {
            match self.entries.iter_mut().find(|e| e.okta == okta) {
                Some(e) => {
                    e.column = column;
                    e.explicit = true;
                }
                None => self.entries.push(Entry {
                    okta,
                    column,
                    explicit: true,
                }),
            }
        }
        self
    }

    /// Reads a mapping file: one `okta=column` per line; blank lines and
    /// lines starting with `#` are skipped.
    pub fn read_file(path: &Path) -> Result<Vec<(String, String)>, DryRunError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DryRunError::usage(format!("--map-file: cannot read {}: {e}", path.display()))
        })?;
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let pair = parse_pair(line).map_err(|e| {
                DryRunError::usage(format!("{} line {}: {e}", path.display(), i + 1))
            })?;
            pairs.push(pair);
        }
        Ok(pairs)
    }

    /// Finds each mapped column in the file's header row. A column the user
    /// named that the file lacks is an error; a default one is skipped,
    /// except `login`, which every row needs.
    pub fn resolve(&self, header: &StringRecord) -> Result<Columns, DryRunError> {
        let names: Vec<String> = header.iter().map(str::to_owned).collect();
        let mut seen = HashSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(DryRunError::usage(format!(
                    "the header row names column '{name}' twice (each column becomes an \
                     app-user attribute, so names must be unique)"
                )));
            }
        }
        let position = |column: &str| names.iter().position(|n| n == column);
        let mut okta = Vec::new();
        let mut login = None;
        for e in self.entries.iter().filter(|e| !e.column.is_empty()) {
            match position(&e.column) {
                Some(i) => {
                    if e.okta == LOGIN {
                        login = Some(i);
                    }
                    okta.push((e.okta.clone(), i));
                }
                None if e.explicit => {
                    return Err(DryRunError::usage(format!(
                        "--map {}={}: the file has no column '{}' (its columns: {})",
                        e.okta,
                        e.column,
                        e.column,
                        names.join(", ")
                    )));
                }
                None => {}
            }
        }
        let login = login.ok_or_else(|| {
            let column = self
                .entries
                .iter()
                .find(|e| e.okta == LOGIN)
                .map_or("", |e| e.column.as_str());
            DryRunError::usage(format!(
                "the file has no login column ('{column}'; its columns: {}): name it with \
                 --map login=COLUMN",
                names.join(", ")
            ))
        })?;
        Ok(Columns {
            external_id: position(EXTERNAL_ID),
            names,
            okta,
            login,
        })
    }
}

/// The mapping resolved against one file's header row.
#[derive(Debug)]
pub struct Columns {
    /// Header names, in file order: the app-user attribute names.
    names: Vec<String>,
    /// Okta attribute → column index.
    okta: Vec<(String, usize)>,
    login: usize,
    external_id: Option<usize>,
}

/// What a row's request is sent with besides the row itself.
#[derive(Debug)]
pub struct Context {
    /// `eventTime` of every request of the run (RFC 3339).
    pub event_time: String,
    /// `data.context.job.id`.
    pub job_id: String,
}

impl Columns {
    /// The login the row would create (its mapped `login` cell), trimmed; `None` when empty.
    pub fn login<'r>(&self, record: &'r StringRecord) -> Option<&'r str> {
        record
            .get(self.login)
            .map(str::trim)
            .filter(|l| !l.is_empty())
    }

    /// The row's `externalId` cell, or `""`.
    pub fn external_id<'r>(&self, record: &'r StringRecord) -> &'r str {
        self.external_id
            .and_then(|i| record.get(i))
            .unwrap_or_default()
    }

    /// The import request Okta would send for `record` (row number `row`),
    /// with `conflicts: ["login"]` when `conflict`.
    pub fn request(
        &self,
        record: &StringRecord,
        row: u64,
        conflict: bool,
        context: &Context,
    ) -> Vec<u8> {
        let app_user: Map<String, Value> = self
            .names
            .iter()
            .zip(record.iter())
            .map(|(name, cell)| (name.clone(), Value::String(cell.to_owned())))
            .collect();
        let user: Map<String, Value> = self
            .okta
            .iter()
            .filter_map(|(attr, i)| {
                let cell = record.get(*i)?.trim();
                (!cell.is_empty()).then(|| (attr.clone(), Value::String(cell.to_owned())))
            })
            .collect();
        let conflicts: &[&str] = if conflict { &[LOGIN] } else { &[] };
        let body = json!({
            "source": "hookbox-dry-run",
            "eventId": event_id(row),
            "eventTime": context.event_time,
            "eventTypeVersion": "1.0",
            "cloudEventVersion": "0.1",
            "eventType": crate::hook::decode::EVENT_TYPE,
            "contentType": "application/json",
            "data": {
                "context": {
                    "conflicts": conflicts,
                    "application": {
                        "name": "hookbox_dry_run",
                        "id": "hookbox-dry-run",
                        "label": "hookbox dry run",
                        "status": "ACTIVE"
                    },
                    "job": { "id": context.job_id, "type": "import:users" },
                    "matches": [],
                    "policy": []
                },
                "action": { "result": "CREATE_USER" },
                "appUser": { "profile": app_user },
                "user": { "profile": user }
            }
        });
        // Serialising a `Value` of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// The row's `eventId`: deterministic, so a retried dry run sends the same ids.
pub fn event_id(row: u64) -> String {
    format!("dryrun-{row}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header(names: &[&str]) -> StringRecord {
        StringRecord::from(names.to_vec())
    }

    fn context() -> Context {
        Context {
            event_time: "2025-01-01T00:00:00Z".into(),
            job_id: "job".into(),
        }
    }

    #[test]
    fn the_default_mapping_skips_missing_columns_but_needs_a_login() {
        let columns = Mapping::default()
            .resolve(&header(&["login", "firstName", "externalId"]))
            .unwrap();
        let row = StringRecord::from(vec![" ann@x.test ", "Ann", "e1"]);
        assert_eq!(columns.login(&row), Some("ann@x.test"));
        assert_eq!(columns.external_id(&row), "e1");
        let body: Value =
            serde_json::from_slice(&columns.request(&row, 7, true, &context())).unwrap();
        assert_eq!(body["eventId"], "dryrun-7");
        assert_eq!(body["data"]["context"]["conflicts"], json!(["login"]));
        assert_eq!(
            body["data"]["user"]["profile"],
            json!({"login": "ann@x.test", "firstName": "Ann"})
        );
        assert_eq!(body["data"]["appUser"]["profile"]["login"], " ann@x.test ");
        crate::hook::decode::decode(&columns.request(&row, 7, false, &context())).unwrap();

        let err = Mapping::default()
            .resolve(&header(&["user", "email"]))
            .unwrap_err();
        assert!(err.to_string().contains("--map login=COLUMN"), "{err}");
    }

    #[test]
    fn flags_replace_add_and_remove_attributes_and_must_name_real_columns() {
        let mapping = Mapping::default().with([
            ("login".to_owned(), "user".to_owned()),
            ("middleName".to_owned(), "middle".to_owned()),
            ("email".to_owned(), String::new()),
        ]);
        let columns = mapping
            .resolve(&header(&["user", "middle", "email"]))
            .unwrap();
        let row = StringRecord::from(vec!["u@x.test", "Q", "e@x.test"]);
        let body: Value =
            serde_json::from_slice(&columns.request(&row, 1, false, &context())).unwrap();
        assert_eq!(
            body["data"]["user"]["profile"],
            json!({"login": "u@x.test", "middleName": "Q"})
        );
        let err = mapping.resolve(&header(&["user", "email"])).unwrap_err();
        assert!(err.to_string().contains("no column 'middle'"), "{err}");
        assert!(
            Mapping::default()
                .resolve(&header(&["login", "login"]))
                .is_err()
        );
    }

    #[test]
    fn pairs_need_an_attribute_and_an_equals_sign() {
        assert_eq!(
            parse_pair(" login = user ").unwrap(),
            ("login".into(), "user".into())
        );
        assert_eq!(parse_pair("email=").unwrap(), ("email".into(), "".into()));
        assert!(parse_pair("login").is_err());
        assert!(parse_pair("=user").is_err());
    }
}
