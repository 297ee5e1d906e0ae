//! The command line: `hookbox serve --config FILE`, `hookbox serve --dev`,
//! `hookbox check`, `hookbox run`, `hookbox dry-run`, `hookbox check-auth`,
//! `hookbox claims` and `hookbox events`.
//!
//! Start-up order: telemetry, configuration (refused before anything binds,
//! exit code 64), the claim store opened (a bad `[store]` exits 64 naming
//! it; an unreachable Redis does not stop the start), signal handlers, the
//! ops listener (`[server] ops_listen`: `/healthz` answers and `/readyz`
//! fails while plugins load), each OAuth tenant's issuer metadata and keys
//! fetched (a failure refuses to start, exit code 64, naming the tenant and
//! the step), plugins compiled and smoke-tested (a failure exits 64), ready,
//! bind the main listener, log the bound addresses, serve, drain on SIGTERM
//! or Ctrl-C ([`crate::drain`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use hookbox_store::{ClaimOutcome, Store, StoreConfig, StoreError};

use crate::config::{Config, ConfigError, Overrides, StoreSection};
use crate::drain::Drain;
use crate::dryrun::{self, DryRunError, Mapping};
use crate::plugin::{DEFAULT_REUSE_MAX_REQUESTS, InstanceMode, Limits, Plugin, Runtime};
use crate::reload::{Reloader, SmokeError};
use crate::runner::{RunError, RunStore};
use crate::tenant::{self, Tenant, Tenants};
use crate::{App, dev, runner, tls};

/// Exit code for a configuration or usage error (BSD `EX_USAGE`).
pub const EXIT_CONFIG: u8 = ConfigError::EXIT_CODE;
/// Exit code when the address cannot be bound (BSD `EX_UNAVAILABLE`).
pub const EXIT_BIND: u8 = 69;

#[derive(Parser)]
#[command(
    name = "hookbox",
    version,
    about = "Okta User Import Inline Hook host running WebAssembly resolvers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hook over HTTPS.
    Serve(ServeArgs),
    /// Say whether a component implements the hookbox world, and what it imports.
    Check {
        /// The component (.wasm).
        plugin: PathBuf,
    },
    /// Run one request through a plugin exactly as `serve` would, and show its cost.
    Run(RunArgs),
    /// Check a tenant's OAuth setup: fetch the issuer's metadata and keys and,
    /// given a token, verify it step by step (exit code 1 when a step fails).
    CheckAuth(CheckAuthArgs),
    /// See and undo login claims in the configured claim store.
    ///
    /// The embedded store is one process's at a time: stop `hookbox serve`
    /// first (a Redis store can be used while servers run).
    #[command(subcommand)]
    Claims(ClaimsCommand),
    /// See and replay a tenant's dead events (event hooks) in the configured store.
    ///
    /// The embedded store is one process's at a time: stop `hookbox serve`
    /// first (a Redis store can be used while servers run).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Run a CSV import through a tenant's plugin before Okta does, and report the logins it would get.
    #[command(after_help = DRY_RUN_HELP)]
    DryRun(DryRunArgs),
}

const DRY_RUN_HELP: &str = "\
Each row becomes the import request Okta would send: every column in the app-user profile,
and the Okta profile mapped from columns (default login=login, email=email,
firstName=firstName, lastName=lastName; change with --map OKTA=COLUMN, OKTA= to drop one).
A row conflicts when its login (case-insensitively) is in --existing or an earlier row has it.
The plugin's claims go to a throwaway store unless --real-store (with --config) names
the configuration's [store]: a dry run never claims a login for real by default.

Exit codes: 0 every row answered and no login held twice; otherwise a bit mask:
1 a row failed (bad row, plugin error, plugin failure), 2 a login would be held twice
(two rows, a new login an existing user holds, or a conflict left unresolved);
64 bad flags, configuration, mapping or input file; 74 the CSV or the decisions file
failed mid-run.";

