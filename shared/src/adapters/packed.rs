//! The accepted event as the events table keeps it for replay: its JSON without nulls, with the
//! carrier's `source` verbatim, deflated with a preset dictionary of the canonical event's and the
//! carriers' field names.
//!
//! Why: DynamoDB bills a write by the kilobyte of the whole item, and the claim carries the event
//! (what `replay` sends). A canonical event with a 1.5 KB `source` is about 2.3 KB of JSON: three
//! write units for every write of its claim. Plain deflate takes it to about 880 bytes; most of what
//! remains is field names that every event repeats, which a preset dictionary turns into
//! back-references (about 650 bytes), so that the claim stays one write unit. Measured on the
//! fixtures, 2026-11-27 (`a_kept_event_with_a_1_5_kb_source_packs_under_700_bytes` below).
//!
//! The first byte is the format: [`V1`]. Items written with one dictionary can only be read with
//! the same one, so [`DICTIONARY_V1`] never changes: a better dictionary is a `V2` beside it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde_json::Value;

use crate::model::CanonicalEvent;

/// The format byte of [`DICTIONARY_V1`] deflate.
pub const V1: u8 = 1;

/// Strings the kept events repeat, the most frequent last (deflate codes nearer matches in fewer
/// bits). Never edit: items packed with it read only with it.
const DICTIONARY_V1: &[u8] = br#""waybill":"clickpost_status_code":"clickpost_status_description":"clickpost_status_bucket":"clickpost_status_bucket_description":"clickpost_city":"cp_id":"account_code":"additional":"notification_event_id":"ndr_status_code":"ndr_status_description":"npr_status_code":"npr_status_description":"courier_partner_edd":"latest_status":"reference_number":"is_rvp":"order_id":"timestamp":"remark":"location":"status":"awbno":"company_id":"store_code":"pickupdate":"carrier_id":"scans_current_status":"scans_current_status_time":"current_status_desc":"expected_delivery_date":"webhook_sent_date":"received_by":"country_code":"callback_url":"api_input":"pod":"epod":"scans":{"0":{"location":"time":"status":"awb":"courier_name":"current_status":"current_status_id":"shipment_status":"shipment_status_id":"current_timestamp":"sr_order_id":"awb_assigned_date":"pickup_scheduled_date":"etd":"scans":[{"date":"status":"X-UCI","activity":"Manifested - Manifest uploaded","location":"sr-status":"sr-status-label":"MANIFEST GENERATED"},{"date":"status":"X-PPOM","activity":"In Transit - Shipment picked up","sr-status":"42","sr-status-label":"PICKED UP"},{"date":"activity":"In Transit","sr-status-label":"IN TRANSIT"},"is_return":0,"channel_id":"items":[],"edd":"2026-11-","ndr":{"code":"reason":"npr":{"latest_status":{"status":"code":"description":"event_time":"event_time_raw":"received_at":"2026-11-","is_stale":false,"is_stale":true,"source":{"schema":"rms.tracking.v1","event_id":"evt_","tenant_id":"carrier":"clickpost","carrier":"shiprocket","carrier":"shipway","courier":"awb":"order_id":"shipment_type":"forward","shipment_type":"return","status":"PICKED_UP","status":"OUT_FOR_DELIVERY","status":"DELIVERED","status":"IN_TRANSIT","carrier_status":{"code":"description":"raw":"notification_event_id":"location":"remark":"event_time":"2026-11-"#;

/// Why a kept event could not be packed or read back.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("the event could not be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("deflate failed: {0}")]
    Deflate(String),
    #[error("the kept event has format {0}, which this build does not read")]
    UnknownFormat(u8),
    #[error("the kept event is empty")]
    Empty,
    #[error("the kept event inflates to more than {MAX_UNPACKED} bytes")]
    TooLarge,
}

/// More than any event ingest accepts (bodies are at most 256 KiB).
const MAX_UNPACKED: usize = 1 << 20;

