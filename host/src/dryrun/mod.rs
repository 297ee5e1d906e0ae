//! `hookbox dry-run`: a CSV import through the real request pipeline before
//! Okta runs it, and a report of the logins it would get.
//!
//! Each data row of an RFC 4180 file (quoted fields, a UTF-8 byte-order
//! mark, CRLF line ends) becomes the import request Okta's CSV Directory
//! integration would send for it ([`mapping`]), runs through
//! [`crate::pipeline::handle`] with the tenant's plugin, limits, instance
//! mode and permits exactly as `serve` runs it, and ends as one
//! [`Decision`] ([`report`]).
//!
//! # What Okta would see: conflicts
//!
//! Okta calls the hook with `data.context.conflicts: ["login"]` when the
//! login it is about to create is already held. The dry run says a row's
//! login is held when (case-insensitively, as Okta compares logins) it is in
//! the `--existing` list, or an **earlier row of the file** would create it.
//! File order stands in for Okta's: a real import runs rows concurrently and
//! unordered, so which of two rows "wins" a login is not determined there;
//! that both are flagged together is. What a row's hook answer changes
//! (a new login) cannot be known before the row has run, so it is not fed
//! back into later rows' conflicts; instead the summary checks every row's
//! final login afterwards (the plugin's new login, else the row's own, since
//! Okta imports a row as it is when its hook fails or declines): a login two
//! rows end up with, a new login an existing user holds, or a conflict left
//! unresolved, each makes the exit code nonzero.
//!
//! # Invariants
//!
//! - Streamed: the file is read one record at a time; at most
//!   `4 × concurrency` rows are between reading and writing, and decisions
//!   are written (and summed) in row order as they complete. What grows with
//!   the file is one 64-bit hash per distinct login (the conflict and
//!   duplicate checks, [`report::LoginSet`]), never the rows.
//! - Concurrent on every core: each row is its own tokio task on the
//!   multi-threaded runtime, at most `concurrency` of them inside the
//!   pipeline at once, never more than the tenant's `max_concurrency` nor
//!   half the engine's instance pool (so warm `reuse` instances always leave
//!   slots); a row refused as overloaded anyway is retried, not dropped.
//! - A bad row (wrong number of fields, invalid UTF-8, no login) is reported
//!   by row and line and never sent; the run goes on. Only an unreadable file
//!   or an unwritable decisions file stops it.
//! - Each row's `eventId` is `dryrun-<row>`: the same file sends the same ids.
//! - Claims go to a throwaway store ([`DryRunStore::Scratch`], the default),
//!   never the real one unless the caller opened it ([`DryRunStore::Real`]).
//!   Only a throwaway store is seeded with the `--existing` logins (held by
//!   [`EXISTING_OWNER`]); a real one is never written to but by the plugin.

mod lines;
pub mod mapping;
pub mod progress;
pub mod report;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use csv::StringRecord;
use hyper::header::AUTHORIZATION;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use hookbox_store::Store;

use crate::auth::{Auth, Secret, TenantAuth};
use crate::config::{Config, ConfigError, Overrides, ServerConfig, TenantConfig};
use crate::pipeline::{self, Refused, Verdict};
use crate::plugin::{EngineConfig, InstanceMode, Limits, Plugin, Runtime, Settings};
use crate::tenant::{Tenants, Verifiers};
use crate::{App, AppError};

pub use mapping::Mapping;
pub use progress::Progress;
pub use report::{Conflict, Decision, Outcome, Summary};

use lines::LineIndex;
use mapping::{Columns, Context};
use report::{DecisionsWriter, LoginSet};

/// Who holds each `--existing` login in a throwaway store (an Okta user, as
/// the reference plugin's event handler records them: `okta:<user id>`).
pub const EXISTING_OWNER: &str = "okta:existing";

/// The tenant id a `--plugin` run is served as.
pub const PLUGIN_TENANT: &str = "dry-run";

/// How often a row refused as overloaded is tried again before it is
/// reported as not run (only a plugin holding instances past the dry run's
/// own bound can cause it).
const OVERLOAD_RETRIES: u32 = 200;

