//! `rms normalize`: shows what a carrier payload becomes, one canonical event per line.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{FixedOffset, Utc};
use shared::carriers::BodyKind;
use shared::{normalize, Carrier, NormalizeContext};

/// Print the canonical events of a carrier payload as JSON, one per line.
///
/// Exits 1 with the reason on stderr when the payload would be rejected. A carrier panel's set-up
/// probe or test body prints no event, says so on stderr, and exits 0.
#[derive(clap::Args)]
pub struct Args {
    /// The carrier that sent the payload: clickpost, shiprocket or shipway.
    carrier: Carrier,
    /// The payload file; `-` or nothing reads stdin.
    file: Option<PathBuf>,
    /// The tenant the events are for (part of each event_id).
    #[arg(long, default_value = "local", value_parser = |t: &str| shared::TenantId::parse(t))]
    tenant: shared::TenantId,
    /// The zone of the carrier's wall-clock times [default: the carrier's, +05:30 for all three].
    #[arg(long, value_parser = shared::time::parse_zone)]
    zone: Option<FixedOffset>,
    /// Leave the carrier's original payload (`source`) out of each event.
    #[arg(long)]
    no_source: bool,
}

pub fn run(args: Args) -> ExitCode {
    let (label, body) = match read_input(args.file.as_ref()) {
        Ok(input) => input,
        Err(message) => return fail(&message),
    };
    let spec = args.carrier.spec();
    let not_an_event = match spec.classify(&body) {
        BodyKind::Probe => Some("set-up probe"),
        BodyKind::PanelTest => Some("panel test body"),
        BodyKind::Payload => None,
    };
    if let Some(what) = not_an_event {
        let _ = writeln!(
            io::stderr(),
            "{label}: a {} {what}; not an event",
            spec.title
        );
        return ExitCode::SUCCESS;
    }
    let ctx = NormalizeContext {
        zone: args.zone.unwrap_or_else(|| spec.default_zone()),
        include_source: !args.no_source,
        ..NormalizeContext::new(args.tenant, Utc::now())
    };
    let events = match normalize(args.carrier, &body, &ctx) {
        Ok(events) => events,
        Err(e) => {
            return fail(&format!(
                "{label}: not a valid {} payload: {e}",
                args.carrier
            ))
        }
    };
    let mut out = io::stdout().lock();
    for event in &events {
        let written = serde_json::to_writer(&mut out, event)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(e) = written {
            // A closed pipe (`rms normalize … | head`) is the reader's choice, not a failure.
            return if e.kind() == io::ErrorKind::BrokenPipe {
                ExitCode::SUCCESS
            } else {
                fail(&format!("writing the events: {e}"))
            };
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            fail(&format!("writing the events: {e}"))
        }
        _ => ExitCode::SUCCESS,
    }
}

fn read_input(file: Option<&PathBuf>) -> Result<(String, Vec<u8>), String> {
    let mut body = Vec::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let label = path.display().to_string();
            body = std::fs::read(path).map_err(|e| format!("cannot read {label}: {e}"))?;
            Ok((label, body))
        }
        None => {
            io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(("stdin".to_owned(), body))
        }
    }
}

fn fail(message: &str) -> ExitCode {
    // Keep the reason on one line, whatever the error text holds.
    let one_line = message.replace(['\n', '\r'], " ");
    let _ = writeln!(io::stderr(), "error: {one_line}");
    ExitCode::FAILURE
}