/// The event's JSON without nulls (outside `source`), and `source` as the carrier sent it.
fn compact_json(event: &CanonicalEvent) -> Result<Vec<u8>, PackError> {
    let mut rest = event.clone();
    let source = rest.source.take();
    let mut value = serde_json::to_value(&rest)?;
    strip_nulls(&mut value);
    if let Value::Object(fields) = &mut value {
        fields.remove("source");
    }
    let mut json = serde_json::to_vec(&value)?;
    if let Some(source) = source {
        // Spliced in as text: a `Value` would reorder the carrier's keys.
        let raw = serde_json::to_vec(&source)?;
        if json.pop() == Some(b'}') {
            if json.len() > 1 {
                json.push(b',');
            }
            json.extend_from_slice(br#""source":"#);
            json.extend_from_slice(&raw);
            json.push(b'}');
        }
    }
    Ok(json)
}

/// Removes null fields: a missing `Option` field reads back as `None`.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|_, v| !v.is_null());
            fields.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The event packed: [`V1`], then its compact JSON deflated (raw, with [`DICTIONARY_V1`]).
pub fn pack(event: &CanonicalEvent) -> Result<Vec<u8>, PackError> {
    compress(&compact_json(event)?)
}

/// Any JSON text packed as an event is: [`V1`], then deflated with [`DICTIONARY_V1`] (the delivery
/// log's pages, `dynamodb.rs`, share the field names).
pub fn compress(json: &[u8]) -> Result<Vec<u8>, PackError> {
    let mut deflate = Compress::new(Compression::best(), false);
    deflate
        .set_dictionary(DICTIONARY_V1)
        .map_err(|e| PackError::Deflate(e.to_string()))?;
    let mut packed = Vec::with_capacity(json.len() / 2 + 64);
    packed.push(V1);
    loop {
        packed.reserve(json.len().max(256));
        let consumed = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
        let status = deflate
            .compress_vec(
                json.get(consumed..).unwrap_or_default(),
                &mut packed,
                FlushCompress::Finish,
            )
            .map_err(|e| PackError::Deflate(e.to_string()))?;
        if status == Status::StreamEnd {
            return Ok(packed);
        }
    }
}

/// The event a [`pack`] wrote.
pub fn unpack(packed: &[u8]) -> Result<CanonicalEvent, PackError> {
    Ok(serde_json::from_slice(&decompress(packed)?)?)
}

/// The bytes a [`compress`] was given.
pub fn decompress(packed: &[u8]) -> Result<Vec<u8>, PackError> {
    let (&format, deflated) = packed.split_first().ok_or(PackError::Empty)?;
    if format != V1 {
        return Err(PackError::UnknownFormat(format));
    }
    let mut inflate = Decompress::new(false);
    let mut json = Vec::with_capacity(deflated.len() * 4);
    // A raw stream takes its dictionary before the first byte.
    inflate
        .set_dictionary(DICTIONARY_V1)
        .map_err(|e| PackError::Deflate(e.to_string()))?;
    loop {
        if json.len() > MAX_UNPACKED {
            return Err(PackError::TooLarge);
        }
        json.reserve(deflated.len().max(1024));
        let consumed = usize::try_from(inflate.total_in()).unwrap_or(usize::MAX);
        let before = inflate.total_out();
        let status = inflate
            .decompress_vec(
                deflated.get(consumed..).unwrap_or_default(),
                &mut json,
                FlushDecompress::Finish,
            )
            .map_err(|e| PackError::Deflate(e.to_string()))?;
        match status {
            Status::StreamEnd => break,
            _ if inflate.total_out() == before
                && usize::try_from(inflate.total_in()).ok() == Some(deflated.len()) =>
            {
                return Err(PackError::Deflate("the stream ends early".into()));
            }
            _ => {}
        }
    }
    Ok(json)
}

/// How many bytes `event` packs to (for tests and `docs/performance.md`).
pub fn packed_len(event: &CanonicalEvent) -> Result<usize, PackError> {
    Ok(pack(event)?.len())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::carriers::{normalize, NormalizeContext};
    use crate::model::Carrier;

    use crate::fixtures::fixture;

    fn events(carrier: Carrier, path: &str) -> Vec<CanonicalEvent> {
        let ctx = NormalizeContext::new(
            crate::model::TenantId::parse("acme-logistics").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
        );
        normalize(carrier, &fixture(path), &ctx).unwrap()
    }

    #[test]
    fn a_packed_event_reads_back_equal_with_its_source_verbatim() {
        for (carrier, path) in [
            (Carrier::Shiprocket, "shiprocket/field_rto_initiated.json"),
            (
                Carrier::Clickpost,
                "clickpost/failed_delivery_ndr_selected.json",
            ),
            (Carrier::Shipway, "shipway/classic_status_feed.json"),
        ] {
            for event in events(carrier, path) {
                let back = unpack(&pack(&event).unwrap()).unwrap();
                assert_eq!(back, event, "{path}");
                assert_eq!(
                    back.source.as_ref().map(|s| s.as_str().to_owned()),
                    event.source.as_ref().map(|s| s.as_str().to_owned()),
                    "{path}: source kept byte for byte"
                );
            }
        }
    }

    #[test]
    fn a_kept_event_with_a_1_5_kb_source_packs_under_700_bytes() {
        let event = events(Carrier::Shiprocket, "shiprocket/field_rto_initiated.json").remove(0);
        let json = serde_json::to_vec(&event).unwrap();
        let source = event.source.as_ref().unwrap().as_str().len();
        assert!(source > 1500, "{source}");
        let packed = packed_len(&event).unwrap();
        assert!(
            packed < 700,
            "{} bytes of JSON packed to {packed}",
            json.len()
        );
    }

    #[test]
    fn an_unknown_format_or_a_cut_stream_is_an_error_not_a_panic() {
        let event = events(
            Carrier::Clickpost,
            "clickpost/delivered_selected_captured.json",
        )
        .remove(0);
        let packed = pack(&event).unwrap();
        let mut other = packed.clone();
        other[0] = 9;
        assert!(matches!(unpack(&other), Err(PackError::UnknownFormat(9))));
        assert!(unpack(&packed[..packed.len() / 2]).is_err());
        assert!(matches!(unpack(&[]), Err(PackError::Empty)));
    }
}