/// Why a dry run could not run (as opposed to rows failing, which is a report).
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// A flag, the configuration, the mapping, the header row or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The plugin could not be loaded.
    #[error(transparent)]
    App(#[from] AppError),
    /// The CSV file could not be read past some point.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The CSV file.
        path: PathBuf,
        /// Why.
        error: csv::Error,
    },
    /// The decisions file could not be written.
    #[error("writing {}: {error}", path.display())]
    Write {
        /// The decisions file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl DryRunError {
    fn usage(message: impl Into<String>) -> DryRunError {
        DryRunError::Usage(message.into())
    }

    /// The process's exit code: 64 (`EX_USAGE`) for what the caller gave,
    /// 74 (`EX_IOERR`) for an input or output failing mid-run.
    pub fn exit_code(&self) -> u8 {
        match self {
            DryRunError::Usage(_) | DryRunError::App(_) => ConfigError::EXIT_CODE,
            DryRunError::Read { .. } | DryRunError::Write { .. } => 74,
        }
    }
}

impl From<ConfigError> for DryRunError {
    fn from(e: ConfigError) -> DryRunError {
        DryRunError::Usage(e.to_string())
    }
}

/// Where a dry run's claims (and remembered answers) go.
pub enum DryRunStore {
    /// A throwaway store, empty, deleted afterwards, its commits not fsync'd
    /// (the default): a dry run never claims a login for real.
    Scratch,
    /// A real, already opened store (`--real-store`: the configuration's
    /// `[store]`), in the target tenant's key space: the plugin's claims are
    /// then real and stay.
    Real(Store),
}

impl DryRunStore {
    /// The store to run with, how the summary names it, and whether it is a scratch one.
    async fn open(self) -> Result<(Store, String, bool), DryRunError> {
        match self {
            DryRunStore::Scratch => {
                let store = Store::throwaway().await.map_err(|e| {
                    DryRunError::usage(format!("cannot create a throwaway claim store: {e}"))
                })?;
                Ok((
                    store,
                    "a throwaway store (claims are not kept)".to_owned(),
                    true,
                ))
            }
            DryRunStore::Real(store) => {
                let name = format!(
                    "the configured {} store (claims are REAL and kept)",
                    store.backend_name()
                );
                Ok((store, name, false))
            }
        }
    }
}

/// What rows run against: one tenant of an [`App`] built for the dry run.
pub struct Target {
    app: Arc<App>,
    tenant: String,
    /// How the summary names it.
    label: String,
    /// The engine's instance pool size (bounds the concurrency).
    max_instances: u32,
    /// The claims go to a throwaway store: `--existing` logins are claimed
    /// in it first ([`EXISTING_OWNER`]), as Okta users hold them.
    scratch: bool,
}

impl Target {
    /// Tenant `tenant` of a configuration file, with its plugin, settings and
    /// limits, on the file's `[engine]`, its claims in `store`. Compiles the
    /// plugin on a blocking thread.
    pub async fn from_config(
        path: &Path,
        tenant: &str,
        store: DryRunStore,
    ) -> Result<Target, DryRunError> {
        let config = Config::load(path, &Overrides::default())?;
        let Some(tc) = config.tenants.iter().find(|t| t.id == tenant) else {
            let ids: Vec<&str> = config.tenants.iter().map(|t| t.id.as_str()).collect();
            return Err(DryRunError::usage(format!(
                "{}: no tenant '{tenant}' (its tenants: {})",
                path.display(),
                ids.join(", ")
            )));
        };
        // Nobody authenticates to a dry run: the tenant's OAuth issuer is
        // not contacted (its verifier is never needed).
        let mut tc = tc.clone();
        tc.auth.oauth = None;
        let (store, store_label, scratch) = store.open().await?;
        let engine = config.engine.clone();
        let (runtime, tenants) = tokio::task::spawn_blocking(move || {
            let runtime = Runtime::new(&engine).map_err(AppError::from)?;
            // Only this tenant's plugin is compiled: the others are not run. With
            // `directory`, its lookups go to the tenant's Okta org (read-only).
            let tenants = Tenants::load(
                &runtime,
                std::slice::from_ref(&tc),
                &Verifiers::new(),
                &hookbox_directory::DirectoryClients::new(),
            )
            .map_err(AppError::from)?;
            Ok::<_, DryRunError>((runtime, tenants))
        })
        .await
        .map_err(|e| DryRunError::usage(format!("loading the plugin failed: {e}")))??;
        Ok(Target {
            app: Arc::new(App::new(runtime, tenants, config.server.clone(), store)),
            tenant: tenant.to_owned(),
            label: format!(
                "tenant {tenant} of {}; claims in {store_label}",
                path.display()
            ),
            max_instances: config.engine.max_instances,
            scratch,
        })
    }

