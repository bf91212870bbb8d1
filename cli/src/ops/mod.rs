//! The ops commands (`rms tenant`, `key`, `push`, `pull`, `deliveries`, `dlq`, `replay`,
//! `quarantine`, `carriers`, `circuit`): the admin use-case ([`shared::admin::Admin`]) on the
//! embedded store (`--local DB`) or on the stack's DynamoDB tables and SQS queues. Each command
//! is written once, generic over the store; the back end is picked here, and so is the output
//! (aligned tables, or `--json`: one JSON object a line).

pub mod carriers;
pub mod circuit;
pub mod deliveries;
pub mod dlq;
pub mod key;
pub mod pull;
pub mod push;
pub mod quarantine;
pub mod reconcile;
pub mod replay;
pub mod shipments;
pub mod tenant;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use shared::adapters::aws_admin::{AwsNames, DynamoAdmin};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoEventStore};
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqlite::SqliteStore;
use shared::adapters::sqs::SqsEventQueue;
use shared::admin::{Admin, AdminError, AdminStore, Selection};
use shared::ingest::{Ingest, IngestSettings, QueueThenClaim, Reingest};
use shared::ports::{NoMetrics, Pusher};

/// Where the ops commands act, and how they answer; every ops command takes these.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The embedded store: the SQLite database `rms serve` uses (it must exist). Without it, the
    /// commands act on the AWS stack (standard credential chain; AWS_ENDPOINT_URL is honoured).
    #[arg(
        long,
        value_name = "DB",
        visible_alias = "database",
        global = true,
        help_heading = "Store"
    )]
    local: Option<PathBuf>,
    /// The stack's config table [env: RMS_CONFIG_TABLE]
    #[arg(
        long,
        value_name = "NAME",
        global = true,
        conflicts_with = "local",
        help_heading = "Store"
    )]
    config_table: Option<String>,
    /// The stack's events table [env: RMS_EVENTS_TABLE]
    #[arg(
        long,
        value_name = "NAME",
        global = true,
        conflicts_with = "local",
        help_heading = "Store"
    )]
    events_table: Option<String>,
    /// The events queue's URL [env: RMS_QUEUE_URL]
    #[arg(
        long,
        value_name = "URL",
        global = true,
        conflicts_with = "local",
        help_heading = "Store"
    )]
    queue_url: Option<String>,
    /// The dead-letter queue's URL [env: RMS_DLQ_URL]
    #[arg(
        long,
        value_name = "URL",
        global = true,
        conflicts_with = "local",
        help_heading = "Store"
    )]
    dlq_url: Option<String>,
    /// Machine output: one JSON object per line (one per item of a list), nothing else on stdout.
    #[arg(long, global = true)]
    json: bool,
}

impl Target {
    /// Whether the embedded store was chosen (`--local DB`), not the AWS stack.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }
}

/// Which of a tenant's events: those of one shipment, or those of a time range.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "selection", required = true, multiple = true)]
pub struct SelectionArgs {
    /// The shipment's AWB.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    awb: Option<String>,
    /// Start of the time range (RFC 3339, e.g. 2025-01-31T00:00:00Z); needs --to.
    #[arg(long, value_name = "TIME", requires = "to", value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// End of the time range (RFC 3339); at most 31 days after --from.
    #[arg(long, value_name = "TIME", requires = "from", value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
}

impl SelectionArgs {
    pub fn selection(&self) -> Selection {
        match (&self.awb, self.from, self.to) {
            (Some(awb), _, _) => Selection::Awb(awb.clone()),
            (None, Some(from), Some(to)) => Selection::Between { from, to },
            // clap's group and `requires` make this unreachable; an empty AWB is refused by name.
            _ => Selection::Awb(String::new()),
        }
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{e}; use RFC 3339, e.g. 2025-01-31T00:00:00Z or 2025-01-31T05:30:00+05:30")
        })
}

/// How a command answers.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Each value as one JSON line.
    pub fn json_lines<T: Serialize>(&self, values: impl IntoIterator<Item = T>) {
        let mut text = String::new();
        for value in values {
            // Our views are plain data; serialising them cannot fail.
            text.push_str(&serde_json::to_string(&value).unwrap_or_default());
            text.push('\n');
        }
        emit(&text);
    }
}

/// Writes to stdout; a closed pipe (`rms … | head`) ends the output quietly.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// A table with a header row, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < widths.len() {
                text.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(cell.chars().count()),
                ));
            }
        }
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut text = line(&mut headers.iter().copied());
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// A list as a table, or one line saying there is nothing: every list command answers an empty
/// result the same way (and `--json` with no line at all).
pub fn listing(headers: &[&str], rows: &[Vec<String>], nothing: &str) -> String {
    if rows.is_empty() {
        format!("{nothing}\n")
    } else {
        table(headers, rows)
    }
}

/// `name: value` lines, the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(n, _)| n.len() + 1).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(name, value)| format!("{:<width$}  {value}\n", format!("{name}:")))
        .collect()
}

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// A bar on stderr for `done of total`, drawn only when stderr is a terminal.
pub fn progress_bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A spinner on stderr for an operation without steps, drawn only when stderr is a terminal.
pub fn spinner(message: &'static str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, draw_target());
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Why a command failed: printed as `error: …`, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The store could not be reached or opened, or a name is missing.
    #[error("{0}")]
    Setup(String),
    /// The command ran, but its result is a failure (a test push that was not delivered).
    #[error("{0}")]
    Outcome(String),
}

