//! The events queue's dead letters (its DLQ), for the admin store.
//!
//! Dead letters are listed by receiving them with a short visibility timeout and making them
//! visible again at once. Redrive is receive → SendMessageBatch to the events queue →
//! DeleteMessageBatch, up to 10 messages a time, for "these ids" and for "all" alike: SQS's
//! StartMessageMoveTask moves a whole queue only (no selection), and moto_server (our test double)
//! does not implement it. Listing and redrive walk the queue with the same loop
//! (`walk_dead_letters`).

use std::collections::{HashMap, HashSet};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};

use super::{refused, DynamoAdmin, SQS};
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

/// What a visit of [`DynamoAdmin::walk_dead_letters`] decides for a dead letter, and whether the
/// walk has had enough.
enum Visited {
    /// Left on the queue: made visible again after the walk.
    Kept { enough: bool },
    /// To be moved back to the events queue (with the others of its batch).
    Take { enough: bool },
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
            let view = dead_letter_view(message);
            if tenant.is_none_or(|t| t.as_str() == view.tenant_id) {
                found.push((sent_at(message), view));
            }
            Visited::Kept {
                enough: found.len() >= limit,
            }
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
            match selected {
                true => Visited::Take { enough },
                false => Visited::Kept { enough },
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
    /// met before came back when their visibility ran out). The messages of a batch `visit`
    /// takes are moved back to the events queue together (`move_back`); every other message is
    /// made visible again, even when the walk failed half way. Returns how many it moved.
    async fn walk_dead_letters(
        &self,
        seconds: i32,
        mut visit: impl FnMut(&Message) -> Visited,
    ) -> Result<u64, Unavailable> {
        let mut met: HashSet<String> = HashSet::new();
        let mut kept = Vec::new();
        let mut taken = 0u64;
        let walked = async {
            let mut enough = false;
            while !enough {
                let batch = self.receive_dead_letters(seconds).await?;
                let mut new = 0;
                let mut taking = Vec::new();
                for message in batch {
                    let first_time = met.insert(message.message_id.clone().unwrap_or_default());
                    if first_time && !enough {
                        new += 1;
                        match visit(&message) {
                            Visited::Take { enough: e } => {
                                enough = e;
                                taking.push(message);
                                continue;
                            }
                            Visited::Kept { enough: e } => enough = e,
                        }
                    }
                    kept.extend(message.receipt_handle);
                }
                if !taking.is_empty() {
                    let moved = self.move_back(&taking).await;
                    kept.extend(moved.not_sent);
                    taken += moved.sent;
                    moved.failure.map_or(Ok(()), Err)?;
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

    /// Copies dead letters (at most 10, one received batch) to the events queue (body and
    /// attributes, without the dead-letter reason), then deletes those sent from the DLQ.
    async fn move_back(&self, messages: &[Message]) -> MovedBack {
        let sent = match self.send_back(messages).await {
            Ok(sent) => sent,
            Err(e) => {
                return MovedBack {
                    sent: 0,
                    not_sent: receipts(messages),
                    failure: Some(e),
                }
            }
        };
        // Entry ids are positions in `messages`.
        let message_at = |id: &str| id.parse::<usize>().ok().and_then(|n| messages.get(n));
        let mut moved = MovedBack {
            sent: 0,
            not_sent: receipts(sent.failed().iter().filter_map(|f| message_at(f.id()))),
            failure: refused(sent.failed(), messages.len()).map(|refused| {
                Unavailable::new(
                    SQS,
                    "SendMessageBatch",
                    format!("dead letters not sent back: {refused}"),
                )
            }),
        };
        let delete: Vec<DeleteMessageBatchRequestEntry> = sent
            .successful()
            .iter()
            .filter_map(|s| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(s.id())
                    .receipt_handle(message_at(s.id())?.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        moved.sent = u64::try_from(delete.len()).unwrap_or(u64::MAX);
        if delete.is_empty() {
            return moved;
        }
        // If a delete fails the event is on both queues; the delivery log keeps it from being
        // pushed twice.
        let not_deleted = match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.names.dlq_url)
            .set_entries(Some(delete))
            .send()
            .await
        {
            Ok(deleted) => {
                refused(deleted.failed(), usize::try_from(moved.sent).unwrap_or(0)).map(|refused| {
                    format!("sent back but not deleted from the dead-letter queue: {refused}")
                })
            }
            Err(e) => Some(format!(
                "sent back but not deleted from the dead-letter queue: {e}"
            )),
        };
        if let (Some(reason), None) = (not_deleted, &moved.failure) {
            moved.failure = Some(Unavailable::new(SQS, "DeleteMessageBatch", reason));
        }
        moved
    }

    /// Sends dead letters back to the events queue in one SendMessageBatch, each entry's id its
    /// position in `messages`.
    async fn send_back(
        &self,
        messages: &[Message],
    ) -> Result<aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput, Unavailable>
    {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(n, message)| {
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
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .set_message_group_id(tenant)
                    .message_body(message.body.clone().unwrap_or_default())
                    .set_message_attributes(Some(attributes).filter(|a| !a.is_empty()))
                    .build()
                    .map_err(|e| Unavailable::new(SQS, "SendMessageBatch", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.sqs
            .send_message_batch()
            .queue_url(&self.names.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Unavailable::new(SQS, "SendMessageBatch", e))
    }
}

/// What [`DynamoAdmin::move_back`] did with a batch.
#[derive(Default)]
struct MovedBack {
    /// Sent to the events queue (and deleted from the DLQ, unless `failure` says otherwise).
    sent: u64,
    /// The receipts of those not sent: shown again after the walk.
    not_sent: Vec<String>,
    /// Why some were not sent or not deleted.
    failure: Option<Unavailable>,
}

/// The receipt handles of these messages.
fn receipts<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| m.receipt_handle.clone())
        .collect()
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
