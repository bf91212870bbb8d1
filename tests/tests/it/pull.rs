//! The pull clients over real HTTP (`HttpPullTransport`, reqwest) against the local fake of the
//! three carriers' pull APIs (`integration_tests::PullFake`): the shapes, the Shiprocket token's
//! life, back-off, failures inside a 200, timeouts, that no credential reaches a log line or an
//! error, and that a pulled scan dedups against its webhook in the real ingest (moto).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use chrono::{TimeZone, Utc};
use integration_tests::{fixture, LogCapture, PullFake, Stack};
use serde_json::Value;
use shared::adapters::pull_http::HttpPullTransport;
use shared::carriers::clickpost::pull::{self as clickpost, ClickpostPull};
use shared::carriers::pull::{BaseUrl, PullError, Pulled, PulledShipment};
use shared::carriers::shiprocket::pull::{self as shiprocket, ShiprocketPull};
use shared::carriers::shipway::pull::{self as shipway, ShipwayPull};
use shared::ports::{Claim, Intake};
use shared::push::{SecretValue, TargetPolicy};
use shared::{normalize, CanonicalEvent, Carrier, NormalizeContext, Status};

const CP_USER: &str = "acme-enterprise";
const CP_KEY: &str = "00000000-cp-key-0000-000000000000";
const SR_EMAIL: &str = "api-user@acme.example";
const SR_PASSWORD: &str = "sr-api-pa55word";
const SW_USER: &str = "ops@acme.example";
const SW_LICENCE: &str = "d60cdf34ebacf6cbf4e6080061c1ba1f";

fn ctx() -> NormalizeContext {
    NormalizeContext::new(
        shared::TenantId::parse("acme").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
    )
}

fn at(ctx: &NormalizeContext, hours: i64) -> NormalizeContext {
    NormalizeContext {
        received_at: ctx.received_at + chrono::TimeDelta::hours(hours),
        ..ctx.clone()
    }
}

fn transport() -> HttpPullTransport {
    HttpPullTransport::new(TargetPolicy::LOCAL).unwrap()
}

