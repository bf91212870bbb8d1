//! Cold-start harness. For each function's release binary it serves the Lambda Runtime API on
//! loopback, starts the binary as Lambda would (a clean environment, `AWS_LAMBDA_RUNTIME_API`
//! pointing here) and measures:
//!
//! - init: from spawning the process to its first `GET /runtime/invocation/next`;
//! - first invocation: from handing out the event to its `POST …/response` (or `…/error`);
//! - peak RSS: `VmHWM` from `/proc/<pid>/status`, read once it polls again (invocation over),
//!   just before it is killed.
//!
//! Every case runs once unmeasured (page cache, loopback warm), then `--runs` times, the cases
//! interleaved round by round so that drift in the machine's speed hits them all alike. Prints a
//! Markdown table with median and p90 per case; exits 1 if any run failed or answered wrongly.

mod cases;
mod runtime_api;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

use cases::Case;
use runtime_api::Step;

/// The targets for the functions (not the floor), on the median.
const INIT_TARGET: Duration = Duration::from_millis(5);
const RSS_TARGET_KIB: u64 = 8 * 1024;

#[derive(Parser)]
#[command(
    about = "Times each Lambda's init, first invocation and peak RSS against a fake Runtime API"
)]
struct Args {
    /// Measured runs per case (after one unmeasured warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Where the binaries are; default: next to this harness (`target/release-lambda` when it is
    /// built with the functions).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// A DynamoDB/SQS-compatible endpoint (moto_server) holding the config table `rms-config`.
    /// Without it the functions' AWS calls go to a closed loopback port and fail.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Measure only these binaries (comma-separated); `coldstart-hello` is the floor.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Leave these binaries out (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// An extra `NAME=VALUE` for every function's environment (repeatable); for experiments, e.g.
    /// `--env SSL_CERT_DIR=/nonexistent`.
    #[arg(long = "env", value_parser = parse_env)]
    extra_env: Vec<(String, String)>,
    /// Where to copy each case's `/proc/<pid>/smaps` at the moment its peak RSS is read (the last
    /// run's), to see which mappings the resident memory is in.
    #[arg(long)]
    smaps: Option<PathBuf>,
}

fn parse_env(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{pair:?} is not NAME=VALUE"))
}

