//! The command line: `serve`, `migrate` and `bench ...`.

use clap::{Parser, Subcommand};

/// flowlab: active learning for black-box reward oracles with GFlowNets.
#[derive(Debug, Parser)]
#[command(name = "flowlab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(crate::config::Config),
    /// Apply the database migrations and exit.
    Migrate {
        /// Database: `sqlite://FILE` or `postgres://USER@HOST/DB`.
        #[arg(
            long = "database-url",
            env = "DATABASE_URL",
            default_value = "sqlite://flowlab.db",
            hide_env_values = true
        )]
        database_url: String,
    },
    /// Print the OpenAPI document of the HTTP API (what proto-docs/openapi.json holds).
    Openapi,
    /// Benchmarks that print figures (progress on stderr, one JSON line on stdout).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Train a GFlowNet on HyperGrid: speed and exact sum-L1 of the learned policy.
    Gfn(crate::bench::gfn::GfnBenchArgs),
    /// Run the server in-process: POST /labels throughput and POST /rounds latency, with
    /// training idle and busy, on SQLite and PostgreSQL.
    Api(crate::bench::api::ApiBenchArgs),
}

impl Cli {
    /// How the command logs: `serve` as configured, everything else as text.
    pub fn log_format(&self) -> crate::telemetry::LogFormat {
        match &self.command {
            Command::Serve(config) => config.log_format,
            _ => crate::telemetry::LogFormat::Text,
        }
    }

    /// The log filter when `RUST_LOG` is unset. Benchmarks print their own progress and run
    /// a server in-process whose per-request log lines would bury it: warnings only.
    pub fn default_log_filter(&self) -> &'static str {
        match &self.command {
            Command::Bench(_) => "warn",
            _ => "info",
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Gfn(args)) => {
            let stdout = std::io::stdout();
            crate::bench::gfn::run(&args, &mut stdout.lock())?;
        }
        Command::Bench(BenchCommand::Api(args)) => {
            let stdout = std::io::stdout();
            crate::bench::api::run(&args, &mut stdout.lock())?;
        }
        Command::Serve(config) => {
            config.validate().map_err(anyhow::Error::msg)?;
            tokio::runtime::Runtime::new()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.bind).await?;
                let app = crate::app::App::build(config, listener).await?;
                // One plain line on stdout for scripts (and tests) that start the server
                // on port 0 and need to know where it listens.
                println!("flowlab listening on http://{}", app.local_addr()?);
                app.run(shutdown_signal()).await?;
                anyhow::Ok(())
            })?;
        }
        Command::Openapi => {
            use std::io::Write;
            std::io::stdout().write_all(crate::http::openapi::openapi_json()?.as_bytes())?;
        }
        Command::Migrate { database_url } => {
            tokio::runtime::Runtime::new()?.block_on(async move {
                let store = crate::store::Store::connect(&database_url).await?;
                store.migrate().await?;
                tracing::info!(database = %crate::store::redact_url(&database_url), "migrations applied");
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
