//! The `portcullis-verifier` binary.

use std::process::ExitCode;

use clap::Parser;
use portcullis_shared::startup;
use portcullis_verifier::{Cli, Command, run_migrate, run_serve, run_sigstore, run_verify};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Command::MigrateConnaisseur(args) = cli.command {
        return run_migrate(args);
    }
    startup::init();
    startup::block_on(async {
        match cli.command {
            Command::Verify(args) => run_verify(args).await,
            Command::Serve(args) => startup::exit_code(run_serve(*args).await),
            Command::Sigstore(command) => run_sigstore(command).await,
            Command::MigrateConnaisseur(_) => ExitCode::SUCCESS,
        }
    })
}
