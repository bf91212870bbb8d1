use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::adapters::memory::{MemoryAdmin, ScriptedPusher, ScriptedReingest};
use crate::ingest::IngestOutcome;
use crate::model::{Carrier, EventId, Status, TenantId};
use crate::ports::{Attempt, AttemptOutcome, CarrierActivity, PushRequest, PushResult};
use crate::push::{Delivery, TargetPolicy};
use crate::reconcile::{PullAccount, QuietRules, QuietShipment};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

type TestAdmin = Admin<MemoryAdmin, ScriptedPusher, ScriptedReingest>;

fn admin(script: Vec<PushResult>) -> TestAdmin {
    Admin {
        store: MemoryAdmin::default(),
        pusher: ScriptedPusher::new(script),
        reingest: ScriptedReingest::default(),
        policy: TargetPolicy::default(),
    }
}

async fn with_tenant(script: Vec<PushResult>) -> TestAdmin {
    let admin = admin(script);
    admin.create_tenant("acme", None, now()).await.unwrap();
    admin
}

fn update(url: &str) -> PushUpdate {
    PushUpdate {
        url: url.to_owned(),
        ..PushUpdate::default()
    }
}

fn field_of(result: Result<impl std::fmt::Debug, AdminError>) -> (String, String) {
    match result {
        Err(AdminError::Invalid { field, message }) => (field, message),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tenant_is_created_once_and_a_bad_id_names_the_field() {
    let admin = with_tenant(vec![]).await;
    assert!(matches!(
        admin.create_tenant("acme", None, now()).await,
        Err(AdminError::Conflict(_))
    ));
    let (field, _) = field_of(admin.create_tenant("no spaces", None, now()).await);
    assert_eq!(field, "id");
    assert!(matches!(
        admin.tenant("ghost").await,
        Err(AdminError::NotFound(_))
    ));
    let disabled = admin
        .update_tenant("acme", Some(false), None)
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert!(disabled.include_source);
}

#[tokio::test]
async fn a_rotation_keeps_two_keys_live_and_never_shows_them() {
    let admin = with_tenant(vec![]).await;
    let old = admin
        .add_key("acme", "clickpost", Some("old-key-0123456789"), now())
        .await
        .unwrap();
    assert_eq!(old.key, None, "a given key is not echoed");
    let new = admin
        .add_key("acme", "clickpost", None, now())
        .await
        .unwrap();
    let generated = new.key.clone().unwrap();
    assert_eq!(generated.len(), 48);
    assert!(matches!(
        admin.add_key("acme", "clickpost", None, now()).await,
        Err(AdminError::Conflict(m)) if m.contains("revoke")
    ));
    let keys = admin.keys("acme").await.unwrap();
    assert_eq!(keys.len(), 2);
    let listed = serde_json::to_string(&keys).unwrap();
    assert!(!listed.contains("old-key-0123456789") && !listed.contains(&generated));
    admin
        .revoke_key("acme", "clickpost", &old.view.key_id)
        .await
        .unwrap();
    assert_eq!(admin.keys("acme").await.unwrap(), vec![new.view.clone()]);
    assert!(matches!(
        admin
            .revoke_key("acme", "clickpost", &old.view.key_id)
            .await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_key_belongs_to_one_tenant() {
    let admin = with_tenant(vec![]).await;
    admin.create_tenant("other", None, now()).await.unwrap();
    admin
        .add_key("acme", "shipway", Some("shared-key-0123456789"), now())
        .await
        .unwrap();
    assert!(matches!(
        admin.add_key("other", "shipway", Some("shared-key-0123456789"), now()).await,
        Err(AdminError::Conflict(m)) if m.contains("another tenant")
    ));
    let (field, message) = field_of(admin.add_key("acme", "dhl", None, now()).await);
    assert_eq!(field, "carrier");
    assert!(message.contains("clickpost"), "{message}");
}

#[tokio::test]
async fn the_store_never_gives_a_registered_key_to_another_tenant() {
    // What makes a key one tenant's even when two requests race past the owner check.
    let admin = with_tenant(vec![]).await;
    let (acme, other) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("other").unwrap(),
    );
    let credential = StoredCredential {
        carrier: Carrier::Clickpost,
        digest: crate::auth::Credential::new("raced-key-0123456789").digest(),
        added_at: now(),
    };
    assert!(admin
        .store
        .add_credential(&acme, &credential)
        .await
        .unwrap());
    assert!(!admin
        .store
        .add_credential(&other, &credential)
        .await
        .unwrap());
    assert!(!admin
        .store
        .add_credential(&acme, &credential)
        .await
        .unwrap());
    assert_eq!(
        admin
            .store
            .credential_owner(Carrier::Clickpost, &credential.digest)
            .await
            .unwrap(),
        Some(acme)
    );
    assert!(admin.store.credentials(&other).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tenant_that_rms_toml_defines_is_read_but_not_changed_through_the_admin_api() {
    let admin = with_tenant(vec![]).await;
    let managed = Tenant {
        id: TenantId::parse("filed").unwrap(),
        enabled: true,
        include_source: true,
        created_at: now(),
        file_managed: true,
    };
    assert!(admin.store.create_tenant(&managed).await.unwrap());
    let key = StoredCredential {
        carrier: Carrier::Shipway,
        digest: crate::auth::Credential::new("filed-shipway-key-0123").digest(),
        added_at: now(),
    };
    admin.store.add_credential(&managed.id, &key).await.unwrap();
    let key_id = KeyView::from(&key).key_id;
    let refusals: Vec<(&str, Result<(), AdminError>)> = vec![
        (
            "create",
            admin.create_tenant("filed", None, now()).await.map(drop),
        ),
        (
            "disable",
            admin
                .update_tenant("filed", Some(false), None)
                .await
                .map(drop),
        ),
        (
            "source",
            admin
                .update_tenant("filed", None, Some(false))
                .await
                .map(drop),
        ),
        (
            "add key",
            admin
                .add_key("filed", "clickpost", None, now())
                .await
                .map(drop),
        ),
        (
            "revoke key",
            admin.revoke_key("filed", "shipway", &key_id).await,
        ),
        (
            "push",
            admin
                .set_push("filed", &update("https://client.example/hook"))
                .await
                .map(drop),
        ),
    ];
    for (what, refused) in refusals {
        match refused {
            Err(AdminError::Conflict(message)) => assert!(
                message.starts_with("tenant filed is managed by rms.toml")
                    && message.contains("edit its [[tenants]] entry in rms.toml and restart"),
                "{what}: {message}"
            ),
            other => panic!("{what}: expected a 409, got {other:?}"),
        }
    }
    let read = admin.tenant("filed").await.unwrap();
    assert_eq!(read, managed, "nothing changed");
    assert_eq!(admin.keys("filed").await.unwrap().len(), 1);
    assert!(matches!(
        admin.push("filed").await,
        Err(AdminError::NotFound(_))
    ));
    // A tenant of the admin API is changed as before.
    assert!(admin.update_tenant("acme", Some(false), None).await.is_ok());
}

#[tokio::test]
async fn a_push_url_is_refused_by_the_policy_the_pusher_has() {
    let admin = with_tenant(vec![]).await;
    for (url, reason) in [
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://metadata.google.internal/x", ".internal"),
        ("https://2130706433/hook", "127.0.0.1 is a loopback address"),
    ] {
        let (field, message) = field_of(admin.set_push("acme", &update(url)).await);
        assert_eq!(field, "url");
        assert!(message.contains(reason), "{url}: {message}");
    }
    let local = Admin {
        policy: TargetPolicy::LOCAL,
        ..admin
    };
    let saved = local
        .set_push("acme", &update("http://2130706433:9000/hook?token=abc"))
        .await
        .unwrap();
    assert_eq!(saved.view.url, "http://127.0.0.1:9000/hook?token=abc");
}

#[tokio::test]
async fn push_config_input_is_validated_field_by_field() {
    let admin = with_tenant(vec![]).await;
    let cases: Vec<(PushUpdate, &str, &str)> = vec![
        (update("not a url"), "url", "absolute"),
        (update("http://client.example/hook"), "url", "https"),
        (
            update("https://user:pw@client.example/hook"),
            "url",
            "headers",
        ),
        (
            PushUpdate {
                headers: Some([("Bad Name".to_owned(), "v".to_owned())].into()),
                ..update("https://client.example/hook")
            },
            "headers.Bad Name",
            "header name",
        ),
        (
            PushUpdate {
                headers: Some([("X-Key".to_owned(), "a\r\nX-Evil: 1".to_owned())].into()),
                ..update("https://client.example/hook")
            },
            "headers.X-Key",
            "line break",
        ),
        (
            PushUpdate {
                statuses: vec!["DELIVERD".to_owned()],
                ..update("https://client.example/hook")
            },
            "statuses",
            "RTO_DELIVERED",
        ),
        (
            PushUpdate {
                timeout_ms: Some(60_000),
                ..update("https://client.example/hook")
            },
            "timeout_ms",
            "1000 to 30000",
        ),
        (
            PushUpdate {
                headers: Some(
                    [
                        ("X-Key".to_owned(), "a".to_owned()),
                        ("x-key".to_owned(), "b".to_owned()),
                    ]
                    .into(),
                ),
                ..update("https://client.example/hook")
            },
            "headers.x-key",
            "case-insensitive",
        ),
        (
            PushUpdate {
                delivery: Some("newest".to_owned()),
                ..update("https://client.example/hook")
            },
            "delivery",
            "valid values are: every, latest",
        ),
    ];
    for (input, field, hint) in cases {
        let (got_field, message) = field_of(admin.set_push("acme", &input).await);
        assert_eq!(got_field, field, "{message}");
        assert!(message.contains(hint), "{field}: {message}");
    }
    assert!(matches!(
        admin.push("acme").await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_delivery_mode_is_every_by_default_and_kept_until_changed() {
    let admin = with_tenant(vec![]).await;
    let saved = admin
        .set_push("acme", &update("https://client.example/hook"))
        .await
        .unwrap();
    assert_eq!(saved.view.delivery, Delivery::Every);
    let latest = PushUpdate {
        delivery: Some("Latest".to_owned()),
        ..update("https://client.example/hook")
    };
    assert_eq!(
        admin.set_push("acme", &latest).await.unwrap().view.delivery,
        Delivery::Latest
    );
    // A change that does not name it keeps it.
    admin
        .set_push("acme", &update("https://client.example/v2"))
        .await
        .unwrap();
    let view = admin.push("acme").await.unwrap();
    assert_eq!(view.delivery, Delivery::Latest);
    assert_eq!(
        serde_json::to_value(&view).unwrap()["delivery"],
        "latest",
        "as the API shows it"
    );
}

#[tokio::test]
async fn header_values_and_the_secret_are_write_only() {
    let admin = with_tenant(vec![]).await;
    let saved = admin
        .set_push(
            "acme",
            &PushUpdate {
                headers: Some([("Authorization".to_owned(), "Bearer s3cr3t".to_owned())].into()),
                statuses: vec!["delivered".to_owned()],
                signing_secret: Some(SecretAction::Generate),
                ..update("https://client.example/hook")
            },
        )
        .await
        .unwrap();
    let secret = saved.signing_secret_value.clone().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert!(!serde_json::to_string(&saved).unwrap().contains("s3cr3t"));
    let view = admin.push("acme").await.unwrap();
    let shown = serde_json::to_string(&view).unwrap();
    assert!(
        !shown.contains("s3cr3t") && !shown.contains(&secret[6..]),
        "{shown}"
    );
    assert_eq!(view.headers, vec!["Authorization"]);
    assert!(view.signing_secret);
    // Saving again without headers or a secret action keeps both.
    admin
        .set_push("acme", &update("https://client.example/v2"))
        .await
        .unwrap();
    let kept = admin
        .store
        .push_config(&TenantId::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.headers[0].1.expose(), "Bearer s3cr3t");
    assert_eq!(kept.signing_secret.unwrap().expose(), secret);
}

fn pull_update(user: &str, secret: Option<&str>, base_url: Option<&str>) -> PullUpdate {
    PullUpdate {
        base_url: base_url.map(str::to_owned),
        user: user.to_owned(),
        secret: secret.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_pull_secret_is_write_only_and_kept_when_left_out() {
    let admin = with_tenant(vec![]).await;
    let saved = admin
        .set_pull(
            "acme",
            "clickpost",
            &pull_update("acme-enterprise", Some("k-s3cr3t"), None),
        )
        .await
        .unwrap();
    assert_eq!(
        saved,
        PullView {
            carrier: Carrier::Clickpost,
            base_url: "https://api.clickpost.in".into(),
            user: "acme-enterprise".into(),
            secret_set: true,
        }
    );
    assert!(!format!("{:?}", pull_update("u", Some("k-s3cr3t"), None)).contains("s3cr3t"));
    // A new user and base URL, no secret: the secret is kept.
    admin
        .set_pull(
            "acme",
            "clickpost",
            &pull_update("acme-2", None, Some("https://eu.clickpost.example/")),
        )
        .await
        .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let stored = admin.store.pull_accounts(&acme).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].secret.expose(), "k-s3cr3t");
    assert_eq!(stored[0].user, "acme-2");
    // Left out again, the base URL is kept too.
    admin
        .set_pull("acme", "clickpost", &pull_update("acme-3", None, None))
        .await
        .unwrap();
    let shown = admin.pull("acme").await.unwrap();
    assert_eq!(shown[0].base_url, "https://eu.clickpost.example");
    let json = serde_json::to_string(&shown).unwrap();
    assert!(!json.contains("s3cr3t"), "{json}");
    let account = PullAccount::from_record(
        &admin.store.pull_accounts(&acme).await.unwrap()[0],
        admin.policy,
    );
    assert!(
        account.is_ok(),
        "what is saved is what the reconciler can use"
    );
}

#[tokio::test]
async fn a_pull_account_names_what_is_wrong() {
    let admin = with_tenant(vec![]).await;
    let cases = [
        ("dhl", pull_update("u", Some("s"), None), "carrier"),
        ("shipway", pull_update("u", None, None), "secret"),
        ("shipway", pull_update(" ", Some("s"), None), "user"),
        ("shipway", pull_update("u", Some("a\nb"), None), "secret"),
        (
            "shipway",
            pull_update("u", Some("s"), Some("http://127.0.0.1:9/")),
            "base_url",
        ),
        (
            "shipway",
            pull_update("u", Some("s"), Some("https://shipway.in/api?x=1")),
            "base_url",
        ),
    ];
    for (carrier, update, field) in cases {
        let (named, message) = field_of(admin.set_pull("acme", carrier, &update).await);
        assert_eq!(named, field, "{message}");
    }
    let (_, message) = field_of(
        admin
            .set_pull(
                "acme",
                "shiprocket",
                &pull_update("ops@acme.in", None, None),
            )
            .await,
    );
    assert!(message.contains("password"), "{message}");
    assert!(admin.pull("acme").await.unwrap().is_empty());
    assert!(matches!(
        admin.pull("ghost").await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_pull_account_is_removed_once() {
    let admin = with_tenant(vec![]).await;
    admin
        .set_pull("acme", "shipway", &pull_update("acme", Some("lic"), None))
        .await
        .unwrap();
    admin.remove_pull("acme", "shipway").await.unwrap();
    assert!(admin.pull("acme").await.unwrap().is_empty());
    assert!(matches!(
        admin.remove_pull("acme", "shipway").await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_file_managed_tenants_pull_accounts_are_refused() {
    let admin = admin(vec![]);
    let managed = Tenant {
        id: TenantId::parse("filed").unwrap(),
        enabled: true,
        include_source: true,
        created_at: now(),
        file_managed: true,
    };
    assert!(admin.store.create_tenant(&managed).await.unwrap());
    assert!(matches!(
        admin
            .set_pull("filed", "shipway", &pull_update("u", Some("s"), None))
            .await,
        Err(AdminError::Conflict(m)) if m.contains("rms.toml")
    ));
    assert!(matches!(
        admin.remove_pull("filed", "shipway").await,
        Err(AdminError::Conflict(_))
    ));
    assert!(admin.pull("filed").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_test_push_sends_a_signed_sample_and_reports_the_answer() {
    let admin = with_tenant(vec![PushResult::Answered {
        status: 202,
        retry_after: None,
        body_prefix: "ok".to_owned(),
        latency: Duration::from_millis(12),
    }])
    .await;
    admin
        .set_push(
            "acme",
            &PushUpdate {
                headers: Some([("X-Client".to_owned(), "acme".to_owned())].into()),
                signing_secret: Some(SecretAction::Generate),
                ..update("https://client.example/hook")
            },
        )
        .await
        .unwrap();
    let result = admin
        .test_push("acme", "rto_delivered", now())
        .await
        .unwrap();
    assert_eq!(result.outcome, "delivered");
    assert_eq!(result.http_status, Some(202));
    assert_eq!(result.latency_ms, 12);
    assert!(result.event_id.starts_with("evt_test_"));
    let sent: Vec<PushRequest> = admin.pusher.requests();
    let header = |n: &str| {
        sent[0]
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("X-Client").as_deref(), Some("acme"));
    assert!(header("webhook-signature").unwrap().starts_with("v1,"));
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["status"], "RTO_DELIVERED");
    let (field, _) = field_of(admin.test_push("acme", "lost-ish", now()).await);
    assert_eq!(field, "status");
}

#[tokio::test]
async fn a_long_replay_queues_every_event_in_order_and_reports_progress_as_it_goes() {
    let admin = with_tenant(vec![]).await;
    let tenant = TenantId::parse("acme").unwrap();
    let events: Vec<crate::model::CanonicalEvent> = (0..120)
        .map(|n| {
            sample_event(
                &tenant,
                Status::InTransit,
                now() + chrono::Duration::seconds(n),
            )
        })
        .collect();
    for event in &events {
        admin.store.add_attempt(Attempt {
            event_id: event.event_id.clone(),
            tenant_id: tenant.clone(),
            awb: event.awb.clone().unwrap(),
            status: event.status,
            attempt: 1,
            outcome: AttemptOutcome::Delivered,
            http_status: Some(200),
            latency_ms: 5,
            error: None,
            at: event.event_time,
        });
        admin.store.archive(event.clone());
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let replayed = admin
        .replay(
            "acme",
            &Selection::Awb(events[0].awb.clone().unwrap()),
            &|done, of| seen.lock().unwrap().push((done, of)),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 120);
    assert_eq!(admin.store.replayed(), events);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(50, 120), (100, 120), (120, 120)]
    );
}

#[tokio::test]
async fn replay_queues_each_attempted_event_once() {
    let admin = with_tenant(vec![]).await;
    let event = sample_event(&TenantId::parse("acme").unwrap(), Status::Delivered, now());
    for attempt in 1..=2 {
        admin.store.add_attempt(Attempt {
            event_id: event.event_id.clone(),
            tenant_id: TenantId::parse("acme").unwrap(),
            awb: event.awb.clone().unwrap(),
            status: Status::Delivered,
            attempt,
            outcome: AttemptOutcome::Retry,
            http_status: Some(503),
            latency_ms: 5,
            error: None,
            at: now(),
        });
    }
    admin.store.archive(event.clone());
    let seen = std::sync::Mutex::new(Vec::new());
    let replayed = admin
        .replay(
            "acme",
            &Selection::Awb(event.awb.clone().unwrap()),
            &|done, of| seen.lock().unwrap().push((done, of)),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(admin.store.replayed(), vec![event]);
    assert_eq!(*seen.lock().unwrap(), vec![(1, 1)]);
    let (field, _) = field_of(
        admin
            .replay(
                "acme",
                &Selection::Between {
                    from: now(),
                    to: now() - chrono::Duration::hours(1),
                },
                &|_, _| {},
            )
            .await,
    );
    assert_eq!(field, "from");
}

fn digest_of(body: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body.as_bytes()))
}

fn quarantined(
    tenant: &str,
    carrier: Carrier,
    body: &str,
    reason: &str,
    hours_ago: i64,
) -> QuarantinedBody {
    let at = now() - chrono::Duration::hours(hours_ago);
    QuarantinedBody {
        view: QuarantineView {
            id: digest_of(body),
            tenant_id: tenant.to_owned(),
            carrier,
            reason: reason.to_owned(),
            first_received_at: at,
            last_received_at: at + chrono::Duration::minutes(30),
            times: 2,
            last_replay: None,
        },
        body: body.as_bytes().to_vec(),
    }
}

fn accepted(queued: &[&str], duplicates: &[&str]) -> IngestOutcome {
    let ids = |ids: &[&str]| ids.iter().map(|id| EventId::from_stored(*id)).collect();
    IngestOutcome::Accepted {
        queued: ids(queued),
        duplicates: ids(duplicates),
    }
}

#[tokio::test]
async fn a_replayed_body_goes_through_ingest_as_its_tenant_and_is_kept() {
    let mut admin = with_tenant(vec![]).await;
    admin.reingest =
        ScriptedReingest::new(vec![accepted(&["evt_1"], &[]), accepted(&[], &["evt_1"])]);
    admin
        .update_tenant("acme", None, Some(false))
        .await
        .unwrap();
    let entry = quarantined("acme", Carrier::Shipway, r#"{"awb":"1"}"#, "no status", 5);
    admin.store.add_quarantined(entry.clone());
    let ids = QuarantineSelection::Ids {
        tenant: "acme".into(),
        ids: vec![entry.view.id.to_ascii_uppercase()],
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let first = admin
        .replay_quarantined(&ids, now(), &|done, of| {
            seen.lock().unwrap().push((done, of))
        })
        .await
        .unwrap();
    assert_eq!(first.accepted, 1);
    assert_eq!(first.results[0].outcome, ReplayOutcome::Accepted);
    assert_eq!(first.results[0].event_ids, ["evt_1"]);
    assert_eq!(*seen.lock().unwrap(), vec![(1, 1)]);
    let (tenant, carrier, body, received_at) = admin.reingest.calls().remove(0);
    assert!(!tenant.include_source, "the tenant's settings are used");
    assert_eq!((carrier, body), (Carrier::Shipway, entry.body.clone()));
    assert_eq!(received_at, entry.view.first_received_at);

    let again = admin
        .replay_quarantined(&ids, now(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!((again.accepted, again.duplicate), (0, 1));
    assert!(!again.has_failures());
    let kept = admin
        .quarantined_body("acme", &entry.view.id)
        .await
        .unwrap();
    assert_eq!(
        kept.view.last_replay,
        Some(ReplayNote {
            at: now(),
            outcome: "duplicate".into()
        })
    );
    assert_eq!(kept.body, r#"{"awb":"1"}"#);
}

#[tokio::test]
async fn an_unknown_id_replays_nothing() {
    let admin = with_tenant(vec![]).await;
    let entry = quarantined("acme", Carrier::Clickpost, "{}", "no waybill", 1);
    admin.store.add_quarantined(entry.clone());
    for unknown in ["not-a-digest", &"0".repeat(64)] {
        let ids = QuarantineSelection::Ids {
            tenant: "acme".into(),
            ids: vec![entry.view.id.clone(), unknown.to_owned()],
        };
        assert!(matches!(
            admin.replay_quarantined(&ids, now(), &|_, _| {}).await,
            Err(AdminError::NotFound(_))
        ));
    }
    assert!(admin.reingest.calls().is_empty());
    let (field, _) = field_of(
        admin
            .replay_quarantined(
                &QuarantineSelection::Ids {
                    tenant: "acme".into(),
                    ids: vec![],
                },
                now(),
                &|_, _| {},
            )
            .await,
    );
    assert_eq!(field, "ids");
}

#[tokio::test]
async fn a_filtered_replay_takes_every_match_of_every_tenant() {
    let mut admin = with_tenant(vec![]).await;
    admin.create_tenant("globex", None, now()).await.unwrap();
    admin.reingest = ScriptedReingest::new(vec![
        IngestOutcome::Invalid {
            reason: "status: unknown".into(),
        },
        IngestOutcome::Unavailable,
    ]);
    admin.store.add_quarantined(quarantined(
        "acme",
        Carrier::Shipway,
        "a",
        "status: unknown",
        3,
    ));
    admin.store.add_quarantined(quarantined(
        "globex",
        Carrier::Shipway,
        "b",
        "Status: unknown",
        2,
    ));
    admin.store.add_quarantined(quarantined(
        "acme",
        Carrier::Clickpost,
        "c",
        "status: unknown",
        1,
    ));
    let report = admin
        .replay_quarantined(
            &QuarantineSelection::Matching(QuarantineQuery {
                carrier: Some("shipway".into()),
                reason: Some("STATUS".into()),
                ..QuarantineQuery::default()
            }),
            now(),
            &|_, _| {},
        )
        .await
        .unwrap();
    let tenants: Vec<&str> = report
        .results
        .iter()
        .map(|r| r.tenant_id.as_str())
        .collect();
    assert_eq!(tenants, ["acme", "globex"], "oldest first");
    assert_eq!((report.invalid, report.unavailable), (1, 1));
    assert_eq!(report.results[0].reason.as_deref(), Some("status: unknown"));
    assert!(report.has_failures());
}

#[test]
fn every_ingest_answer_is_a_replay_outcome() {
    let outcome = |answer| ReplayOutcome::of(answer).0;
    assert_eq!(outcome(accepted(&["a"], &["b"])), ReplayOutcome::Accepted);
    assert_eq!(outcome(accepted(&[], &["b"])), ReplayOutcome::Duplicate);
    assert_eq!(outcome(accepted(&[], &[])), ReplayOutcome::Accepted);
    assert_eq!(outcome(IngestOutcome::InFlight), ReplayOutcome::InFlight);
    assert_eq!(
        outcome(IngestOutcome::Unavailable),
        ReplayOutcome::Unavailable
    );
    for other in [
        IngestOutcome::Probe,
        IngestOutcome::PanelTest,
        IngestOutcome::MethodNotAllowed,
    ] {
        let (outcome, reason, ids) = ReplayOutcome::of(other);
        assert_eq!(outcome, ReplayOutcome::Invalid);
        assert!(reason.is_some() && ids.is_empty());
    }
    assert_eq!(
        serde_json::to_value(ReplayOutcome::InFlight).unwrap(),
        "in_flight"
    );
}

#[tokio::test]
async fn a_quarantine_listing_checks_its_filter() {
    let admin = with_tenant(vec![]).await;
    admin
        .store
        .add_quarantined(quarantined("acme", Carrier::Shipway, "a", "no status", 48));
    admin
        .store
        .add_quarantined(quarantined("acme", Carrier::Shipway, "b", "no awb", 2));
    let admin = &admin;
    let list = |query: QuarantineQuery| async move { admin.quarantined(&query).await };
    let recent = list(QuarantineQuery {
        from: Some(now() - chrono::Duration::hours(3)),
        ..QuarantineQuery::default()
    })
    .await
    .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].reason, "no awb");
    let cases = [
        (
            QuarantineQuery {
                carrier: Some("dhl".into()),
                ..QuarantineQuery::default()
            },
            "carrier",
        ),
        (
            QuarantineQuery {
                limit: Some(0),
                ..QuarantineQuery::default()
            },
            "limit",
        ),
        (
            QuarantineQuery {
                from: Some(now()),
                to: Some(now() - chrono::Duration::hours(1)),
                ..QuarantineQuery::default()
            },
            "from",
        ),
    ];
    for (query, field) in cases {
        assert_eq!(field_of(list(query).await).0, field);
    }
    assert!(matches!(
        list(QuarantineQuery {
            tenant: Some("ghost".into()),
            ..QuarantineQuery::default()
        })
        .await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn deliveries_by_hour_count_pushes_of_the_last_24_hours_by_outcome() {
    let admin = with_tenant(vec![]).await;
    let event = sample_event(&TenantId::parse("acme").unwrap(), Status::Delivered, now());
    let log = |minutes_ago: i64, outcome: AttemptOutcome, tenant: &str| {
        admin.store.add_attempt(Attempt {
            event_id: event.event_id.clone(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            awb: "A1".into(),
            status: Status::Delivered,
            attempt: 1,
            outcome,
            http_status: None,
            latency_ms: 5,
            error: None,
            at: now() - chrono::Duration::minutes(minutes_ago),
        });
    };
    log(0, AttemptOutcome::Delivered, "acme");
    log(30, AttemptOutcome::Retry, "acme");
    log(30, AttemptOutcome::DeadLetter, "acme");
    log(30, AttemptOutcome::Superseded, "acme");
    log(61, AttemptOutcome::Delivered, "acme");
    log(23 * 60, AttemptOutcome::Delivered, "acme");
    log(23 * 60 + 1, AttemptOutcome::Delivered, "acme");
    log(0, AttemptOutcome::Delivered, "globex");
    // now() is 10:00 sharp: the last hour is 10:00-10:59, the first 11:00 yesterday.
    let hours = admin.deliveries_by_hour("acme", now()).await.unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[0].hour, now() - chrono::Duration::hours(23));
    assert_eq!(hours[23].hour, now());
    let counts: Vec<(u64, u64)> = hours.iter().map(|h| (h.delivered, h.failed)).collect();
    assert_eq!(counts[23], (1, 0));
    assert_eq!(
        counts[22],
        (0, 2),
        "09:30 is in the hour 09:00; superseded is no push"
    );
    assert_eq!(counts[21], (1, 0), "08:59 is in the hour 08:00");
    assert_eq!(
        counts[0],
        (1, 0),
        "11:00 yesterday is the first hour; 10:59 is not counted"
    );
    assert_eq!(counts.iter().map(|c| c.0 + c.1).sum::<u64>(), 5);
    assert!(matches!(
        admin.deliveries_by_hour("ghost", now()).await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_carrier_status_view_has_a_line_per_carrier() {
    let admin = with_tenant(vec![]).await;
    let acme = TenantId::parse("acme").unwrap();
    admin.store.set_carrier_activity(
        &acme,
        CarrierActivity {
            carrier: "shipway".into(),
            last_accepted_at: Some(now()),
            ..CarrierActivity::default()
        },
    );
    let view = admin.carrier_activity("acme").await.unwrap();
    let carriers: Vec<&str> = view.iter().map(|a| a.carrier.as_str()).collect();
    assert_eq!(carriers, Carrier::ALL.map(Carrier::as_str));
    let shipway = view.iter().find(|a| a.carrier == "shipway").unwrap();
    assert_eq!(shipway.last_accepted_at, Some(now()));
    assert_eq!(
        view[0],
        CarrierActivity {
            carrier: "clickpost".into(),
            ..CarrierActivity::default()
        }
    );
    assert!(matches!(
        admin.carrier_activity("ghost").await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn stale_shipments_are_those_without_news_past_their_status_threshold() {
    let admin = with_tenant(vec![]).await;
    admin.create_tenant("paused", None, now()).await.unwrap();
    admin
        .update_tenant("paused", Some(false), None)
        .await
        .unwrap();
    let real_now = Utc::now();
    let shipment = |key: &str, status: Status, hours: i64| {
        let state = crate::shipment::ShipmentState {
            latest_event_id: None,
            latest_event_time: real_now - chrono::TimeDelta::hours(hours + 1),
            last_status: Some(status),
            terminal: status.is_terminal(),
            carrier: Some(Carrier::Clickpost),
            awb: Some(key.to_owned()),
            order_id: None,
            courier_id: None,
            last_received_at: Some(real_now - chrono::TimeDelta::hours(hours)),
        };
        QuietShipment {
            shipment_key: key.to_owned(),
            state,
            last_pulled_at: Some(real_now),
        }
    };
    let acme = TenantId::parse("acme").unwrap();
    let paused = TenantId::parse("paused").unwrap();
    for (tenant, s) in [
        (&acme, shipment("MOVING-7H", Status::InTransit, 7)),
        (&acme, shipment("MOVING-9H", Status::InTransit, 9)),
        (&acme, shipment("MOVING-2H", Status::InTransit, 2)),
        (&acme, shipment("PICKUP-7H", Status::PickupScheduled, 7)),
        (&acme, shipment("DELIVERED-9H", Status::Delivered, 9)),
        (&paused, shipment("PAUSED-9H", Status::InTransit, 9)),
    ] {
        admin.store.set_shipment(tenant, s);
    }
    let keys = |list: Vec<StaleShipment>| -> Vec<String> {
        list.into_iter().map(|s| s.shipment_key).collect()
    };
    // Pulled just now, still listed: only news counts. The longest without news first.
    let stale = admin
        .stale_shipments(None, &QuietRules::default())
        .await
        .unwrap();
    assert_eq!(stale[0].last_pulled_at, Some(real_now));
    assert_eq!(keys(stale), ["MOVING-9H", "MOVING-7H"]);
    let everything = admin
        .stale_shipments(Some("paused"), &QuietRules::uniform(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        keys(everything),
        ["PAUSED-9H"],
        "a disabled tenant, by name"
    );
    assert!(matches!(
        admin
            .stale_shipments(Some("ghost"), &QuietRules::default())
            .await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn redriving_an_id_that_names_no_dead_letter_moves_nothing_and_says_which() {
    let admin = with_tenant(vec![]).await;
    for id in ["17", "18"] {
        admin.store.add_dead_letter(DeadLetterView {
            id: id.into(),
            event_id: format!("evt_{id}"),
            tenant_id: "acme".into(),
            reason: "HTTP 410".into(),
            attempts: 1,
        });
    }
    let ids = ["17".to_owned(), "99".to_owned()];
    match admin.redrive(Some(&ids)).await {
        Err(AdminError::NotFound(message)) => {
            assert!(
                message.contains("99") && !message.contains("17"),
                "{message}"
            )
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(admin.dead_letters(None, 10).await.unwrap().len(), 2);
    assert_eq!(admin.redrive(Some(&ids[..1])).await.unwrap(), 1);
}
