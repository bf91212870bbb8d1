//! What some tests need from the test command (`scripts/test`): a moto_server, which
//! `scripts/with-moto` starts, and the test harness's Python in `.venv` (the test receiver,
//! `tests/receiver/receiver.py`), which `scripts/venv` makes. A plain `cargo test` on a fresh
//! clone has neither: the tests that need them return at once, and the first to do so in a test
//! binary says which and why on stderr. In CI (`CI=true`) a missing one fails the test instead,
//! so that the test command can never skip them silently.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

/// Returns from the calling test when the test command's `moto` or `venv` is not there (see the
/// module's doc): `integration_tests::needs!(moto);` as a test's first line.
#[macro_export]
macro_rules! needs {
    (moto) => {
        if !$crate::needs::available($crate::needs::Need::Moto) {
            return;
        }
    };
    (venv) => {
        if !$crate::needs::available($crate::needs::Need::Venv) {
            return;
        }
    };
}

#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// `RMS_MOTO_ENDPOINT`, set by `scripts/with-moto`.
    Moto,
    /// `.venv/bin/python`, made by `scripts/venv` (with-moto runs it).
    Venv,
}

/// The Python of the test harness's virtualenv (`<repo>/.venv`).
pub fn venv_python() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

impl Need {
    /// Why it is missing, if it is.
    fn missing(self) -> Option<&'static str> {
        match self {
            Need::Moto if std::env::var_os("RMS_MOTO_ENDPOINT").is_none() => Some(
                "the tests that need moto_server: RMS_MOTO_ENDPOINT is not set \
                 (scripts/test runs them, or wrap cargo test in scripts/with-moto)",
            ),
            Need::Venv if !venv_python().exists() => Some(
                "the tests that need the test receiver's Python: .venv/bin/python is missing \
                 (scripts/test makes it, or run scripts/venv)",
            ),
            _ => None,
        }
    }
}

/// Whether the test can run; if not, says so once per binary (written past the test harness's
/// output capture, so that it shows in a plain `cargo test`), or fails it in CI.
pub fn available(need: Need) -> bool {
    static SAID: [Once; 2] = [Once::new(), Once::new()];
    let Some(missing) = need.missing() else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI runs every test, but {missing}"
    );
    SAID[need as usize].call_once(|| {
        let _ = writeln!(std::io::stderr(), "skipping {missing}");
    });
    false
}
