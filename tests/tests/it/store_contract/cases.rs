//! The cases of the store contract, each a fact every store that has the ports must keep.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shared::admin::{AdminStore, Selection};
use shared::ports::{
    Attempt, AttemptOutcome, Claim, ClaimToken, DeliveryLog, EventStore, Intake, QueueActions,
    ShipmentStates, Standing,
};
use shared::shipment::ShipmentState;
use shared::{normalize, CanonicalEvent, Carrier, NormalizeContext, TenantId};

use super::{Claims, Queue, Store, MAX_RECEIVES};

/// When the scans of these cases arrived: whole seconds, which every store keeps exactly.
fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

/// A Clickpost scan of `tenant`'s shipment `awb`: status `code` at `time`, with `more` fields.
fn scan_with(tenant: &str, awb: &str, code: u16, time: &str, more: &str) -> CanonicalEvent {
    let body = format!(
        r#"{{"waybill":"{awb}","cp_id":4,"clickpost_status_code":{code},"timestamp":"{time}"{more}}}"#
    );
    let ctx = NormalizeContext::new(TenantId::parse(tenant).unwrap(), received_at());
    normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
        .unwrap()
        .remove(0)
}

/// An in-transit scan of acme's shipment `awb` at `time`.
fn scan(awb: &str, time: &str) -> CanonicalEvent {
    scan_with("acme", awb, 5, time, "")
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn accept(store: &impl Store, event: &mut CanonicalEvent) -> Claim {
    store.intake().accept(event, Utc::now()).await.unwrap()
}

fn ids(events: &[CanonicalEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_id.as_str()).collect()
}

// ---- Claims: an event is accepted once per event id.

pub async fn an_event_accepted_twice_is_queued_once(store: &impl Store) {
    let mut event = scan("AWB-TWICE", "2026-11-22T09:00:00Z");
    assert_eq!(accept(store, &mut event).await, Claim::Claimed);
    assert_eq!(
        accept(store, &mut event.clone()).await,
        Claim::AlreadyQueued
    );
    assert_eq!(ids(&store.queued().await), [event.event_id.as_str()]);
}

pub async fn the_same_event_accepted_at_once_many_times_is_queued_once(store: &impl Store) {
    let event = scan("AWB-RACE", "2026-11-22T09:00:00Z");
    let claims = futures_util::future::join_all((0..20).map(|_| {
        let mut event = event.clone();
        async move { accept(store, &mut event).await }
    }))
    .await;
    let claimed = claims.iter().filter(|c| **c == Claim::Claimed).count();
    assert_eq!(claimed, 1, "{claims:?}");
    // The others find it queued (a duplicate), or still held by the winner, in which case the
    // carrier is asked to retry: none is accepted twice.
    assert!(
        claims
            .iter()
            .all(|c| matches!(c, Claim::Claimed | Claim::AlreadyQueued | Claim::InFlight)),
        "{claims:?}"
    );
    assert_eq!(ids(&store.queued().await), [event.event_id.as_str()]);
}

/// The claim of a store that queues first (the fake and DynamoDB): the claim names one queued
/// copy of the event for good; the same copy's write again (an answer lost, the SDK's retry)
/// finds its own claim, and any other copy's is a duplicate.
pub async fn a_claim_names_one_copy_for_good(store: &impl Claims) {
    let events = store.events();
    let event = scan("AWB-CLAIM", "2026-11-22T09:00:00Z");
    let now = Utc::now();
    let claim = |token: &ClaimToken, now: DateTime<Utc>| {
        let (event, token) = (event.clone(), token.clone());
        async move { events.claim(&event, &token, now).await.unwrap() }
    };
    let (mine, theirs) = (ClaimToken::new(), ClaimToken::new());
    assert_eq!(claim(&mine, now).await, Claim::Claimed);
    assert_eq!(claim(&mine, now).await, Claim::Claimed, "the same copy");
    assert_eq!(claim(&theirs, now).await, Claim::AlreadyQueued);
    let much_later = now + chrono::Duration::days(1);
    assert_eq!(claim(&theirs, much_later).await, Claim::AlreadyQueued);
}

// ---- Shipment state: the newest event time wins, and an older event is marked stale.

pub async fn an_older_event_is_queued_marked_stale_and_the_newest_is_the_shipment_s_state(
    store: &impl Store,
) {
    let mut first = scan_with(
        "acme",
        "AWB-STATE",
        5,
        "2026-11-22T08:00:00Z",
        r#","additional":{"order_id":"ORD-9"}"#,
    );
    let mut newest = scan_with("acme", "AWB-STATE", 8, "2026-11-22T09:00:00Z", "");
    let mut late = scan_with("acme", "AWB-STATE", 6, "2026-11-22T08:30:00Z", "");
    for event in [&mut first, &mut newest, &mut late] {
        assert_eq!(accept(store, event).await, Claim::Claimed);
    }
    assert!(!first.is_stale && !newest.is_stale);
    assert!(late.is_stale, "older than an event accepted before it");
    let queued = |events: &[&CanonicalEvent]| {
        let mut stale: Vec<(String, bool)> = events
            .iter()
            .map(|e| (e.event_id.to_string(), e.is_stale))
            .collect();
        stale.sort();
        stale
    };
    assert_eq!(
        queued(&store.queued().await.iter().collect::<Vec<_>>()),
        queued(&[&first, &newest, &late]),
        "every event is queued, the late one marked"
    );

    // The state as the domain works it out (`ShipmentState::after`): the newest event's, with
    // what it lacks (the order id) kept from before.
    let expected = [&first, &newest].into_iter().fold(None, |state, event| {
        ShipmentState::after(state.as_ref(), event).or(state)
    });
    let state = store
        .shipments()
        .shipment(&acme(), "AWB-STATE")
        .await
        .unwrap();
    assert_eq!(state, expected);
    assert_eq!(
        state.and_then(|s| s.order_id).as_deref(),
        Some("ORD-9"),
        "kept from the first event"
    );
    let globex = TenantId::parse("globex").unwrap();
    assert_eq!(
        store
            .shipments()
            .shipment(&globex, "AWB-STATE")
            .await
            .unwrap(),
        None,
        "another tenant's shipment with the same AWB is its own"
    );
}

// ---- The queue: visibility, retries, dead letters and their redrive.

pub async fn a_message_retried_later_is_hidden_until_then_and_handed_out_again(store: &impl Queue) {
    let mut event = scan("AWB-RETRY", "2026-11-22T09:00:00Z");
    accept(store, &mut event).await;
    let hide = Duration::from_secs(60);
    let first = store.receive(Duration::ZERO, hide).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].event.event_id.as_str(), first[0].receive_count),
        (event.event_id.as_str(), 1)
    );
    assert!(
        store.receive(Duration::ZERO, hide).await.is_empty(),
        "hidden while handed out"
    );

    // SQS counts whole seconds: the shortest wait it can be asked for.
    let wait = Duration::from_secs(1);
    store
        .actions()
        .retry_later(&first[0].receipt, wait)
        .await
        .unwrap();
    assert!(
        store.receive(Duration::ZERO, hide).await.is_empty(),
        "hidden for the wait"
    );
    let again = store.receive(wait, hide).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event.event_id.as_str(), again[0].receive_count),
        (event.event_id.as_str(), 2)
    );
    store.acknowledge(&again[0].receipt).await;
    assert!(
        store.receive(Duration::ZERO, hide).await.is_empty(),
        "acknowledged"
    );
}

