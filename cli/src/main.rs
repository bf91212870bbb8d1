//! `rms`: RMS Notify on one machine, and the ops command line.

mod dlq;
mod normalize;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rms",
    version,
    about = "RMS Notify: carrier tracking webhooks, relayed to clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Normalize(normalize::Args),
    Serve(serve::Args),
    #[command(subcommand)]
    Dlq(dlq::Command),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Normalize(args) => normalize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Dlq(command) => dlq::run(command),
    }
}
