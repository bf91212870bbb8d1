//! A carrier that pushed a tenant's events and then goes quiet is reported by `rms serve`: a
//! warning in the log, the carrier in `GET /admin/health`'s `silent_carriers`; when it pushes
//! again it leaves the list. (On AWS: the per-carrier CloudWatch alarms, checked by infra/tests.)

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::common;

use std::time::{Duration, Instant};

use common::{config, fixture, scratch_dir, Server, CLICKPOST_KEY};
use integration_tests::Receiver;
use serde_json::Value;

async fn push(server: &Server) {
    let (status, _) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", CLICKPOST_KEY)],
            fixture("clickpost/out_for_delivery_all_status.json"),
        )
        .await;
    assert_eq!(status, 200);
}

async fn silent(server: &Server) -> Vec<Value> {
    server.get("/admin/health").await["silent_carriers"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_carrier_that_stops_pushing_is_warned_about_and_listed_until_it_pushes_again() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("silence");
    let receiver = Receiver::start(None);
    let text = format!(
        "{}\n[ingest]\nsilent_after = \"2s\"\n",
        config(&dir, &receiver.url("/ok"), "\"1s\"", 10)
    );
    let server = Server::start(&dir, &text).await;
    // Shiprocket and Shipway never pushed: a carrier that is not used is not "silent".
    assert!(silent(&server).await.is_empty());
    push(&server).await;
    assert!(silent(&server).await.is_empty(), "it just pushed");

    let started = Instant::now();
    let listed = loop {
        let listed = silent(&server).await;
        if !listed.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["tenant_id"], "acme");
    assert_eq!(listed[0]["carrier"], "clickpost");
    // The watcher looks every 0.2 s here (a tenth of the threshold).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(
        log.matches("carrier silent").count(),
        1,
        "one warning per silence:\n{log}"
    );
    assert!(log.contains("rms reconcile"), "the warning says what to do");

    // The carrier pushes again (a duplicate is an accepted request too). The carrier activity is
    // recorded at most once a minute per process and kind, too long to wait for in a test: a
    // restarted server reports the next push at once.
    drop(server);
    let server = Server::start(&dir, &text).await;
    push(&server).await;
    assert!(silent(&server).await.is_empty(), "pushing again");
}
