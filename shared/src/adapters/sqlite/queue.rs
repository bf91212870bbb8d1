//! The queue: accepting events (claim, shipment state, message), leases, acknowledgements,
//! retries and dead letters, and the rest of the intake port (quarantine, carrier activity).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Activity, Claim, HourlyActivity, Intake, Quarantined, QueueActions, Unavailable,
};
use crate::shipment::ShipmentState;

use super::writer::WriteKind;
use super::{
    execute, query_row, stamp, unavailable, SqliteStore, HOURLY_KEPT, QUARANTINE_KEPT, SERVICE,
};

/// The statements of one acceptance: the claim, the shipment's state, the queued message.
/// Returns the claim and whether the event is stale.
fn accept_one(
    conn: &Connection,
    event: &CanonicalEvent,
    now: DateTime<Utc>,
) -> rusqlite::Result<(Claim, bool)> {
    // A claim is inserted `QUEUED` with its message, in the same transaction, so an existing row
    // is always a duplicate (never a claim left half-done).
    let claimed = execute(
        conn,
        "INSERT INTO claims (event_id, state) VALUES (?1, 'QUEUED') ON CONFLICT (event_id) DO NOTHING",
        params![event.event_id.as_str()],
    )?;
    if claimed == 0 {
        return Ok((Claim::AlreadyQueued, false));
    }
    // Accepted before under a v1 id (`CanonicalEvent::legacy_ids`): a duplicate. The new claim
    // stays, queued, so that the next copy is answered by it alone. Every claim here is queued
    // (see above), so a row is enough.
    for id in event.legacy_ids.iter() {
        let earlier = query_row(
            conn,
            "SELECT 1 FROM claims WHERE event_id = ?1",
            params![id.as_str()],
            |_| Ok(()),
        )
        .optional()?;
        if earlier.is_some() {
            return Ok((Claim::AlreadyQueued, false));
        }
    }
    let is_stale = record_shipment(conn, event)? == 0;
    let mut queued = event.clone();
    queued.is_stale = is_stale;
    let body = serde_json::to_string(&queued)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    execute(
        conn,
        "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, enqueued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![event.event_id.as_str(), event.tenant_id, body, now.timestamp_millis(), now.to_rfc3339()],
    )?;
    execute(
        conn,
        "UPDATE claims SET body = ?2 WHERE event_id = ?1",
        params![event.event_id.as_str(), body],
    )?;
    Ok((Claim::Claimed, is_stale))
}

/// The shipment's state becomes the event's, unless a newer event is there already (equal times:
/// the later accepted wins, as a retry of the same event must not flag itself stale). Identifiers
/// the event lacks keep their earlier value. Returns 0 when the event is not the newest.
fn record_shipment(conn: &Connection, event: &CanonicalEvent) -> rusqlite::Result<usize> {
    let state = ShipmentState::of(event);
    execute(
        conn,
        "INSERT INTO shipments (tenant_id, shipment_key, latest_ms, latest_event_id, last_status,
                 terminal, carrier, awb, order_id, courier_id, last_received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (tenant_id, shipment_key) DO UPDATE SET
             latest_ms = excluded.latest_ms,
             latest_event_id = excluded.latest_event_id,
             last_status = excluded.last_status,
             terminal = excluded.terminal,
             carrier = excluded.carrier,
             awb = COALESCE(excluded.awb, shipments.awb),
             order_id = COALESCE(excluded.order_id, shipments.order_id),
             courier_id = COALESCE(excluded.courier_id, shipments.courier_id),
             last_received_ms = excluded.last_received_ms
         WHERE shipments.latest_ms <= excluded.latest_ms",
        params![
            event.tenant_id,
            event.shipment_key(),
            state.latest_event_time.timestamp_millis(),
            state.latest_event_id.as_ref().map(EventId::as_str),
            state.last_status.map(Status::as_str),
            state.terminal,
            state.carrier.map(Carrier::as_str),
            state.awb,
            state.order_id,
            state.courier_id,
            state.last_received_at.map(|t| t.timestamp_millis()),
        ],
    )
}

