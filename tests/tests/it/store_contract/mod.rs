//! The store contract: one set of cases (`cases.rs`), written against the ports of
//! `shared::ports` and `shared::admin::AdminStore`, run on each store that implements them: the
//! in-memory fakes (`shared::adapters::memory`), SQLite (`rms serve`) and DynamoDB with SQS on
//! moto_server (the Lambdas). A fact of the stores is tested here once, for all of them; the
//! adapters' own tests keep what only that adapter has (migrations, leases per tenant, item
//! layouts).
//!
//! The memory fakes have no queue that hands messages out (their queue and queue actions record
//! what they are given), so the queue and dead-letter cases run on SQLite and SQS; SQLite claims
//! inside its one accept transaction, with no `EventStore` of its own, so the claim and release
//! cases run on the fake and DynamoDB. Each store gets a fresh instance per case (on moto: its own
//! tables and queues).

mod backends;
mod cases;

use std::future::Future;
use std::time::Duration;

use shared::admin::AdminStore;
use shared::ports::{DeliveryLog, EventStore, Intake, QueueActions, ShipmentStates};
use shared::CanonicalEvent;

/// How many times a message is handed out before the queue gives it up (SQS: the redrive
/// policy's `maxReceiveCount`; SQLite: the dispatcher's `max_attempts`).
pub const MAX_RECEIVES: u32 = 3;

/// A store under contract: the ports every store implements, and a look at its queue.
pub trait Store {
    fn intake(&self) -> &impl Intake;
    fn shipments(&self) -> &impl ShipmentStates;
    fn log(&self) -> &impl DeliveryLog;
    /// The events queued since the last call (each once).
    fn queued(&self) -> impl Future<Output = Vec<CanonicalEvent>>;
}

/// A store that claims an event id on its own (`EventStore`): the fake and DynamoDB.
pub trait Claims: Store {
    fn events(&self) -> &impl EventStore;
}

/// A message as the queue hands it out.
#[derive(Debug)]
pub struct Received {
    pub receipt: String,
    pub event: CanonicalEvent,
    /// 1 the first time it is handed out.
    pub receive_count: u32,
}

/// A store with a queue that hands messages out and takes them back, and the admin store over
/// it: SQLite and SQS. Receiving and acknowledging are not ports (on AWS the event source
/// mapping does them): each store does them here as its dispatcher host does.
pub trait Queue: Store {
    fn actions(&self) -> &impl QueueActions;
    fn admin(&self) -> &impl AdminStore;
    /// The messages visible `after` from now (SQLite: leased as of then; SQS: received after
    /// waiting that long), each hidden for `hide` once handed out.
    fn receive(&self, after: Duration, hide: Duration) -> impl Future<Output = Vec<Received>>;
    /// Done with: deleted from the queue.
    fn acknowledge(&self, receipt: &str) -> impl Future<Output = ()>;
}

/// One `#[tokio::test]` per case, in a module named for the store: `store_contract::sqlite::…`.
macro_rules! contract {
    ($store:ident: $($case:ident),+ $(,)?) => {
        mod $store {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = super::backends::$store().await else {
                        return;
                    };
                    super::cases::$case(&store).await;
                }
            )+
        }
    };
}

contract!(memory:
    an_event_accepted_twice_is_queued_once,
    the_same_event_accepted_at_once_many_times_is_queued_once,
    an_older_event_is_queued_marked_stale_and_the_newest_is_the_shipment_s_state,
    an_event_is_delivered_once_an_attempt_delivered_it,
    a_claim_names_one_copy_for_good,
);

contract!(sqlite:
    an_event_accepted_twice_is_queued_once,
    the_same_event_accepted_at_once_many_times_is_queued_once,
    an_older_event_is_queued_marked_stale_and_the_newest_is_the_shipment_s_state,
    an_event_is_delivered_once_an_attempt_delivered_it,
    a_message_retried_later_is_hidden_until_then_and_handed_out_again,
    a_message_handed_out_too_often_is_a_dead_letter_and_redriven_as_new,
    dead_letters_are_listed_with_their_reason_and_redriven_by_id_or_all,
    attempts_are_listed_by_awb_and_by_time_oldest_first,
);

contract!(aws:
    an_event_accepted_twice_is_queued_once,
    the_same_event_accepted_at_once_many_times_is_queued_once,
    an_older_event_is_queued_marked_stale_and_the_newest_is_the_shipment_s_state,
    an_event_is_delivered_once_an_attempt_delivered_it,
    a_claim_names_one_copy_for_good,
    a_message_retried_later_is_hidden_until_then_and_handed_out_again,
    a_message_handed_out_too_often_is_a_dead_letter_and_redriven_as_new,
    dead_letters_are_listed_with_their_reason_and_redriven_by_id_or_all,
    attempts_are_listed_by_awb_and_by_time_oldest_first,
);
