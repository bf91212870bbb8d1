//! The overview's chart: a tenant's delivered and failed pushes per hour over 24 hours, as SVG in
//! the page (colours from the style sheet, so the CSP needs no inline style).

use maud::{html, Markup};
use shared::admin::HourOfDeliveries;

const BAR: u64 = 8;
const GAP: u64 = 2;
const HEIGHT: u64 = 48;

/// Stacked bars, one per hour, oldest on the left: delivered below, failed on top. Each bar's
/// `<title>` gives its hour and counts; the whole has a text alternative.
pub fn deliveries(hours: &[HourOfDeliveries]) -> Markup {
    let delivered: u64 = hours.iter().map(|h| h.delivered).sum();
    let failed: u64 = hours.iter().map(|h| h.failed).sum();
    let peak = hours
        .iter()
        .map(|h| h.delivered + h.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = hours.len() as u64 * (BAR + GAP);
    // Heights scale to the busiest hour; any non-zero count shows at least one unit.
    let scale = |count: u64| {
        if count == 0 {
            0
        } else {
            (count * HEIGHT).div_ceil(peak).max(1)
        }
    };
    let label = format!(
        "Last 24 hours, per hour: {delivered} delivered, {failed} failed (busiest hour: {peak})"
    );
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {}", HEIGHT + 1))
            width=(width) height=(HEIGHT + 1) role="img" aria-label=(label) {
            @for (i, hour) in hours.iter().enumerate() {
                @let x = i as u64 * (BAR + GAP);
                @let ok = scale(hour.delivered);
                @let bad = scale(hour.failed);
                g {
                    title {
                        (hour.hour.format("%H:00 UTC").to_string()) ": "
                        (hour.delivered) " delivered, " (hour.failed) " failed"
                    }
                    rect.slot x=(x) y="0" width=(BAR) height=(HEIGHT) {}
                    @if ok > 0 {
                        rect.delivered x=(x) y=(HEIGHT - ok) width=(BAR) height=(ok) {}
                    }
                    @if bad > 0 {
                        rect.failed x=(x) y=(HEIGHT - ok - bad.min(HEIGHT - ok)) width=(BAR) height=(bad.min(HEIGHT - ok)) {}
                    }
                }
            }
            line.base x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn hours(counts: &[(u64, u64)]) -> Vec<HourOfDeliveries> {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
        counts
            .iter()
            .enumerate()
            .map(|(i, (delivered, failed))| HourOfDeliveries {
                hour: start + chrono::Duration::hours(i as i64),
                delivered: *delivered,
                failed: *failed,
            })
            .collect()
    }

    #[test]
    fn the_busiest_hour_fills_the_height_and_the_totals_are_in_the_label() {
        let svg = deliveries(&hours(&[(0, 0), (3, 1), (1, 0)])).into_string();
        assert!(
            svg.contains(
                r#"aria-label="Last 24 hours, per hour: 4 delivered, 1 failed (busiest hour: 4)""#
            ),
            "{svg}"
        );
        assert!(
            svg.contains(r#"class="delivered" x="10" y="12" width="8" height="36""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"class="failed" x="10" y="0" width="8" height="12""#),
            "{svg}"
        );
        assert!(svg.contains("01:00 UTC: 3 delivered, 1 failed"), "{svg}");
        assert!(
            !svg.contains("style="),
            "no inline style: the CSP forbids it"
        );
    }

    #[test]
    fn an_empty_day_draws_no_bars() {
        let svg = deliveries(&hours(&[(0, 0); 24])).into_string();
        assert!(!svg.contains("class=\"delivered\""));
        assert!(svg.contains("0 delivered, 0 failed"));
    }
}