fn base(url: &str) -> BaseUrl {
    BaseUrl::parse(url, TargetPolicy::LOCAL).unwrap()
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn webhook(carrier: Carrier, name: &str) -> CanonicalEvent {
    normalize(carrier, &fixture(name), &ctx())
        .unwrap()
        .remove(0)
}

fn found(pulled: &PulledShipment) -> &[CanonicalEvent] {
    match &pulled.outcome {
        Pulled::Found { events, skipped } => {
            assert!(skipped.is_empty(), "{skipped:?}");
            events
        }
        other => panic!("{}: {other:?}", pulled.requested),
    }
}

fn clickpost_client(fake: &PullFake) -> ClickpostPull<HttpPullTransport> {
    ClickpostPull::new(
        transport(),
        clickpost::PullCredentials::new(CP_USER, SecretValue::new(CP_KEY))
            .with_base_url(base(&fake.base_url)),
    )
}

fn shiprocket_client(fake: &PullFake, password: &str) -> ShiprocketPull<HttpPullTransport> {
    ShiprocketPull::new(
        transport(),
        shiprocket::PullCredentials::new(SR_EMAIL, SecretValue::new(password))
            .with_base_url(base(&fake.shiprocket_base_url())),
    )
}

fn shipway_client(fake: &PullFake) -> ShipwayPull<HttpPullTransport> {
    ShipwayPull::new(
        transport(),
        shipway::PullCredentials::new(SW_USER, SecretValue::new(SW_LICENCE))
            .with_base_url(base(&fake.base_url)),
    )
}

/// The fake, set up with each carrier's pull fixture.
async fn fake() -> PullFake {
    let fake = PullFake::start().await;
    fake.clickpost_account(CP_USER, CP_KEY);
    let track = json_fixture("clickpost/pull_track_order.json");
    fake.clickpost_track("SF49245NER", 9, track["result"]["SF49245NER"].clone());
    fake.shiprocket_account(SR_EMAIL, SR_PASSWORD);
    let bulk = json_fixture("shiprocket/pull_track_awbs.json");
    for (awb, answer) in bulk.as_object().unwrap() {
        if answer["tracking_data"]["track_status"] != 0 {
            fake.shiprocket_track(awb, answer.clone());
        }
    }
    fake.shipway_account(SW_USER, SW_LICENCE);
    let details = json_fixture("shipway/pull_order_details.json");
    fake.shipway_order("99999999", details["response"].clone());
    fake
}

#[tokio::test]
async fn each_carriers_pull_gives_its_webhooks_event_ids() {
    let fake = fake().await;

    let pulled = clickpost_client(&fake)
        .track(9, &["SF49245NER".to_owned(), "UNKNOWN1".to_owned()], &ctx())
        .await
        .unwrap();
    let ofd = webhook(
        Carrier::Clickpost,
        "clickpost/out_for_delivery_all_status.json",
    );
    let events = found(&pulled[0]);
    assert_eq!(events.len(), 3);
    let twin = events.iter().find(|e| e.event_id == ofd.event_id).unwrap();
    assert_eq!((twin.status, twin.event_time), (ofd.status, ofd.event_time));
    assert!(matches!(pulled[1].outcome, Pulled::NotFound { .. }));

    let pulled = shiprocket_client(&fake, SR_PASSWORD)
        .track_awbs(
            &["19041424751540".to_owned(), "77624019385512".to_owned()],
            &ctx(),
        )
        .await
        .unwrap();
    let in_transit = webhook(Carrier::Shiprocket, "shiprocket/in_transit_official.json");
    let rto = webhook(Carrier::Shiprocket, "shiprocket/field_rto_initiated.json");
    assert!(found(&pulled[0])
        .iter()
        .any(|e| e.event_id == in_transit.event_id));
    let twin = found(&pulled[1])
        .iter()
        .find(|e| e.event_id == rto.event_id)
        .unwrap();
    assert_eq!(twin.status, Status::RtoInitiated);

    let pulled = shipway_client(&fake)
        .order_details("99999999", &ctx())
        .await
        .unwrap();
    let delivered = webhook(Carrier::Shipway, "shipway/panel_delivered.json");
    let e = &found(&pulled)[0];
    assert_eq!(
        (&e.event_id, e.status, e.event_time),
        (&delivered.event_id, delivered.status, delivered.event_time)
    );
}

#[tokio::test]
async fn the_shiprocket_token_is_kept_and_renewed_once_when_it_expires() {
    let fake = fake().await;
    let pull = shiprocket_client(&fake, SR_PASSWORD);
    let awbs = ["19041424751540".to_owned()];
    pull.track_awbs(&awbs, &ctx()).await.unwrap();
    pull.track_awbs(&awbs, &at(&ctx(), 1)).await.unwrap();
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 1);

    // The token dies before its time: one 401, one login, the call again.
    fake.expire_shiprocket_tokens();
    let pulled = pull.track_awbs(&awbs, &at(&ctx(), 2)).await.unwrap();
    assert!(!found(&pulled[0]).is_empty());
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 2, "renewed once");
    let tracks: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.path == "/v1/external/courier/track/awbs")
        .map(|c| (c.bearer.unwrap(), c.status))
        .collect();
    assert_eq!(
        tracks,
        [
            ("eyJ.fake-token-1.sig".to_owned(), 200),
            ("eyJ.fake-token-1.sig".to_owned(), 200),
            ("eyJ.fake-token-1.sig".to_owned(), 401),
            ("eyJ.fake-token-2.sig".to_owned(), 200),
        ]
    );

    // 216 hours after its login the token is renewed before it is used.
    pull.track_awbs(&awbs, &at(&ctx(), 2 + 216)).await.unwrap();
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 3);

    // A wrong password: Unauthorized at the login, no loop.
    let wrong = shiprocket_client(&fake, "not-the-password");
    let err = wrong.track_awbs(&awbs, &ctx()).await.unwrap_err();
    assert!(
        matches!(err, PullError::Unauthorized { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 4);
}

#[tokio::test]
async fn rate_limits_give_a_back_off_time_per_account() {
    let fake = fake().await;
    let now = ctx().received_at;
    fake.refuse_next(Carrier::Clickpost, 429, Some(120));
    let err = clickpost_client(&fake)
        .track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        err.back_off_until(),
        Some(now + chrono::TimeDelta::seconds(120))
    );

    let pull = shiprocket_client(&fake, SR_PASSWORD);
    pull.track_awbs(&["19041424751540".to_owned()], &ctx())
        .await
        .unwrap();
    fake.refuse_next(Carrier::Shiprocket, 503, Some(30));
    let err = pull
        .track_awbs(&["19041424751540".to_owned()], &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::RateLimited {
                status: 503,
                from_header: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.back_off_until(),
        Some(now + chrono::TimeDelta::seconds(30))
    );

    // A 429 that does not say how long: the default back-off, and said so.
    fake.refuse_next(Carrier::Shipway, 429, None);
    let err = shipway_client(&fake)
        .order_details("99999999", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::RateLimited {
                from_header: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.back_off_until(),
        Some(now + chrono::TimeDelta::seconds(60))
    );
}

#[tokio::test]
async fn a_failure_flag_in_a_200_is_an_error_not_an_empty_answer() {
    let fake = fake().await;
    fake.fail_next_in_200(Carrier::Clickpost);
    let err = clickpost_client(&fake)
        .track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::CarrierError { status: 200, .. }),
        "{err:?}"
    );

    let pull = shiprocket_client(&fake, SR_PASSWORD);
    pull.track_awbs(&["19041424751540".to_owned()], &ctx())
        .await
        .unwrap();
    fake.fail_next_in_200(Carrier::Shiprocket);
    let err = pull
        .track_awbs(&["19041424751540".to_owned()], &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::CarrierError { status: 200, message, .. } if message.contains("status_code 500")),
        "{err:?}"
    );

    fake.fail_next_in_200(Carrier::Shipway);
    let err = shipway_client(&fake)
        .order_details("99999999", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::CarrierError { status: 200, .. }),
        "{err:?}"
    );
    // And an order Shipway does not know is its error too (it says so inside a 200).
    let err = shipway_client(&fake)
        .order_details("NO-SUCH-ORDER", &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Order not found"), "{err}");
}

