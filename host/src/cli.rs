//! The command line: `hookbox serve --config FILE`, `hookbox serve --dev`,
//! and the tools beside it (`check`, `run`, `dry-run`).
//!
//! Start-up order: telemetry, configuration (refused before anything binds,
//! exit code 64), plugins compiled, bind, log the bound address, serve, drain
//! on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError, Overrides};
use crate::dryrun::{self, DryRunError, Mapping};
use crate::plugin::{DEFAULT_REUSE_MAX_REQUESTS, InstanceMode, Limits, Plugin, Runtime};
use crate::reload::{Reloader, SmokeError};
use crate::runner::RunError;
use crate::tenant::{Tenant, Tenants};
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
    /// Run a CSV import through a tenant's plugin before Okta does, and report the logins it would get.
    #[command(after_help = DRY_RUN_HELP)]
    DryRun(DryRunArgs),
}

const DRY_RUN_HELP: &str = "\
Each row becomes the import request Okta would send: every column in the app-user profile,
and the Okta profile mapped from columns (default login=login, email=email,
firstName=firstName, lastName=lastName; change with --map OKTA=COLUMN, OKTA= to drop one).
A row conflicts when its login (case-insensitively) is in --existing or an earlier row has it.

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
}

#[derive(clap::Args)]
struct RunArgs {
    /// The component (.wasm).
    plugin: PathBuf,
    /// An Okta import hook request body (JSON).
    request: PathBuf,
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
    /// PEM certificate chain (overrides `tls.cert`; with --dev, replaces the generated certificate).
    #[arg(long, env = "HOOKBOX_TLS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key (overrides `tls.key`).
    #[arg(long, env = "HOOKBOX_TLS_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// With --dev: serve this component instead of the embedded reference plugin.
    #[arg(long, requires = "dev")]
    plugin: Option<PathBuf>,
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
    let cli = match Cli::try_parse() {
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
        let target = match (&args.config, &args.tenant) {
            (Some(config), Some(tenant)) => dryrun::Target::from_config(config, tenant)?,
            _ => dryrun::Target::from_plugin(
                args.plugin.as_deref(),
                args.settings.iter().cloned().collect(),
                args.instance_mode
                    .map_or(InstanceMode::Fresh, InstanceMode::from),
            )?,
        };
        let options = dryrun::Options {
            csv: args.csv.clone(),
            mapping: Mapping::default().with(pairs),
            existing: args.existing.clone(),
            out: args.out.clone(),
            concurrency: args.concurrency,
            quiet: args.quiet,
        };
        Ok((target, options))
    })();
    let (target, options) = match prepared {
        Ok(p) => p,
        Err(e) => return fail(e.exit_code(), e),
    };
    // Every core runs rows: each row is a task on the multi-threaded runtime.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(dryrun::run(&target, &options)) {
        Ok(summary) => {
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
        Err(e) => fail(e.exit_code(), e),
    }
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    let settings = args.settings.into_iter().collect();
    match runtime.block_on(runner::run(&args.plugin, &args.request, settings, limits)) {
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
    let (app, reloader, tls_config, listen) = match prepare(&args) {
        Ok(ready) => ready,
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
        if let Err(e) = crate::reload::smoke_at_start(&app).await {
            return fail(SmokeError::EXIT_CODE, e);
        }
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
        match crate::serve(app, reloader, tls_config, listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, e),
        }
    })
}

type Ready = (
    Arc<App>,
    Option<Arc<Reloader>>,
    Arc<rustls::ServerConfig>,
    SocketAddr,
);

fn prepare(args: &ServeArgs) -> anyhow::Result<Ready> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
    };
    let (config, app, reloader) = if args.dev {
        let mut d = dev::setup(
            args.listen.as_deref(),
            args.plugin.clone(),
            std::env::var("HOOKBOX_DEV_SECRET").ok(),
        )?;
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
        let runtime = Runtime::new(&d.config.engine)?;
        let plugin = Plugin::from_bytes(&runtime, &d.plugin)?;
        let tenants = Tenants::from_tenants(
            d.config
                .tenants
                .iter()
                .map(|t| Arc::new(dev_tenant(Tenant::new(t.clone(), plugin.clone())))),
        );
        let app = Arc::new(App::new(runtime, tenants, d.config.server.clone()));
        (d.config, app, None)
    } else {
        let path = args
            .config
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--config or --dev is required"))?;
        let config = Config::load(&path, &overrides)?;
        let app = Arc::new(App::from_config(&config)?);
        let reloader = Reloader::new(app.clone(), path, overrides, &config);
        (config, app, Some(Arc::new(reloader)))
    };
    let identity = tls::Identity::load(&config.tls)?;
    let tls_config = tls::server_config(identity)?;
    Ok((app, reloader, tls_config, config.server.listen))
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

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
