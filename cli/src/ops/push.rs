//! `rms push`: a tenant's Push Config (where and how RMS delivers its events), and a test push.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use shared::admin::{Admin, AdminError, AdminStore, PushUpdate, PushView, SecretAction};
use shared::ingest::Reingest;
use shared::ports::Pusher;
use shared::push::Delivery;

use super::{emit, fields, yes_no, Failure, Op, Out, Target};

/// Push Config: the tenant's endpoint, credential headers, statuses, signing secret, timeout.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Set a tenant's Push Config. Header values and signing secrets are write-only: they are
    /// never shown again (a generated secret is printed once).
    Set(SetArgs),
    /// Show a tenant's Push Config: header names, never their values.
    Show { tenant: String },
    /// Send a sample event to the tenant's endpoint now, with its headers and signature, and show
    /// the answer; exit code 1 unless it was delivered (2xx). Nothing is queued or logged.
    Test {
        tenant: String,
        /// The sample event's status.
        #[arg(long, default_value = "delivered")]
        status: String,
    },
}

#[derive(clap::Args)]
pub struct SetArgs {
    tenant: String,
    /// The endpoint (https; http too with --local).
    #[arg(long)]
    url: String,
    /// A credential header, sent with every notification (repeat for more). Replaces the current
    /// headers; without --header or --no-headers they are kept.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Remove every credential header.
    #[arg(long, conflicts_with = "headers")]
    no_headers: bool,
    /// A status to deliver (repeat for more); none: every status.
    #[arg(long = "status", value_name = "NAME")]
    statuses: Vec<String>,
    /// How long to wait for the endpoint's answer (1s to 30s); default: unchanged, or 10s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Stop delivering: events wait in the queue until --enable.
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    /// Deliver again (the default for a new Push Config).
    #[arg(long)]
    enable: bool,
    /// Generate a new signing secret (Standard Webhooks), printed once.
    #[arg(long, conflicts_with = "remove_secret")]
    generate_secret: bool,
    /// Remove the signing secret: notifications are no longer signed.
    #[arg(long)]
    remove_secret: bool,
    /// `every` event (the default), or a shipment's `latest` state only: an event whose shipment
    /// already has a newer one is not pushed (logged as superseded). Default: unchanged.
    #[arg(long, value_name = "every|latest")]
    delivery: Option<String>,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .ok_or_else(|| "use NAME=VALUE, e.g. Authorization='Bearer …'".to_owned())
}

impl SetArgs {
    fn update(&self) -> Result<PushUpdate, Failure> {
        let headers = if self.no_headers {
            Some(BTreeMap::new())
        } else if self.headers.is_empty() {
            None
        } else {
            let mut map = BTreeMap::new();
            for (name, value) in &self.headers {
                // Header names are case-insensitive: two spellings would be two values for one.
                if map.keys().any(|n: &String| n.eq_ignore_ascii_case(name)) {
                    return Err(AdminError::invalid(
                        &format!("headers.{name}"),
                        "given twice; give each header once",
                    )
                    .into());
                }
                map.insert(name.clone(), value.clone());
            }
            Some(map)
        };
        Ok(PushUpdate {
            url: self.url.clone(),
            headers,
            statuses: self.statuses.clone(),
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            enabled: match (self.enable, self.disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            signing_secret: match (self.generate_secret, self.remove_secret) {
                (true, _) => Some(SecretAction::Generate),
                (_, true) => Some(SecretAction::Remove),
                _ => None,
            },
            delivery: self.delivery.clone(),
        })
    }
}

impl Op for Command {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        match self {
            Command::Set(args) => {
                let saved = admin.set_push(&args.tenant, &args.update()?).await?;
                if out.json {
                    out.json_lines([&saved]);
                } else {
                    emit(&format!("Push Config of tenant {} saved\n", args.tenant));
                    emit(&describe(&saved.view));
                    if let Some(secret) = &saved.signing_secret_value {
                        emit(&format!("new signing secret: {secret}\n"));
                    }
                }
                if saved.signing_secret_value.is_some() {
                    eprintln!(
                        "warning: this is the only time the signing secret is shown; give it to the client now"
                    );
                }
            }
            Command::Show { tenant } => {
                let view = admin.push(&tenant).await?;
                if out.json {
                    out.json_lines([&view]);
                } else {
                    emit(&describe(&view));
                }
            }
            Command::Test { tenant, status } => {
                let result = admin.test_push(&tenant, &status, Utc::now()).await?;
                if out.json {
                    out.json_lines([&result]);
                } else {
                    let mut lines = vec![
                        ("outcome", result.outcome.to_owned()),
                        (
                            "http status",
                            result
                                .http_status
                                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                        ),
                        ("latency", format!("{} ms", result.latency_ms)),
                        ("event id", result.event_id.clone()),
                    ];
                    if let Some(error) = &result.error {
                        lines.push(("error", error.clone()));
                    }
                    if !result.body_prefix.is_empty() {
                        lines.push(("answer", result.body_prefix.clone()));
                    }
                    emit(&fields(&lines));
                }
                if result.outcome != "delivered" {
                    return Err(Failure::Outcome(format!(
                        "the test push was not delivered ({})",
                        result.outcome
                    )));
                }
            }
        }
        Ok(())
    }
}

fn describe(view: &PushView) -> String {
    let list = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_owned()
        } else {
            items.join(", ")
        }
    };
    fields(&[
        ("url", view.url.clone()),
        (
            "headers",
            if view.headers.is_empty() {
                "none".to_owned()
            } else {
                format!("{} (values are never shown)", view.headers.join(", "))
            },
        ),
        (
            "statuses",
            list(view.statuses.iter().map(|s| s.to_string()).collect(), "all"),
        ),
        (
            "timeout",
            humantime::format_duration(Duration::from_millis(view.timeout_ms)).to_string(),
        ),
        ("enabled", yes_no(view.enabled)),
        (
            "delivery",
            match view.delivery {
                Delivery::Every => "every event",
                Delivery::Latest => "latest state per shipment (older events superseded)",
            }
            .to_owned(),
        ),
        (
            "signing secret",
            if view.signing_secret { "set" } else { "none" }.to_owned(),
        ),
    ])
}
