//! The dispatcher's and reconciler's stores: credentials, circuits, Push Configs, shipment
//! states, pull accounts, the delivery log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::auth::CredentialDigest;
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::model::{Carrier, EventId, Status, TenantId};
use crate::ports::{
    Attempt, AttemptOutcome, ConfigStore, DeliveryLog, PushConfigStore, ShipmentStates, TenantAuth,
    Unavailable,
};
use crate::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret};
use crate::reconcile::{
    quietest, PullAccountRecord, PullAccountSource, QuietRules, QuietShipment, ShipmentIndex,
};
use crate::shipment::ShipmentState;

use super::writer::WriteKind;
use super::{execute, from_ms, parse_time, query_row, unavailable, SqliteStore};

impl ConfigStore for SqliteStore {
    async fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantAuth>, Unavailable> {
        let found: Option<(String, Option<bool>, Option<bool>)> = query_row(&self.read(),
                "SELECT c.tenant_id, t.include_source, t.enabled FROM credentials c LEFT JOIN tenants t ON t.id = c.tenant_id
                 WHERE c.carrier = ?1 AND c.digest = ?2",
                params![carrier.as_str(), digest.to_hex()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(unavailable("find credential"))?;
        Ok(found.and_then(|(tenant, include_source, enabled)| {
            TenantId::parse(&tenant).ok().map(|tenant_id| TenantAuth {
                tenant_id,
                include_source: include_source.unwrap_or(true),
                enabled: enabled.unwrap_or(true),
            })
        }))
    }
}

impl CircuitStore for SqliteStore {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        query_row(
            &self.read(),
            "SELECT opened_at_ms, failures, last_error, probe_at_ms FROM circuits WHERE tenant_id = ?1",
            params![tenant.as_str()],
            |row| {
                Ok(OpenCircuit {
                    opened_at: from_ms(row.get(0)?),
                    failures: row.get(1)?,
                    last_error: row.get(2)?,
                    probe_at: from_ms(row.get(3)?),
                })
            },
        )
        .optional()
        .map_err(unavailable("read circuit"))
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        // The circuits' writes go with the dispatcher's others, in the writer's next group.
        let (tenant, circuit) = (tenant.to_string(), circuit.clone());
        self.submit("save circuit", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "INSERT OR REPLACE INTO circuits (tenant_id, opened_at_ms, failures, last_error, probe_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    tenant,
                    circuit.opened_at.timestamp_millis(),
                    circuit.failures,
                    circuit.last_error,
                    circuit.probe_at.timestamp_millis()
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        let (tenant, seen, next) = (
            tenant.to_string(),
            seen.timestamp_millis(),
            next.timestamp_millis(),
        );
        let claimed = self
            .submit("claim probe", WriteKind::STATEMENT, move |conn| {
                execute(
                    conn,
                    "UPDATE circuits SET probe_at_ms = ?3 WHERE tenant_id = ?1 AND probe_at_ms = ?2",
                    params![tenant, seen, next],
                )
            })
            .await?;
        Ok(claimed == 1)
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        let tenant = tenant.to_string();
        self.submit("close circuit", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "DELETE FROM circuits WHERE tenant_id = ?1",
                params![tenant],
            )
            .map(|_| ())
        })
        .await
    }
}

