//! The SQS events queue: one message per canonical event, its JSON as the body.

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use crate::model::CanonicalEvent;
use crate::ports::{EventQueue, Unavailable};

const SERVICE: &str = "SQS";

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

fn attribute(value: &str) -> Result<MessageAttributeValue, Unavailable> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))
}

impl EventQueue for SqsEventQueue {
    async fn enqueue(&self, event: &CanonicalEvent) -> Result<(), Unavailable> {
        let body = serde_json::to_string(event)
            .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("tenant_id", attribute(&event.tenant_id)?)
            .message_attributes("carrier", attribute(event.carrier.as_str())?)
            .message_attributes("event_id", attribute(event.event_id.as_str())?)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "SendMessage", e))?;
        Ok(())
    }
}
