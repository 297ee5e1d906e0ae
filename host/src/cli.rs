//! The command line: `hookbox serve --config FILE` and `hookbox serve --dev`.
//!
//! Start-up order: telemetry, configuration (refused before anything binds,
//! exit code 64), signal handlers, the ops listener (`[server] ops_listen`:
//! `/healthz` answers and `/readyz` fails while plugins load), plugins
//! compiled and smoke-tested (a failure exits 64), ready, bind the main
//! listener, log the bound addresses, serve, drain on SIGTERM or Ctrl-C
//! ([`crate::drain`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError, Overrides};
use crate::drain::Drain;
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
    let Prepared {
        app,
        reloader,
        tls: tls_config,
        to_load,
    } = match prepare(&args) {
        Ok(ready) => ready,
        Err(e) => return fail(EXIT_CONFIG, format!("{e:#}")),
    };
    let server = app.server().clone();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
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
            let loading = app.clone();
            match tokio::task::spawn_blocking(move || loading.load(&config)).await {
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

fn prepare(args: &ServeArgs) -> anyhow::Result<Prepared> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        ops_listen: args.ops_listen.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
    };
    let (config, app, reloader, to_load) = if args.dev {
        let mut d = dev::setup(
            args.listen.as_deref(),
            args.plugin.clone(),
            std::env::var("HOOKBOX_DEV_SECRET").ok(),
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
        let runtime = Runtime::new(&d.config.engine)?;
        let plugin = Plugin::from_bytes(&runtime, &d.plugin)?;
        let tenants = Tenants::from_tenants(
            d.config
                .tenants
                .iter()
                .map(|t| Arc::new(dev_tenant(Tenant::new(t.clone(), plugin.clone())))),
        );
        let app = Arc::new(App::new(runtime, tenants, d.config.server.clone()));
        (d.config, app, None, None)
    } else {
        let path = args
            .config
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--config or --dev is required"))?;
        let config = Config::load(&path, &overrides)?;
        // The engine only: plugins compile once the ops listener is up.
        let app = Arc::new(App::starting(&config)?);
        let reloader = Reloader::new(app.clone(), path, overrides, &config);
        (config.clone(), app, Some(Arc::new(reloader)), Some(config))
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