/// A message handed out by the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The receipt: the row id, as text.
    pub receipt: String,
    pub event_id: String,
    pub tenant_id: String,
    pub body: String,
    pub receive_count: u32,
    /// Queued again by a replay: deliver even if it was delivered before.
    pub replay: bool,
}

impl SqliteStore {
    /// Hands out up to `max` visible messages, oldest due first, hiding each for `visibility` and
    /// counting the receive; a tenant gets at most `per_tenant` messages in flight, counting the
    /// `in_flight` ones it already has, so that one tenant's backlog never fills every slot. A
    /// message received `max_receives` times moves to the dead-letter state instead, as SQS's
    /// redrive policy does. Runs in the writer's next group, with whatever else is waiting.
    pub async fn lease(
        &self,
        max: usize,
        per_tenant: usize,
        in_flight: &HashMap<String, usize>,
        visibility: Duration,
        max_receives: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Leased>, Unavailable> {
        let in_flight = in_flight.clone();
        self.submit("lease", WriteKind::STATEMENTS, move |conn| {
            lease_in(
                conn,
                max,
                per_tenant,
                &in_flight,
                visibility,
                max_receives,
                now,
            )
        })
        .await
    }

    /// Makes the messages a dispatcher had leased visible at once: for a start after a crash,
    /// when nothing is delivering them any more (the lease is long, twice the longest push
    /// timeout, and would otherwise hold them back). Only for the one process that owns the
    /// database (`rms serve` holds its lock file). Returns how many.
    pub fn release_leases(&self, now: DateTime<Utc>) -> Result<usize, Unavailable> {
        let released = self.write("release leases", |conn| {
            execute(
                conn,
                "UPDATE queue SET visible_at_ms = ?1, leased = 0 WHERE leased = 1 AND state = 'ready'",
                params![now.timestamp_millis()],
            )
            .map_err(unavailable("release leases"))
        })?;
        self.queued.notify_one();
        Ok(released)
    }

    /// Removes a handled message, in the writer's next group.
    pub async fn ack(&self, receipt: &str) -> Result<(), Unavailable> {
        let id: i64 = receipt
            .parse()
            .map_err(|e| Unavailable::new(SERVICE, "ack", e))?;
        self.submit("ack", WriteKind::STATEMENT, move |conn| {
            execute(conn, "DELETE FROM queue WHERE id = ?1", params![id]).map(|_| ())
        })
        .await
    }

    /// Puts dead letters back on the queue (all of them, or those ids), as new: receive count 0,
    /// visible now. Returns how many moved.
    pub fn redrive(&self, ids: Option<&[i64]>, now: DateTime<Utc>) -> Result<usize, Unavailable> {
        let moved = self.write("redrive", |conn| Self::redrive_in(conn, ids, now))?;
        self.queued.notify_one();
        Ok(moved)
    }

    fn redrive_in(
        conn: &Connection,
        ids: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<usize, Unavailable> {
        let moved = match ids {
            None => execute(conn,
                "UPDATE queue SET state = 'ready', receive_count = 0, visible_at_ms = ?1, dead_reason = NULL WHERE state = 'dead'",
                params![now.timestamp_millis()],
            ),
            Some(ids) => {
                let mut total = 0;
                for id in ids {
                    total += execute(conn,
                            "UPDATE queue SET state = 'ready', receive_count = 0, visible_at_ms = ?1, dead_reason = NULL WHERE state = 'dead' AND id = ?2",
                            params![now.timestamp_millis(), id],
                        )
                        .map_err(unavailable("redrive"))?;
                }
                Ok(total)
            }
        }
        .map_err(unavailable("redrive"))?;
        Ok(moved)
    }

    /// How many messages wait (ready) and how many are dead. Two counts of `queue_by_tenant`'s
    /// ranges, not a pass over every row: the health check asks for it, and a backlog after a
    /// client's outage can hold hundreds of thousands of rows (200,000: 9-12 ms, against 23-26).
    pub fn queue_depth(&self) -> Result<(u64, u64), Unavailable> {
        query_row(
            &self.operator_read(),
            "SELECT (SELECT count(*) FROM queue WHERE state = 'ready'),
                    (SELECT count(*) FROM queue WHERE state = 'dead')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(unavailable("queue depth"))
    }
}

/// The statements of [`SqliteStore::lease`].
fn lease_in(
    conn: &Connection,
    max: usize,
    per_tenant: usize,
    in_flight: &HashMap<String, usize>,
    visibility: Duration,
    max_receives: u32,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<Leased>> {
    let now_ms = now.timestamp_millis();
    let hidden_until = now_ms + i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX / 4);
    // Each tenant with messages waiting, found through the index in one step per tenant (a
    // loose index scan), then each one's due messages up to its spare slots: the cost grows
    // with the number of tenants, never with the length of one tenant's backlog.
    let tenants: Vec<String> = {
        let mut statement = conn
            .prepare_cached(
                "WITH RECURSIVE waiting(tenant) AS (
                     SELECT MIN(tenant_id) FROM queue WHERE state = 'ready'
                     UNION ALL
                     SELECT (SELECT MIN(tenant_id) FROM queue WHERE state = 'ready' AND tenant_id > waiting.tenant)
                     FROM waiting WHERE waiting.tenant IS NOT NULL)
                 SELECT tenant FROM waiting WHERE tenant IS NOT NULL",
            )
            ?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    // (visible_at_ms, id, receive_count) of every candidate.
    let mut due: Vec<(i64, i64, u32)> = Vec::new();
    for tenant in &tenants {
        let spare = per_tenant.saturating_sub(in_flight.get(tenant).copied().unwrap_or(0));
        if spare == 0 {
            continue;
        }
        let mut statement = conn.prepare_cached(
            "SELECT visible_at_ms, id, receive_count FROM queue
                 WHERE state = 'ready' AND tenant_id = ?1 AND visible_at_ms <= ?2
                 ORDER BY visible_at_ms, id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![
                tenant,
                now_ms,
                i64::try_from(spare.min(max)).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        for row in rows {
            due.push(row?);
        }
    }
    // Oldest due first, across tenants.
    due.sort_unstable();
    let mut leased = Vec::new();
    for (_, id, receives) in due {
        if leased.len() >= max {
            break;
        }
        if receives >= max_receives {
            execute(conn,
                "UPDATE queue SET state = 'dead', dead_reason = 'delivery failed ' || receive_count || ' times (max attempts reached)' WHERE id = ?1",
                params![id],
            )
            ?;
            continue;
        }
        let message = query_row(
            conn,
            "UPDATE queue SET visible_at_ms = ?1, receive_count = receive_count + 1, leased = 1 WHERE id = ?2
             RETURNING id, event_id, tenant_id, body, receive_count, replay",
            params![hidden_until, id],
            |row| {
                Ok(Leased {
                    receipt: row.get::<_, i64>(0)?.to_string(),
                    event_id: row.get(1)?,
                    tenant_id: row.get(2)?,
                    body: row.get(3)?,
                    receive_count: row.get(4)?,
                    replay: row.get(5)?,
                })
            },
        )
        ?;
        leased.push(message);
    }
    Ok(leased)
}

/// Each acceptance is one savepoint of a group commit (see [`Writer`]): the claim, the
/// shipment's state and the queued message are committed together or not at all, so a crash
/// never leaves a claim without its message. It is answered once its group is committed and, in
/// fsync mode, on stable storage.
impl Intake for SqliteStore {
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        let accepted = event.clone();
        let (claim, is_stale) = self
            .submit("accept", WriteKind::QUEUE, move |conn| {
                accept_one(conn, &accepted, now)
            })
            .await?;
        event.is_stale = is_stale;
        Ok(claim)
    }

    async fn quarantine(&self, item: &Quarantined<'_>) -> Result<(), Unavailable> {
        let (tenant, digest, carrier) = (
            item.tenant_id.as_str().to_owned(),
            item.body_digest.clone(),
            item.carrier.as_str(),
        );
        let (body, reason) = (item.body.to_vec(), item.reason.to_owned());
        let (received, expired) = (
            stamp(item.received_at),
            stamp(item.received_at - QUARANTINE_KEPT),
        );
        // Kept means on disk, as for an accepted event: answered at its group's commit and, in
        // fsync mode, once on stable storage, like an accept (a flood of rejected bodies shares
        // commits and fsyncs, and never blocks the requests' threads).
        self.submit("quarantine", WriteKind::KEEP, move |conn| {
            // What TTL does on AWS: bodies whose last arrival is past the quarantine's time go (a
            // repeat of one starts afresh).
            execute(
                conn,
                "DELETE FROM quarantined WHERE last_received_at < ?1",
                params![expired],
            )?;
            // One upsert: the body is kept once; a repeat counts and moves the last arrival.
            execute(
                conn,
                "INSERT INTO quarantined
                     (tenant_id, digest, carrier, body, reason, first_received_at, last_received_at, times)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
                 ON CONFLICT (tenant_id, digest) DO UPDATE SET
                     times = times + 1,
                     carrier = excluded.carrier,
                     reason = excluded.reason,
                     first_received_at = MIN(first_received_at, excluded.first_received_at),
                     last_received_at = MAX(last_received_at, excluded.last_received_at)",
                params![tenant, digest, carrier, body, reason, received],
            )?;
            Ok(())
        })
        .await
    }

    async fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> Result<(), Unavailable> {
        // Each column keeps its latest time (text order is time order, see `stamp`); the reason
        // of a rejection goes with its time. On update every right-hand side reads the old row.
        let sql = match activity {
            Activity::PanelTest => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_test_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_test_at = MAX(COALESCE(last_test_at, ''), excluded.last_test_at)"
            }
            Activity::Accepted => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_accepted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_accepted_at = MAX(COALESCE(last_accepted_at, ''), excluded.last_accepted_at)"
            }
            Activity::Rejected => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_rejected_at, last_rejected_reason)
                     VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_rejected_reason = CASE
                         WHEN COALESCE(last_rejected_at, '') <= excluded.last_rejected_at
                         THEN excluded.last_rejected_reason ELSE last_rejected_reason END,
                     last_rejected_at = MAX(COALESCE(last_rejected_at, ''), excluded.last_rejected_at)"
            }
        };
        let count_sql = match activity {
            Activity::PanelTest => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, tests) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET tests = tests + excluded.tests"
            }
            Activity::Accepted => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, accepted) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET accepted = accepted + excluded.accepted"
            }
            Activity::Rejected => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, rejected) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET rejected = rejected + excluded.rejected"
            }
        };
        let (tenant, carrier) = (tenant.as_str().to_owned(), carrier.as_str());
        let hour = HourlyActivity::hour_of(at);
        let kept_from = (hour - HOURLY_KEPT).timestamp_millis();
        let (hour, at, detail) = (
            hour.timestamp_millis(),
            stamp(at),
            detail.map(str::to_owned),
        );
        // The view's times, the hour's count, and hours older than HOURLY_KEPT dropped: one job,
        // so all or nothing.
        self.submit("record activity", WriteKind::KEEP, move |conn| {
            match activity {
                Activity::Rejected => execute(conn, sql, params![tenant, carrier, at, detail])?,
                _ => execute(conn, sql, params![tenant, carrier, at])?,
            };
            execute(conn, count_sql, params![tenant, carrier, hour, count])?;
            execute(
                conn,
                "DELETE FROM carrier_hourly WHERE tenant_id = ?1 AND carrier = ?2 AND hour_ms < ?3",
                params![tenant, carrier, kept_from],
            )?;
            Ok(())
        })
        .await
    }
}

