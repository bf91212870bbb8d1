//! The admin store on AWS: tenants, keys and Push Configs in the config table, the delivery log,
//! the kept events, the quarantine and the carrier activity in the events table (item layout:
//! `dynamodb.rs`), replays on the events queue, and dead letters on its DLQ.
//!
//! The quarantine is read one tenant at a time (a Query of `QUARANTINE#<tenant>`); a listing
//! across tenants lists the tenants first. Its filters are applied here: a quarantine is small
//! (one item per distinct rejected body, kept 14 days).
//!
//! Dead letters are listed by receiving them with a short visibility timeout and making them
//! visible again at once. Redrive is receive → SendMessage to the events queue → DeleteMessage,
//! for "these ids" and for "all" alike: SQS's StartMessageMoveTask moves a whole queue only (no
//! selection), and moto_server (our test double) does not implement it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::AsyncSleep;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use tracing::warn;

use super::dynamodb::{
    activity_pk, claim_key, condition_failed, credential_item, credential_pk, delivery_pk, flag,
    hourly_sk, is_claim, key, legacy_claim_key, page_pk, profile_item, profile_key, quarantine_key,
    s, stamp, tenant_day, tenant_key_item, tenant_key_key, text, DynamoConfigStore,
    DynamoEventStore, PageEntry, BY_TENANT_DAY, PACKED_EVENT, PAGE_ENTRIES, SERVICE as DYNAMODB,
};
use crate::admin::{
    AdminStore, DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth,
    ReplayNote, ReplayOutcome, Selection, StoredCredential, Tenant,
};
use crate::auth::CredentialDigest;
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Activity, Attempt, AttemptOutcome, CarrierActivity, HourlyActivity, PushConfigStore,
    Unavailable,
};
use crate::push::{PushConfig, SecretValue};
use crate::reconcile::{PullAccountRecord, QuietRules, QuietShipment};

const SQS: &str = "SQS";
/// How long a listed dead letter stays hidden if this process dies before showing it again.
const LIST_VISIBILITY_SECONDS: i32 = 5;
/// How long a dead letter being redriven stays hidden while it is copied to the events queue.
const REDRIVE_VISIBILITY_SECONDS: i32 = 30;
/// Attributes the dispatcher adds when it dead-letters a message (`sqs.rs`); a redriven message
/// goes back without them.
const DEAD_LETTER_ATTRIBUTES: [&str; 3] = ["dead_letter_reason", "dead_lettered_at", "reason"];
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Rounds of BatchGetItem for the keys DynamoDB left unprocessed (throttling), before giving up.
const BATCH_GET_ROUNDS: u32 = 6;