#[derive(clap::Args)]
struct DryRunArgs {
    /// The CSV file (RFC 4180: header row first, quoted fields, UTF-8 with or without BOM, CRLF or LF).
    csv: PathBuf,
    /// Run tenant --tenant of this configuration file (its plugin, settings and limits).
    #[arg(long, requires = "tenant", conflicts_with = "plugin")]
    config: Option<PathBuf>,
    /// The tenant of --config to run.
    #[arg(long, requires = "config")]
    tenant: Option<String>,
    /// Run this component with default limits (without --config or --plugin: the embedded reference plugin).
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// A plugin setting, as a tenant's `settings` table would give it (repeatable; not with --config).
    #[arg(long = "setting", visible_alias = "settings", value_name = "KEY=VALUE",
          value_parser = parse_setting, conflicts_with = "config")]
    settings: Vec<(String, String)>,
    /// Instance mode of the plugin (not with --config: the tenant's own is used).
    #[arg(long, value_enum, conflicts_with = "config")]
    instance_mode: Option<DevInstanceMode>,
    /// Logins Okta already holds, one a line (compared case-insensitively).
    #[arg(long, value_name = "FILE")]
    existing: Option<PathBuf>,
    /// Map an Okta profile attribute to a column (repeatable; OKTA= removes a default).
    #[arg(long = "map", value_name = "OKTA=COLUMN", value_parser = crate::dryrun::mapping::parse_pair)]
    map: Vec<(String, String)>,
    /// A file of OKTA=COLUMN lines, applied before the --map flags.
    #[arg(long, value_name = "FILE")]
    map_file: Option<PathBuf>,
    /// Write one line per row here: row, external id, old and new login, rule, outcome (CSV).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Rows in the pipeline at once (default: twice the cores; at most the tenant's max_concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    quiet: bool,
    /// Claim in --config's `[store]`, in --tenant's key space, instead of a
    /// throwaway store: the plugin's claims are then REAL and kept.
    #[arg(long, requires = "config")]
    real_store: bool,
}

/// What `--config` and `--tenant` say for every `claims` and `events` subcommand.
#[derive(clap::Args, Clone)]
struct ClaimsTarget {
    /// The server's configuration file: its `[store]` is used (nothing else is read).
    #[arg(long, env = "HOOKBOX_CONFIG")]
    config: PathBuf,
    /// The tenant whose claims these are (one of the file's `[[tenants]]`).
    #[arg(long)]
    tenant: String,
}

