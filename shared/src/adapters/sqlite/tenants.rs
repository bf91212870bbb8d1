//! The tenants `rms serve`'s configuration file defines, their keys and Push Configs.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::admin::StoredCredential;
use crate::auth::CredentialDigest;
use crate::model::{Carrier, TenantId};
use crate::ports::Unavailable;
use crate::push::{PushConfig, SigningSecret};

use super::{execute, parse_time, query_row, unavailable, SqliteStore, SERVICE};

/// A tenant as `rms serve`'s configuration file defines it: all that is stored for it
/// ([`SqliteStore::apply_file_tenants`]).
#[derive(Debug, Clone)]
pub struct FileTenant {
    pub id: TenantId,
    pub enabled: bool,
    pub include_source: bool,
    pub keys: Vec<(Carrier, CredentialDigest)>,
    pub push: Option<PushConfig>,
}

/// What storing the file's tenants changed besides their own settings.
#[derive(Debug, Default)]
pub struct FileTenantsApplied {
    /// Keys of the file's tenants that the file does not list (added through the admin API
    /// before the tenant was in the file, or taken out of the file): revoked.
    pub revoked: Vec<(TenantId, StoredCredential)>,
    /// Tenants the file defined before and does not any more: kept, no longer file-managed.
    pub released: Vec<TenantId>,
}

/// Why the file's tenants were not stored (and nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum FileTenantsError {
    /// A key the file gives `tenant` is `owner`'s in the database.
    #[error("this {carrier} key is tenant {owner}'s in the database; a key identifies one tenant")]
    KeyOwned {
        tenant: TenantId,
        carrier: Carrier,
        digest: CredentialDigest,
        owner: String,
    },
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

fn write_push_config(
    conn: &Connection,
    tenant: &TenantId,
    config: &PushConfig,
) -> Result<(), Unavailable> {
    let headers: Vec<(&str, &str)> = config
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    let statuses: Vec<&str> = config.statuses.iter().map(|s| s.as_str()).collect();
    let headers = serde_json::to_string(&headers)
        .map_err(|e| Unavailable::new(SERVICE, "put push config", e))?;
    let statuses = serde_json::to_string(&statuses)
        .map_err(|e| Unavailable::new(SERVICE, "put push config", e))?;
    execute(conn,
            "INSERT INTO push_configs (tenant_id, url, headers, statuses, signing_secret, timeout_ms, enabled, delivery)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, headers = excluded.headers,
               statuses = excluded.statuses, signing_secret = excluded.signing_secret,
               timeout_ms = excluded.timeout_ms, enabled = excluded.enabled,
               delivery = excluded.delivery",
            params![
                tenant.as_str(),
                config.url.as_str(),
                headers,
                statuses,
                config.signing_secret.as_ref().map(SigningSecret::expose),
                i64::try_from(config.timeout.as_millis()).unwrap_or(i64::MAX),
                config.enabled,
                config.delivery.as_str(),
            ],
        )
        .map_err(unavailable("put push config"))?;
    Ok(())
}

pub(super) fn tenant_credentials(
    conn: &Connection,
    tenant: &TenantId,
) -> rusqlite::Result<Vec<StoredCredential>> {
    let mut statement = conn.prepare_cached(
        "SELECT carrier, digest, added_at FROM credentials WHERE tenant_id = ?1
         ORDER BY added_at, carrier, digest",
    )?;
    let rows = statement.query_map(params![tenant.as_str()], |row| {
        let carrier: String = row.get(0)?;
        let digest: String = row.get(1)?;
        let added_at: String = row.get(2)?;
        Ok(carrier
            .parse::<Carrier>()
            .ok()
            .zip(CredentialDigest::from_hex(&digest))
            .map(|(carrier, digest)| StoredCredential {
                carrier,
                digest,
                added_at: parse_time(&added_at),
            }))
    })?;
    let credentials = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(credentials.into_iter().flatten().collect())
}