/// What a visit of [`DynamoAdmin::walk_dead_letters`] did with a dead letter, and whether the walk
/// has had enough.
enum Visited {
    /// Left on the queue: made visible again after the walk.
    Kept { enough: bool },
    /// Taken off the queue (moved back to the events queue).
    Taken { enough: bool },
}

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

    /// Receives up to 10 messages from the DLQ with their attributes, hidden for `seconds`.
    async fn receive_dead_letters(&self, seconds: i32) -> Result<Vec<Message>, Unavailable> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.names.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(seconds)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "ReceiveMessage", e))?;
        Ok(received.messages.unwrap_or_default())
    }

    /// Walks the dead-letter queue once, for listing and redrive alike: receives batches
    /// (hidden for `seconds`) and hands each message met for the first time to `visit`, until
    /// `visit` has had enough or a batch brings nothing new (the queue is empty, or only messages
    /// met before came back when their visibility ran out). Every message `visit` did not take
    /// off the queue is made visible again, even when the walk failed half way. Returns how many
    /// it took.
    async fn walk_dead_letters<F, Fut>(
        &self,
        seconds: i32,
        mut visit: F,
    ) -> Result<u64, Unavailable>
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = Result<Visited, Unavailable>>,
    {
        let mut met: HashSet<String> = HashSet::new();
        let mut kept = Vec::new();
        let mut taken = 0u64;
        let walked = async {
            let mut enough = false;
            while !enough {
                let batch = self.receive_dead_letters(seconds).await?;
                let mut new = 0;
                for message in batch {
                    let receipt = message.receipt_handle.clone();
                    let first_time = met.insert(message.message_id.clone().unwrap_or_default());
                    if first_time && !enough {
                        new += 1;
                        match visit(message).await? {
                            Visited::Taken { enough: e } => {
                                taken += 1;
                                enough = e;
                                continue;
                            }
                            Visited::Kept { enough: e } => enough = e,
                        }
                    }
                    kept.extend(receipt);
                }
                if new == 0 {
                    break;
                }
            }
            Ok::<(), Unavailable>(())
        }
        .await;
        let shown = self.show_again(&kept).await;
        walked?;
        shown?;
        Ok(taken)
    }

    /// Makes received DLQ messages visible again now.
    async fn show_again(&self, receipts: &[String]) -> Result<(), Unavailable> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| Unavailable::new(SQS, "ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.names.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Unavailable::new(SQS, "ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }

    /// Copies a dead letter to the events queue (body and attributes, without the dead-letter
    /// reason), then deletes it from the DLQ.
    async fn move_back(&self, message: &Message) -> Result<(), Unavailable> {
        let attributes: HashMap<String, MessageAttributeValue> = message
            .message_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, _)| !DEAD_LETTER_ATTRIBUTES.contains(&name.as_str()))
            .collect();
        // Back in its tenant's message group (fair queues), as ingest sends it.
        let tenant = attributes
            .get("tenant_id")
            .and_then(|a| a.string_value.clone());
        self.sqs
            .send_message()
            .queue_url(&self.names.queue_url)
            .set_message_group_id(tenant)
            .message_body(message.body.clone().unwrap_or_default())
            .set_message_attributes(Some(attributes).filter(|a| !a.is_empty()))
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "SendMessage", e))?;
        // If this fails the event is on both queues; the delivery log keeps it from being
        // pushed twice.
        self.sqs
            .delete_message()
            .queue_url(&self.names.dlq_url)
            .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "DeleteMessage", e))?;
        Ok(())
    }
}

fn string_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value.clone())
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

