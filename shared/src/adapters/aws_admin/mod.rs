//! The admin store on AWS: tenants, keys and Push Configs in the config table, the delivery log,
//! the kept events, the quarantine and the carrier activity in the events table (item layout:
//! `dynamodb.rs`), replays on the events queue, and dead letters on its DLQ.
//!
//! The quarantine is read one tenant at a time (a Query of `QUARANTINE#<tenant>`); a listing
//! across tenants lists the tenants first. Its filters are applied here: a quarantine is small
//! (one item per distinct rejected body, kept 14 days).
//!
//! Each item kind's key, writing and reading are in `items.rs`; the dead-letter queue's listing
//! and redrive in `dead_letters.rs`.

mod dead_letters;
pub(super) mod items;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_sqs::types::{BatchResultErrorEntry, QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use tracing::warn;

use super::dynamodb::{
    claim_key, condition_failed, delivery_pk, is_claim, legacy_claim_key, page_pk, s, stamp,
    tenant_day, text, DynamoConfigStore, DynamoEventStore, PageEntry, BY_TENANT_DAY, PACKED_EVENT,
    PAGE_ENTRIES, SERVICE as DYNAMODB,
};
use super::sqs::attribute;
use crate::admin::{
    AdminStore, DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth,
    ReplayOutcome, Selection, StoredCredential, Tenant,
};
use crate::auth::CredentialDigest;
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::model::{CanonicalEvent, Carrier, TenantId};
use crate::ports::{Attempt, CarrierActivity, PushConfigStore, Unavailable};
use crate::push::PushConfig;
use crate::reconcile::{PullAccountRecord, QuietRules, QuietShipment};
use items::{activity, attempt, credential, pull_account, quarantine, tenant};

const SQS: &str = "SQS";
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Rounds of BatchGetItem for the keys DynamoDB left unprocessed (throttling), before giving up.
const BATCH_GET_ROUNDS: u32 = 6;

/// The stack's table and queue names (the `rms` CLI reads them from the stack's outputs).
#[derive(Debug, Clone)]
pub struct AwsNames {
    pub config_table: String,
    pub events_table: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// [`AdminStore`] on DynamoDB and SQS.
#[derive(Clone)]
pub struct DynamoAdmin {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    names: AwsNames,
    config: DynamoConfigStore,
}

impl DynamoAdmin {
    pub fn new(
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        names: AwsNames,
    ) -> Self {
        let config = DynamoConfigStore::new(dynamo.clone(), &names.config_table);
        DynamoAdmin {
            dynamo,
            sqs,
            names,
            config,
        }
    }

    /// Every item of one Query, page after page.
    async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Unavailable> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Unavailable::new(DYNAMODB, "Query", e))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), Unavailable> {
        self.dynamo
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "TransactWriteItems", e))?;
        Ok(())
    }

    async fn pause(&self, round: u32) {
        if let Some(sleep) = self.dynamo.config().sleep_impl() {
            sleep.sleep(Duration::from_millis(50 << round.min(6))).await;
        }
    }

    /// SQS's approximate count of a queue's messages: visible, in flight (being delivered, or
    /// backing off before a retry: the dispatcher hides a message for its delay) and delayed.
    async fn approximate_count(&self, queue_url: &str) -> Result<u64, Unavailable> {
        let names = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ];
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "GetQueueAttributes", e))?;
        let attributes = answer.attributes.unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|name| attributes.get(name))
            .filter_map(|count| count.parse::<u64>().ok())
            .sum())
    }
}

/// The UTC days from `from` to `to`, both included.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let (mut day, last) = (from.date_naive(), to.date_naive());
    let mut all = Vec::new();
    while day <= last {
        all.push(day);
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    all
}