pub(super) fn credential_owner(
    conn: &Connection,
    carrier: Carrier,
    digest: &CredentialDigest,
) -> rusqlite::Result<Option<String>> {
    query_row(
        conn,
        "SELECT tenant_id FROM credentials WHERE carrier = ?1 AND digest = ?2",
        params![carrier.as_str(), digest.to_hex()],
        |row| row.get(0),
    )
    .optional()
}

impl SqliteStore {
    /// Stores the tenants `rms serve`'s configuration file defines, in one transaction, as the
    /// truth for those tenants: their settings, keys (any other key of theirs is revoked) and
    /// Push Config (none in the file: none stored), and marks them file-managed so that the admin
    /// API refuses to change them. A tenant the file defined before and does not any more is
    /// kept, with its keys and Push Config, and is no longer file-managed (the admin API may
    /// change it from now on).
    ///
    /// A key never moves from one tenant to another: a key of the file that the database holds
    /// for another tenant (one the admin API made, or one the file defined before and still
    /// does) fails the whole start, and nothing is changed. Keys the file takes away from its
    /// tenants are revoked first, so a key moved between two tenants of the file in one edit is
    /// revoked from one and added to the other.
    pub fn apply_file_tenants(
        &self,
        tenants: &[FileTenant],
        now: DateTime<Utc>,
    ) -> Result<FileTenantsApplied, FileTenantsError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable("store the configured tenants"))?;
        let mut applied = FileTenantsApplied::default();
        for tenant in tenants {
            for stored in
                tenant_credentials(&tx, &tenant.id).map_err(unavailable("list credentials"))?
            {
                if !tenant.keys.contains(&(stored.carrier, stored.digest)) {
                    execute(
                        &tx,
                        "DELETE FROM credentials WHERE carrier = ?1 AND digest = ?2 AND tenant_id = ?3",
                        params![stored.carrier.as_str(), stored.digest.to_hex(), tenant.id.as_str()],
                    )
                    .map_err(unavailable("revoke credential"))?;
                    applied.revoked.push((tenant.id.clone(), stored));
                }
            }
        }
        for tenant in tenants {
            execute(
                &tx,
                "INSERT INTO tenants (id, include_source, enabled, created_at, file_managed)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (id) DO UPDATE SET include_source = excluded.include_source,
                       enabled = excluded.enabled, file_managed = 1",
                params![
                    tenant.id.as_str(),
                    tenant.include_source,
                    tenant.enabled,
                    now.to_rfc3339()
                ],
            )
            .map_err(unavailable("put tenant"))?;
            for (carrier, digest) in &tenant.keys {
                match credential_owner(&tx, *carrier, digest)
                    .map_err(unavailable("find credential"))?
                {
                    Some(owner) if owner == tenant.id.as_str() => {}
                    Some(owner) => {
                        // Dropping the transaction rolls every change back.
                        return Err(FileTenantsError::KeyOwned {
                            tenant: tenant.id.clone(),
                            carrier: *carrier,
                            digest: *digest,
                            owner,
                        });
                    }
                    None => {
                        execute(
                            &tx,
                            "INSERT INTO credentials (carrier, digest, tenant_id, added_at) VALUES (?1, ?2, ?3, ?4)",
                            params![carrier.as_str(), digest.to_hex(), tenant.id.as_str(), now.to_rfc3339()],
                        )
                        .map_err(unavailable("add credential"))?;
                    }
                }
            }
            match &tenant.push {
                Some(push) => write_push_config(&tx, &tenant.id, push)?,
                None => {
                    execute(
                        &tx,
                        "DELETE FROM push_configs WHERE tenant_id = ?1",
                        params![tenant.id.as_str()],
                    )
                    .map_err(unavailable("remove push config"))?;
                }
            }
        }
        let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let managed: Vec<String> = {
            let mut statement = tx
                .prepare("SELECT id FROM tenants WHERE file_managed = 1 ORDER BY id")
                .map_err(unavailable("list tenants"))?;
            let rows = statement
                .query_map([], |row| row.get(0))
                .map_err(unavailable("list tenants"))?;
            rows.collect::<Result<_, _>>()
                .map_err(unavailable("list tenants"))?
        };
        for id in managed.iter().filter(|id| !ids.contains(&id.as_str())) {
            execute(
                &tx,
                "UPDATE tenants SET file_managed = 0 WHERE id = ?1",
                params![id],
            )
            .map_err(unavailable("release tenant"))?;
            if let Ok(id) = TenantId::parse(id) {
                applied.released.push(id);
            }
        }
        tx.commit()
            .map_err(unavailable("store the configured tenants"))?;
        drop(conn);
        self.sync_wal("store the configured tenants")?;
        Ok(applied)
    }

    pub fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        self.write("put push config", |conn| {
            write_push_config(conn, tenant, config)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::test_support::*;
    use crate::admin::{AdminStore, Tenant};
    use crate::ports::PushConfigStore;

    fn file_tenant(id: &str, keys: &[(Carrier, &str)], push: Option<&str>) -> FileTenant {
        FileTenant {
            id: tenant_id(id),
            enabled: true,
            include_source: true,
            keys: keys.iter().map(|(c, k)| (*c, digest(k))).collect(),
            push: push.map(push_to),
        }
    }

    async fn owner(store: &SqliteStore, carrier: Carrier, key: &str) -> Option<TenantId> {
        AdminStore::credential_owner(store, carrier, &digest(key))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_key_is_never_given_to_a_second_tenant() {
        let store = SqliteStore::in_memory().unwrap();
        let credential = StoredCredential {
            carrier: Carrier::Clickpost,
            digest: digest("shared-key-0123456789"),
            added_at: hours_ago(1),
        };
        assert!(store
            .add_credential(&tenant_id("acme"), &credential)
            .await
            .unwrap());
        assert!(!store
            .add_credential(&tenant_id("globex"), &credential)
            .await
            .unwrap());
        assert_eq!(
            owner(&store, Carrier::Clickpost, "shared-key-0123456789").await,
            Some(tenant_id("acme"))
        );
        // The same key for another carrier is another credential.
        let shipway = StoredCredential {
            carrier: Carrier::Shipway,
            ..credential
        };
        assert!(store
            .add_credential(&tenant_id("globex"), &shipway)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn the_files_tenants_are_stored_as_the_file_says_at_every_start() {
        let store = SqliteStore::in_memory().unwrap();
        // A tenant of the admin API, which the file leaves alone.
        let globex = Tenant {
            id: tenant_id("globex"),
            enabled: false,
            include_source: true,
            created_at: hours_ago(5),
            file_managed: false,
        };
        store.create_tenant(&globex).await.unwrap();
        let api_key = StoredCredential {
            carrier: Carrier::Shipway,
            digest: digest("globex-shipway-key-01"),
            added_at: hours_ago(5),
        };
        store.add_credential(&globex.id, &api_key).await.unwrap();

        let first = vec![file_tenant(
            "acme",
            &[
                (Carrier::Clickpost, "acme-old"),
                (Carrier::Shipway, "acme-sw"),
            ],
            Some("http://127.0.0.1:9000/hook"),
        )];
        let started = at("2026-11-20T08:00:00Z");
        let applied = store.apply_file_tenants(&first, started).unwrap();
        assert!(applied.revoked.is_empty() && applied.released.is_empty());
        let acme = store.tenant(&tenant_id("acme")).await.unwrap().unwrap();
        assert!(acme.file_managed && acme.enabled);
        assert_eq!(acme.created_at, started);

        // The admin API added a key to acme (before acme was in the file, or another way in):
        // the file's next start revokes it, with the key the file no longer lists.
        let stray = StoredCredential {
            carrier: Carrier::Shiprocket,
            digest: digest("acme-stray"),
            added_at: hours_ago(1),
        };
        store.add_credential(&acme.id, &stray).await.unwrap();
        let mut second = first.clone();
        second[0].keys = vec![(Carrier::Clickpost, digest("acme-new"))];
        second[0].enabled = false;
        second[0].push = None;
        let applied = store
            .apply_file_tenants(&second, at("2026-11-21T08:00:00Z"))
            .unwrap();
        let revoked: Vec<Carrier> = applied.revoked.iter().map(|(_, c)| c.carrier).collect();
        assert_eq!(
            revoked,
            [Carrier::Clickpost, Carrier::Shipway, Carrier::Shiprocket]
        );
        assert_eq!(owner(&store, Carrier::Clickpost, "acme-old").await, None);
        assert_eq!(
            owner(&store, Carrier::Clickpost, "acme-new").await,
            Some(acme.id.clone())
        );
        let acme_now = store.tenant(&acme.id).await.unwrap().unwrap();
        assert!(!acme_now.enabled && acme_now.file_managed);
        assert_eq!(acme_now.created_at, acme.created_at, "created once");
        assert_eq!(
            PushConfigStore::push_config(&store, &acme.id)
                .await
                .unwrap(),
            None
        );
        // The admin API's tenant is as it was.
        assert_eq!(store.tenant(&globex.id).await.unwrap().unwrap(), globex);
        assert_eq!(store.credentials(&globex.id).await.unwrap(), vec![api_key]);

        // Out of the file: kept, with its keys, and no longer the file's.
        let applied = store.apply_file_tenants(&[], now_utc()).unwrap();
        assert_eq!(applied.released, vec![acme.id.clone()]);
        let released = store.tenant(&acme.id).await.unwrap().unwrap();
        assert!(!released.file_managed);
        assert_eq!(store.credentials(&acme.id).await.unwrap().len(), 1);
    }

    fn now_utc() -> DateTime<Utc> {
        hours_ago(0)
    }

    #[tokio::test]
    async fn a_file_key_that_another_tenant_holds_fails_the_start_and_changes_nothing() {
        let store = SqliteStore::in_memory().unwrap();
        let globex = Tenant {
            id: tenant_id("globex"),
            enabled: true,
            include_source: true,
            created_at: hours_ago(5),
            file_managed: false,
        };
        store.create_tenant(&globex).await.unwrap();
        let taken = StoredCredential {
            carrier: Carrier::Clickpost,
            digest: digest("globex-clickpost-key"),
            added_at: hours_ago(5),
        };
        store.add_credential(&globex.id, &taken).await.unwrap();
        let file = vec![
            file_tenant("zeta", &[(Carrier::Shipway, "zeta-sw")], None),
            file_tenant(
                "acme",
                &[
                    (Carrier::Shipway, "acme-sw"),
                    (Carrier::Clickpost, "globex-clickpost-key"),
                ],
                Some("http://127.0.0.1:9000/hook"),
            ),
        ];
        match store.apply_file_tenants(&file, now_utc()) {
            Err(FileTenantsError::KeyOwned {
                tenant,
                carrier,
                digest: refused,
                owner,
            }) => {
                assert_eq!(
                    (tenant.as_str(), carrier, owner.as_str()),
                    ("acme", Carrier::Clickpost, "globex")
                );
                assert_eq!(refused, taken.digest);
            }
            other => panic!("expected the key to be refused, got {other:?}"),
        }
        assert_eq!(store.tenants().await.unwrap(), vec![globex.clone()]);
        assert_eq!(owner(&store, Carrier::Shipway, "zeta-sw").await, None);
        assert_eq!(
            owner(&store, Carrier::Clickpost, "globex-clickpost-key").await,
            Some(globex.id)
        );
    }

    #[tokio::test]
    async fn a_key_moved_between_two_tenants_of_the_file_is_revoked_then_added() {
        let store = SqliteStore::in_memory().unwrap();
        let before = vec![
            file_tenant("acme", &[(Carrier::Clickpost, "moving-key")], None),
            file_tenant("zeta", &[], None),
        ];
        store.apply_file_tenants(&before, hours_ago(1)).unwrap();
        let after = vec![
            file_tenant("acme", &[], None),
            file_tenant("zeta", &[(Carrier::Clickpost, "moving-key")], None),
        ];
        let applied = store.apply_file_tenants(&after, now_utc()).unwrap();
        assert_eq!(applied.revoked.len(), 1);
        assert_eq!(applied.revoked[0].0, tenant_id("acme"));
        assert_eq!(
            owner(&store, Carrier::Clickpost, "moving-key").await,
            Some(tenant_id("zeta"))
        );
    }
}