#[derive(Subcommand)]
enum ClaimsCommand {
    /// List a tenant's claims in byte order of their keys: `KEY<TAB>OWNER<TAB>CLAIMED-AT`.
    List {
        #[command(flatten)]
        target: ClaimsTarget,
        /// Start after this key (paging).
        #[arg(long)]
        after: Option<String>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object `{"key": "owner", ...}` instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Who holds KEY (exit status 1 when nobody does).
    Show {
        #[command(flatten)]
        target: ClaimsTarget,
        /// The key, exactly as claimed (the reference plugin claims lower-cased logins).
        key: String,
    },
    /// Free KEY, whoever holds it (or only if OWNER holds it, with --owner); exit 1 if nothing was freed.
    Release {
        #[command(flatten)]
        target: ClaimsTarget,
        /// The key, exactly as claimed.
        key: String,
        /// Release only if this owner holds it.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Claim KEY for OWNER as a plugin would (exit 1 if another owner holds it).
    Claim {
        #[command(flatten)]
        target: ClaimsTarget,
        /// The key.
        key: String,
        /// The owner.
        owner: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// List the tenant's dead events, oldest first:
    /// `ID<TAB>UUID<TAB>ATTEMPTS<TAB>DIED-AT-MS<TAB>REASON`.
    Dead {
        #[command(flatten)]
        target: ClaimsTarget,
        /// One JSON array of the dead events, each with its queued payload.
        #[arg(long)]
        json: bool,
    },
    /// Queue a dead event again as new (attempts reset); exit 1 if no dead event has that id.
    Replay {
        #[command(flatten)]
        target: ClaimsTarget,
        /// The dead event's id (the first column of `hookbox events dead`).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<u64>,
        /// Every dead event of the tenant.
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args)]
struct CheckAuthArgs {
    /// The configuration file (TOML).
    #[arg(long, env = "HOOKBOX_CONFIG")]
    config: PathBuf,
    /// The tenant whose `auth.oauth` to check.
    #[arg(long)]
    tenant: String,
    /// An access token (bare or `Bearer ...`); `-` reads it from standard
    /// input (keeps it out of the shell history and the process list).
    token: Option<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The component (.wasm).
    plugin: PathBuf,
    /// An Okta import hook request body (JSON).
    #[arg(required_unless_present = "events")]
    request: Option<PathBuf>,
    /// Instead of a request: an event hook delivery (JSON); the plugin's event
    /// handler runs on each of its events, whatever their type.
    #[arg(long, value_name = "DELIVERY", conflicts_with = "request")]
    events: Option<PathBuf>,
    /// A plugin setting, as the tenant's `settings` table would give it (repeatable).
    #[arg(long = "settings", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Memory limit, e.g. 32MiB (default as in `serve`).
    #[arg(long)]
    memory: Option<String>,
    /// Deadline, e.g. 500ms (default as in `serve`).
    #[arg(long)]
    deadline: Option<String>,
    /// Fuel limit (default: metered, unlimited).
    #[arg(long)]
    fuel: Option<u64>,
    /// Use this configuration file's claim store (`[store]`) instead of a
    /// throwaway one; needs --tenant. The plugin's claims are then real.
    #[arg(long, requires = "tenant")]
    config: Option<PathBuf>,
    /// With --config: the tenant whose key space the plugin's claims use.
    #[arg(long, requires = "config")]
    tenant: Option<String>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(
        long,
        env = "HOOKBOX_CONFIG",
        required_unless_present = "dev",
        conflicts_with = "dev"
    )]
    config: Option<PathBuf>,
    /// Development mode: self-signed certificate, tenant `dev`, the embedded reference plugin.
    #[arg(long)]
    dev: bool,
    /// Address to listen on (overrides `server.listen`; port 0 picks a free port).
    #[arg(long, env = "HOOKBOX_LISTEN")]
    listen: Option<String>,
    /// Plain-HTTP address for /healthz, /readyz and /metrics (overrides `server.ops_listen`).
    #[arg(long, env = "HOOKBOX_OPS_LISTEN")]
    ops_listen: Option<String>,
    /// PEM certificate chain (overrides `tls.cert`; with --dev, replaces the generated certificate).
    #[arg(long, env = "HOOKBOX_TLS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key (overrides `tls.key`).
    #[arg(long, env = "HOOKBOX_TLS_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// With --dev: serve this component instead of the embedded reference plugin.
    #[arg(long, requires = "dev")]
    plugin: Option<PathBuf>,
    /// With --dev: the data directory of the embedded claim store (kept across
    /// runs); default: a new directory under the system's temporary directory.
    #[arg(long, requires = "dev", env = "HOOKBOX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// With --dev: the dev tenant's instance mode (`limits.instance_mode`).
    #[arg(long, requires = "dev", value_enum, default_value_t = DevInstanceMode::Fresh)]
    instance_mode: DevInstanceMode,
    /// Log format.
    #[arg(long, env = "HOOKBOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--instance-mode`: the values `limits.instance_mode` takes in a configuration file.
#[derive(Clone, Copy, ValueEnum)]
enum DevInstanceMode {
    Fresh,
    Reuse,
}

impl From<DevInstanceMode> for InstanceMode {
    fn from(mode: DevInstanceMode) -> Self {
        match mode {
            DevInstanceMode::Fresh => InstanceMode::Fresh,
            DevInstanceMode::Reuse => InstanceMode::Reuse {
                max_requests: DEFAULT_REUSE_MAX_REQUESTS,
            },
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with the command line given (`args[0]` is the program name):
/// the real command line, for tests that run it in a process of their own.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { plugin } => {
            let report = runner::check(&plugin);
            print!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Run(args) => run(args),
        Command::DryRun(args) => dry_run(args),
        Command::Claims(command) => claims(command),
        Command::Events(command) => events(command),
        Command::CheckAuth(args) => check_auth(args),
    }
}

fn dry_run(args: DryRunArgs) -> ExitCode {
    init_tracing(LogFormat::Text);
    let prepared = (|| -> Result<_, DryRunError> {
        let mut pairs = match &args.map_file {
            Some(path) => Mapping::read_file(path)?,
            None => Vec::new(),
        };
        pairs.extend(args.map.iter().cloned());
        Ok(dryrun::Options {
            csv: args.csv.clone(),
            mapping: Mapping::default().with(pairs),
            existing: args.existing.clone(),
            out: args.out.clone(),
            concurrency: args.concurrency,
            quiet: args.quiet,
        })
    })();
    let options = match prepared {
        Ok(o) => o,
        Err(e) => return fail(e.exit_code(), e),
    };
    // `--real-store`: the configuration's `[store]`, checked before anything runs.
    let section = match (&args.config, args.real_store) {
        (Some(config), true) => match StoreSection::load(config) {
            Ok(s) => Some(s.store),
            Err(e) => return fail(EXIT_CONFIG, e),
        },
        _ => None,
    };
    // Every core runs rows: each row is a task on the multi-threaded runtime.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    let summary = runtime.block_on(async {
        let store = match &section {
            Some(config) => match open_store(config).await {
                Ok(store) => dryrun::DryRunStore::Real(store),
                Err(e) => return Err(fail(EXIT_CONFIG, e)),
            },
            None => dryrun::DryRunStore::Scratch,
        };
        let target = match (&args.config, &args.tenant) {
            (Some(config), Some(tenant)) => {
                dryrun::Target::from_config(config, tenant, store).await
            }
            _ => {
                dryrun::Target::from_plugin(
                    args.plugin.clone(),
                    args.settings.iter().cloned().collect(),
                    args.instance_mode
                        .map_or(InstanceMode::Fresh, InstanceMode::from),
                    store,
                )
                .await
            }
        };
        let target = target.map_err(|e| fail(e.exit_code(), e))?;
        dryrun::run(&target, &options)
            .await
            .map_err(|e| fail(e.exit_code(), e))
    });
    let summary = match summary {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(1, format!("cannot encode the summary: {e}")),
        }
    } else {
        print!("{}", summary.text());
    }
    ExitCode::from(summary.exit_code)
}

fn check_auth(args: CheckAuthArgs) -> ExitCode {
    let config = match Config::load(&args.config, &Overrides::default()) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let Some(tenant) = config.tenants.iter().find(|t| t.id == args.tenant) else {
        return fail(
            EXIT_CONFIG,
            format!("no tenant '{}' in {}", args.tenant, args.config.display()),
        );
    };
    let Some(oauth) = &tenant.auth.oauth else {
        return fail(
            EXIT_CONFIG,
            format!("tenant '{}' has no auth.oauth", args.tenant),
        );
    };
    let token = match args.token.as_deref() {
        Some("-") => {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                return fail(
                    EXIT_CONFIG,
                    format!("cannot read the token from stdin: {e}"),
                );
            }
            Some(text.trim().to_owned())
        }
        other => other.map(str::to_owned),
    };
    let runtime = match small_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = runtime.block_on(hookbox_oauth::diagnose(oauth, token.as_deref()));
    println!("tenant {}", args.tenant);
    print!("{report}");
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A current-thread runtime for the operator commands.
fn small_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(1, format!("cannot start the async runtime: {e}")))
}

