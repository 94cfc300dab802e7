//! Start-up and shutdown, as both binaries do them: the rustls crypto
//! provider, logging to stderr (filter from `PORTCULLIS_LOG`), a
//! multi-threaded runtime, and the Ctrl-C / SIGTERM signal.

use std::process::ExitCode;

/// Installs the crypto provider and the logger. Call once, first.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A failed log write (stderr closed or its reader gone) is dropped:
        // by default tracing-subscriber reports it with `eprintln!`, which
        // panics on the same broken stderr and kills the logging task (the
        // shutdown-signal task, say).
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs `main` on a multi-threaded runtime; a runtime that cannot start is
/// exit status 2.
pub fn block_on<F>(main: F) -> ExitCode
where
    F: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(main),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

/// Exit status 0, or 2 with the error printed.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