/// What a listing shows of a dead letter. Tenant and event id come from the message attributes
/// that ingest sets, or else from the body.
fn dead_letter_view(message: &Message) -> DeadLetterView {
    let body: Option<serde_json::Value> = message
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    let from_body = |field: &str| {
        body.as_ref()
            .and_then(|b| b.get(field))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let reason = string_attribute(message, "dead_letter_reason")
        .or_else(|| string_attribute(message, "reason"))
        // No reason attribute: the queue's redrive policy moved it after its last retry.
        .unwrap_or_else(|| "every retry failed (moved by the queue's redrive policy)".to_owned());
    // The dispatcher's dead letters are new messages, so their receive count is the DLQ's own;
    // one moved by the redrive policy keeps the count of its delivery attempts.
    let attempts = string_attribute(message, "attempts")
        .or_else(|| {
            system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
                .map(str::to_owned)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    DeadLetterView {
        id: message.message_id.clone().unwrap_or_default(),
        event_id: string_attribute(message, "event_id")
            .or_else(|| from_body("event_id"))
            .unwrap_or_default(),
        tenant_id: string_attribute(message, "tenant_id")
            .or_else(|| from_body("tenant_id"))
            .unwrap_or_default(),
        reason,
        attempts,
    }
}

fn sent_at(message: &Message) -> u64 {
    system_attribute(message, MessageSystemAttributeName::SentTimestamp)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// The key of a tenant's pull account item (`dynamodb.rs` has the layout).
fn pull_key(tenant: &TenantId, carrier: Carrier) -> HashMap<String, AttributeValue> {
    key(format!("TENANT#{tenant}"), &format!("PULL#{carrier}"))
}

/// A pull account item; one this build cannot read (a carrier it does not know) is skipped.
fn pull_account_from(item: &HashMap<String, AttributeValue>) -> Option<PullAccountRecord> {
    Some(PullAccountRecord {
        carrier: text(item, "carrier")?.parse().ok()?,
        base_url: text(item, "base_url")?,
        user: text(item, "user")?,
        secret: SecretValue::new(text(item, "secret")?),
    })
}

fn tenant_from(item: &HashMap<String, AttributeValue>) -> Option<Tenant> {
    Some(Tenant {
        id: TenantId::parse(&text(item, "tenant_id")?).ok()?,
        // Profiles written before tenants could be disabled are enabled.
        enabled: flag(item, "enabled").unwrap_or(true),
        include_source: flag(item, "include_source").unwrap_or(true),
        created_at: text(item, "created_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc)),
        // On AWS there is no rms.toml: every tenant is the admin API's.
        file_managed: false,
    })
}

fn credential_from(item: &HashMap<String, AttributeValue>) -> Option<StoredCredential> {
    let sk = text(item, "sk")?;
    let mut parts = sk.strip_prefix("KEY#")?.splitn(2, '#');
    let carrier: Carrier = parts.next()?.parse().ok()?;
    let digest = CredentialDigest::from_hex(parts.next()?)?;
    Some(StoredCredential {
        carrier,
        digest,
        added_at: text(item, "added_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(DateTime::UNIX_EPOCH, |t| t.with_timezone(&Utc)),
    })
}

fn number<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn attempt_from(item: &HashMap<String, AttributeValue>) -> Option<Attempt> {
    let outcome = AttemptOutcome::parse(&text(item, "outcome")?)?;
    Some(Attempt {
        event_id: EventId::from_stored(text(item, "event_id")?),
        tenant_id: TenantId::parse(&text(item, "tenant_id")?).ok()?,
        awb: text(item, "awb")?,
        status: text(item, "status")?.parse::<Status>().ok()?,
        attempt: number(item, "attempt")?,
        outcome,
        http_status: number(item, "http_status"),
        latency_ms: number(item, "latency_ms").unwrap_or(0),
        error: text(item, "error"),
        at: DateTime::parse_from_rfc3339(&text(item, "at")?)
            .ok()?
            .with_timezone(&Utc),
    })
}

fn attempts_from(items: &[HashMap<String, AttributeValue>]) -> Vec<Attempt> {
    items
        .iter()
        .filter_map(|item| {
            let attempt = attempt_from(item);
            if attempt.is_none() {
                warn!(pk = ?text(item, "pk"), sk = ?text(item, "sk"), "unreadable delivery log item skipped");
            }
            attempt
        })
        .collect()
}

fn time_of(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    text(item, name)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A quarantine item as a listing shows it; `None` for one that is not readable, or past its
/// expiry (TTL deletes items some time after they expire).
fn quarantine_from(
    item: &HashMap<String, AttributeValue>,
    now: DateTime<Utc>,
) -> Option<QuarantineView> {
    if number::<i64>(item, "expires_at").is_some_and(|at| at < now.timestamp()) {
        return None;
    }
    let tenant_id = text(item, "pk")?.strip_prefix("QUARANTINE#")?.to_owned();
    // Items from before the counts have `received_at`, their first arrival.
    let first = time_of(item, "received_at").or_else(|| time_of(item, "first_received_at"))?;
    Some(QuarantineView {
        id: text(item, "sk")?,
        tenant_id,
        carrier: text(item, "carrier")?.parse().ok()?,
        reason: text(item, "reason").unwrap_or_default(),
        first_received_at: first,
        last_received_at: time_of(item, "last_received_at").unwrap_or(first),
        times: number(item, "times").unwrap_or(1),
        last_replay: time_of(item, "last_replay_at")
            .zip(text(item, "last_replay_outcome"))
            .map(|(at, outcome)| ReplayNote { at, outcome }),
    })
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
            .set_item(Some(profile_item(
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
                .expression_attribute_values(":profile", s("PROFILE"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Unavailable::new(DYNAMODB, "Scan", e))?;
            tenants.extend(page.items().iter().filter_map(tenant_from));
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
            .set_key(Some(profile_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found.item().and_then(tenant_from))
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<(), Unavailable> {
        // The whole profile again (PutItem rather than UpdateItem: one SDK operation less in
        // the admin Lambda's zip, which is close to its size limit), never a new one.
        self.dynamo
            .put_item()
            .table_name(&self.names.config_table)
            .set_item(Some(profile_item(
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
            .expression_attribute_values(":pk", s(format!("TENANT#{tenant}")))
            .expression_attribute_values(":keys", s("KEY#"))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        let mut keys: Vec<StoredCredential> = items.iter().filter_map(credential_from).collect();
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
            .set_key(Some(key(credential_pk(carrier, digest), "CREDENTIAL")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found
            .item()
            .and_then(|item| text(item, "tenant_id"))
            .and_then(|t| TenantId::parse(&t).ok()))
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
            credential_item(carrier, digest, tenant, credential.added_at),
            Some("attribute_not_exists(pk)"),
        )?;
        let index = put_item(
            table,
            tenant_key_item(carrier, digest, tenant, credential.added_at),
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
            key(credential_pk(carrier, digest), "CREDENTIAL"),
            Some((
                "attribute_not_exists(pk) OR tenant_id = :tenant",
                HashMap::from([(":tenant".to_owned(), s(tenant.as_str()))]),
            )),
        )?;
        let index = delete_item(table, tenant_key_key(tenant, carrier, digest), None)?;
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
            .expression_attribute_values(":pk", s(format!("TENANT#{tenant}")))
            .expression_attribute_values(":pull", s("PULL#"))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        Ok(items.iter().filter_map(pull_account_from).collect())
    }

    async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        let mut item = pull_key(tenant, account.carrier);
        item.insert("carrier".into(), s(account.carrier.as_str()));
        item.insert("base_url".into(), s(&account.base_url));
        item.insert("user".into(), s(&account.user));
        item.insert("secret".into(), s(account.secret.expose()));
        self.dynamo
            .put_item()
            .table_name(&self.names.config_table)
            .set_item(Some(item))
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
            .set_key(Some(pull_key(tenant, carrier)))
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
                let mut attempts = attempts_from(&items);
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
                        attempts_from(&self.query_all(query).await?)
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
        let mut found: Vec<(u64, DeadLetterView)> = Vec::new();
        self.walk_dead_letters(LIST_VISIBILITY_SECONDS, |message| {
            let view = dead_letter_view(&message);
            if tenant.is_none_or(|t| t.as_str() == view.tenant_id) {
                found.push((sent_at(&message), view));
            }
            let enough = found.len() >= limit;
            std::future::ready(Ok(Visited::Kept { enough }))
        })
        .await?;
        found.sort_by_key(|(sent, _)| *sent);
        Ok(found.into_iter().map(|(_, view)| view).collect())
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, Unavailable> {
        // The ids not met yet (`None`: every dead letter).
        let mut wanted: Option<HashSet<String>> = ids.map(|ids| ids.iter().cloned().collect());
        self.walk_dead_letters(REDRIVE_VISIBILITY_SECONDS, |message| {
            let id = message.message_id.as_deref().unwrap_or_default();
            let selected = wanted.as_mut().is_none_or(|w| w.remove(id));
            let enough = wanted.as_ref().is_some_and(HashSet::is_empty);
            async move {
                if !selected {
                    return Ok(Visited::Kept { enough });
                }
                self.move_back(&message).await?;
                Ok(Visited::Taken { enough })
            }
        })
        .await
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

    async fn enqueue_replay(&self, event: &CanonicalEvent) -> Result<(), Unavailable> {
        let body =
            serde_json::to_string(event).map_err(|e| Unavailable::new(SQS, "SendMessage", e))?;
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| Unavailable::new(SQS, "SendMessage", e))
        };
        // As ingest queues it (`sqs.rs`), plus `replay`: the dispatcher pushes it even if it
        // was delivered before.
        self.sqs
            .send_message()
            .queue_url(&self.names.queue_url)
            .message_body(body)
            .message_group_id(event.tenant_id.as_str())
            .message_attributes("tenant_id", attribute(event.tenant_id.as_str())?)
            .message_attributes("carrier", attribute(event.carrier.as_str())?)
            .message_attributes("event_id", attribute(event.event_id.as_str())?)
            .message_attributes("replay", attribute("true")?)
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "SendMessage", e))?;
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
            // Everything but the bodies (up to 256 KiB each): a page holds 1 MB.
            let query = self
                .dynamo
                .query()
                .table_name(&self.names.events_table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("QUARANTINE#{tenant}")))
                .projection_expression(
                    "pk, sk, #carrier, #reason, #times, #expires, received_at, first_received_at, \
                     last_received_at, last_replay_at, last_replay_outcome",
                )
                .expression_attribute_names("#carrier", "carrier")
                .expression_attribute_names("#reason", "reason")
                .expression_attribute_names("#times", "times")
                .expression_attribute_names("#expires", "expires_at")
                .consistent_read(true);
            found.extend(
                self.query_all(query)
                    .await?
                    .iter()
                    .filter_map(|item| quarantine_from(item, now))
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
            .set_key(Some(quarantine_key(tenant, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(DYNAMODB, "GetItem", e))?;
        Ok(found.item().and_then(|item| {
            let view = quarantine_from(item, Utc::now())?;
            let body = item.get("body")?.as_b().ok()?.clone().into_inner();
            Some(QuarantinedBody { view, body })
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
            .set_key(Some(quarantine_key(tenant, id)))
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
            .expression_attribute_values(":pk", s(activity_pk(tenant)))
            .consistent_read(true);
        let items = self.query_all(query).await?;
        Ok(Carrier::ALL
            .into_iter()
            .map(|carrier| {
                let item = items
                    .iter()
                    .find(|item| text(item, "sk").as_deref() == Some(carrier.as_str()));
                CarrierActivity {
                    carrier: carrier.as_str().to_owned(),
                    last_test_at: item.and_then(|i| time_of(i, "last_test_at")),
                    last_accepted_at: item.and_then(|i| time_of(i, "last_accepted_at")),
                    last_rejected_at: item.and_then(|i| time_of(i, "last_rejected_at")),
                    last_rejected_reason: item.and_then(|i| text(i, "last_rejected_reason")),
                    hourly: hourly(&items, carrier, since),
                }
            })
            .collect())
    }

    async fn queue_depth(&self) -> Result<QueueDepth, Unavailable> {
        Ok(QueueDepth {
            waiting: self.approximate_count(&self.names.queue_url).await?,
            dead_letters: self.approximate_count(&self.names.dlq_url).await?,
        })
    }
}

/// A carrier's request counts per hour from `since`'s hour on, oldest first, from the items of
/// its tenant's `ACTIVITY#` partition (see `dynamodb::hourly_sk`).
fn hourly(
    items: &[HashMap<String, AttributeValue>],
    carrier: Carrier,
    since: DateTime<Utc>,
) -> Vec<HourlyActivity> {
    let from = hourly_sk(carrier, HourlyActivity::hour_of(since));
    let prefix = format!("{carrier}#");
    let count =
        |item: &HashMap<String, AttributeValue>, name: &str| number::<u64>(item, name).unwrap_or(0);
    let mut hours: Vec<HourlyActivity> = items
        .iter()
        .filter_map(|item| {
            let sk = text(item, "sk")?;
            let hour = sk.strip_prefix(&prefix)?;
            if sk < from {
                return None;
            }
            let hour =
                chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M")
                    .ok()?
                    .and_utc();
            Some(HourlyActivity {
                hour,
                tests: count(item, Activity::PanelTest.as_str()),
                accepted: count(item, Activity::Accepted.as_str()),
                rejected: count(item, Activity::Rejected.as_str()),
            })
        })
        .collect();
    hours.sort_by_key(|h| h.hour);
    hours
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

    #[test]
    fn a_dead_letter_shows_the_dispatcher_reason_or_the_redrive_policy() {
        let attribute = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        let message = Message::builder()
            .message_id("m-1")
            .body(r#"{"event_id":"evt_1","tenant_id":"acme"}"#)
            .message_attributes("dead_letter_reason", attribute("HTTP 410"))
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .build();
        let view = dead_letter_view(&message);
        assert_eq!(
            (
                view.id.as_str(),
                view.event_id.as_str(),
                view.tenant_id.as_str()
            ),
            ("m-1", "evt_1", "acme")
        );
        assert_eq!((view.reason.as_str(), view.attempts), ("HTTP 410", 3));
        let moved_by_policy = Message::builder().message_id("m-2").body("{}").build();
        assert!(dead_letter_view(&moved_by_policy)
            .reason
            .contains("redrive policy"));
    }

    #[test]
    fn a_key_index_item_reads_back_as_the_stored_credential() {
        let tenant = TenantId::parse("acme").unwrap();
        let digest = crate::auth::Credential::new("a-key-of-sixteen-chars").digest();
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let item = tenant_key_item(Carrier::Shipway, &digest, &tenant, at);
        assert_eq!(
            credential_from(&item),
            Some(StoredCredential {
                carrier: Carrier::Shipway,
                digest,
                added_at: at
            })
        );
    }
}