/// One run of one case.
struct Sample {
    init: Duration,
    first_invocation: Duration,
    peak_rss_kib: u64,
    answer: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(bin_dir) = args.bin_dir.clone().or_else(harness_dir) else {
        eprintln!("coldstart: cannot tell where the binaries are; pass --bin-dir");
        return ExitCode::from(2);
    };
    let endpoint = match args.aws_endpoint.clone().map_or_else(closed_port, Ok) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("coldstart: no free loopback port: {e}");
            return ExitCode::from(2);
        }
    };
    let cases = select_cases(&args, &bin_dir, &endpoint);
    let log_dir = bin_dir.join("coldstart-logs");
    // One log per binary and harness run: every run's stdout and stderr, appended.
    let logs = std::fs::create_dir_all(&log_dir).and_then(|()| {
        cases
            .iter()
            .map(|case| {
                let log = log_dir.join(format!("{}.log", case.binary));
                File::create(&log).map(|_| log)
            })
            .collect::<std::io::Result<Vec<PathBuf>>>()
    });
    let logs = match logs {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!(
                "coldstart: cannot create the logs in {}: {e}",
                log_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "coldstart: {} cases x (1 warm-up + {} runs), AWS calls to {endpoint}, logs in {}",
        cases.len(),
        args.runs,
        log_dir.display()
    );

    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let mut failures = 0;
    for round in 0..=args.runs {
        for ((case, log), results) in cases.iter().zip(&logs).zip(&mut samples) {
            let smaps = args.smaps.as_ref().map(|dir| {
                let slug: String = case
                    .label
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                dir.join(format!("{}-{slug}.smaps", case.binary))
            });
            match measure(case, &bin_dir.join(case.binary), log, smaps.as_deref()).await {
                Ok(_) if round == 0 => {}
                Ok(sample) => results.push(sample),
                Err(e) => {
                    failures += 1;
                    eprintln!("coldstart: {} / {}: {e}", case.binary, case.label);
                }
            }
        }
    }
    failures += print_table(&cases, &samples, args.runs);
    if failures > 0 {
        eprintln!(
            "coldstart: {failures} failed runs or wrong answers (function logs in {})",
            log_dir.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The cases `--only` and `--skip` leave, with `--env` added; binaries not built are skipped
/// with a warning (the admin API may be mid-change).
fn select_cases(args: &Args, bin_dir: &Path, endpoint: &str) -> Vec<Case> {
    let mut not_built: Vec<&str> = Vec::new();
    let cases = cases::all(endpoint, args.aws_endpoint.is_some())
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.iter().any(|o| o == c.binary))
        .filter(|c| !args.skip.iter().any(|s| s == c.binary))
        .filter(|c| {
            let built = bin_dir.join(c.binary).is_file();
            if !built && !not_built.contains(&c.binary) {
                not_built.push(c.binary);
            }
            built
        })
        .map(|mut case| {
            case.env.extend(args.extra_env.iter().cloned());
            case
        })
        .collect();
    for binary in not_built {
        eprintln!(
            "coldstart: {binary} is not built in {}; skipped",
            bin_dir.display()
        );
    }
    cases
}

/// Prints the Markdown table; returns how many cases answered wrongly or never answered.
fn print_table(cases: &[Case], samples: &[Vec<Sample>], runs: usize) -> usize {
    let mut wrong_cases = 0;
    println!("| function | event | answer | init median / p90 | first invocation median / p90 | peak RSS median / p90 | targets (init < 5 ms, RSS < 8 MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for (case, results) in cases.iter().zip(samples) {
        if results.is_empty() {
            wrong_cases += 1;
            println!("| {} | {} | failed | | | | |", case.binary, case.label);
            continue;
        }
        let wrong: Vec<&str> = results
            .iter()
            .map(|s| s.answer.as_str())
            .filter(|a| *a != case.expect)
            .collect();
        let answer = match wrong.first() {
            None => case.expect.clone(),
            Some(got) => {
                wrong_cases += 1;
                format!("{got} (expected {}) in {} runs", case.expect, wrong.len())
            }
        };
        let function = if results.len() < runs {
            format!("{} ({} of {runs} runs)", case.binary, results.len())
        } else {
            case.binary.to_owned()
        };
        let init = stats(results.iter().map(|s| s.init));
        let first = stats(results.iter().map(|s| s.first_invocation));
        let rss = stats(results.iter().map(|s| s.peak_rss_kib));
        let verdict = if case.binary == cases::HELLO {
            "floor".to_owned()
        } else {
            let missed: Vec<&str> = [
                (init.0 >= INIT_TARGET, "init missed"),
                (rss.0 >= RSS_TARGET_KIB, "RSS missed"),
            ]
            .into_iter()
            .filter_map(|(missed, what)| missed.then_some(what))
            .collect();
            if missed.is_empty() {
                "met".to_owned()
            } else {
                missed.join(", ")
            }
        };
        println!(
            "| {function} | {} | {answer} | {} / {} ms | {} / {} ms | {} / {} MiB | {verdict} |",
            case.label,
            ms(init.0),
            ms(init.1),
            ms(first.0),
            ms(first.1),
            mib(rss.0),
            mib(rss.1),
        );
    }
    wrong_cases
}

/// Starts `binary` against a fresh Runtime API, lets it answer `case.event`, and measures it.
async fn measure(
    case: &Case,
    binary: &Path,
    log: &Path,
    smaps: Option<&Path>,
) -> Result<Sample, String> {
    let mut api = runtime_api::serve(case.event.clone())
        .await
        .map_err(|e| format!("cannot serve the runtime API: {e}"))?;
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;

    let spawned = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut child = Killed(child);

    let (init, handed_out) = match next_step(&mut api, &mut child, Duration::from_secs(10)).await? {
        Step::Polled { at, handed_out } => (at - spawned, handed_out),
        other => return Err(format!("expected a poll first, got {other:?}")),
    };
    // Long enough for the SDK's retries when its calls go to a closed port.
    let (first_invocation, answer) =
        match next_step(&mut api, &mut child, Duration::from_secs(30)).await? {
            Step::Answered { at, error, body } => (at - handed_out, summarize(error, &body)),
            other => return Err(format!("expected an answer, got {other:?}")),
        };
    // Let it finish the invocation (its next poll) so that the peak covers all of it.
    match next_step(&mut api, &mut child, Duration::from_secs(2)).await {
        Ok(Step::Idle) => {}
        Ok(other) => return Err(format!("expected the next poll, got {other:?}")),
        Err(e) => return Err(format!("no poll after the answer: {e}")),
    }
    let peak_rss_kib = peak_rss_kib(child.0.id())?;
    if let Some(copy) = smaps {
        let from = format!("/proc/{}/smaps", child.0.id());
        std::fs::create_dir_all(copy.parent().unwrap_or(Path::new(".")))
            .and_then(|()| std::fs::copy(&from, copy))
            .map_err(|e| format!("cannot copy {from} to {}: {e}", copy.display()))?;
    }
    Ok(Sample {
        init,
        first_invocation,
        peak_rss_kib,
        answer,
    })
}

/// The next step the function takes, or why it took none: it exited, or `timeout` passed.
async fn next_step(
    api: &mut runtime_api::Server,
    child: &mut Killed,
    timeout: Duration,
) -> Result<Step, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            step = api.steps.recv() => return match step {
                Some(Step::InitError(body)) => {
                    Err(format!("init error: {}", String::from_utf8_lossy(&body)))
                }
                Some(step) => Ok(step),
                None => Err("the runtime API stopped".to_owned()),
            },
            // A crashed function never calls: look at it now and then.
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(format!("the function exited ({status})"));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!("nothing within {timeout:?}"));
                }
            }
        }
    }
}

/// The child process, killed (and reaped) however `measure` ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// The answer as the table shows it: `HTTP <status>` for an HTTP response, `error <type>` for an
/// invocation error, else the body.
fn summarize(error: bool, body: &[u8]) -> String {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| json.as_ref().and_then(|j| j.get(name)).cloned();
    if error {
        let kind = field("errorType").and_then(|t| t.as_str().map(str::to_owned));
        return format!("error {}", kind.unwrap_or_else(|| "?".to_owned()));
    }
    match field("statusCode").and_then(|s| s.as_u64()) {
        Some(status) => format!("HTTP {status}"),
        None => String::from_utf8_lossy(body).chars().take(80).collect(),
    }
}

/// Median and p90 (nearest rank) of a non-empty sample.
fn stats<T: Copy + Ord>(values: impl Iterator<Item = T>) -> (T, T) {
    let mut sorted: Vec<T> = values.collect();
    sorted.sort_unstable();
    let rank = |p: f64| {
        let n = sorted.len() as f64;
        ((p * n).ceil() as usize).clamp(1, sorted.len()) - 1
    };
    (sorted[rank(0.5)], sorted[rank(0.9)])
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The directory of this executable: the functions are built next to it.
fn harness_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// An endpoint nobody listens on: a port the OS just gave out and took back. Calls to it are
/// refused at once.
fn closed_port() -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(format!("http://{}", listener.local_addr()?))
}
