//! Normaliser cost per carrier sample, with `source` attached (the default), including the
//! set-up-probe recognition ingest runs first.
//! Run: `cargo bench -p shared --bench normalize`. Figures go in docs/performance.md.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed benchmark

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared::{normalize, Carrier, NormalizeContext};

/// tests/support/fixtures.rs: the fixtures' reader, as every crate's tests have it.
#[path = "../../tests/support/fixtures.rs"]
mod fixtures;
use fixtures::fixture;

fn normalizers(c: &mut Criterion) {
    let ctx = NormalizeContext::new(
        shared::TenantId::parse("acme").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
    );
    let samples = [
        (
            "clickpost/delivered_selected",
            Carrier::Clickpost,
            "clickpost/delivered_selected_captured.json",
        ),
        (
            "clickpost/failed_delivery_ndr",
            Carrier::Clickpost,
            "clickpost/failed_delivery_ndr_selected.json",
        ),
        (
            "shiprocket/in_transit",
            Carrier::Shiprocket,
            "shiprocket/in_transit_official.json",
        ),
        (
            "shipway/panel_delivered",
            Carrier::Shipway,
            "shipway/panel_delivered.json",
        ),
        (
            "shipway/classic_status_feed",
            Carrier::Shipway,
            "shipway/classic_status_feed.json",
        ),
        // Built from the field facts (tests/fixtures/FIELD-FACTS.md): a status no scan carries, a
        // reverse pickup known by its dsqc category, a classic body whose `hash` is scrubbed
        // from `source`.
        (
            "shiprocket/rto_initiated_no_scan",
            Carrier::Shiprocket,
            "shiprocket/field_rto_initiated.json",
        ),
        (
            "clickpost/rvp_dsqc_picked_up",
            Carrier::Clickpost,
            "clickpost/field_rvp_dsqc_picked_up.json",
        ),
        (
            "shipway/classic_with_hash",
            Carrier::Shipway,
            "shipway/field_classic_hash_delivered.json",
        ),
    ];
    let mut group = c.benchmark_group("normalize");
    for (label, carrier, name) in samples {
        let body = fixture(name);
        let events = normalize(carrier, &body, &ctx).unwrap().len();
        // Throughput in events, so criterion's elem/s reads as events per second.
        group.throughput(Throughput::Elements(events as u64));
        // What ingest runs on a body before its events are claimed: the probe/test
        // recognition, then the normaliser (which scans the nesting depth first).
        group.bench_function(label, |b| {
            b.iter(|| {
                let kind = carrier.spec().classify(black_box(&body));
                (kind, normalize(carrier, black_box(&body), &ctx).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, normalizers);
criterion_main!(benches);
