//! Runs one normaliser on one payload in a loop, for profilers (callgrind counts instructions,
//! which stay the same from run to run, unlike wall time):
//!
//! ```sh
//! CARGO_PROFILE_BENCH_DEBUG=true cargo build --profile bench -p shared --example profile_loop
//! valgrind --tool=callgrind target/release/examples/profile_loop shipway tests/fixtures/shipway/panel_delivered.json 20000
//! ```

use std::process::ExitCode;

use chrono::Utc;
use shared::{normalize, Carrier, NormalizeContext};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [carrier, file, times] = &args[..] else {
        eprintln!("usage: profile_loop <clickpost|shiprocket|shipway> FILE TIMES");
        return ExitCode::from(2);
    };
    let (carrier, body, times) = match (
        carrier.parse::<Carrier>(),
        std::fs::read(file),
        times.parse::<usize>(),
    ) {
        (Ok(c), Ok(b), Ok(n)) => (c, b, n),
        _ => {
            eprintln!("error: bad carrier, unreadable file, or TIMES is not a number");
            return ExitCode::from(2);
        }
    };
    let ctx = NormalizeContext::new(
        shared::TenantId::parse("acme").expect("a valid tenant id"),
        Utc::now(),
    );
    let mut events = 0;
    for _ in 0..times {
        match normalize(carrier, std::hint::black_box(&body), &ctx) {
            Ok(e) => events += e.len(),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{events} events");
    ExitCode::SUCCESS
}