    /// A plugin file (or, with `None`, the embedded reference plugin) with
    /// `settings`, default limits and `instance_mode`, as tenant
    /// [`PLUGIN_TENANT`] of a default engine, its claims in `store`.
    /// Compiles the plugin on a blocking thread.
    pub async fn from_plugin(
        path: Option<PathBuf>,
        settings: Settings,
        instance_mode: InstanceMode,
        store: DryRunStore,
    ) -> Result<Target, DryRunError> {
        let (store, store_label, scratch) = store.open().await?;
        let engine = EngineConfig::default();
        let max_instances = engine.max_instances;
        let (runtime, plugin, file, label) = tokio::task::spawn_blocking(move || {
            let runtime = Runtime::new(&engine).map_err(AppError::from)?;
            let (plugin, file, label) = match path {
                Some(p) => (
                    Plugin::load(&runtime, &p).map_err(|e| DryRunError::usage(e.to_string()))?,
                    format!("plugin {}", p.display()),
                    p,
                ),
                None => {
                    let bytes = crate::dev::reference_plugin()
                        .map_err(|e| DryRunError::usage(e.to_string()))?;
                    (
                        Plugin::from_bytes(&runtime, bytes)
                            .map_err(|e| DryRunError::usage(e.to_string()))?,
                        "the embedded reference plugin".to_owned(),
                        PathBuf::from("<embedded login-conflict>"),
                    )
                }
            };
            Ok::<_, DryRunError>((runtime, plugin, label, file))
        })
        .await
        .map_err(|e| DryRunError::usage(format!("loading the plugin failed: {e}")))??;
        // Nobody authenticates to a dry run; a tenant must have credentials.
        let auth = Auth::new(
            AUTHORIZATION,
            vec![Secret::new(crate::plugin::hex(&rand::random::<[u8; 16]>()))],
        )
        .map_err(|e| DryRunError::usage(e.to_string()))?;
        let config = TenantConfig {
            id: PLUGIN_TENANT.to_owned(),
            plugin: file,
            auth: TenantAuth::secret(auth),
            limits: Limits {
                instance_mode,
                ..Limits::default()
            },
            settings: Arc::new(settings),
            smoke: None,
            events: Default::default(),
            // `--plugin` has no tenant configuration: no directory.
            directory: None,
        };
        let tenants = Tenants::from_parts([(config, plugin)]);
        Ok(Target {
            app: Arc::new(App::new(runtime, tenants, ServerConfig::default(), store)),
            tenant: PLUGIN_TENANT.to_owned(),
            label: format!("{label}; claims in {store_label}"),
            max_instances,
            scratch,
        })
    }

    /// The most rows this target can have in the pipeline at once: the
    /// tenant's `max_concurrency`, and half the instance pool (the other half
    /// may hold warm `reuse` instances).
    pub fn max_concurrency(&self) -> usize {
        let tenant = self
            .app
            .tenant(&self.tenant)
            .map_or(1, |t| t.limits().max_concurrency);
        tenant.min(self.max_instances / 2).max(1) as usize
    }
}

/// What to run and where the results go.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CSV file.
    pub csv: PathBuf,
    /// Okta attribute → column.
    pub mapping: Mapping,
    /// Logins Okta already holds, one a line.
    pub existing: Option<PathBuf>,
    /// Where to write the decisions (CSV).
    pub out: Option<PathBuf>,
    /// Rows in the pipeline at once (default: twice the cores), capped by
    /// [`Target::max_concurrency`].
    pub concurrency: Option<usize>,
    /// No progress output (messages about bad rows still go to stderr).
    pub quiet: bool,
}

/// What every row task shares.
struct Shared {
    app: Arc<App>,
    tenant: String,
    columns: Columns,
    context: Context,
    /// Rows inside the pipeline at once.
    slots: Semaphore,
}

