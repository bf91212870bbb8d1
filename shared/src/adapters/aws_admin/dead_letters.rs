//! The events queue's dead letters (its DLQ), for the admin store.
//!
//! Dead letters are listed by receiving them with a short visibility timeout and making them
//! visible again at once. Redrive is receive → SendMessage to the events queue → DeleteMessage,
//! for "these ids" and for "all" alike: SQS's StartMessageMoveTask moves a whole queue only (no
//! selection), and moto_server (our test double) does not implement it. Listing and redrive walk
//! the queue with the same loop (`walk_dead_letters`).

use std::collections::{HashMap, HashSet};
use std::future::Future;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName,
};

use super::{DynamoAdmin, SQS};
use crate::admin::DeadLetterView;
use crate::model::TenantId;
use crate::ports::Unavailable;

/// How long a listed dead letter stays hidden if this process dies before showing it again.
const LIST_VISIBILITY_SECONDS: i32 = 5;
/// How long a dead letter being redriven stays hidden while it is copied to the events queue.
const REDRIVE_VISIBILITY_SECONDS: i32 = 30;
/// Attributes the dispatcher adds when it dead-letters a message (`sqs.rs`); a redriven message
/// goes back without them.
const DEAD_LETTER_ATTRIBUTES: [&str; 3] = ["dead_letter_reason", "dead_lettered_at", "reason"];

/// What a visit of [`DynamoAdmin::walk_dead_letters`] did with a dead letter, and whether the walk
/// has had enough.
enum Visited {
    /// Left on the queue: made visible again after the walk.
    Kept { enough: bool },
    /// Taken off the queue (moved back to the events queue).
    Taken { enough: bool },
}

impl DynamoAdmin {
    /// Up to `limit` dead letters (of one tenant, or all), oldest first.
    pub(super) async fn list_dead_letters(
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

    /// Moves these dead letters (`None`: every one) back to the events queue; how many it moved.
    pub(super) async fn redrive_dead_letters(
        &self,
        ids: Option<&[String]>,
    ) -> Result<u64, Unavailable> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