impl PushConfigStore for SqliteStore {
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        type Row = (String, String, String, Option<String>, i64, bool, String);
        let row: Option<Row> = query_row(&self.read(),
                "SELECT url, headers, statuses, signing_secret, timeout_ms, enabled, delivery FROM push_configs WHERE tenant_id = ?1",
                params![tenant.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()
            .map_err(unavailable("push config"))?;
        let Some((url, headers, statuses, secret, timeout_ms, enabled, delivery)) = row else {
            return Ok(None);
        };
        let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
        let statuses: Vec<String> = serde_json::from_str(&statuses).unwrap_or_default();
        // Read as written: a rule made stricter since does not make the tenant unreadable.
        Ok(Some(PushConfig {
            url: PushUrl::stored(url),
            headers: PushHeaders::stored(
                headers
                    .into_iter()
                    .map(|(n, v)| (n, SecretValue::new(v)))
                    .collect(),
            ),
            statuses: statuses.iter().filter_map(|s| s.parse().ok()).collect(),
            signing_secret: secret.and_then(|s| SigningSecret::parse(&s).ok()),
            timeout: u64::try_from(timeout_ms).map_or(PushTimeout::DEFAULT, |ms| {
                PushTimeout::clamped(Duration::from_millis(ms))
            }),
            enabled,
            // A mode this build does not know (written by a newer one): every event, which
            // loses nothing.
            delivery: delivery.parse().unwrap_or_default(),
        }))
    }
}

/// A `shipments` row read with [`SHIPMENT_COLUMNS`].
pub(super) fn shipment_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShipmentState> {
    let status: Option<String> = row.get(2)?;
    let carrier: Option<String> = row.get(4)?;
    Ok(ShipmentState {
        latest_event_time: from_ms(row.get(0)?),
        latest_event_id: row.get::<_, Option<String>>(1)?.map(EventId::from_stored),
        last_status: status.and_then(|s| s.parse().ok()),
        terminal: row.get(3)?,
        carrier: carrier.and_then(|c| c.parse().ok()),
        awb: row.get(5)?,
        order_id: row.get(6)?,
        courier_id: row.get(7)?,
        last_received_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
    })
}

impl ShipmentStates for SqliteStore {
    async fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> Result<Option<ShipmentState>, Unavailable> {
        query_row(
            &self.read(),
            "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                    courier_id, last_received_ms
             FROM shipments WHERE tenant_id = ?1 AND shipment_key = ?2",
            params![tenant.as_str(), shipment_key],
            shipment_row,
        )
        .optional()
        .map_err(unavailable("shipment"))
    }
}

impl SqliteStore {
    /// Sets the tenant's pull accounts to exactly `accounts` (one per carrier).
    pub fn set_pull_accounts(
        &self,
        tenant: &TenantId,
        accounts: &[PullAccountRecord],
    ) -> Result<(), Unavailable> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(unavailable("pull accounts"))?;
        execute(
            &tx,
            "DELETE FROM pull_accounts WHERE tenant_id = ?1",
            params![tenant.as_str()],
        )
        .map_err(unavailable("pull accounts"))?;
        for account in accounts {
            execute(
                &tx,
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
            .map_err(unavailable("pull accounts"))?;
        }
        tx.commit().map_err(unavailable("pull accounts"))?;
        drop(conn);
        self.sync_wal("pull accounts")
    }

    /// The pull accounts of enabled tenants (of `tenant`, at `carrier`, when given).
    pub fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT p.tenant_id, p.carrier, p.base_url, p.user, p.secret
                 FROM pull_accounts p JOIN tenants t ON t.id = p.tenant_id
                 WHERE t.enabled = 1 AND (?1 IS NULL OR p.tenant_id = ?1)
                   AND (?2 IS NULL OR p.carrier = ?2)
                 ORDER BY p.tenant_id, p.carrier",
            )
            .map_err(unavailable("pull accounts"))?;
        let rows = statement
            .query_map(
                params![tenant.map(TenantId::as_str), carrier.map(Carrier::as_str)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        PullAccountRecord {
                            carrier: Carrier::Clickpost,
                            base_url: row.get(2)?,
                            user: row.get(3)?,
                            secret: SecretValue::new(row.get::<_, String>(4)?),
                        },
                    ))
                },
            )
            .map_err(unavailable("pull accounts"))?;
        let mut accounts = Vec::new();
        for row in rows {
            let (tenant, carrier, mut record) = row.map_err(unavailable("pull accounts"))?;
            // A row this build cannot read (a carrier it does not know) is skipped.
            let (Ok(tenant), Ok(carrier)) = (TenantId::parse(&tenant), carrier.parse::<Carrier>())
            else {
                continue;
            };
            record.carrier = carrier;
            accounts.push((tenant, record));
        }
        Ok(accounts)
    }
}

impl PullAccountSource for SqliteStore {
    async fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
        SqliteStore::pull_accounts(self, tenant, carrier)
    }
}

