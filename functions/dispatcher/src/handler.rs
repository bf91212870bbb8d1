//! One SQS batch: each record delivered concurrently (bounded), and the batch response naming
//! exactly the records that must come back. The whole batch never fails for one record.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use shared::adapters::sqs::CLAIM_TOKEN_ATTRIBUTE;
use shared::circuit::CircuitStore;
use shared::dispatch::{Dispatch, Message};
use shared::ports::{
    ClaimToken, DeliveryLog, Metrics, PushConfigStore, Pusher, QueueActions, ShipmentStates,
};

/// Delivers a batch; returns the ids of the records to be received again.
pub async fn handle<C, P, L, M, B, S, A>(
    dispatch: &Dispatch<C, P, L, M, B, S>,
    actions: &A,
    event: SqsEvent,
    concurrency: usize,
) -> SqsBatchResponse
where
    C: PushConfigStore,
    P: Pusher,
    L: DeliveryLog,
    M: Metrics,
    B: CircuitStore,
    S: ShipmentStates,
    A: QueueActions,
{
    let failures: Vec<BatchItemFailure> = stream::iter(event.records)
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            (!process(dispatch, actions, record).await).then(|| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    // The batch's attempts, as one page of the delivery log per tenant. If it cannot be written
    // the deliveries stand (they are in the log by AWB); only the listing by time misses them.
    if let Err(e) = dispatch.log.flush().await {
        tracing::error!(error = %e, "delivery log page not written");
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// Handles one record; `true` if it is done with (acknowledge), `false` if it must come back.
async fn process<C, P, L, M, B, S, A>(
    dispatch: &Dispatch<C, P, L, M, B, S>,
    actions: &A,
    record: SqsMessage,
) -> bool
where
    C: PushConfigStore,
    P: Pusher,
    L: DeliveryLog,
    M: Metrics,
    B: CircuitStore,
    S: ShipmentStates,
    A: QueueActions,
{
    dispatch.process(&message(record), actions).await
}

/// The SQS record as the dispatch use-case's [`Message`].
fn message(record: SqsMessage) -> Message {
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    };
    Message {
        replay: attribute("replay") == Some("true"),
        token: attribute(CLAIM_TOKEN_ATTRIBUTE).map(ClaimToken::from_message),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1),
        attributes: record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| value.string_value.clone().map(|v| (name.clone(), v)))
            .collect(),
        receipt: record.receipt_handle.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    use chrono::Utc;
    use shared::adapters::memory::{
        MemoryCircuits, MemoryDeliveryLog, MemoryEvents, MemoryPushConfigs, MemoryQueueActions,
        RecordingMetrics, ScriptedPusher,
    };
    use shared::circuit::{Breaker, BreakerSettings};
    use shared::dispatch::DispatchSettings;
    use shared::ports::PushResult;
    use shared::push::{Delivery, PushConfig, PushHeaders, PushTimeout, PushUrl, TargetPolicy};
    use shared::{normalize, Carrier, NormalizeContext, TenantId};

    use super::*;

    fn record(i: usize, body: String) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("msg-{i}"));
        m.receipt_handle = Some(format!("rh-{i}"));
        m.body = Some(body);
        m.attributes = HashMap::from([("ApproximateReceiveCount".to_owned(), "1".to_owned())]);
        let mut tenant = SqsMessageAttribute::default();
        tenant.string_value = Some("acme".into());
        tenant.data_type = Some("String".into());
        m.message_attributes = HashMap::from([("tenant_id".to_owned(), tenant)]);
        m
    }

    fn event_json(awb: &str) -> String {
        let body = format!(
            r#"{{"waybill":"{awb}","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z"}}"#
        );
        let ctx = NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), Utc::now());
        serde_json::to_string(&normalize(Carrier::Clickpost, body.as_bytes(), &ctx).unwrap()[0])
            .unwrap()
    }

    fn answered(status: u16) -> PushResult {
        PushResult::Answered {
            status,
            retry_after: None,
            body_prefix: String::new(),
            latency: Duration::ZERO,
        }
    }

    type TestDispatch = Dispatch<
        MemoryPushConfigs,
        ScriptedPusher,
        MemoryDeliveryLog,
        RecordingMetrics,
        MemoryCircuits,
        MemoryEvents,
    >;

    fn dispatch(script: Vec<PushResult>) -> TestDispatch {
        let configs = MemoryPushConfigs::default();
        configs.set(
            &TenantId::parse("acme").unwrap(),
            Some(PushConfig {
                url: PushUrl::parse("https://client.example/hook", TargetPolicy::default())
                    .unwrap(),
                headers: PushHeaders::default(),
                statuses: vec![],
                signing_secret: None,
                timeout: PushTimeout::from_millis(1000).unwrap(),
                enabled: true,
                delivery: Delivery::Every,
            }),
        );
        Dispatch {
            configs,
            pusher: ScriptedPusher::new(script),
            log: MemoryDeliveryLog::default(),
            metrics: RecordingMetrics::default(),
            breaker: Breaker::new(MemoryCircuits::default(), BreakerSettings::default()),
            shipments: MemoryEvents::default(),
            settings: DispatchSettings::default(),
        }
    }

    #[tokio::test]
    async fn a_batch_of_10_with_3_failures_reports_exactly_those_3() {
        // Concurrency 1 keeps the script in record order.
        let mut script: Vec<PushResult> = (0..10).map(|_| answered(200)).collect();
        for i in [2, 5, 9] {
            script[i] = answered(503);
        }
        let dispatch = dispatch(script);
        let actions = MemoryQueueActions::default();
        let mut event = SqsEvent::default();
        event.records = (0..10)
            .map(|i| record(i, event_json(&format!("AWB{i}"))))
            .collect();

        let response = handle(&dispatch, &actions, event, 1).await;
        let mut failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        failed.sort();
        assert_eq!(failed, vec!["msg-2", "msg-5", "msg-9"]);
        let retried: Vec<String> = actions.retries().into_iter().map(|(rh, _)| rh).collect();
        assert_eq!(retried.len(), 3);
        assert!(retried.contains(&"rh-5".to_owned()));
    }

    #[tokio::test]
    async fn a_message_that_is_not_an_event_is_dead_lettered_with_its_body_and_attributes() {
        let dispatch = dispatch(vec![]);
        let actions = MemoryQueueActions::default();
        let mut event = SqsEvent::default();
        event.records = vec![record(0, "{\"not\":\"an event\"}".into())];
        let response = handle(&dispatch, &actions, event, 4).await;
        assert!(response.batch_item_failures.is_empty());
        let dead = actions.dead_lettered();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "{\"not\":\"an event\"}");
        // With the attempt it was given up at (the DLQ's own count starts again).
        assert_eq!(
            dead[0].attributes,
            vec![
                ("tenant_id".to_owned(), "acme".to_owned()),
                ("attempts".to_owned(), "1".to_owned())
            ]
        );
        assert!(dead[0]
            .reason
            .starts_with("the message is not an rms.tracking.v1 event"));
    }

    #[tokio::test]
    async fn a_replayed_message_is_pushed_again_though_it_was_delivered() {
        let dispatch = dispatch(vec![answered(200), answered(200), answered(200)]);
        let actions = MemoryQueueActions::default();
        let body = event_json("A1");
        let batch = |replay: Option<&str>| {
            let mut message = record(0, body.clone());
            if let Some(value) = replay {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = Some(value.into());
                attribute.data_type = Some("String".into());
                message
                    .message_attributes
                    .insert("replay".to_owned(), attribute);
            }
            let mut event = SqsEvent::default();
            event.records = vec![message];
            event
        };

        handle(&dispatch, &actions, batch(None), 1).await;
        // The queue hands the same message out again: delivered before, so not pushed.
        handle(&dispatch, &actions, batch(None), 1).await;
        assert_eq!(dispatch.pusher.requests().len(), 1);
        // Any other value of the attribute is not a replay.
        handle(&dispatch, &actions, batch(Some("yes")), 1).await;
        assert_eq!(dispatch.pusher.requests().len(), 1);

        let response = handle(&dispatch, &actions, batch(Some("true")), 1).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(dispatch.pusher.requests().len(), 2);
        let delivered = dispatch
            .log
            .attempts()
            .iter()
            .filter(|a| a.outcome == shared::ports::AttemptOutcome::Delivered)
            .count();
        assert_eq!(delivered, 2);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_and_acknowledged() {
        let dispatch = dispatch(vec![answered(410)]);
        let actions = MemoryQueueActions::default();
        let mut event = SqsEvent::default();
        event.records = vec![record(0, event_json("A1"))];
        let response = handle(&dispatch, &actions, event, 4).await;
        assert!(response.batch_item_failures.is_empty());
        assert!(actions.dead_lettered()[0].reason.contains("410"));
    }
}
