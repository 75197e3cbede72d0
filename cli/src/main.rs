//! The `flowlab` binary: parses the command line and hands over to the library.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // candle sizes its matrix-product thread pool from RAYON_NUM_THREADS at every call. Its
    // products here are small, where a second thread costs more than it brings (measured
    // with `flowlab bench gfn`), so one thread is the default unless the user says otherwise.
    // Set before any thread exists.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    // Parsed before logging starts, because `serve --log-format` decides how it logs.
    let cli = flowlab_cli::cli::Cli::parse();
    flowlab::telemetry::init(cli.log_format(), cli.default_log_filter());
    match flowlab_cli::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