/// Opens the configured store for an operator command or the server;
/// the error is a sentence naming `[store]` and, for the embedded store,
/// saying when another process holds it.
pub async fn open_store(config: &StoreConfig) -> Result<Store, ConfigError> {
    Store::open(config).await.map_err(|e| {
        let what = match config {
            StoreConfig::Embedded { path, .. } => {
                format!("[store] embedded store {}", path.display())
            }
            StoreConfig::Redis { .. } => "[store] redis".to_owned(),
        };
        match (&e, config) {
            (StoreError::Unavailable(_), StoreConfig::Embedded { .. }) => {
                ConfigError::new(format!(
                    "{what}: in use by another process ({e}). The embedded store is one process's \
                 at a time: stop the running `hookbox serve` (or other `hookbox claims` \
                 command) first, or use a Redis store to share it"
                ))
            }
            _ => ConfigError::new(format!("{what}: {e}")),
        }
    })
}

fn claims(command: ClaimsCommand) -> ExitCode {
    let target = match &command {
        ClaimsCommand::List { target, .. }
        | ClaimsCommand::Show { target, .. }
        | ClaimsCommand::Release { target, .. }
        | ClaimsCommand::Claim { target, .. } => target.clone(),
    };
    on_tenant_store(&target, "claim store", |store| async move {
        claims_command(&store, command).await
    })
}

