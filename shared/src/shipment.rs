//! What the stores keep per (tenant, shipment key): the shipment's newest accepted event and what
//! is known of the shipment. Ingest writes it with every accepted event (newest event time wins,
//! `EventStore::record_shipment_event`, the same write that stamps `is_stale`); the dispatcher reads
//! it for latest-state delivery, and a reconciler can read what a carrier's pull API needs to ask
//! about the shipment (`ports::ShipmentStates`).

use chrono::{DateTime, Utc};

use crate::model::{CanonicalEvent, Carrier, EventId, Status};
use crate::push::PushConfig;

/// One shipment of one tenant, as of its newest accepted event. State written before a field was
/// kept reads as `None` (or `false`) for it: `latest_event_time` is the only field every store has
/// always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentState {
    /// The newest accepted event: the newest event time wins; between equal times, the one
    /// accepted last.
    pub latest_event_id: Option<EventId>,
    pub latest_event_time: DateTime<Utc>,
    /// The canonical status of that event.
    pub last_status: Option<Status>,
    /// That status ends the journey (`Status::is_terminal`).
    pub terminal: bool,
    pub carrier: Option<Carrier>,
    /// Identifiers of the shipment: the newest event's, or an earlier event's when the newest
    /// lacks one.
    pub awb: Option<String>,
    pub order_id: Option<String>,
    /// What the carrier's pull API needs besides the AWB to find the shipment: Clickpost's
    /// `cp_id` (see [`courier_id`]).
    pub courier_id: Option<String>,
    /// When the newest event arrived (its `received_at`).
    pub last_received_at: Option<DateTime<Utc>>,
}

impl ShipmentState {
    /// The state an accepted event gives its shipment when it is the newest.
    pub fn of(event: &CanonicalEvent) -> ShipmentState {
        ShipmentState {
            latest_event_id: Some(event.event_id.clone()),
            latest_event_time: event.event_time,
            last_status: Some(event.status),
            terminal: event.status.is_terminal(),
            carrier: Some(event.carrier),
            awb: event.awb.clone(),
            order_id: event.order_id.clone(),
            courier_id: courier_id(event),
            last_received_at: Some(event.received_at),
        }
    }

    /// This state after `event` was accepted: the event's own state if it is the newest (equal
    /// times included, so a retry of the newest event keeps it newest), keeping the identifiers
    /// it lacks; else unchanged (`None`: the event is stale). The rule the memory fake applies;
    /// SQLite and DynamoDB write the same with one conditional statement.
    pub fn after(current: Option<&ShipmentState>, event: &CanonicalEvent) -> Option<ShipmentState> {
        let mut next = ShipmentState::of(event);
        match current {
            Some(current) if current.latest_event_time > event.event_time => None,
            Some(current) => {
                next.awb = next.awb.or_else(|| current.awb.clone());
                next.order_id = next.order_id.or_else(|| current.order_id.clone());
                next.courier_id = next.courier_id.or_else(|| current.courier_id.clone());
                Some(next)
            }
            None => Some(next),
        }
    }

    /// The newer event that makes `event` not worth pushing to a tenant that takes only the
    /// latest state (`push::Delivery::Latest`): the shipment's newest accepted event, when it is
    /// another event, strictly later, and of a status the tenant takes. A newer event of a
    /// status the tenant filters out supersedes nothing (the tenant would hear nothing at all);
    /// nor does state that does not name its event (written before the id was kept).
    pub fn superseded_by<'a>(
        &'a self,
        event: &CanonicalEvent,
        config: &PushConfig,
    ) -> Option<&'a EventId> {
        let newer = self.latest_event_id.as_ref()?;
        let wanted = self.last_status.is_some_and(|s| config.wants(s));
        (newer != &event.event_id && self.latest_event_time > event.event_time && wanted)
            .then_some(newer)
    }
}