impl QueueActions for SqliteStore {
    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> Result<(), Unavailable> {
        let id: i64 = receipt_handle
            .parse()
            .map_err(|e| Unavailable::new(SERVICE, "retry later", e))?;
        let visible = Utc::now().timestamp_millis()
            + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
        self.submit("retry later", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "UPDATE queue SET visible_at_ms = ?1, leased = 0 WHERE id = ?2",
                params![visible, id],
            )
            .map(|_| ())
        })
        .await
    }

    async fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> Result<(), Unavailable> {
        let attribute = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (event_id, tenant_id) = (attribute("event_id"), attribute("tenant_id"));
        // The attempt it was given up at (`dispatch::settle`): the new row's receive count.
        let attempts = attribute("attempts").parse::<u32>().unwrap_or(0);
        let (body, reason, at) = (body.to_owned(), reason.to_owned(), Utc::now().to_rfc3339());
        self.submit("dead letter", WriteKind::STATEMENT, move |conn| {
            execute(conn,
                "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, state, dead_reason, enqueued_at, receive_count)
                 VALUES (?1, ?2, ?3, 0, 'dead', ?4, ?5, ?6)",
                params![event_id, tenant_id, body, reason, at, attempts],
            )
            .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::parse_time;
    use crate::adapters::sqlite::test_support::*;
    use crate::admin::AdminStore;

    fn queued(store: &SqliteStore) -> u64 {
        store.queue_depth().unwrap().0
    }

    /// The event as the code before the v2 identity accepted it: under its v1 id.
    fn as_claimed_by_v1(event: &CanonicalEvent) -> CanonicalEvent {
        let mut old = event.clone();
        old.event_id = event.legacy_ids[0].clone();
        old.legacy_ids = Default::default();
        old
    }

    #[tokio::test]
    async fn a_scan_accepted_under_its_v1_id_is_a_duplicate_and_stays_one() {
        let store = SqliteStore::in_memory().unwrap();
        let mut event = scan("AWB-V1", "2026-11-22T09:00:00Z");
        let mut before = as_claimed_by_v1(&event);
        assert_eq!(
            store.accept(&mut before, Utc::now()).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queued(&store), 1);
        // The same scan again, under v2: not queued a second time.
        for _ in 0..2 {
            assert_eq!(
                store.accept(&mut event, Utc::now()).await.unwrap(),
                Claim::AlreadyQueued
            );
        }
        assert_eq!(queued(&store), 1);
        // Another scan with no v1 claim is accepted as usual.
        let mut other = scan("AWB-V1", "2026-11-22T10:00:00Z");
        assert_eq!(
            store.accept(&mut other, Utc::now()).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queued(&store), 2);
    }

    #[tokio::test]
    async fn a_tenant_never_holds_more_than_its_share_of_a_lease() {
        let store = SqliteStore::in_memory().unwrap();
        let hold = Duration::from_secs(60);
        // Tenant acme's 20 messages are due before globex's 3.
        for i in 0..20 {
            let mut e = scan(&format!("A{i}"), "2026-11-22T09:00:00Z");
            store.accept(&mut e, Utc::now()).await.unwrap();
        }
        for i in 0..3 {
            let mut e = scan_for("globex", &format!("G{i}"), "2026-11-22T09:00:00Z");
            store.accept(&mut e, Utc::now()).await.unwrap();
        }
        let tenants = |leased: &[Leased]| {
            let mut counts = HashMap::<String, usize>::new();
            for m in leased {
                *counts.entry(m.tenant_id.clone()).or_default() += 1;
            }
            counts
        };
        let first = store
            .lease(10, 4, &HashMap::new(), hold, 10, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            tenants(&first),
            HashMap::from([("acme".to_owned(), 4), ("globex".to_owned(), 3)])
        );
        // acme already has 3 in flight: one more, and nothing else is due.
        let in_flight = HashMap::from([("acme".to_owned(), 3)]);
        let second = store
            .lease(10, 4, &in_flight, hold, 10, Utc::now())
            .await
            .unwrap();
        assert_eq!(tenants(&second), HashMap::from([("acme".to_owned(), 1)]));
    }

    #[tokio::test]
    async fn a_repeated_body_is_kept_once_and_counted() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let body = br#"{"awb":"1"}"#;
        store
            .quarantine(&rejected(&acme, body, "no status", "2026-11-27T10:00:00Z"))
            .await
            .unwrap();
        store
            .quarantine(&rejected(&acme, body, "bad status", "2026-11-27T11:00:00Z"))
            .await
            .unwrap();
        let row: (i64, String, String, String) = query_row(
            &store.conn(),
            "SELECT times, reason, first_received_at, last_received_at FROM quarantined",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
        assert_eq!(row.0, 2);
        assert_eq!(row.1, "bad status");
        assert_eq!(parse_time(&row.2), at("2026-11-27T10:00:00Z"));
        assert_eq!(parse_time(&row.3), at("2026-11-27T11:00:00Z"));
    }

    #[tokio::test]
    async fn the_same_body_from_two_tenants_is_kept_for_each() {
        let store = SqliteStore::in_memory().unwrap();
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let body = br#"{"awb":"1"}"#;
        for tenant in [&acme, &globex] {
            store
                .quarantine(&rejected(tenant, body, "no status", "2026-11-27T10:00:00Z"))
                .await
                .unwrap();
        }
        let rows: i64 = query_row(&store.conn(), "SELECT COUNT(*) FROM quarantined", [], |r| {
            r.get(0)
        })
        .unwrap();
        assert_eq!(rows, 2);
    }

    #[tokio::test]
    async fn an_older_activity_report_does_not_replace_a_newer_one() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let record = |activity, when: &'static str, detail: Option<&'static str>| {
            let (store, acme) = (&store, &acme);
            async move {
                store
                    .record_activity(acme, Carrier::Clickpost, activity, at(when), detail, 1)
                    .await
                    .unwrap()
            }
        };
        record(Activity::Rejected, "2026-11-27T12:00:00Z", Some("newer")).await;
        record(Activity::Rejected, "2026-11-27T11:00:00Z", Some("older")).await;
        record(Activity::Accepted, "2026-11-27T10:00:00Z", None).await;
        record(Activity::Accepted, "2026-11-27T10:30:00.5Z", None).await;
        let row: (Option<String>, Option<String>, Option<String>, Option<String>) = query_row(
            &store.conn(),
            "SELECT last_test_at, last_accepted_at, last_rejected_at, last_rejected_reason FROM carrier_activity",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
        assert_eq!(row.0, None);
        assert_eq!(
            row.1.as_deref().map(parse_time),
            Some(at("2026-11-27T10:30:00.5Z"))
        );
        assert_eq!(
            row.2.as_deref().map(parse_time),
            Some(at("2026-11-27T12:00:00Z"))
        );
        assert_eq!(row.3.as_deref(), Some("newer"));
    }

    #[tokio::test]
    async fn hourly_counts_older_than_their_keeping_time_are_dropped() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let long_ago = at("2026-11-01T09:00:00Z");
        for when in [
            long_ago,
            long_ago + HOURLY_KEPT + chrono::TimeDelta::hours(1),
        ] {
            store
                .record_activity(&acme, Carrier::Clickpost, Activity::Accepted, when, None, 1)
                .await
                .unwrap();
        }
        let view = AdminStore::carrier_activity(&store, &acme, long_ago)
            .await
            .unwrap();
        assert_eq!(view[0].hourly.len(), 1, "{:?}", view[0].hourly);
    }
}