impl ShipmentIndex for SqliteStore {
    async fn quiet_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        // Every shipment that is not terminal and has been quiet at least the shortest
        // threshold; the status-dependent rule is applied to those (`reconcile::quietest`).
        let before = rules.heard_before_ms(now);
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(
                "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                        courier_id, last_received_ms, shipment_key, last_pulled_ms
                 FROM shipments
                 WHERE tenant_id = ?1 AND carrier = ?2 AND terminal = 0
                   AND COALESCE(last_received_ms, latest_ms) <= ?3
                   AND COALESCE(last_pulled_ms, 0) <= ?3",
            )
            .map_err(unavailable("quiet shipments"))?;
        let rows = statement
            .query_map(params![tenant.as_str(), carrier.as_str(), before], |row| {
                Ok(QuietShipment {
                    state: shipment_row(row)?,
                    shipment_key: row.get(9)?,
                    last_pulled_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
                })
            })
            .map_err(unavailable("quiet shipments"))?;
        let found = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("quiet shipments"))?;
        Ok(quietest(found, rules, now, limit))
    }

    async fn mark_pulled(
        &self,
        tenant: &TenantId,
        shipment_keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(unavailable("mark pulled"))?;
        for key in shipment_keys {
            execute(
                &tx,
                "UPDATE shipments SET last_pulled_ms = ?3 WHERE tenant_id = ?1 AND shipment_key = ?2",
                params![tenant.as_str(), key, now.timestamp_millis()],
            )
            .map_err(unavailable("mark pulled"))?;
        }
        tx.commit().map_err(unavailable("mark pulled"))?;
        drop(conn);
        self.sync_wal("mark pulled")
    }
}

impl SqliteStore {
    /// Logs a delivery attempt in the writer's next group without waiting for its commit (a
    /// failure is logged): for `rms serve`'s dispatcher, which acts on its decision whatever the
    /// log says and acknowledges the message after, so the attempt is committed with or before
    /// the acknowledgement. A read right after may not see it yet.
    pub async fn record_attempt_detached(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        let attempt = attempt.clone();
        self.submit_detached("record attempt", move |conn| {
            record_attempt_in(conn, &attempt)
        })
        .await
    }
}

/// The statements of [`DeliveryLog::record_attempt`]: the attempt, and for a delivery, the
/// marker that stops it being delivered again.
fn record_attempt_in(conn: &Connection, attempt: &Attempt) -> rusqlite::Result<()> {
    execute(conn,
        "INSERT INTO deliveries (event_id, tenant_id, awb, status, attempt, outcome, http_status, latency_ms, error, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            attempt.event_id.as_str(),
            attempt.tenant_id,
            attempt.awb,
            attempt.status.as_str(),
            attempt.attempt,
            attempt.outcome.as_str(),
            attempt.http_status,
            i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
            attempt.error,
            attempt.at.to_rfc3339(),
        ],
    )?;
    if attempt.outcome == AttemptOutcome::Delivered {
        execute(
            conn,
            "INSERT OR IGNORE INTO delivered (event_id, at) VALUES (?1, ?2)",
            params![attempt.event_id.as_str(), attempt.at.to_rfc3339()],
        )?;
    }
    Ok(())
}

impl DeliveryLog for SqliteStore {
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        let attempt = attempt.clone();
        self.submit("record attempt", WriteKind::STATEMENTS, move |conn| {
            record_attempt_in(conn, &attempt)
        })
        .await
    }

    async fn was_delivered(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        let found: Option<i64> = query_row(
            &self.read(),
            "SELECT 1 FROM delivered WHERE event_id = ?1",
            params![event_id.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable("was delivered"))?;
        Ok(found.is_some())
    }
}

impl SqliteStore {
    /// Every delivery attempt for a tenant's shipment, oldest first.
    pub fn attempts(&self, tenant: &str, awb: &str) -> Result<Vec<Attempt>, Unavailable> {
        self.attempts_where("tenant_id = ?1 AND awb = ?2", params![tenant, awb])
    }