pub async fn a_message_handed_out_too_often_is_a_dead_letter_and_redriven_as_new(
    store: &impl Queue,
) {
    let mut event = scan("AWB-TOO-OFTEN", "2026-11-22T09:00:00Z");
    accept(store, &mut event).await;
    // Handed out and never acknowledged, visible again at once.
    for count in 1..=MAX_RECEIVES {
        let received = store.receive(Duration::ZERO, Duration::ZERO).await;
        assert_eq!(received.len(), 1, "receive {count}");
        assert_eq!(received[0].receive_count, count);
    }
    assert!(
        store
            .receive(Duration::ZERO, Duration::ZERO)
            .await
            .is_empty(),
        "given up after {MAX_RECEIVES} receives"
    );

    let admin = store.admin();
    let dead = admin.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].tenant_id.as_str()),
        (event.event_id.as_str(), "acme")
    );
    assert!(!dead[0].reason.is_empty());
    let depth = admin.queue_depth().await.unwrap();
    assert_eq!((depth.waiting, depth.dead_letters), (0, 1));

    assert_eq!(admin.redrive(None).await.unwrap(), 1);
    let back = store.receive(Duration::ZERO, Duration::from_secs(60)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].event.event_id.as_str(), back[0].receive_count),
        (event.event_id.as_str(), 1),
        "a redriven message starts its receives again"
    );
    assert!(admin.dead_letters(None, 10).await.unwrap().is_empty());
}

