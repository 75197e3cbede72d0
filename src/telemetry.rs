//! The tracing subscriber: human-readable text (the default) or one JSON object per line for
//! log collectors, on stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Every request runs in a `request` span carrying its `request_id` (see `http::request_id`),
//! so each line logged while serving a request names it: in text as the span prefix, in JSON
//! under `span` and `spans`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, with the spans it happened in.
    #[default]
    Text,
    /// One JSON object per line, with the event's fields and its spans' fields.
    Json,
}

/// Installs the global subscriber, filtered by `RUST_LOG`, else by `default_filter`. Call
/// once, before anything logs; later calls do nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already installed (a test harness, an
    // embedding program): theirs stays.
    let _already_installed = match format {
        LogFormat::Text => builder.try_init(),
        // The span list keeps the request id on lines logged from a handler's own span,
        // whose current span is not the request span.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