/// The courier id a carrier's pull API asks for: Clickpost's `cp_id`, which its normaliser
/// (`carriers/clickpost.rs`) puts in `courier` because a Clickpost webhook names no courier.
/// Shiprocket and Shipway webhooks name the courier, and their pull APIs need no id: `None`.
pub fn courier_id(event: &CanonicalEvent) -> Option<String> {
    match event.carrier {
        Carrier::Clickpost => event.courier.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::carriers::{normalize, NormalizeContext};
    use crate::push::{Delivery, PushHeaders, PushTimeout, PushUrl, TargetPolicy};

    fn scan(code: u16, time: &str) -> CanonicalEvent {
        let body = format!(
            r#"{{"waybill":"AWB1","cp_id":4,"clickpost_status_code":{code},"timestamp":"{time}",
                "additional":{{"order_id":"ORD-1"}}}}"#
        );
        let ctx = NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        );
        normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0)
    }

    fn config(statuses: Vec<Status>) -> PushConfig {
        PushConfig {
            url: PushUrl::parse("https://client.example/hook", TargetPolicy::default()).unwrap(),
            headers: PushHeaders::default(),
            statuses,
            signing_secret: None,
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: Delivery::Latest,
        }
    }

    #[test]
    fn an_accepted_event_gives_its_shipment_its_status_ids_and_courier() {
        let delivered = scan(8, "2026-11-21T10:00:00Z");
        let state = ShipmentState::of(&delivered);
        assert_eq!(state.latest_event_id, Some(delivered.event_id.clone()));
        assert_eq!(state.last_status, Some(Status::Delivered));
        assert!(state.terminal);
        assert_eq!(state.carrier, Some(Carrier::Clickpost));
        assert_eq!(state.awb.as_deref(), Some("AWB1"));
        assert_eq!(state.order_id.as_deref(), Some("ORD-1"));
        assert_eq!(state.courier_id.as_deref(), Some("4"));
        assert_eq!(state.last_received_at, Some(delivered.received_at));
        assert!(!ShipmentState::of(&scan(5, "2026-11-21T10:00:00Z")).terminal);
    }

    #[test]
    fn the_newest_event_time_wins_and_keeps_identifiers_the_newer_event_lacks() {
        let older = scan(5, "2026-11-21T09:00:00Z");
        let mut newer = scan(6, "2026-11-21T10:00:00Z");
        newer.order_id = None;
        let state = ShipmentState::after(None, &older).unwrap();
        let state = ShipmentState::after(Some(&state), &newer).unwrap();
        assert_eq!(state.latest_event_id, Some(newer.event_id.clone()));
        assert_eq!(state.order_id.as_deref(), Some("ORD-1"));
        assert_eq!(ShipmentState::after(Some(&state), &older), None, "stale");
        // The same time again (a retry) is not stale.
        assert!(ShipmentState::after(Some(&state), &newer).is_some());
    }

    #[test]
    fn only_a_later_other_event_of_a_wanted_status_supersedes() {
        let older = scan(5, "2026-11-21T09:00:00Z");
        let newer = scan(8, "2026-11-21T10:00:00Z");
        let state = ShipmentState::of(&newer);
        let all = config(vec![]);
        assert_eq!(state.superseded_by(&older, &all), Some(&newer.event_id));
        assert_eq!(state.superseded_by(&newer, &all), None, "itself");
        // The newest is filtered out for this tenant: the older one is still its news.
        let not_delivered = config(vec![Status::InTransit]);
        assert_eq!(state.superseded_by(&older, &not_delivered), None);
        // Same time, another event (two scans of one minute): both are pushed.
        let twin = scan(6, "2026-11-21T10:00:00Z");
        assert_eq!(state.superseded_by(&twin, &all), None);
        // State from before the id was kept supersedes nothing.
        let unnamed = ShipmentState {
            latest_event_id: None,
            ..state.clone()
        };
        assert_eq!(unnamed.superseded_by(&older, &all), None);
    }
}