/// A row between reading and writing.
enum Pending {
    /// Decided without running (a bad row).
    Ready(Box<Decision>),
    /// Running in its own task.
    Running(JoinHandle<Decision>),
}

/// Runs every row of `options.csv` through `target` and sums up the decisions.
pub async fn run(target: &Target, options: &Options) -> Result<Summary, DryRunError> {
    let plugin_of = target
        .app
        .tenant(&target.tenant)
        .ok_or_else(|| DryRunError::usage(format!("no tenant '{}'", target.tenant)))?;
    let instance_mode = match plugin_of.limits().instance_mode {
        InstanceMode::Fresh => "fresh",
        InstanceMode::Reuse { .. } => "reuse",
    };
    let seed = target
        .scratch
        .then(|| (target.app.store(), target.tenant.as_str()));
    let existing = read_existing(options.existing.as_deref(), seed).await?;
    let total = if options.quiet {
        None
    } else {
        count_rows(&options.csv)
    };
    let file = File::open(&options.csv)
        .map_err(|e| DryRunError::usage(format!("cannot read {}: {e}", options.csv.display())))?;
    let (counting, lines) = LineIndex::wrap(file);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(BufReader::with_capacity(64 * 1024, counting));
    let header = reader.headers().map_err(|e| {
        DryRunError::usage(format!(
            "{}: cannot read the header row: {e}",
            options.csv.display()
        ))
    })?;
    let columns = options.mapping.resolve(header)?;
    let mut out = match &options.out {
        Some(path) => {
            let file = File::create(path).map_err(|e| {
                DryRunError::usage(format!("--out: cannot create {}: {e}", path.display()))
            })?;
            let writer = DecisionsWriter::new(BufWriter::new(file))
                .map_err(|e| write_error(path, e.into()))?;
            Some((path.clone(), writer))
        }
        None => None,
    };

    let concurrency = options
        .concurrency
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, target.max_concurrency());
    let window = 4 * concurrency;
    let now = SystemTime::now();
    let shared = Arc::new(Shared {
        app: target.app.clone(),
        tenant: target.tenant.clone(),
        columns,
        context: Context {
            event_time: rfc3339(now),
            job_id: format!(
                "dryrun-{}",
                now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
            ),
        },
        slots: Semaphore::new(concurrency),
    });

    let mut summary = Summary::new(
        options.csv.display().to_string(),
        target.label.clone(),
        plugin_of.plugin().short_digest().to_owned(),
        instance_mode.to_owned(),
    );
    let mut progress = Progress::new(total, options.quiet);
    let start = Instant::now();
    // Logins earlier rows would create (row number each): what makes a later row's a conflict.
    let mut earlier = LoginSet::default();
    let mut pending = VecDeque::with_capacity(window);
    let mut record = StringRecord::new();
    let mut row = 0u64;
    let mut done = 0u64;
    loop {
        let read = reader.read_record(&mut record);
        let next = match read {
            Ok(false) => break,
            Ok(true) => {
                row += 1;
                let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
                Some(start_row(
                    &shared,
                    &existing,
                    &mut earlier,
                    &record,
                    row,
                    line,
                ))
            }
            Err(e) => {
                // A record the reader could split but not accept; anything else
                // (an I/O error) ends the run.
                let line = match e.kind() {
                    csv::ErrorKind::UnequalLengths { pos, .. }
                    | csv::ErrorKind::Utf8 { pos, .. } => {
                        Some(pos.as_ref().map_or(0, |p| lines.line_at(p.byte())))
                    }
                    _ => None,
                };
                let Some(line) = line else {
                    return Err(DryRunError::Read {
                        path: options.csv.clone(),
                        error: e,
                    });
                };
                row += 1;
                Some(Pending::Ready(Box::new(bad_row(
                    row,
                    line,
                    bad_record_message(&e),
                ))))
            }
        };
        pending.extend(next);
        while pending.len() >= window {
            if let Some(p) = pending.pop_front() {
                done += 1;
                finish_row(p, &mut summary, &existing, &mut out, &progress).await?;
                progress.update(done);
            }
        }
    }
    while let Some(p) = pending.pop_front() {
        done += 1;
        finish_row(p, &mut summary, &existing, &mut out, &progress).await?;
        progress.update(done);
    }
    progress.finish(done);
    if let Some((path, writer)) = out {
        writer.finish().map_err(|e| write_error(&path, e))?;
    }
    summary.finish(start.elapsed());
    Ok(summary)
}

