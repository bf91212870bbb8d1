//! The admin API's store: tenants, keys, dead letters, the quarantine, carrier activity.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use crate::admin::{
    AdminStore, DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth,
    ReplayNote, ReplayOutcome, Selection, StoredCredential, Tenant,
};
use crate::auth::CredentialDigest;
use crate::model::{CanonicalEvent, Carrier, EventId, TenantId};
use crate::ports::{Attempt, CarrierActivity, HourlyActivity, PushConfigStore, Unavailable};
use crate::push::{PushConfig, SecretValue};
use crate::reconcile::{PullAccountRecord, QuietRules, QuietShipment};

use super::stores::shipment_row;
use super::tenants::{credential_owner, tenant_credentials};
use super::writer::WriteKind;
use super::{
    execute, from_ms, parse_time, query_row, stamp, unavailable, SqliteStore, QUARANTINE_KEPT,
    SERVICE,
};

/// The columns [`quarantine_row`] reads, in its order.
const QUARANTINE_COLUMNS: &str = "tenant_id, digest, carrier, reason, first_received_at, \
     last_received_at, times, last_replay_at, last_replay_outcome";

fn quarantine_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<QuarantineView>> {
    let carrier: String = row.get(2)?;
    let first: String = row.get(4)?;
    let last: String = row.get(5)?;
    let replay_at: Option<String> = row.get(7)?;
    let replay_outcome: Option<String> = row.get(8)?;
    Ok(carrier
        .parse::<Carrier>()
        .ok()
        .map(|carrier| QuarantineView {
            tenant_id: row.get(0).unwrap_or_default(),
            id: row.get(1).unwrap_or_default(),
            carrier,
            reason: row.get(3).unwrap_or_default(),
            first_received_at: parse_time(&first),
            last_received_at: parse_time(&last),
            times: row.get(6).unwrap_or(1),
            last_replay: replay_at
                .zip(replay_outcome)
                .map(|(at, outcome)| ReplayNote {
                    at: parse_time(&at),
                    outcome,
                }),
        }))
}

/// The columns [`tenant_row`] reads, in its order.
const TENANT_COLUMNS: &str = "id, enabled, include_source, created_at, file_managed";

fn tenant_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Tenant>> {
    let id: String = row.get(0)?;
    let created_at: String = row.get(3)?;
    Ok(TenantId::parse(&id).ok().map(|id| Tenant {
        id,
        enabled: row.get(1).unwrap_or(true),
        include_source: row.get(2).unwrap_or(true),
        created_at: parse_time(&created_at),
        file_managed: row.get(4).unwrap_or(false),
    }))
}