pub async fn dead_letters_are_listed_with_their_reason_and_redriven_by_id_or_all(
    store: &impl Queue,
) {
    // Two events the dispatcher gave up on, as it does: the body and attributes moved to the
    // dead letters with the reason and the attempt it was given up at, the message acknowledged.
    let mut gone = scan_with("acme", "AWB-GONE", 5, "2026-11-22T09:00:00Z", "");
    let mut other = scan_with("globex", "AWB-OTHER", 5, "2026-11-22T09:00:00Z", "");
    accept(store, &mut gone).await;
    accept(store, &mut other).await;
    let received = store.receive(Duration::ZERO, Duration::from_secs(60)).await;
    assert_eq!(received.len(), 2);
    for message in &received {
        let event = &message.event;
        let attributes = [
            ("tenant_id".to_owned(), event.tenant_id.to_string()),
            ("carrier".to_owned(), event.carrier.to_string()),
            ("event_id".to_owned(), event.event_id.to_string()),
            ("attempts".to_owned(), "4".to_owned()),
        ];
        let body = serde_json::to_string(event).unwrap();
        let reason = format!("the endpoint answered 410 for {}", event.tenant_id);
        store
            .actions()
            .dead_letter(&body, &attributes, &reason)
            .await
            .unwrap();
        store.acknowledge(&message.receipt).await;
    }

    let admin = store.admin();
    let dead = admin.dead_letters(None, 10).await.unwrap();
    let mut listed: Vec<(&str, &str, &str, u32)> = dead
        .iter()
        .map(|d| {
            (
                d.event_id.as_str(),
                d.tenant_id.as_str(),
                d.reason.as_str(),
                d.attempts,
            )
        })
        .collect();
    listed.sort_by_key(|(_, tenant, _, _)| *tenant);
    assert_eq!(
        listed,
        [
            (
                gone.event_id.as_str(),
                "acme",
                "the endpoint answered 410 for acme",
                4
            ),
            (
                other.event_id.as_str(),
                "globex",
                "the endpoint answered 410 for globex",
                4
            ),
        ]
    );
    let acme_only = admin.dead_letters(Some(&acme()), 10).await.unwrap();
    assert_eq!(acme_only.len(), 1);
    assert_eq!(acme_only[0].event_id, gone.event_id.as_str());
    assert_eq!(admin.dead_letters(None, 1).await.unwrap().len(), 1);

    assert_eq!(
        admin
            .redrive(Some(&["no-such-id".to_owned()]))
            .await
            .unwrap(),
        0
    );
    let gone_id = &acme_only[0].id;
    assert_eq!(
        admin
            .redrive(Some(std::slice::from_ref(gone_id)))
            .await
            .unwrap(),
        1
    );
    let back = store.receive(Duration::ZERO, Duration::from_secs(60)).await;
    let back: Vec<CanonicalEvent> = back.into_iter().map(|m| m.event).collect();
    assert_eq!(ids(&back), [gone.event_id.as_str()]);
    assert_eq!(admin.redrive(None).await.unwrap(), 1, "the rest");
    assert!(admin.dead_letters(None, 10).await.unwrap().is_empty());
    let back = store.receive(Duration::ZERO, Duration::from_secs(60)).await;
    let back: Vec<CanonicalEvent> = back.into_iter().map(|m| m.event).collect();
    assert_eq!(ids(&back), [other.event_id.as_str()]);
}

