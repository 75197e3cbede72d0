//! The command line: `flowlab bench ...` (and later serve, migrate, demo).

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
    /// Benchmarks that print figures (progress on stderr, one JSON line on stdout).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Train a GFlowNet on HyperGrid: speed and exact sum-L1 of the learned policy.
    Gfn(crate::bench::gfn::GfnBenchArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Gfn(args)) => {
            let stdout = std::io::stdout();
            crate::bench::gfn::run(&args, &mut stdout.lock())?;
        }
    }
    Ok(())
}
