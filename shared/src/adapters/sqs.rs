//! The SQS events queue: one message per canonical event, its JSON as the body.

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use std::time::Duration;

use crate::model::CanonicalEvent;
use crate::ports::{ClaimToken, EventQueue, QueueActions, Unavailable};

const SERVICE: &str = "SQS";
/// The message attribute holding the copy's `ClaimToken`.
pub const CLAIM_TOKEN_ATTRIBUTE: &str = "claim_token";

#[derive(Clone)]
pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsEventQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// A string message attribute, as every message of the events queue carries them.
pub(crate) fn attribute(value: &str) -> Result<MessageAttributeValue, Unavailable> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))
}

impl EventQueue for SqsEventQueue {
    async fn enqueue(&self, event: &CanonicalEvent, token: &ClaimToken) -> Result<(), Unavailable> {
        let body = serde_json::to_string(event)
            .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            // On a standard queue the group is the fairness key: SQS fair queues keep one tenant's
            // backlog from raising the other tenants' dwell time.
            .message_group_id(event.tenant_id.as_str())
            .message_attributes("tenant_id", attribute(event.tenant_id.as_str())?)
            .message_attributes("carrier", attribute(event.carrier.as_str())?)
            .message_attributes("event_id", attribute(event.event_id.as_str())?)
            // Which copy this is: the dispatcher pushes only the one the event's claim names
            // (`DeliveryLog::standing`). Kept on the dead-letter queue and back from it.
            .message_attributes(CLAIM_TOKEN_ATTRIBUTE, attribute(token.as_str())?)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))?;
        Ok(())
    }
}

/// The dispatcher's side of the events queue: visibility changes for retries, and the DLQ.
#[derive(Clone)]
pub struct SqsQueueActions {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: String,
}

impl SqsQueueActions {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        SqsQueueActions {
            client,
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
        }
    }
}

impl QueueActions for SqsQueueActions {
    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> Result<(), Unavailable> {
        // SQS takes whole seconds, at most 12 hours.
        let seconds = i32::try_from(after.as_secs().min(43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> Result<(), Unavailable> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(body);
        for (name, value) in attributes {
            send = send.message_attributes(name, attribute(value)?);
        }
        send.message_attributes("dead_letter_reason", attribute(reason)?)
            .message_attributes(
                "dead_lettered_at",
                attribute(&chrono::Utc::now().to_rfc3339())?,
            )
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))?;
        Ok(())
    }
}