// ---- The delivery log.

fn attempt(event: &CanonicalEvent, n: u32, outcome: AttemptOutcome, at: &str) -> Attempt {
    Attempt {
        event_id: event.event_id.clone(),
        tenant_id: event.tenant_id.clone(),
        awb: event.shipment_key().to_owned(),
        status: event.status,
        attempt: n,
        outcome,
        http_status: Some(if outcome == AttemptOutcome::Delivered {
            200
        } else {
            503
        }),
        latency_ms: 120,
        error: (outcome != AttemptOutcome::Delivered).then(|| "the endpoint answered 503".into()),
        at: DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc),
    }
}

/// Whether the dispatcher would find the event delivered (`DeliveryLog::standing`, the check it
/// makes before a push).
async fn delivered(log: &impl DeliveryLog, event: &CanonicalEvent) -> bool {
    log.standing(event, None, 2).await.unwrap() == Standing::Delivered
}

pub async fn an_event_is_delivered_once_an_attempt_delivered_it(store: &impl Store) {
    let log = store.log();
    let event = scan("AWB-LOG", "2026-11-22T09:00:00Z");
    let other = scan("AWB-LOG", "2026-11-22T09:30:00Z");
    assert!(!delivered(log, &event).await);
    log.record_attempt(&attempt(
        &event,
        1,
        AttemptOutcome::Retry,
        "2026-11-22T10:00:00Z",
    ))
    .await
    .unwrap();
    log.flush().await.unwrap();
    assert!(!delivered(log, &event).await, "a retry is not a delivery");
    log.record_attempt(&attempt(
        &event,
        2,
        AttemptOutcome::Delivered,
        "2026-11-22T10:01:00Z",
    ))
    .await
    .unwrap();
    log.flush().await.unwrap();
    assert!(delivered(log, &event).await);
    assert!(
        !delivered(log, &other).await,
        "another event of the same shipment"
    );
}

pub async fn attempts_are_listed_by_awb_and_by_time_oldest_first(store: &impl Queue) {
    let log = store.log();
    let event = scan("AWB-LIST", "2026-11-22T09:00:00Z");
    let elsewhere = scan("AWB-ELSEWHERE", "2026-11-22T09:00:00Z");
    let attempts = [
        attempt(&event, 1, AttemptOutcome::Retry, "2026-11-22T10:00:00Z"),
        attempt(
            &elsewhere,
            1,
            AttemptOutcome::Delivered,
            "2026-11-22T10:00:30Z",
        ),
        attempt(&event, 2, AttemptOutcome::Delivered, "2026-11-22T10:01:00Z"),
    ];
    for a in &attempts {
        log.record_attempt(a).await.unwrap();
    }
    log.flush().await.unwrap();

    let admin = store.admin();
    let by_awb = admin
        .attempts(&acme(), &Selection::Awb("AWB-LIST".into()))
        .await
        .unwrap();
    assert_eq!(by_awb, [attempts[0].clone(), attempts[2].clone()]);
    let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    let between = |from: &str, to: &str| Selection::Between {
        from: at(from),
        to: at(to),
    };
    assert_eq!(
        admin
            .attempts(
                &acme(),
                &between("2026-11-22T09:00:00Z", "2026-11-22T11:00:00Z")
            )
            .await
            .unwrap(),
        attempts
    );
    assert_eq!(
        admin
            .attempts(
                &acme(),
                &between("2026-11-22T10:00:30Z", "2026-11-22T10:00:30Z")
            )
            .await
            .unwrap(),
        [attempts[1].clone()],
        "the bounds are included"
    );
    let globex = TenantId::parse("globex").unwrap();
    assert!(admin
        .attempts(&globex, &Selection::Awb("AWB-LIST".into()))
        .await
        .unwrap()
        .is_empty());
}