/// An operator command on `target`'s configured store: the file's `[store]`
/// read, the tenant checked against its tenants (exit 64 if either is
/// wrong), the store opened, then `run`; a store error exits 1 naming `what`.
fn on_tenant_store<F, Fut>(target: &ClaimsTarget, what: &str, run: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, StoreError>>,
{
    let section = match StoreSection::load(&target.config) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    if let Err(e) = section.tenant(&target.tenant) {
        return fail(EXIT_CONFIG, e);
    }
    let runtime = match small_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let store = match open_store(&section.store).await {
            Ok(s) => s,
            Err(e) => return fail(EXIT_CONFIG, e),
        };
        match run(store).await {
            Ok(code) => code,
            Err(e) => fail(1, format!("{what}: {e}")),
        }
    })
}

async fn claims_command(store: &Store, command: ClaimsCommand) -> Result<ExitCode, StoreError> {
    Ok(match command {
        ClaimsCommand::List {
            target,
            after,
            limit,
            json,
        } => {
            let tenant = &target.tenant;
            let mut after = after;
            let mut left = limit.unwrap_or(usize::MAX);
            let mut all = serde_json::Map::new();
            while left > 0 {
                let page = store
                    .list(
                        tenant,
                        after.as_deref(),
                        left.min(hookbox_store::MAX_LIST_LIMIT),
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                left -= page.len();
                for c in page {
                    if json {
                        all.insert(c.key, serde_json::Value::String(c.owner));
                    } else {
                        let at = c
                            .claimed_at
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis());
                        println!("{}\t{}\t{at}", c.key, c.owner);
                    }
                }
            }
            if json {
                println!("{}", serde_json::Value::Object(all));
            }
            ExitCode::SUCCESS
        }
        ClaimsCommand::Show { target, key } => match store.owner_of(&target.tenant, &key).await? {
            Some(owner) => {
                println!("{owner}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("hookbox: {key} is not claimed");
                ExitCode::FAILURE
            }
        },
        ClaimsCommand::Release { target, key, owner } => {
            let released = match &owner {
                Some(owner) => store
                    .release(&target.tenant, &key, owner)
                    .await?
                    .then(|| owner.clone()),
                None => store.force_release(&target.tenant, &key).await?,
            };
            match released {
                Some(owner) => {
                    println!("released {key} (was {owner})");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!(
                        "hookbox: nothing released: {key} is not claimed{}",
                        if owner.is_some() {
                            " by that owner"
                        } else {
                            ""
                        }
                    );
                    ExitCode::FAILURE
                }
            }
        }
        ClaimsCommand::Claim { target, key, owner } => {
            match store.claim(&target.tenant, &key, &owner).await? {
                ClaimOutcome::Claimed => {
                    println!("claimed");
                    ExitCode::SUCCESS
                }
                ClaimOutcome::AlreadyYours => {
                    println!("already-yours");
                    ExitCode::SUCCESS
                }
                ClaimOutcome::Taken => {
                    println!("taken");
                    ExitCode::FAILURE
                }
            }
        }
    })
}

fn events(command: EventsCommand) -> ExitCode {
    let target = match &command {
        EventsCommand::Dead { target, .. } | EventsCommand::Replay { target, .. } => target.clone(),
    };
    on_tenant_store(&target, "event store", |store| async move {
        events_command(&store, command).await
    })
}

async fn events_command(store: &Store, command: EventsCommand) -> Result<ExitCode, StoreError> {
    Ok(match command {
        EventsCommand::Dead { target, json } => {
            let dead = crate::events::all_dead(store, &target.tenant).await?;
            let ms = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            };
            if json {
                let list: Vec<serde_json::Value> = dead
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id,
                            "uuid": d.uuid,
                            "attempts": d.attempts,
                            "died_at_ms": ms(d.died_at) as u64,
                            "reason": d.reason,
                            "payload": serde_json::from_slice::<serde_json::Value>(&d.payload)
                                .unwrap_or(serde_json::Value::Null),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for d in &dead {
                    // One line per event: no tab or newline of the reason may split it.
                    let reason: String = d
                        .reason
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    println!(
                        "{}\t{}\t{}\t{}\t{reason}",
                        d.id,
                        d.uuid,
                        d.attempts,
                        ms(d.died_at)
                    );
                }
            }
            ExitCode::SUCCESS
        }
        EventsCommand::Replay { target, id, all } => {
            if all {
                let n = crate::events::replay_all(store, &target.tenant).await?;
                println!("replayed {n} dead events");
                ExitCode::SUCCESS
            } else {
                let id = id.unwrap_or_default();
                if store.replay(&target.tenant, id).await? {
                    println!("replayed {id}");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("hookbox: no dead event {id} for tenant {}", target.tenant);
                    ExitCode::FAILURE
                }
            }
        }
    })
}