/// Whether a transaction was cancelled because one of its conditions failed (an expected
/// answer, not an outage).
fn condition_cancelled(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    match e.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

fn put_item(
    table: &str,
    item: HashMap<String, AttributeValue>,
    condition: Option<&str>,
) -> Result<TransactWriteItem, Unavailable> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .map_err(|e| Unavailable::new(DYNAMODB, "TransactWriteItems", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn delete_item(
    table: &str,
    key: HashMap<String, AttributeValue>,
    condition: Option<(&str, HashMap<String, AttributeValue>)>,
) -> Result<TransactWriteItem, Unavailable> {
    let (condition, values) = condition.unzip();
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_values(values)
        .build()
        .map_err(|e| Unavailable::new(DYNAMODB, "TransactWriteItems", e))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// Open circuits are the dispatcher's items in the config table.
impl CircuitStore for DynamoAdmin {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        self.config.open_circuit(tenant).await
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        self.config.save_open_circuit(tenant, circuit).await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        self.config.claim_probe(tenant, seen, next).await
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        self.config.close_circuit(tenant).await
    }
}

impl AdminStore for DynamoAdmin {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, Unavailable> {
        let put = self
            .dynamo
            .put_item()
            .table_name(&self.names.config_table)
            .set_item(Some(tenant::item(
                &tenant.id,
                tenant.include_source,
                tenant.enabled,
                tenant.created_at,
            )))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|err| err.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(Unavailable::new(DYNAMODB, "PutItem", e)),
        }
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, Unavailable> {
        let mut tenants = Vec::new();
        let mut start = None;
        loop {
            // Tenants are few and this is an ops call: a filtered Scan, not an index to keep.
            let page = self
                .dynamo
                .scan()
                .table_name(&self.names.config_table)
                .filter_expression("sk = :profile")
                .expression_attribute_values(":profile", s(tenant::PROFILE))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Unavailable::new(DYNAMODB, "Scan", e))?;
            tenants.extend(page.items().iter().filter_map(tenant::from));
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        tenants.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(tenants)
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Unavailable> {
        let found = self
            .dynamo
            .get_item()
            .table_name(&self.names.config_table)
            .set_key(Some(tenant::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found.item().and_then(tenant::from))
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<(), Unavailable> {
        // The whole profile again (PutItem rather than UpdateItem: one SDK operation less in
        // the admin Lambda's zip, which is close to its size limit), never a new one.
        self.dynamo
            .put_item()
            .table_name(&self.names.config_table)
            .set_item(Some(tenant::item(
                &tenant.id,
                tenant.include_source,
                tenant.enabled,
                tenant.created_at,
            )))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "PutItem", e))?;
        Ok(())
    }

    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<StoredCredential>, Unavailable> {
        let query = self
            .dynamo
            .query()
            .table_name(&self.names.config_table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :keys)")
            .expression_attribute_values(":pk", s(tenant::pk(tenant)))
            .expression_attribute_values(":keys", s(credential::INDEX_PREFIX))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        let mut keys: Vec<StoredCredential> = items.iter().filter_map(credential::from).collect();
        keys.sort_by_key(|k| (k.carrier.as_str(), k.added_at));
        Ok(keys)
    }

    async fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantId>, Unavailable> {
        let found = self
            .dynamo
            .get_item()
            .table_name(&self.names.config_table)
            .set_key(Some(credential::owner_key(carrier, digest)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found.item().and_then(credential::owner_from))
    }

    async fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> Result<bool, Unavailable> {
        let table = &self.names.config_table;
        let (carrier, digest) = (credential.carrier, &credential.digest);
        // A key belongs to one tenant: the transaction is cancelled, and nothing written, if the
        // key is registered already (another request may have registered it in the meantime).
        let owner = put_item(
            table,
            credential::owner_item(carrier, digest, tenant, credential.added_at),
            Some("attribute_not_exists(pk)"),
        )?;
        let index = put_item(
            table,
            credential::index_item(carrier, digest, tenant, credential.added_at),
            None,
        )?;
        let written = self
            .dynamo
            .transact_write_items()
            .set_transact_items(Some(vec![owner, index]))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if condition_cancelled(&e) => Ok(false),
            Err(e) => Err(Unavailable::new(DYNAMODB, "TransactWriteItems", e)),
        }
    }

    async fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<(), Unavailable> {
        let table = &self.names.config_table;
        // Never removes another tenant's key; removing a removed key is a no-op.
        let owner = delete_item(
            table,
            credential::owner_key(carrier, digest),
            Some((
                "attribute_not_exists(pk) OR tenant_id = :tenant",
                HashMap::from([(":tenant".to_owned(), s(tenant.as_str()))]),
            )),
        )?;
        let index = delete_item(table, credential::index_key(tenant, carrier, digest), None)?;
        self.transact(vec![owner, index]).await
    }

    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        self.config.push_config(tenant).await
    }

    async fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        self.config.put_push_config(tenant, config).await
    }

    async fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<PullAccountRecord>, Unavailable> {
        let query = self
            .dynamo
            .query()
            .table_name(&self.names.config_table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :pull)")
            .expression_attribute_values(":pk", s(tenant::pk(tenant)))
            .expression_attribute_values(":pull", s(pull_account::PREFIX))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        Ok(items.iter().filter_map(pull_account::from).collect())
    }

    async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        self.dynamo
            .put_item()
            .table_name(&self.names.config_table)
            .set_item(Some(pull_account::item(tenant, account)))
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "PutItem", e))?;
        Ok(())
    }

    async fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> Result<bool, Unavailable> {
        let removed = self
            .dynamo
            .delete_item()
            .table_name(&self.names.config_table)
            .set_key(Some(pull_account::key(tenant, carrier)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "DeleteItem", e))?;
        Ok(removed.attributes().is_some_and(|a| !a.is_empty()))
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> Result<Vec<Attempt>, Unavailable> {
        let table = &self.names.events_table;
        match selection {
            Selection::Awb(awb) => {
                let query = self
                    .dynamo
                    .query()
                    .table_name(table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(delivery_pk(tenant.as_str(), awb)));
                // Sort keys lead with the event (`dynamodb.rs`; before, with the time): oldest
                // first is a sort here, over one shipment's attempts. The partition holds its
                // events' claims too.
                let items: Vec<_> = self
                    .query_all(query)
                    .await?
                    .into_iter()
                    .filter(|item| !is_claim(item))
                    .collect();
                let mut attempts = attempt::all_from(&items);
                attempts.sort_by_key(|a| (a.at, a.attempt));
                Ok(attempts)
            }
            Selection::Between { from, to } => {
                let from_key = from.to_rfc3339_opts(SecondsFormat::Millis, true);
                // `~` sorts after `#`: every key of the last millisecond is included.
                let to_key = format!("{}~", to.to_rfc3339_opts(SecondsFormat::Millis, true));
                let mut all = Vec::new();
                for day in days(*from, *to) {
                    // The delivery log's pages (`dynamodb.rs`): a page's key is its first
                    // attempt's time, and a batch takes at most the dispatcher's timeout (60 s):
                    // pages from two minutes before `from` may hold attempts in the range.
                    let page_from = (*from - chrono::Duration::minutes(2))
                        .to_rfc3339_opts(SecondsFormat::Millis, true);
                    let query = self
                        .dynamo
                        .query()
                        .table_name(table)
                        .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                        .expression_attribute_values(":pk", s(page_pk(tenant.as_str(), day)))
                        .expression_attribute_values(":from", s(&page_from))
                        .expression_attribute_values(":to", s(&to_key));
                    for item in self.query_all(query).await? {
                        let entries = match item.get(PAGE_ENTRIES) {
                            Some(AttributeValue::B(packed)) => {
                                super::packed::decompress(packed.as_ref())
                                    .map_err(|e| e.to_string())
                                    .and_then(|json| {
                                        serde_json::from_slice::<Vec<PageEntry>>(&json)
                                            .map_err(|e| e.to_string())
                                    })
                            }
                            _ => Err("no entries".to_owned()),
                        };
                        match entries {
                            Ok(entries) => all.extend(
                                entries
                                    .iter()
                                    .filter_map(PageEntry::attempt)
                                    .filter(|a| (*from..=*to).contains(&a.at)),
                            ),
                            Err(e) => {
                                warn!(pk = ?text(&item, "pk"), sk = ?text(&item, "sk"), error = %e, "unreadable delivery log page skipped")
                            }
                        }
                    }
                    // Attempts written before the pages, in the index until they expire.
                    let query = self
                        .dynamo
                        .query()
                        .table_name(table)
                        .index_name(BY_TENANT_DAY)
                        .key_condition_expression(
                            "tenant_day = :day AND at_key BETWEEN :from AND :to",
                        )
                        .expression_attribute_values(":day", s(tenant_day(tenant.as_str(), day)))
                        .expression_attribute_values(":from", s(&from_key))
                        .expression_attribute_values(":to", s(&to_key));
                    all.extend(
                        attempt::all_from(&self.query_all(query).await?)
                            .into_iter()
                            .filter(|a| (*from..=*to).contains(&a.at)),
                    );
                }
                all.sort_by(|a, b| {
                    (a.at, a.event_id.as_str(), a.attempt).cmp(&(
                        b.at,
                        b.event_id.as_str(),
                        b.attempt,
                    ))
                });
                Ok(all)
            }
        }
    }

    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeadLetterView>, Unavailable> {
        self.list_dead_letters(tenant, limit).await
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, Unavailable> {
        self.redrive_dead_letters(ids).await
    }

    async fn archived_events(
        &self,
        attempts: &[Attempt],
    ) -> Result<Vec<CanonicalEvent>, Unavailable> {
        let mut unique: Vec<&Attempt> = Vec::new();
        for attempt in attempts {
            if !unique.iter().any(|a| a.event_id == attempt.event_id) {
                unique.push(attempt);
            }
        }
        let table = &self.names.events_table;
        let mut found: HashMap<String, CanonicalEvent> = HashMap::new();
        // Each event's claim where it is kept now, in its shipment's partition, and where the code
        // before queue-first kept it (`EVENT#`), read until those expire: two keys per event.
        for chunk in unique.chunks(BATCH_GET_MAX / 2) {
            let keys: Vec<_> = chunk
                .iter()
                .flat_map(|a| {
                    [
                        claim_key(a.tenant_id.as_str(), &a.awb, &a.event_id),
                        legacy_claim_key(&a.event_id),
                    ]
                })
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("#event, #packed")
                    .expression_attribute_names("#event", "event")
                    .expression_attribute_names("#packed", PACKED_EVENT)
                    .build()
                    .map_err(|e| Unavailable::new(DYNAMODB, "BatchGetItem", e))?,
            );
            let mut round = 0;
            while let Some(request) = pending.take() {
                if round == BATCH_GET_ROUNDS {
                    return Err(Unavailable::new(
                        DYNAMODB,
                        "BatchGetItem",
                        "keys left unprocessed after every retry (throttled)",
                    ));
                }
                if round > 0 {
                    self.pause(round).await;
                }
                round += 1;
                let answer = self
                    .dynamo
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| Unavailable::new(DYNAMODB, "BatchGetItem", e))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default()
                {
                    // Packed (`packed.rs`), or JSON text in claims written before.
                    let event = match (item.get(PACKED_EVENT), text(&item, "event")) {
                        (Some(AttributeValue::B(packed)), _) => {
                            super::packed::unpack(packed.as_ref()).map_err(|e| e.to_string())
                        }
                        (_, Some(body)) => {
                            serde_json::from_str::<CanonicalEvent>(&body).map_err(|e| e.to_string())
                        }
                        _ => continue, // an old claim never queued: nothing to replay
                    };
                    match event {
                        Ok(event) => {
                            found.insert(event.event_id.to_string(), event);
                        }
                        Err(e) => warn!(error = %e, "a kept event is not readable; not replayed"),
                    }
                }
                pending = answer
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(table)
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(unique
            .into_iter()
            .filter_map(|a| found.remove(a.event_id.as_str()))
            .collect())
    }

    async fn enqueue_replays(&self, events: &[CanonicalEvent]) -> Result<(), Unavailable> {
        // Batches of at most SQS_BATCH events and SQS_BATCH_BYTES of bodies.
        let mut batches: Vec<Vec<(&CanonicalEvent, String)>> = Vec::new();
        let mut bytes = 0;
        for event in events {
            let body = serde_json::to_string(event)
                .map_err(|e| Unavailable::new(SQS, "SendMessageBatch", e))?;
            let size = body.len();
            match batches.last_mut() {
                Some(batch) if batch.len() < SQS_BATCH && bytes + size <= SQS_BATCH_BYTES => {
                    batch.push((event, body));
                    bytes += size;
                }
                _ => {
                    batches.push(vec![(event, body)]);
                    bytes = size;
                }
            }
        }
        // The batches of one call go at once: a replay of thousands takes seconds, not minutes.
        futures_util::future::try_join_all(
            batches.into_iter().map(|batch| self.send_replays(batch)),
        )
        .await?;
        Ok(())
    }

    async fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineView>, Unavailable> {
        let tenants = match &filter.tenant {
            Some(tenant) => vec![tenant.clone()],
            None => self.tenants().await?.into_iter().map(|t| t.id).collect(),
        };
        let now = Utc::now();
        let mut found = Vec::new();
        for tenant in tenants {
            let mut query = self
                .dynamo
                .query()
                .table_name(&self.names.events_table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(quarantine::pk(&tenant)))
                .projection_expression(quarantine::PROJECTION)
                .consistent_read(true);
            for (alias, name) in quarantine::PROJECTED_NAMES {
                query = query.expression_attribute_names(alias, name);
            }
            found.extend(
                self.query_all(query)
                    .await?
                    .iter()
                    .filter_map(|item| quarantine::from(item, now))
                    .filter(|view| filter.matches(view)),
            );
        }
        Ok(filter.order_and_limit(found))
    }

    async fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<QuarantinedBody>, Unavailable> {
        let found = self
            .dynamo
            .get_item()
            .table_name(&self.names.events_table)
            .set_key(Some(quarantine::key(tenant, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found.item().and_then(|item| {
            Some(QuarantinedBody {
                view: quarantine::from(item, Utc::now())?,
                body: quarantine::body_from(item)?,
            })
        }))
    }

    async fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        let noted = self
            .dynamo
            .update_item()
            .table_name(&self.names.events_table)
            .set_key(Some(quarantine::key(tenant, id)))
            .update_expression("SET last_replay_at = :at, last_replay_outcome = :outcome")
            // Never a new, partial item for an entry that expired meanwhile.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(stamp(at)))
            .expression_attribute_values(":outcome", s(outcome.as_str()))
            .send()
            .await;
        match noted {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(Unavailable::new(DYNAMODB, "UpdateItem", e)),
        }
    }

    async fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        DynamoEventStore::new(self.dynamo.clone(), &self.names.events_table)
            .stale_shipments(tenant, carrier, rules, now)
            .await
    }

    async fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<Vec<CarrierActivity>, Unavailable> {
        let query = self
            .dynamo
            .query()
            .table_name(&self.names.events_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(activity::pk(tenant)))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        Ok(activity::from(&items, since))
    }

    async fn queue_depth(&self) -> Result<QueueDepth, Unavailable> {
        Ok(QueueDepth {
            waiting: self.approximate_count(&self.names.queue_url).await?,
            dead_letters: self.approximate_count(&self.names.dlq_url).await?,
        })
    }
}

/// The most messages one SendMessageBatch takes, and the most bytes of their bodies (SQS's
/// limit for a batch, with room for the attributes).
const SQS_BATCH: usize = 10;
const SQS_BATCH_BYTES: usize = 200 * 1024;

impl DynamoAdmin {
    /// Queues one batch of events again, as ingest queues them (`sqs.rs`), plus `replay`: the
    /// dispatcher pushes each even if it was delivered before. An error if SQS refused any.
    async fn send_replays(&self, batch: Vec<(&CanonicalEvent, String)>) -> Result<(), Unavailable> {
        let failed =
            |e: &dyn std::fmt::Display| Unavailable::new(SQS, "SendMessageBatch", e.to_string());
        let count = batch.len();
        let mut entries = Vec::with_capacity(count);
        for (n, (event, body)) in batch.into_iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(body)
                .message_group_id(event.tenant_id.as_str())
                .message_attributes("tenant_id", attribute(event.tenant_id.as_str())?)
                .message_attributes("carrier", attribute(event.carrier.as_str())?)
                .message_attributes("event_id", attribute(event.event_id.as_str())?)
                .message_attributes("replay", attribute("true")?)
                .build()
                .map_err(|e| failed(&e))?;
            entries.push(entry);
        }
        let sent = self
            .sqs
            .send_message_batch()
            .queue_url(&self.names.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "SendMessageBatch", e))?;
        match refused(sent.failed(), count) {
            None => Ok(()),
            Some(refused) => Err(failed(&format!("replayed events not queued: {refused}"))),
        }
    }
}

/// What SQS refused of a batch of `count` entries, for an error: how many, and why the first.
pub(super) fn refused(failed: &[BatchResultErrorEntry], count: usize) -> Option<String> {
    let first = failed.first()?;
    Some(format!(
        "{} of {count}, the first: {}: {}",
        failed.len(),
        first.code(),
        first.message().unwrap_or("no reason given")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_range_covers_every_utc_day_it_touches() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let d = days(at("2024-02-28T23:00:00Z"), at("2024-03-01T00:30:00+00:00"));
        let names: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(names, ["2024-02-28", "2024-02-29", "2024-03-01"]);
        assert_eq!(
            days(at("2024-01-02T00:00:00Z"), at("2024-01-01T00:00:00Z")),
            []
        );
    }
}