fn write_error(path: &Path, error: std::io::Error) -> DryRunError {
    DryRunError::Write {
        path: path.to_owned(),
        error,
    }
}

fn bad_record_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        _ => e.to_string(),
    }
}

fn bad_row(row: u64, line: u64, error: String) -> Decision {
    Decision {
        row,
        line,
        external_id: String::new(),
        old_login: String::new(),
        conflict: None,
        new_login: None,
        rule: None,
        commands: Vec::new(),
        outcome: Outcome::BadRow(error),
        elapsed: Duration::ZERO,
    }
}

/// Decides the row's conflict (in file order, here) and starts its task.
fn start_row(
    shared: &Arc<Shared>,
    existing: &LoginSet,
    earlier: &mut LoginSet,
    record: &StringRecord,
    row: u64,
    line: u64,
) -> Pending {
    let Some(login) = shared.columns.login(record) else {
        return Pending::Ready(Box::new(bad_row(
            row,
            line,
            "the login column is empty".to_owned(),
        )));
    };
    let conflict = if existing.get(login).is_some() {
        Some(Conflict::Existing)
    } else if earlier.insert(login, row).is_some() {
        Some(Conflict::EarlierRow)
    } else {
        None
    };
    let decision = Decision {
        row,
        line,
        external_id: shared.columns.external_id(record).to_owned(),
        old_login: login.to_owned(),
        conflict,
        new_login: None,
        rule: None,
        commands: Vec::new(),
        outcome: Outcome::Unchanged,
        elapsed: Duration::ZERO,
    };
    let shared = shared.clone();
    let record = record.clone();
    Pending::Running(tokio::spawn(async move {
        run_row(&shared, &record, decision).await
    }))
}

/// Runs one row's request through the pipeline and fills in its decision.
async fn run_row(shared: &Shared, record: &StringRecord, mut d: Decision) -> Decision {
    let body = shared
        .columns
        .request(record, d.row, d.conflict.is_some(), &shared.context);
    let Ok(_slot) = shared.slots.acquire().await else {
        d.outcome = Outcome::NotRun("the run was stopped".into());
        return d;
    };
    let Some(tenant) = shared.app.tenant(&shared.tenant) else {
        d.outcome = Outcome::NotRun("the tenant is gone".into());
        return d;
    };
    let scope = shared.app.scope(&tenant);
    let binding = tenant.binding(&scope);
    let mut tries = 0;
    let handled = loop {
        let start = Instant::now();
        let result = pipeline::handle(&binding, &body).await;
        d.elapsed = start.elapsed();
        match result {
            Err(Refused::Overloaded) if tries < OVERLOAD_RETRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => {
                d.outcome = Outcome::NotRun(e.to_string());
                return d;
            }
            Ok(handled) => break handled,
        }
    };
    let answer = Answer::parse(&handled.body);
    d.commands = answer.commands;
    d.rule = answer.rule;
    d.new_login = answer.login;
    d.outcome = match handled.verdict {
        Verdict::Failed(f) => Outcome::Failed {
            kind: f.kind(),
            detail: f.detail().to_owned(),
        },
        Verdict::Declined(summary) => Outcome::PluginError(summary),
        // A replay (the same row already answered in a real store) is read
        // back from the stored body like an answer.
        Verdict::Answered { .. } | Verdict::Replayed if answer.linked => Outcome::Linked,
        Verdict::Answered { .. } | Verdict::Replayed if d.new_login.is_some() => {
            Outcome::LoginChanged
        }
        Verdict::Answered { .. } | Verdict::Replayed if d.commands.is_empty() => Outcome::Unchanged,
        Verdict::Answered { .. } | Verdict::Replayed => Outcome::Commands,
    };
    d
}

/// What the dry run reads back from Okta's answer body.
struct Answer {
    commands: Vec<String>,
    login: Option<String>,
    rule: Option<String>,
    linked: bool,
}

