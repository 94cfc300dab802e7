//! The `portcullis-gateway` binary.

use std::process::ExitCode;

use clap::Parser;
use portcullis_gateway::{Cli, run};
use portcullis_shared::startup;

fn main() -> ExitCode {
    let cli = Cli::parse();
    startup::init();
    startup::block_on(async { startup::exit_code(run(cli, startup::shutdown_signal()).await) })
}
