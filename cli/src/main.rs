//! `rms`: RMS Notify on one machine, and the ops command line.

mod console;
mod database;
mod normalize;
mod ops;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc instead of glibc's malloc: `rms serve` allocates and frees per request on every
// worker thread, where glibc's arenas spent about a tenth of the CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rms",
    version,
    about = "RMS Notify: carrier tracking webhooks, relayed to clients",
    after_help = "The ops commands (tenant, key, push, pull, deliveries, dlq, replay, quarantine, \
                  carriers, circuit) and rms console act on the embedded store with --local DB, \
                  or else on the AWS stack named by --config-table, --events-table, --queue-url \
                  and --dlq-url (or RMS_CONFIG_TABLE, RMS_EVENTS_TABLE, RMS_QUEUE_URL, \
                  RMS_DLQ_URL)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Normalize(normalize::Args),
    Serve(serve::Args),
    Console(console::command::Args),
    Tenant(ops::tenant::Args),
    Key(ops::key::Args),
    Push(ops::push::Args),
    Pull(ops::pull::Args),
    Deliveries(ops::deliveries::Args),
    Dlq(ops::dlq::Args),
    Replay(ops::replay::Args),
    Quarantine(ops::quarantine::Args),
    Carriers(ops::carriers::Args),
    Circuit(ops::circuit::Args),
    Reconcile(ops::reconcile::Args),
    Shipments(ops::shipments::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Normalize(args) => normalize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Console(args) => console::command::run(args),
        Command::Tenant(args) => ops::execute(args.target, args.command),
        Command::Key(args) => ops::execute(args.target, args.command),
        Command::Push(args) => ops::execute(args.target, args.command),
        Command::Pull(args) => ops::execute(args.target, args.command),
        Command::Deliveries(args) => ops::execute(args.target.clone(), args),
        Command::Dlq(args) => ops::execute(args.target, args.command),
        Command::Replay(args) => ops::execute(args.target.clone(), args),
        Command::Quarantine(args) => ops::execute(args.target, args.command),
        Command::Carriers(args) => ops::execute(args.target.clone(), args),
        Command::Circuit(args) => ops::execute(args.target.clone(), args),
        Command::Reconcile(args) => ops::reconcile::run(args),
        Command::Shipments(args) => ops::execute(args.target.clone(), args),
    }
}