impl Answer {
    fn parse(body: &[u8]) -> Answer {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut answer = Answer {
            commands: Vec::new(),
            login: None,
            rule: v["debugContext"]["rule"].as_str().map(str::to_owned),
            linked: false,
        };
        for c in v["commands"].as_array().into_iter().flatten() {
            let kind = c["type"].as_str().unwrap_or_default();
            match kind {
                "com.okta.user.profile.update" => {
                    if let Some(login) = c["value"]["login"].as_str() {
                        answer.login = Some(login.to_owned());
                    }
                }
                "com.okta.action.update" => {
                    answer.linked = c["value"]["result"] == "LINK_USER";
                }
                _ => {}
            }
            answer.commands.push(kind.to_owned());
        }
        answer
    }
}

/// Waits for the next row in order, then sums, writes and reports it.
async fn finish_row(
    pending: Pending,
    summary: &mut Summary,
    existing: &LoginSet,
    out: &mut Option<(PathBuf, DecisionsWriter<BufWriter<File>>)>,
    progress: &Progress,
) -> Result<(), DryRunError> {
    let d = match pending {
        Pending::Ready(d) => *d,
        Pending::Running(task) => match task.await {
            Ok(d) => d,
            Err(e) => bad_row(0, 0, format!("the row's task failed: {e}")),
        },
    };
    if let Outcome::BadRow(error) = &d.outcome {
        progress.message(&format!("row {} (line {}): {error}", d.row, d.line));
    }
    summary.add(&d, existing);
    if let Some((path, writer)) = out {
        writer.write(&d).map_err(|e| write_error(path, e.into()))?;
    }
    Ok(())
}

/// Reads `--existing`: one login a line; blank lines and `#` comments
/// skipped. With `seed` (a throwaway store and the tenant), each login is
/// also claimed there for [`EXISTING_OWNER`], under the claim-key
/// convention of WIT 0.2.0 plugins (the login with ASCII letters
/// lowercased): a plugin that claims its logins then never hands out one an
/// Okta user holds, as it would not once the tenant's directory answers.
async fn read_existing(
    path: Option<&Path>,
    seed: Option<(&Store, &str)>,
) -> Result<LoginSet, DryRunError> {
    let mut set = LoginSet::default();
    let Some(path) = path else {
        return Ok(set);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        DryRunError::usage(format!("--existing: cannot read {}: {e}", path.display()))
    })?;
    for line in text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            set.insert(line, 0);
            if let Some((store, tenant)) = seed {
                store
                    .claim(tenant, &line.to_ascii_lowercase(), EXISTING_OWNER)
                    .await
                    .map_err(|e| {
                        DryRunError::usage(format!(
                            "--existing: cannot claim the existing logins in the throwaway store: {e}"
                        ))
                    })?;
            }
        }
    }
    Ok(set)
}

/// Data rows in the file (for the progress bar's ETA), when it is a regular
/// file; one quick pass that keeps nothing.
fn count_rows(path: &Path) -> Option<u64> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = File::open(path).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(BufReader::with_capacity(64 * 1024, file));
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record).ok()? {
        rows += 1;
    }
    Some(rows)
}

/// `time` as RFC 3339 in UTC, to the second (Okta's `eventTime`).
fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "2000-02-29T01:01:01Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_735_689_599)),
            "2024-12-31T23:59:59Z"
        );
    }

    #[test]
    fn answers_are_read_back() {
        let a = Answer::parse(
            br#"{"commands":[{"type":"com.okta.user.profile.update","value":{"login":"n@x"}}],
                 "debugContext":{"rule":"middle-name","hookboxPlugin":"abc"}}"#,
        );
        assert_eq!(a.commands, ["com.okta.user.profile.update"]);
        assert_eq!(a.login.as_deref(), Some("n@x"));
        assert_eq!(a.rule.as_deref(), Some("middle-name"));
        let a = Answer::parse(
            br#"{"commands":[{"type":"com.okta.action.update","value":{"result":"LINK_USER"}},
                 {"type":"com.okta.user.update","value":{"id":"00u1"}}]}"#,
        );
        assert!(a.linked && a.login.is_none() && a.rule.is_none());
    }
}