#[tokio::test]
async fn updated_order_follows_meta_next_to_the_last_page() {
    let fake = fake().await;
    fake.clickpost_page_size(2);
    let start = ctx().received_at - chrono::TimeDelta::minutes(10);
    for i in 0..5 {
        fake.clickpost_update(
            start.timestamp() + 60 * i,
            serde_json::json!({"waybill": format!("W{i}"), "carrier_partner": 4,
                "clickpost_status_code": 6, "timestamp": "2026-11-22 15:20:00",
                "updated_at": "2026-11-22T09:50:00.000000Z"}),
        );
    }
    fake.clickpost_update(
        start.timestamp() - 1,
        serde_json::json!({"waybill": "OUTSIDE"}),
    );
    let records = clickpost_client(&fake)
        .updated_orders(start, ctx().received_at, &ctx())
        .await
        .unwrap();
    assert_eq!(
        records
            .iter()
            .map(|r| r.waybill.as_str())
            .collect::<Vec<_>>(),
        ["W0", "W1", "W2", "W3", "W4"]
    );
    assert_eq!(records[0].status, Status::OutForDelivery);
    assert_eq!(records[0].cp_id, Some(4));
    assert_eq!(fake.calls_to("/api/v1/updated-order"), 3);
}

#[tokio::test]
async fn a_slow_carrier_times_out_per_call() {
    let fake = fake().await;
    fake.delay_next(Carrier::Shipway, Duration::from_secs(2));
    let err = shipway_client(&fake)
        .with_timeout(Duration::from_millis(200))
        .order_details("99999999", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PullError::Transport {
                timed_out: true,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Clickpost's key and username ride in every URL: no log line and no error shows them.
#[tokio::test]
async fn clickpost_credentials_never_reach_a_log_line_or_an_error() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let fake = fake().await;
    let pull = clickpost_client(&fake);
    pull.track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap();
    fake.refuse_next(Carrier::Clickpost, 500, None);
    let errors = [
        pull.track(9, &["SF49245NER".to_owned()], &ctx())
            .await
            .unwrap_err(),
        ClickpostPull::new(
            transport(),
            clickpost::PullCredentials::new(CP_USER, SecretValue::new("wrong-key-0000"))
                .with_base_url(base(&fake.base_url)),
        )
        .track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap_err(),
        ClickpostPull::new(
            transport(),
            clickpost::PullCredentials::new(CP_USER, SecretValue::new(CP_KEY))
                .with_base_url(base(&integration_tests::dead_endpoint())),
        )
        .track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap_err(),
    ];
    let text = format!(
        "{}\n{}",
        logs.text(),
        errors
            .iter()
            .map(|e| format!("{e} {e:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("key=…"), "{text}");
    for secret in [CP_KEY, CP_USER, "wrong-key-0000"] {
        assert!(!text.contains(secret), "{secret} shown in:\n{text}");
    }
    assert!(
        matches!(errors[1], PullError::Unauthorized { .. }),
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(errors[2], PullError::Transport { .. }),
        "{:?}",
        errors[2]
    );
    // The fake (the carrier) did get them.
    assert!(fake.calls()[0].query.contains(CP_KEY));
}

/// A scan delivered by webhook, then pulled: the pull's event is a duplicate in the real ingest
/// (moto), whether the webhook was claimed under the current id or, before it, under v1.
#[tokio::test]
async fn a_pulled_scan_already_taken_by_webhook_is_not_queued_again() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let intake = stack.ingest().intake;
    let fake = fake().await;
    let now = Utc::now();

    // Shiprocket: the webhook came after v2.
    let mut in_transit = webhook(Carrier::Shiprocket, "shiprocket/in_transit_official.json");
    assert_eq!(
        intake.accept(&mut in_transit, now).await.unwrap(),
        Claim::Claimed
    );
    // Clickpost: the webhook came before v2 (Selected Status mode, notification event 3), so its
    // claim is under its v1 id, where the code of then kept claims.
    let selected = br#"{"waybill":"SF49245NER","cp_id":9,"clickpost_status_code":6,"status":"OFD",
        "timestamp":"2019-05-06T10:04:20Z","additional":{"notification_event_id":3}}"#;
    let ofd = normalize(Carrier::Clickpost, selected, &ctx())
        .unwrap()
        .remove(0);
    let mut as_v1 = ofd.clone();
    as_v1.event_id = ofd.legacy_ids[0].clone();
    as_v1.legacy_ids = Default::default();
    stack
        .put_old_claim(&as_v1, "QUEUED", now.timestamp() + 60)
        .await;
    let queued_before = stack.drain(&stack.queue_url).await.len();
    assert_eq!(queued_before, 1);

    let shiprocket = shiprocket_client(&fake, SR_PASSWORD)
        .track_awbs(&["19041424751540".to_owned()], &ctx())
        .await
        .unwrap();
    let clickpost = clickpost_client(&fake)
        .track(9, &["SF49245NER".to_owned()], &ctx())
        .await
        .unwrap();
    let mut answers = Vec::new();
    for mut event in found(&shiprocket[0])
        .iter()
        .chain(found(&clickpost[0]))
        .cloned()
    {
        let claim = intake.accept(&mut event, now).await.unwrap();
        answers.push((event.event_id.clone(), claim));
    }
    let duplicates: Vec<_> = answers
        .iter()
        .filter(|(_, c)| *c == Claim::AlreadyQueued)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        duplicates,
        [in_transit.event_id.clone(), ofd.event_id.clone()]
    );
    // The other scans were missed by webhook: queued now. Queue first: the scan the webhook took
    // after v2 was queued again too, as a copy its claim does not name (the dispatcher drops it);
    // the one taken under v1 was found before anything was queued.
    let copies = stack.drain(&stack.queue_url).await;
    assert_eq!(copies.len(), answers.len() - 1);
    let mut pushed = Vec::new();
    for copy in &copies {
        if stack.named_by_claim(copy).await {
            pushed.push(copy.body["event_id"].as_str().unwrap().to_owned());
        }
    }
    pushed.sort();
    let mut missed: Vec<String> = answers
        .iter()
        .filter(|(_, c)| *c == Claim::Claimed)
        .map(|(id, _)| id.to_string())
        .collect();
    missed.sort();
    assert_eq!(pushed, missed, "each scan the webhook missed pushed once");
}
