//! The stores under contract, each as its host wires it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use integration_tests::needs::{self, Need};
use integration_tests::Stack;
use shared::adapters::aws_admin::DynamoAdmin;
use shared::adapters::dynamodb::{DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::memory::{MemoryDeliveryLog, MemoryEvents, MemoryQueue};
use shared::adapters::sqlite::SqliteStore;
use shared::adapters::sqs::{SqsEventQueue, SqsQueueActions};
use shared::admin::AdminStore;
use shared::ingest::QueueThenClaim;
use shared::ports::{DeliveryLog, EventStore, Intake, QueueActions, ShipmentStates};
use shared::CanonicalEvent;

use super::{Claims, Queue, Received, Store, MAX_RECEIVES};

fn event_of(body: &str) -> CanonicalEvent {
    serde_json::from_str(body).expect("a queued body is a canonical event")
}

// ---- The in-memory fakes, as the use-case tests wire them.

pub struct Memory {
    intake: QueueThenClaim<MemoryEvents, MemoryQueue>,
    log: MemoryDeliveryLog,
    /// How many of the queue's messages `queued` has returned.
    seen: Mutex<usize>,
}

pub async fn memory() -> Option<Memory> {
    Some(Memory {
        intake: QueueThenClaim {
            events: MemoryEvents::default(),
            queue: MemoryQueue::default(),
        },
        log: MemoryDeliveryLog::default(),
        seen: Mutex::new(0),
    })
}

impl Store for Memory {
    fn intake(&self) -> &impl Intake {
        &self.intake
    }
    fn shipments(&self) -> &impl ShipmentStates {
        &self.intake.events
    }
    fn log(&self) -> &impl DeliveryLog {
        &self.log
    }
    async fn queued(&self) -> Vec<CanonicalEvent> {
        let messages = self.intake.queue.messages();
        let mut seen = self.seen.lock().unwrap();
        // Queue first: a duplicate's copy is queued too, and only the copy its claim names is
        // the accepted one.
        let new = self
            .intake
            .events
            .named_copies(messages[*seen..].to_vec())
            .iter()
            .map(|m| event_of(&m.body))
            .collect();
        *seen = messages.len();
        new
    }
}

impl Claims for Memory {
    fn events(&self) -> &impl EventStore {
        &self.intake.events
    }
}

// ---- SQLite, as `rms serve` uses it: one store for every port.

pub async fn sqlite() -> Option<SqliteStore> {
    Some(SqliteStore::in_memory().expect("an in-memory database"))
}

impl Store for SqliteStore {
    fn intake(&self) -> &impl Intake {
        self
    }
    fn shipments(&self) -> &impl ShipmentStates {
        self
    }
    fn log(&self) -> &impl DeliveryLog {
        self
    }
    async fn queued(&self) -> Vec<CanonicalEvent> {
        self.receive(Duration::ZERO, Duration::from_secs(60))
            .await
            .into_iter()
            .map(|m| m.event)
            .collect()
    }
}

impl Queue for SqliteStore {
    fn actions(&self) -> &impl QueueActions {
        self
    }
    fn admin(&self) -> &impl AdminStore {
        self
    }
    async fn receive(&self, after: Duration, hide: Duration) -> Vec<Received> {
        let at = Utc::now() + chrono::Duration::from_std(after).unwrap();
        self.lease(100, 100, &HashMap::new(), hide, MAX_RECEIVES, at)
            .await
            .unwrap()
            .into_iter()
            .map(|m| Received {
                receipt: m.receipt,
                event: event_of(&m.body),
                receive_count: m.receive_count,
            })
            .collect()
    }
    async fn acknowledge(&self, receipt: &str) {
        self.ack(receipt).await.unwrap();
    }
}

// ---- DynamoDB and SQS on moto, as the Lambdas wire them.

pub struct Aws {
    stack: Stack,
    intake: QueueThenClaim<DynamoEventStore, SqsEventQueue>,
    /// Batched as the dispatcher's: its attempts are written at `flush`.
    log: DynamoDeliveryLog,
    actions: SqsQueueActions,
    admin: DynamoAdmin,
}

pub async fn aws() -> Option<Aws> {
    if !needs::available(Need::Moto) {
        return None;
    }
    let stack = Stack::create_with(MAX_RECEIVES).await;
    Some(Aws {
        intake: QueueThenClaim {
            events: DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table),
            queue: SqsEventQueue::new(stack.sqs.clone(), &stack.queue_url),
        },
        log: DynamoDeliveryLog::new(stack.dynamo.clone(), &stack.events_table).batched(),
        actions: SqsQueueActions::new(stack.sqs.clone(), &stack.queue_url, &stack.dlq_url),
        admin: DynamoAdmin::new(stack.dynamo.clone(), stack.sqs.clone(), stack.names()),
        stack,
    })
}

impl Aws {
    async fn receive_now(&self, hide: Duration) -> Vec<Received> {
        let received = self
            .stack
            .sqs
            .receive_message()
            .queue_url(&self.stack.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(i32::try_from(hide.as_secs()).unwrap())
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                receipt: m.receipt_handle.clone().unwrap(),
                event: event_of(m.body.as_deref().unwrap()),
                receive_count: m.attributes.unwrap()
                    [&MessageSystemAttributeName::ApproximateReceiveCount]
                    .parse()
                    .unwrap(),
            })
            .collect()
    }
}

impl Store for Aws {
    fn intake(&self) -> &impl Intake {
        &self.intake
    }
    fn shipments(&self) -> &impl ShipmentStates {
        &self.intake.events
    }
    fn log(&self) -> &impl DeliveryLog {
        &self.log
    }
    async fn queued(&self) -> Vec<CanonicalEvent> {
        let mut accepted = Vec::new();
        for message in self.stack.drain(&self.stack.queue_url).await {
            // Queue first: only the copy its claim names is the accepted one.
            if self.stack.named_by_claim(&message).await {
                accepted.push(serde_json::from_value(message.body).unwrap());
            }
        }
        accepted
    }
}

impl Claims for Aws {
    fn events(&self) -> &impl EventStore {
        &self.intake.events
    }
}

impl Queue for Aws {
    fn actions(&self) -> &impl QueueActions {
        &self.actions
    }
    fn admin(&self) -> &impl AdminStore {
        &self.admin
    }
    async fn receive(&self, after: Duration, hide: Duration) -> Vec<Received> {
        if after.is_zero() {
            return self.receive_now(hide).await;
        }
        // SQS's clock is moto's: wait the time out, then give the message a moment to show.
        tokio::time::sleep(after).await;
        for _ in 0..30 {
            let received = self.receive_now(hide).await;
            if !received.is_empty() {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Vec::new()
    }
    async fn acknowledge(&self, receipt: &str) {
        self.stack
            .sqs
            .delete_message()
            .queue_url(&self.stack.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .unwrap();
    }
}
