//! The harness end to end on the floor binary: one warm-up and one measured run of
//! `coldstart-hello` through the fake Runtime API (no AWS endpoint needed).

use std::path::Path;
use std::process::Command;

#[test]
fn the_hello_binary_is_measured_through_one_invocation() {
    let hello = Path::new(env!("CARGO_BIN_EXE_coldstart-hello"));
    let bin_dir = hello.parent().expect("the binary has a directory");
    let out = Command::new(env!("CARGO_BIN_EXE_coldstart"))
        .args(["--runs", "1", "--only", "coldstart-hello", "--bin-dir"])
        .arg(bin_dir)
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("| coldstart-hello |"))
        .unwrap_or_else(|| panic!("no row for the floor in:\n{stdout}"));
    assert!(
        row.contains("| HTTP 200 |") && row.contains(" MiB |"),
        "{row}"
    );
}