    pub(super) fn attempts_where(
        &self,
        condition: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<Attempt>, Unavailable> {
        let conn = self.operator_read();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT event_id, tenant_id, awb, status, attempt, outcome, http_status, latency_ms, error, at
                 FROM deliveries WHERE {condition} ORDER BY id"
            ))
            .map_err(unavailable("list deliveries"))?;
        let rows = statement
            .query_map(parameters, |row| {
                let status: String = row.get(3)?;
                let outcome: String = row.get(5)?;
                let at: String = row.get(9)?;
                Ok(Attempt {
                    event_id: EventId::from_stored(row.get::<_, String>(0)?),
                    tenant_id: row.get(1)?,
                    awb: row.get(2)?,
                    status: status.parse().unwrap_or(Status::Unknown),
                    attempt: row.get(4)?,
                    outcome: AttemptOutcome::parse(&outcome).unwrap_or(AttemptOutcome::DeadLetter),
                    http_status: row.get(6)?,
                    latency_ms: row.get(7)?,
                    error: row.get(8)?,
                    at: parse_time(&at),
                })
            })
            .map_err(unavailable("list deliveries"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list deliveries"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::test_support::*;
    use crate::admin::AdminStore;
    use crate::carriers::{normalize, NormalizeContext};
    use crate::ports::Intake;

    #[tokio::test]
    async fn a_quiet_shipment_is_pulled_then_left_alone_but_stays_listed_as_stale() {
        let store = SqliteStore::in_memory().unwrap();
        let now = Utc::now();
        let body = r#"{"waybill":"Q1","cp_id":9,"clickpost_status_code":5,"timestamp":"2026-11-20T09:00:00Z"}"#;
        let ctx = NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            now - chrono::TimeDelta::hours(7),
        );
        let mut event = normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0);
        store.accept(&mut event, now).await.unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let rules = QuietRules::default();
        let quiet = store
            .quiet_shipments(&acme, Carrier::Clickpost, &rules, now, 10)
            .await
            .unwrap();
        assert_eq!(quiet.len(), 1, "in transit, 7 h without news");
        assert_eq!(quiet[0].state.courier_id.as_deref(), Some("9"));
        store
            .mark_pulled(&acme, &[quiet[0].shipment_key.clone()], now)
            .await
            .unwrap();
        let again = store
            .quiet_shipments(&acme, Carrier::Clickpost, &rules, now, 10)
            .await
            .unwrap();
        assert!(again.is_empty(), "just asked: not again before 6 h");
        let stale = AdminStore::stale_shipments(&store, &acme, Carrier::Clickpost, &rules, now)
            .await
            .unwrap();
        assert_eq!(stale.len(), 1, "still without news");
        assert_eq!(
            stale[0].last_pulled_at,
            Some(from_ms(now.timestamp_millis()))
        );
    }

    #[tokio::test]
    async fn the_delivery_mode_is_stored_with_the_push_config() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = tenant_id("acme");
        let mut config = push_to("http://127.0.0.1:9/hook");
        config.delivery = crate::push::Delivery::Latest;
        store.put_push_config(&acme, &config).unwrap();
        let read = PushConfigStore::push_config(&store, &acme)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.delivery, crate::push::Delivery::Latest);
        config.delivery = crate::push::Delivery::Every;
        store.put_push_config(&acme, &config).unwrap();
        let read = PushConfigStore::push_config(&store, &acme)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.delivery, crate::push::Delivery::Every);
    }

    #[tokio::test]
    async fn a_stored_push_config_that_no_longer_validates_is_read_as_written() {
        let store = SqliteStore::in_memory().unwrap();
        // Written before URLs and timeouts were checked on the way in.
        execute(
            &store.conn(),
            "INSERT INTO push_configs (tenant_id, url, headers, statuses, signing_secret, timeout_ms, enabled)
             VALUES ('acme', 'http://169.254.169.254/latest?token=x', '[[\"X A\",\"v\"]]', '[]', NULL, 600000, 1)",
            [],
        )
        .unwrap();
        let config = PushConfigStore::push_config(&store, &tenant_id("acme"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(config.url.as_str(), "http://169.254.169.254/latest?token=x");
        assert_eq!(config.url.to_string(), "http://169.254.169.254/latest?…");
        assert_eq!(config.headers.names(), ["X A"]);
        assert_eq!(config.timeout.get(), PushTimeout::MAX, "brought into range");
    }
}