fn run(args: RunArgs) -> ExitCode {
    let mut limits = Limits::default();
    let parsed = (|| -> Result<(), ConfigError> {
        if let Some(m) = &args.memory {
            limits.memory = crate::config::parse_size("--memory", m)?;
        }
        if let Some(d) = &args.deadline {
            limits.deadline = crate::config::parse_duration("--deadline", d)?;
        }
        limits.fuel = args.fuel;
        Ok(())
    })();
    if let Err(e) = parsed {
        return fail(EXIT_CONFIG, e);
    }
    let section = match (&args.config, &args.tenant) {
        (Some(config), Some(tenant)) => {
            match StoreSection::load(config).and_then(|s| s.tenant(tenant).map(|()| s)) {
                Ok(s) => Some((s.store, tenant.clone())),
                Err(e) => return fail(EXIT_CONFIG, e),
            }
        }
        _ => None,
    };
    let runtime = match small_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let settings = args.settings.into_iter().collect();
    let result = runtime.block_on(async {
        let store = match section {
            None => RunStore::Scratch,
            Some((config, tenant)) => match open_store(&config).await {
                Ok(store) => RunStore::Real { store, tenant },
                Err(e) => return Err(fail(EXIT_CONFIG, e)),
            },
        };
        Ok(match (&args.events, &args.request) {
            (Some(delivery), _) => {
                runner::run_events(&args.plugin, delivery, settings, limits, store).await
            }
            (None, Some(request)) => {
                runner::run(&args.plugin, request, settings, limits, store).await
            }
            (None, None) => Err(RunError::InvalidRequest(
                "give a request file or --events DELIVERY".into(),
            )),
        })
    });
    let result = match result {
        Ok(r) => r,
        Err(code) => return code,
    };
    match result {
        Ok(report) => {
            println!("{}", String::from_utf8_lossy(&report.body));
            eprint!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(RunError::EXIT_CODE, e),
    }
}

fn init_tracing(format: LogFormat) {
    // `HOOKBOX_LOG` takes `tracing` filter directives, e.g. `info,hookbox::plugin=debug`.
    let filter = EnvFilter::try_from_env("HOOKBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hookbox: {message}");
    ExitCode::from(code)
}

fn serve(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);

    // Everything that can be wrong with the configuration is found here, before binding.
    let loaded = match load(&args) {
        Ok(loaded) => loaded,
        Err(e) => return fail(EXIT_CONFIG, format!("{e:#}")),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        // Opened once, inside the serving runtime (the embedded store's sweep runs on it).
        let store = match open_store(&loaded.config.store).await {
            Ok(s) => s,
            Err(e) => return fail(EXIT_CONFIG, e),
        };
        announce_store(&store, &loaded).await;
        let Prepared {
            app,
            reloader,
            tls: tls_config,
            to_load,
        } = match prepare(loaded, store) {
            Ok(ready) => ready,
            Err(e) => return fail(EXIT_CONFIG, format!("{e:#}")),
        };
        let server = app.server().clone();
        let drain = match Drain::on_signals(app.clone(), server.shutdown_delay) {
            Ok(d) => d,
            Err(e) => return fail(1, format!("cannot listen for SIGTERM/SIGINT: {e}")),
        };
        // First, so probes find the process alive (and not ready) while plugins compile.
        let ops = match server.ops_listen {
            None => None,
            Some(addr) => {
                let listener = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => return fail(EXIT_BIND, format!("cannot listen on {addr} (server.ops_listen): {e}")),
                };
                println!("hookbox ops listening on http://{}", listener.local_addr().unwrap_or(addr));
                Some(tokio::spawn(crate::serve_ops(app.clone(), listener, drain.stopped())))
            }
        };
        if let Some(config) = to_load {
            // Each OAuth tenant's issuer metadata and keys, before its plugin
            // is built: a server that could only answer 503 is not started.
            let verifiers = match tenant::build_verifiers(&config.tenants).await {
                Ok(v) => v,
                Err(e) => return fail(EXIT_CONFIG, e),
            };
            let loading = app.clone();
            match tokio::task::spawn_blocking(move || loading.load(&config, &verifiers)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return fail(EXIT_CONFIG, e),
                Err(e) => return fail(1, format!("loading the plugins failed: {e}")),
            }
        }
        if let Err(e) = crate::reload::smoke_at_start(&app).await {
            return fail(SmokeError::EXIT_CODE, e);
        }
        app.readiness().loaded();
        if drain.is_stopped() {
            // Told to stop while loading: the main listener is never opened.
            return finish(ops).await;
        }
        let listen = server.listen;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => return fail(EXIT_BIND, format!("cannot listen on {listen}: {e}")),
        };
        let bound = listener.local_addr().unwrap_or(listen);
        // `SIGHUP` reloads the configuration file and the plugins (see `reload`).
        // Installed before the address is announced: a SIGHUP sent as soon as the
        // server is up must reload it, not kill it (the default action).
        #[cfg(unix)]
        if let Some(reloader) = &reloader
            && let Err(e) = crate::reload::reload_on_sighup(reloader.clone())
        {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with the admin endpoint or server.watch");
        }
        announce(&app, bound);
        if let Err(e) = crate::serve(app, reloader, tls_config, listener, drain.stopped()).await {
            return fail(1, e);
        }
        finish(ops).await
    })
}