impl SqliteStore {
    /// The kept events of these ids (those still kept), in that order.
    fn kept_events(&self, ids: &[EventId]) -> Result<Vec<CanonicalEvent>, Unavailable> {
        let conn = self.operator_read();
        let mut events = Vec::new();
        for id in ids {
            let body: Option<Option<String>> = query_row(
                &conn,
                "SELECT body FROM claims WHERE event_id = ?1",
                params![id.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(unavailable("archived events"))?;
            if let Some(event) = body.flatten().and_then(|b| serde_json::from_str(&b).ok()) {
                events.push(event);
            }
        }
        Ok(events)
    }
}

impl AdminStore for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, Unavailable> {
        let created = execute(
            &self.conn(),
            "INSERT INTO tenants (id, include_source, enabled, created_at, file_managed)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO NOTHING",
            params![
                tenant.id.as_str(),
                tenant.include_source,
                tenant.enabled,
                tenant.created_at.to_rfc3339(),
                tenant.file_managed
            ],
        )
        .map_err(unavailable("create tenant"))?;
        self.sync_wal("create tenant")?;
        Ok(created == 1)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
            .map_err(unavailable("list tenants"))?;
        let rows = statement
            .query_map([], tenant_row)
            .map_err(unavailable("list tenants"))?;
        let tenants = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list tenants"))?;
        Ok(tenants.into_iter().flatten().collect())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Unavailable> {
        let found = query_row(
            &self.operator_read(),
            &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
            params![id.as_str()],
            tenant_row,
        )
        .optional()
        .map_err(unavailable("get tenant"))?;
        Ok(found.flatten())
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "UPDATE tenants SET enabled = ?2, include_source = ?3 WHERE id = ?1",
            params![tenant.id.as_str(), tenant.enabled, tenant.include_source],
        )
        .map_err(unavailable("update tenant"))?;
        self.sync_wal("update tenant")?;
        Ok(())
    }

    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<StoredCredential>, Unavailable> {
        tenant_credentials(&self.operator_read(), tenant).map_err(unavailable("list credentials"))
    }

    async fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantId>, Unavailable> {
        let owner = credential_owner(&self.operator_read(), carrier, digest)
            .map_err(unavailable("find credential"))?;
        Ok(owner.and_then(|t| TenantId::parse(&t).ok()))
    }

    async fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> Result<bool, Unavailable> {
        // Never `DO UPDATE`: a key registered for a tenant stays that tenant's.
        let added = execute(
            &self.conn(),
            "INSERT INTO credentials (carrier, digest, tenant_id, added_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (carrier, digest) DO NOTHING",
            params![
                credential.carrier.as_str(),
                credential.digest.to_hex(),
                tenant.as_str(),
                credential.added_at.to_rfc3339()
            ],
        )
        .map_err(unavailable("add credential"))?;
        self.sync_wal("add credential")?;
        Ok(added == 1)
    }

    async fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "DELETE FROM credentials WHERE carrier = ?1 AND digest = ?2 AND tenant_id = ?3",
            params![carrier.as_str(), digest.to_hex(), tenant.as_str()],
        )
        .map_err(unavailable("remove credential"))?;
        self.sync_wal("remove credential")?;
        Ok(())
    }

    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        PushConfigStore::push_config(self, tenant).await
    }

    async fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        SqliteStore::put_push_config(self, tenant, config)
    }

    async fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<PullAccountRecord>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, base_url, user, secret FROM pull_accounts
                 WHERE tenant_id = ?1 ORDER BY carrier",
            )
            .map_err(unavailable("pull accounts"))?;
        let rows = statement
            .query_map(params![tenant.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(unavailable("pull accounts"))?;
        let mut accounts = Vec::new();
        for row in rows {
            let (carrier, base_url, user, secret) = row.map_err(unavailable("pull accounts"))?;
            // A row this build cannot read (a carrier it does not know) is skipped.
            let Ok(carrier) = carrier.parse::<Carrier>() else {
                continue;
            };
            accounts.push(PullAccountRecord {
                carrier,
                base_url,
                user,
                secret: SecretValue::new(secret),
            });
        }
        Ok(accounts)
    }

    async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "INSERT OR REPLACE INTO pull_accounts (tenant_id, carrier, base_url, user, secret)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                tenant.as_str(),
                account.carrier.as_str(),
                account.base_url,
                account.user,
                account.secret.expose()
            ],
        )
        .map_err(unavailable("put pull account"))?;
        self.sync_wal("put pull account")?;
        Ok(())
    }

    async fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> Result<bool, Unavailable> {
        let removed = execute(
            &self.conn(),
            "DELETE FROM pull_accounts WHERE tenant_id = ?1 AND carrier = ?2",
            params![tenant.as_str(), carrier.as_str()],
        )
        .map_err(unavailable("remove pull account"))?;
        self.sync_wal("remove pull account")?;
        Ok(removed > 0)
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> Result<Vec<Attempt>, Unavailable> {
        let (tenant, selection) = (tenant.clone(), selection.clone());
        self.operator_reading("deliveries", move |store| match selection {
            Selection::Awb(awb) => store.attempts(tenant.as_str(), &awb),
            Selection::Between { from, to } => store.attempts_where(
                "tenant_id = ?1 AND at >= ?2 AND at <= ?3",
                params![tenant.as_str(), from.to_rfc3339(), to.to_rfc3339()],
            ),
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeadLetterView>, Unavailable> {
        // The tenant filter and the limit are the database's work: a DLQ can be large.
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT id, event_id, tenant_id, COALESCE(dead_reason, ''), receive_count FROM queue
                 WHERE state = 'dead' AND (?1 IS NULL OR tenant_id = ?1) ORDER BY id LIMIT ?2",
            )
            .map_err(unavailable("list dead letters"))?;
        let rows = statement
            .query_map(
                params![
                    tenant.map(TenantId::as_str),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| {
                    Ok(DeadLetterView {
                        id: row.get::<_, i64>(0)?.to_string(),
                        event_id: row.get(1)?,
                        tenant_id: row.get(2)?,
                        reason: row.get(3)?,
                        attempts: row.get(4)?,
                    })
                },
            )
            .map_err(unavailable("list dead letters"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list dead letters"))
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, Unavailable> {
        // An id that is not a number names no dead letter here.
        let ids: Option<Vec<i64>> =
            ids.map(|ids| ids.iter().filter_map(|id| id.parse().ok()).collect());
        let moved = SqliteStore::redrive(self, ids.as_deref(), Utc::now())?;
        Ok(u64::try_from(moved).unwrap_or(u64::MAX))
    }

    async fn archived_events(
        &self,
        attempts: &[Attempt],
    ) -> Result<Vec<CanonicalEvent>, Unavailable> {
        let ids: Vec<EventId> = attempts.iter().map(|a| a.event_id.clone()).collect();
        self.operator_reading("archived events", move |store| store.kept_events(&ids))
            .await
    }

    async fn enqueue_replays(&self, events: &[CanonicalEvent]) -> Result<(), Unavailable> {
        let now = Utc::now();
        let rows = events
            .iter()
            .map(|event| {
                let body = serde_json::to_string(event)
                    .map_err(|e| Unavailable::new(SERVICE, "replay", e))?;
                Ok((event.event_id.clone(), event.tenant_id.clone(), body))
            })
            .collect::<Result<Vec<_>, Unavailable>>()?;
        // A write of the writer's group, like an accept: committed with the carriers' events
        // instead of holding the connection for a commit and an fsync of its own.
        self.submit("replay", WriteKind::QUEUE, move |conn| {
            for (event_id, tenant_id, body) in &rows {
                execute(conn,
                    "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, enqueued_at, replay) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                    params![event_id.as_str(), tenant_id, body, now.timestamp_millis(), now.to_rfc3339()],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineView>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantined
                 WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR carrier = ?2)
                   AND (?3 IS NULL OR instr(lower(reason), lower(?3)) > 0)
                   AND (?4 IS NULL OR last_received_at >= ?4)
                   AND (?5 IS NULL OR first_received_at <= ?5)
                   AND last_received_at >= ?7
                 ORDER BY first_received_at, tenant_id, digest LIMIT ?6"
            ))
            .map_err(unavailable("list quarantine"))?;
        let rows = statement
            .query_map(
                params![
                    filter.tenant.as_ref().map(TenantId::as_str),
                    filter.carrier.map(Carrier::as_str),
                    filter.reason,
                    filter.from.map(stamp),
                    filter.to.map(stamp),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    stamp(Utc::now() - QUARANTINE_KEPT),
                ],
                quarantine_row,
            )
            .map_err(unavailable("list quarantine"))?;
        let found = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list quarantine"))?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<QuarantinedBody>, Unavailable> {
        let found = query_row(
            &self.operator_read(),
            &format!(
                "SELECT {QUARANTINE_COLUMNS}, body FROM quarantined
                 WHERE tenant_id = ?1 AND digest = ?2 AND last_received_at >= ?3"
            ),
            params![tenant.as_str(), id, stamp(Utc::now() - QUARANTINE_KEPT)],
            |row| {
                let body: Vec<u8> = row.get(9)?;
                Ok(quarantine_row(row)?.map(|view| QuarantinedBody { view, body }))
            },
        )
        .optional()
        .map_err(unavailable("get quarantined body"))?;
        Ok(found.flatten())
    }

    async fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "UPDATE quarantined SET last_replay_at = ?3, last_replay_outcome = ?4
             WHERE tenant_id = ?1 AND digest = ?2",
            params![tenant.as_str(), id, stamp(at), outcome.as_str()],
        )
        .map_err(unavailable("note replay"))?;
        self.sync_wal("note replay")?;
        Ok(())
    }

    async fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        let before = rules.heard_before_ms(now);
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                        courier_id, last_received_ms, shipment_key, last_pulled_ms
                 FROM shipments
                 WHERE terminal = 0 AND tenant_id = ?1 AND carrier = ?2
                   AND COALESCE(last_received_ms, latest_ms) <= ?3
                 ORDER BY COALESCE(last_received_ms, latest_ms)",
            )
            .map_err(unavailable("stale shipments"))?;
        let rows = statement
            .query_map(params![tenant.as_str(), carrier.as_str(), before], |row| {
                Ok(QuietShipment {
                    state: shipment_row(row)?,
                    shipment_key: row.get(9)?,
                    last_pulled_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
                })
            })
            .map_err(unavailable("stale shipments"))?;
        let mut stale = Vec::new();
        for shipment in rows {
            let shipment = shipment.map_err(unavailable("stale shipments"))?;
            // Pulls do not count here: only news from the carrier does.
            if rules.is_quiet(&shipment.state, None, now) {
                stale.push(shipment);
            }
        }
        Ok(stale)
    }

    async fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<Vec<CarrierActivity>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, last_test_at, last_accepted_at, last_rejected_at, last_rejected_reason
                 FROM carrier_activity WHERE tenant_id = ?1",
            )
            .map_err(unavailable("carrier activity"))?;
        let time = |text: Option<String>| text.as_deref().map(parse_time);
        let rows = statement
            .query_map(params![tenant.as_str()], |row| {
                Ok(CarrierActivity {
                    carrier: row.get(0)?,
                    last_test_at: time(row.get(1)?),
                    last_accepted_at: time(row.get(2)?),
                    last_rejected_at: time(row.get(3)?),
                    last_rejected_reason: row.get(4)?,
                    hourly: Vec::new(),
                })
            })
            .map_err(unavailable("carrier activity"))?;
        let mut seen = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("carrier activity"))?;
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, hour_ms, tests, accepted, rejected FROM carrier_hourly
                 WHERE tenant_id = ?1 AND hour_ms >= ?2 ORDER BY carrier, hour_ms",
            )
            .map_err(unavailable("carrier activity"))?;
        let hours = statement
            .query_map(
                params![
                    tenant.as_str(),
                    HourlyActivity::hour_of(since).timestamp_millis()
                ],
                |row| {
                    let carrier: String = row.get(0)?;
                    let hour = DateTime::from_timestamp_millis(row.get(1)?).unwrap_or_default();
                    Ok((
                        carrier,
                        HourlyActivity {
                            hour,
                            tests: row.get(2)?,
                            accepted: row.get(3)?,
                            rejected: row.get(4)?,
                        },
                    ))
                },
            )
            .map_err(unavailable("carrier activity"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("carrier activity"))?;
        for (carrier, hour) in hours {
            if let Some(activity) = seen.iter_mut().find(|a| a.carrier == carrier) {
                activity.hourly.push(hour);
            }
        }
        Ok(Carrier::ALL
            .into_iter()
            .map(|carrier| {
                seen.iter()
                    .find(|a| a.carrier == carrier.as_str())
                    .cloned()
                    .unwrap_or_else(|| CarrierActivity {
                        carrier: carrier.as_str().to_owned(),
                        ..CarrierActivity::default()
                    })
            })
            .collect())
    }

    async fn queue_depth(&self) -> Result<QueueDepth, Unavailable> {
        // `ready` holds the messages due later and those leased to a delivery too.
        let (waiting, dead_letters) = SqliteStore::queue_depth(self)?;
        Ok(QueueDepth {
            waiting,
            dead_letters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::test_support::*;
    use crate::ports::{Activity, Intake};

    fn filter() -> QuarantineFilter {
        QuarantineFilter {
            tenant: None,
            carrier: None,
            reason: None,
            from: None,
            to: None,
            limit: 100,
        }
    }

    #[tokio::test]
    async fn the_quarantine_is_listed_oldest_first_and_filtered() {
        let store = SqliteStore::in_memory().unwrap();
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let mut clickpost = rejected_at(&acme, b"c", "waybill: missing", hours_ago(3));
        clickpost.carrier = Carrier::Clickpost;
        for item in [
            rejected_at(&acme, b"a", "status: unknown DELIVERD", hours_ago(2)),
            rejected_at(&globex, b"b", "Status: unknown", hours_ago(1)),
            clickpost,
        ] {
            store.quarantine(&item).await.unwrap();
        }
        let ids = |views: Vec<QuarantineView>| -> Vec<String> {
            views
                .into_iter()
                .map(|v| format!("{}/{}", v.tenant_id, v.carrier))
                .collect()
        };
        let all = AdminStore::quarantined(&store, &filter()).await.unwrap();
        assert_eq!(
            ids(all),
            ["acme/clickpost", "acme/shipway", "globex/shipway"]
        );
        let cases = [
            (
                QuarantineFilter {
                    tenant: Some(acme.clone()),
                    carrier: Some(Carrier::Shipway),
                    ..filter()
                },
                vec!["acme/shipway"],
            ),
            (
                QuarantineFilter {
                    reason: Some("STATUS: unknown".into()),
                    ..filter()
                },
                vec!["acme/shipway", "globex/shipway"],
            ),
            (
                QuarantineFilter {
                    from: Some(hours_ago(2) - chrono::Duration::minutes(1)),
                    to: Some(hours_ago(2) + chrono::Duration::minutes(30)),
                    ..filter()
                },
                vec!["acme/shipway"],
            ),
            (
                QuarantineFilter {
                    limit: 1,
                    ..filter()
                },
                vec!["acme/clickpost"],
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                ids(AdminStore::quarantined(&store, &filter).await.unwrap()),
                expected,
                "{filter:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_replay_is_noted_on_the_entry_which_is_kept() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let item = rejected_at(&acme, b"{\"awb\":1}", "no status", hours_ago(1));
        store.quarantine(&item).await.unwrap();
        let id = item.body_digest.clone();
        store
            .note_replay(
                &acme,
                &id,
                ReplayOutcome::Accepted,
                at("2026-11-28T08:00:00Z"),
            )
            .await
            .unwrap();
        let found = store.quarantined_body(&acme, &id).await.unwrap().unwrap();
        assert_eq!(found.body, b"{\"awb\":1}");
        assert_eq!(found.view.times, 1);
        assert_eq!(
            found.view.last_replay,
            Some(ReplayNote {
                at: at("2026-11-28T08:00:00Z"),
                outcome: "accepted".into()
            })
        );
        let other = TenantId::parse("globex").unwrap();
        assert_eq!(store.quarantined_body(&other, &id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_past_its_fourteen_days_is_hidden_then_deleted() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let old = rejected_at(&acme, b"old", "no status", hours_ago(15 * 24));
        store.quarantine(&old).await.unwrap();
        assert!(AdminStore::quarantined(&store, &filter())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .quarantined_body(&acme, &old.body_digest)
                .await
                .unwrap(),
            None
        );
        let count = |store: &SqliteStore| -> i64 {
            query_row(&store.conn(), "SELECT COUNT(*) FROM quarantined", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(count(&store), 1, "hidden, not yet deleted");
        let new = rejected_at(&acme, b"new", "no status", hours_ago(0));
        store.quarantine(&new).await.unwrap();
        assert_eq!(count(&store), 1, "the next write deletes it");
        assert_eq!(
            AdminStore::quarantined(&store, &filter()).await.unwrap()[0].id,
            new.body_digest
        );
    }

    #[tokio::test]
    async fn the_carrier_status_view_reads_back_what_was_recorded() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let record = |activity, when: &'static str, detail: Option<&'static str>, count| {
            let (store, acme) = (&store, &acme);
            async move {
                store
                    .record_activity(acme, Carrier::Shiprocket, activity, at(when), detail, count)
                    .await
                    .unwrap()
            }
        };
        record(Activity::PanelTest, "2026-11-27T09:00:00Z", None, 1).await;
        record(
            Activity::Rejected,
            "2026-11-27T09:05:00Z",
            Some("no awb"),
            1,
        )
        .await;
        record(Activity::Accepted, "2026-11-27T07:59:00Z", None, 4).await;
        record(Activity::Accepted, "2026-11-27T09:10:00Z", None, 2).await;
        record(Activity::Accepted, "2026-11-27T09:58:00Z", None, 3).await;
        record(Activity::Accepted, "2026-11-27T10:01:00Z", None, 1).await;
        let since = at("2026-11-27T08:30:00Z");
        let view = AdminStore::carrier_activity(&store, &acme, since)
            .await
            .unwrap();
        assert_eq!(view.len(), 3);
        let hour = |h: &str, tests, accepted, rejected| HourlyActivity {
            hour: at(h),
            tests,
            accepted,
            rejected,
        };
        assert_eq!(
            view[1],
            CarrierActivity {
                carrier: "shiprocket".into(),
                last_test_at: Some(at("2026-11-27T09:00:00Z")),
                last_accepted_at: Some(at("2026-11-27T10:01:00Z")),
                last_rejected_at: Some(at("2026-11-27T09:05:00Z")),
                last_rejected_reason: Some("no awb".into()),
                // 07:00 is before the hour of `since`; 08:00 had nothing.
                hourly: vec![
                    hour("2026-11-27T09:00:00Z", 1, 5, 1),
                    hour("2026-11-27T10:00:00Z", 0, 1, 0),
                ],
            }
        );
        assert_eq!(view[0].last_test_at, None);
        assert_eq!(view[0].hourly, []);
    }
}