impl Failure {
    /// The message with its causes (a store error's own message says which call failed, its
    /// source says why).
    fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// An ops command: runs on whichever back end was chosen.
pub trait Op {
    fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> impl Future<Output = Result<(), Failure>>;
}

/// What runs with the admin use-case on the chosen back end, owning it: an ops command (which
/// borrows it, [`Op`]), or the console (which serves it).
pub trait WithAdmin {
    fn run<S, P, R>(self, admin: Admin<S, P, R>) -> impl Future<Output = Result<(), Failure>>
    where
        S: AdminStore + 'static,
        P: Pusher + 'static,
        R: Reingest + 'static;
}

/// An ops command with its output settings, as a [`WithAdmin`].
struct Command<O> {
    op: O,
    out: Out,
}

impl<O: Op> WithAdmin for Command<O> {
    async fn run<S, P, R>(self, admin: Admin<S, P, R>) -> Result<(), Failure>
    where
        S: AdminStore + 'static,
        P: Pusher + 'static,
        R: Reingest + 'static,
    {
        self.op.run(&admin, self.out).await
    }
}

/// Runs an ops command on the back end `target` names; prints a failure as `error: …`, exit 1.
pub fn execute(target: Target, op: impl Op) -> ExitCode {
    let out = Out { json: target.json };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(&Failure::Setup(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    match runtime.block_on(on_backend(target, Command { op, out })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

pub fn fail(failure: &Failure) -> ExitCode {
    eprintln!("error: {}", failure.report());
    ExitCode::FAILURE
}

/// Builds the admin use-case on the back end `target` names (the embedded store, or the AWS
/// stack) and hands it to `user`.
pub async fn on_backend(target: Target, user: impl WithAdmin) -> Result<(), Failure> {
    match target.local {
        Some(path) => {
            // Opening a missing file would create an empty database and answer "no tenant".
            crate::database::check(&path, false)
                .map_err(|message| Failure::Setup(format!("--local: {message}")))?;
            let store = SqliteStore::open(&path).map_err(|e| {
                Failure::Setup(format!("--local {}: cannot open it: {e}", path.display()))
            })?;
            // As `rms serve` with allow_private_targets: local receivers, plain http. Replays go
            // through ingest as `rms serve` runs it, into the same database.
            let admin = Admin {
                reingest: Ingest::new(
                    store.clone(),
                    store.clone(),
                    NoMetrics,
                    IngestSettings::default(),
                ),
                store,
                pusher: pusher(TargetPolicy::LOCAL)?,
                policy: TargetPolicy::LOCAL,
            };
            user.run(admin).await
        }
        None => {
            let names = aws_names(&target)?;
            let config = aws_config::load_from_env().await;
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            // Replays go through ingest as the notify functions run it, on the stack.
            let reingest = Ingest::new(
                DynamoConfigStore::new(dynamo.clone(), &names.config_table),
                QueueThenClaim {
                    events: DynamoEventStore::new(dynamo.clone(), &names.events_table),
                    queue: SqsEventQueue::new(sqs.clone(), &names.queue_url),
                },
                NoMetrics,
                IngestSettings::default(),
            );
            let admin = Admin {
                store: DynamoAdmin::new(dynamo, sqs, names),
                pusher: pusher(TargetPolicy::default())?,
                reingest,
                policy: TargetPolicy::default(),
            };
            user.run(admin).await
        }
    }
}

fn pusher(policy: TargetPolicy) -> Result<HttpPusher, Failure> {
    HttpPusher::new(policy)
        .map_err(|e| Failure::Setup(format!("cannot build the HTTP client: {e}")))
}

/// The stack's table and queue names, from the flags or the environment; all missing ones named.
pub fn aws_names(target: &Target) -> Result<AwsNames, Failure> {
    let mut missing = Vec::new();
    let mut name = |flag: &Option<String>, option: &str, variable: &str| {
        let value = flag
            .clone()
            .or_else(|| std::env::var(variable).ok())
            .filter(|v| !v.trim().is_empty());
        if value.is_none() {
            missing.push(format!("{option} (or {variable})"));
        }
        value.unwrap_or_default()
    };
    let names = AwsNames {
        config_table: name(&target.config_table, "--config-table", "RMS_CONFIG_TABLE"),
        events_table: name(&target.events_table, "--events-table", "RMS_EVENTS_TABLE"),
        queue_url: name(&target.queue_url, "--queue-url", "RMS_QUEUE_URL"),
        dlq_url: name(&target.dlq_url, "--dlq-url", "RMS_DLQ_URL"),
    };
    if missing.is_empty() {
        Ok(names)
    } else {
        Err(Failure::Setup(format!(
            "missing {}: the stack's table and queue names; or pass --local DB for the embedded store",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let text = table(
            &["ID", "ENABLED"],
            &[
                vec!["acme".into(), "yes".into()],
                vec!["a-much-longer-id".into(), "no".into()],
            ],
        );
        assert_eq!(
            text,
            "ID                ENABLED\nacme              yes\na-much-longer-id  no\n"
        );
    }

    #[test]
    fn fields_align_their_values() {
        assert_eq!(
            fields(&[("url", "https://x".into()), ("enabled", "yes".into())]),
            "url:      https://x\nenabled:  yes\n"
        );
    }

    #[test]
    fn a_store_failure_is_reported_with_its_cause() {
        let failure = Failure::Admin(AdminError::Unavailable(shared::ports::Unavailable::new(
            "SQLite",
            "tenants",
            "disk I/O error",
        )));
        assert_eq!(failure.report(), "SQLite tenants failed: disk I/O error");
    }

    #[test]
    fn an_invalid_input_names_its_field() {
        let failure = Failure::Admin(AdminError::invalid("url", "use an https:// URL"));
        assert_eq!(failure.report(), "url: use an https:// URL");
    }
}