/// Waits for the ops listener's drain, then exits 0.
async fn finish(ops: Option<tokio::task::JoinHandle<Result<(), crate::ServeError>>>) -> ExitCode {
    if let Some(ops) = ops {
        match ops.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return fail(1, e),
            Err(e) => return fail(1, format!("the ops listener failed: {e}")),
        }
    }
    tracing::info!("drained; exiting");
    ExitCode::SUCCESS
}

/// What `serve` starts from: the app (with its tenants, or still to load
/// them from `to_load`), its reloader, the TLS configuration.
struct Prepared {
    app: Arc<App>,
    reloader: Option<Arc<Reloader>>,
    tls: Arc<rustls::ServerConfig>,
    to_load: Option<Config>,
}

/// The configuration, validated, before anything is opened or compiled.
struct Loaded {
    config: Config,
    /// `--dev`: the setup (plugin bytes, data directory); `None` with `--config`.
    dev: Option<dev::Dev>,
    /// `--config`: the file (reloads re-read it).
    path: Option<PathBuf>,
    overrides: Overrides,
}

fn load(args: &ServeArgs) -> anyhow::Result<Loaded> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        ops_listen: args.ops_listen.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
    };
    if args.dev {
        let mut d = dev::setup(
            args.listen.as_deref(),
            args.plugin.clone(),
            std::env::var("HOOKBOX_DEV_SECRET").ok(),
            args.data_dir.clone(),
        )?;
        if let Some(ops) = &args.ops_listen {
            d.config.server.ops_listen = Some(crate::config::parse_listen(ops)?);
        }
        for tenant in &mut d.config.tenants {
            tenant.limits.instance_mode = args.instance_mode.into();
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            d.config.tls = crate::config::TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            };
        }
        if d.secret_generated {
            // Printed once so a developer can call the hook; set HOOKBOX_DEV_SECRET to choose it.
            println!(
                "dev secret (send it as the Authorization header): {}",
                d.secret
            );
        }
        return Ok(Loaded {
            config: d.config.clone(),
            dev: Some(d),
            path: None,
            overrides,
        });
    }
    let path = args
        .config
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--config or --dev is required"))?;
    let config = Config::load(&path, &overrides)?;
    Ok(Loaded {
        config,
        dev: None,
        path: Some(path),
        overrides,
    })
}

