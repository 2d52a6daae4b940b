//! JSON logs (PLT-5): a server's on stdout, a command's on stderr (its stdout is its result).
//! Each line carries the request span's trace id. Secrets are kept
//! out at the source — they travel as `Secret<T>`, which cannot print itself — and panics are
//! logged by location only, because a panic message may quote request data.
//!
//! Lines are written by a background thread so that request handlers never wait on stdout; the
//! writer blocks rather than drops when its buffer is full, because security events must not be
//! lost.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Where log lines go.
pub(crate) enum Output {
    Stdout,
    Stderr,
}

pub(crate) fn init(level: &str, output: Output) -> WorkerGuard {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = NonBlockingBuilder::default().lossy(false);
    let (writer, guard) = match output {
        Output::Stdout => builder.finish(std::io::stdout()),
        Output::Stderr => builder.finish(std::io::stderr()),
    };
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .init();
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(location, "panic");
    }));
    guard
}
