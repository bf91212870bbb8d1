//! The ops use-case behind the admin API (`admin-api` Lambda, `rms serve`) and the `rms` ops
//! commands: tenants, carrier credentials with rotation, Push Config, test push, the delivery log,
//! dead letters and replay, the quarantine (rejected bodies, replayed through ingest once the
//! normaliser is fixed) and the carrier-status view. One store port ([`AdminStore`]) with a
//! DynamoDB + SQS adapter, a SQLite adapter and an in-memory fake.
//!
//! One file per job: `tenants` (tenants, keys, Push Config, pull accounts, the test push),
//! `deliveries` (the delivery log, dead letters, replay, the circuit and the queue), `quarantine`,
//! `carriers` (the carrier-status view and quiet shipments) and `store` (the port).
//!
//! Secrets only ever come in: carrier keys are stored as digests, Push Config header values and
//! signing secrets are never part of a view. A generated key or secret is returned once, by the
//! call that made it.

mod carriers;
mod deliveries;
mod quarantine;
mod store;
mod tenants;
#[cfg(test)]
mod tests;

use crate::model::{Carrier, TenantId};
use crate::ports::{TenantAuth, Unavailable};
use crate::push::TargetPolicy;

pub use carriers::*;
pub use deliveries::*;
pub use quarantine::*;
pub use store::*;
pub use tenants::*;

/// Why an admin operation did not happen; each variant is one HTTP status (`admin-api`).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400: the input named by `field` is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 503: a store or queue failed; try again.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl AdminError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AdminError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The admin use-case over its store, the pusher (test pushes) and ingest (quarantine replays).
pub struct Admin<S, P, R> {
    pub store: S,
    pub pusher: P,
    /// Ingest, for replaying quarantined bodies.
    pub reingest: R,
    /// What a Push Config URL may point at: as the pusher's guard, so that what is saved is
    /// what can be delivered to (https and public addresses on AWS; `rms serve` with
    /// `allow_private_targets` and `rms --local` allow local receivers).
    pub policy: TargetPolicy,
}

fn parse_carrier(carrier: &str) -> Result<Carrier, AdminError> {
    carrier
        .parse()
        .map_err(|e: crate::model::UnknownName| AdminError::invalid("carrier", e.to_string()))
}

fn tenant_id(id: &str) -> Result<TenantId, AdminError> {
    // A malformed id cannot name an existing tenant.
    TenantId::parse(id).map_err(|_| AdminError::NotFound(format!("no tenant {id:?}")))
}

/// What ingest needs to know of a tenant.
fn auth_of(tenant: &Tenant) -> TenantAuth {
    TenantAuth {
        enabled: tenant.enabled,
        tenant_id: tenant.id.clone(),
        include_source: tenant.include_source,
    }
}
