//! Charts the benchmarks write as SVG (`--plot FILE`): self-contained images for the docs, with
//! no script, font or stylesheet to fetch.
//!
//! [`hop_chart`] draws one horizontal bar per hop, stacked from its parts' medians (each part's
//! own p50, so a bar is the sum of typical parts, not a p50 of the sum), with the hop's floor as
//! a dashed mark.

use std::fmt::Write as _;

/// One hop's bar.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The hop (a service, or `projection`).
    pub label: String,
    /// Its parts, in order, with their medians in milliseconds.
    pub parts: Vec<(String, f64)>,
    /// The floor to mark, in milliseconds.
    pub floor: Option<f64>,
}

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 150.0;
const RIGHT_MARGIN: f64 = 70.0;
const TOP: f64 = 70.0;
const ROW: f64 = 34.0;
const BAR: f64 = 20.0;

/// The colour of a part (a fixed palette; unknown parts grey).
fn colour(part: &str) -> &'static str {
    match part {
        "relay" => "#4e79a7",
        "consumer" => "#f28e2b",
        "delivery" => "#59a14f",
        "append" => "#76b7b2",
        "projection" => "#e15759",
        _ => "#9c9c9c",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let rough = (max / 5.0).max(1e-9);
    let magnitude = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * magnitude)
}

/// An SVG of `bars` under `title` and `subtitle`, the axis in milliseconds.
pub fn hop_chart(title: &str, subtitle: &str, bars: &[Bar]) -> String {
    let widest = bars
        .iter()
        .map(|b| {
            let total: f64 = b.parts.iter().map(|(_, ms)| ms.max(0.0)).sum();
            total.max(b.floor.unwrap_or(0.0))
        })
        .fold(1.0, f64::max);
    let step = tick_step(widest);
    let axis_max = (widest / step).ceil() * step;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
    let x = |ms: f64| LABEL_WIDTH + ms / axis_max * plot_width;
    let bottom = TOP + ROW * bars.len() as f64;
    let height = bottom + 70.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="10" y="22" font-size="15" font-weight="bold">{}</text><text x="10" y="42" fill="#444">{}</text>"##,
        escape(title),
        escape(subtitle)
    );
    // Grid and axis.
    let mut tick = 0.0;
    while tick <= axis_max + step / 2.0 {
        let at = x(tick);
        let _ = write!(
            svg,
            r##"<line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{bottom}" stroke="#e0e0e0"/><text x="{at:.1}" y="{:.1}" text-anchor="middle" fill="#444">{tick}</text>"##,
            bottom + 16.0
        );
        tick += step;
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">milliseconds (p50 of each part)</text>"##,
        LABEL_WIDTH + plot_width / 2.0,
        bottom + 34.0
    );
    let mut legend: Vec<&str> = Vec::new();
    for (row, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * row as f64 + (ROW - BAR) / 2.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y + BAR * 0.7,
            escape(&bar.label)
        );
        let mut start = 0.0;
        for (part, ms) in &bar.parts {
            let ms = ms.max(0.0);
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{}"><title>{}: {ms:.0} ms</title></rect>"#,
                x(start),
                (x(start + ms) - x(start)).max(0.5),
                colour(part),
                escape(part)
            );
            start += ms;
            if !legend.contains(&part.as_str()) {
                legend.push(part);
            }
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#222">{start:.0}</text>"##,
            x(start) + 4.0,
            y + BAR * 0.7
        );
        if let Some(floor) = bar.floor {
            let at = x(floor);
            let _ = write!(
                svg,
                r##"<line x1="{at:.1}" y1="{:.1}" x2="{at:.1}" y2="{:.1}" stroke="#000" stroke-width="2" stroke-dasharray="4 3"/>"##,
                y - 3.0,
                y + BAR + 3.0
            );
        }
    }
    // Legend.
    let mut at = LABEL_WIDTH;
    let y = height - 14.0;
    for part in legend {
        let _ = write!(
            svg,
            r#"<rect x="{at:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            colour(part),
            at + 16.0,
            escape(part)
        );
        at += 30.0 + 7.0 * part.len() as f64;
    }
    if bars.iter().any(|b| b.floor.is_some()) {
        let _ = write!(
            svg,
            r##"<line x1="{at:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-width="2" stroke-dasharray="4 3"/><text x="{:.1}" y="{y:.1}">floor (bare put-to-get, same run)</text>"##,
            y - 4.0,
            at + 14.0,
            y - 4.0,
            at + 20.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_stacked_in_order_with_their_floor_and_a_legend() {
        let bars = vec![
            Bar {
                label: "vehicle-enricher".to_owned(),
                parts: vec![("relay".to_owned(), 100.0), ("consumer".to_owned(), 300.0)],
                floor: Some(150.0),
            },
            Bar {
                label: "projection".to_owned(),
                parts: vec![("projection".to_owned(), 200.0)],
                floor: Some(150.0),
            },
        ];
        let svg = hop_chart("POST → priced <per hop>", "floor 150 ms", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(
            svg.contains("POST → priced &lt;per hop&gt;"),
            "text is escaped"
        );
        // The second part starts where the first ends: 100 ms of an axis to 400 ms.
        let plot = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
        let consumer_x = format!(r#"x="{:.1}""#, LABEL_WIDTH + 100.0 / 400.0 * plot);
        assert!(svg.contains(&consumer_x), "{consumer_x} in {svg}");
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            3,
            "two floors and the legend's"
        );
        for part in ["relay", "consumer", "projection"] {
            assert!(
                svg.contains(&format!(">{part}</text>")),
                "legend names {part}"
            );
        }
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(2664.0), 1000.0);
        assert_eq!(tick_step(900.0), 200.0);
        assert_eq!(tick_step(12.0), 2.5);
    }
}
