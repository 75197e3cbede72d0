//! The command line: `serve`, `migrate`, `bench ...` and `demo`.

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
    Serve(flowlab::config::Config),
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
    /// Run the loop end to end in a few rounds against a built-in synthetic oracle, on an
    /// embedded server with a temporary database; writes the candidates as CSV.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Train a GFlowNet on HyperGrid: speed and exact sum-L1 of the learned policy.
    Gfn(crate::bench::gfn::GfnBenchArgs),
    /// Run the server in-process: POST /labels throughput and POST /rounds latency, with
    /// training idle and busy, on SQLite and PostgreSQL.
    Api(crate::bench::api::ApiBenchArgs),
    /// Grow one campaign through the API to a million labelled candidates: round, label,
    /// read and page latency and the server's memory at each size, on SQLite and PostgreSQL.
    Scale(crate::bench::scale::ScaleBenchArgs),
    /// The whole loop over HTTP at an equal oracle budget on synthetic tasks: flowlab
    /// against random search and a genetic algorithm.
    Loop(crate::bench::loop_bench::LoopBenchArgs),
    /// The proxy's prospective quality per feature variant: fit on what a loop would have
    /// labelled, scored on the next round's kind of candidates (Spearman, RMSE, coverage).
    Proxy(crate::bench::proxy::ProxyBenchArgs),
}

impl Cli {
    /// How the command logs: `serve` as configured, everything else as text.
    pub fn log_format(&self) -> flowlab::telemetry::LogFormat {
        match &self.command {
            Command::Serve(config) => config.log_format,
            _ => flowlab::telemetry::LogFormat::Text,
        }
    }

    /// The log filter when `RUST_LOG` is unset. Benchmarks and the demo print their own
    /// progress and tables and run a server in-process whose per-request log lines would
    /// bury them: warnings only.
    pub fn default_log_filter(&self) -> &'static str {
        match &self.command {
            Command::Bench(_) | Command::Demo(_) => "warn",
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
        Command::Bench(BenchCommand::Scale(args)) => {
            let stdout = std::io::stdout();
            crate::bench::scale::run(&args, &mut stdout.lock())?;
        }
        Command::Bench(BenchCommand::Api(args)) => {
            let stdout = std::io::stdout();
            crate::bench::api::run(&args, &mut stdout.lock())?;
        }
        Command::Bench(BenchCommand::Loop(args)) => {
            let stdout = std::io::stdout();
            crate::bench::loop_bench::run(&args, &mut stdout.lock())?;
        }
        Command::Bench(BenchCommand::Proxy(args)) => {
            let stdout = std::io::stdout();
            crate::bench::proxy::run(&args, &mut stdout.lock())?;
        }
        Command::Demo(args) => {
            let stdout = std::io::stdout();
            crate::demo::run(&args, &mut stdout.lock())?;
        }
        Command::Serve(config) => {
            config.validate().map_err(anyhow::Error::msg)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(async move {
                // Registered before the address is announced: a script (or test) that signals
                // the server as soon as it listens must reach this handler, not the default
                // action that kills the process.
                let shutdown = shutdown_signal()?;
                let listener = tokio::net::TcpListener::bind(config.bind).await?;
                let app = flowlab::app::App::build(config, listener).await?;
                // One plain line on stdout for scripts (and tests) that start the server
                // on port 0 and need to know where it listens.
                println!("flowlab listening on http://{}", app.local_addr()?);
                app.run(shutdown).await?;
                anyhow::Ok(())
            });
            // Dropping the runtime would wait for every blocking task, such as the sampling
            // of a round whose connection the drain limit dropped; those results are not
            // wanted any more.
            runtime.shutdown_timeout(RUNTIME_STOP_LIMIT);
            served?;
        }
        Command::Openapi => {
            use std::io::Write;
            std::io::stdout().write_all(flowlab::http::openapi::openapi_json()?.as_bytes())?;
        }
        Command::Migrate { database_url } => {
            tokio::runtime::Runtime::new()?.block_on(async move {
                let store = flowlab::store::Store::connect(&database_url).await?;
                store.migrate().await?;
                tracing::info!(database = %flowlab::store::redact_url(&database_url), "migrations applied");
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}

/// How long the runtime waits for blocking tasks after the server stopped.
const RUNTIME_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the handlers for Ctrl-C (SIGINT) and SIGTERM now, and returns a future that
/// resolves on the first of them. Must be called within the runtime.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

/// Returns a future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    })
}