/// Says where claims live; with Redis, whether it answers right now (it
/// need not: requests get store errors until it does).
async fn announce_store(store: &Store, loaded: &Loaded) {
    if let Some(d) = &loaded.dev {
        println!(
            "dev data directory: {} (claim store {}; pass --data-dir to reuse it)",
            d.data_dir.display(),
            dev::store_file(&d.data_dir).display()
        );
    }
    match &loaded.config.store {
        StoreConfig::Embedded { path, .. } => {
            tracing::info!(backend = "embedded", path = %path.display(), "claim store opened");
        }
        StoreConfig::Redis { .. } => match store.ping().await {
            Ok(()) => tracing::info!(backend = "redis", "claim store reachable"),
            Err(e) => tracing::warn!(
                backend = "redis",
                kind = e.kind(),
                error = %e,
                "claim store not reachable yet: requests get store errors until it is"
            ),
        },
    }
}

fn prepare(loaded: Loaded, store: Store) -> anyhow::Result<Prepared> {
    let Loaded {
        config,
        dev,
        path,
        overrides,
    } = loaded;
    let (app, reloader, to_load) = match (dev, path) {
        (Some(d), _) => {
            let runtime = Runtime::new(&d.config.engine)?;
            let plugin = Plugin::from_bytes(&runtime, &d.plugin)?;
            let tenants = Tenants::from_tenants(
                d.config
                    .tenants
                    .iter()
                    .map(|t| Arc::new(dev_tenant(Tenant::new(t.clone(), plugin.clone())))),
            );
            let app = Arc::new(App::new(runtime, tenants, d.config.server.clone(), store));
            (app, None, None)
        }
        (None, Some(path)) => {
            // The engine only: plugins compile once the ops listener is up.
            let app = Arc::new(App::starting(&config, store)?);
            let reloader = Reloader::new(app.clone(), path, overrides, &config);
            (app, Some(Arc::new(reloader)), Some(config.clone()))
        }
        (None, None) => anyhow::bail!("--config or --dev is required"),
    };
    let identity = tls::Identity::load(&config.tls)?;
    let tls = tls::server_config(identity)?;
    Ok(Prepared {
        app,
        reloader,
        tls,
        to_load,
    })
}

/// The dev tenant as built, or (benchmarks only: feature `native-resolver`
/// with `HOOKBOX_BENCH_NATIVE` set) bound to the resolver compiled into the
/// host instead of its plugin; see `native.rs`.
fn dev_tenant(tenant: Tenant) -> Tenant {
    #[cfg(feature = "native-resolver")]
    if crate::native::enabled() {
        return tenant.with_backend(crate::plugin::Backend::Native(Arc::new(
            crate::native::LoginConflict,
        )));
    }
    tenant
}

/// The line operators (and the dev tests) look for: where to point Okta.
fn announce(app: &App, bound: SocketAddr) {
    let tenants = app.tenants();
    for id in tenants.ids() {
        let plugin = tenants
            .get(id)
            .map(|t| t.plugin().short_digest().to_owned())
            .unwrap_or_default();
        tracing::info!(
            tenant = id,
            plugin,
            "register https://{bound}/hooks/{id}/import in Okta"
        );
    }
    println!("hookbox listening on https://{bound}");
}
