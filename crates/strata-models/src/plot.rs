//! The calibration plot: mean predicted risk against observed event rate by group of predicted
//! risk (deciles), one line per model, with the diagonal of perfect calibration, as a
//! self-contained SVG document (no scripts, fonts or external references; hand-written, so no
//! plotting dependency).
//!
//! Place in the pipeline: after [`crate::metrics::calibration_table`]; `strata evaluate --plot`
//! and `strata compare --plot` write what [`calibration_svg`] returns. The output is a pure
//! function of its input (fixed layout, fixed palette, fixed number formatting), so the same
//! figures give the same bytes.

use std::fmt::Write;

use crate::metrics::CalibrationBin;

/// One line of the plot.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend text (a model's name).
    pub label: &'a str,
    /// Its calibration table, lowest predicted risk first; empty groups are skipped.
    pub bins: &'a [CalibrationBin],
}

/// Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), in order.
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Width of the figure without the legend's labels.
const MIN_WIDTH: f64 = 720.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 50.0;
const PLOT: f64 = 400.0;

/// Escapes text for an SVG or HTML text node or attribute (control characters become spaces).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The axis maximum: the smallest of a fixed ladder of round values at or above `m`, so that
/// low-risk outcomes are not squashed into a corner of a 0-1 square.
fn axis_max(m: f64) -> f64 {
    const LADDER: [f64; 12] = [
        0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0,
    ];
    LADDER.into_iter().find(|&v| v >= m).unwrap_or(1.0)
}

/// A tick label: the value with trailing zeros removed (`0.05`, `0.1`, `0`).
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The calibration plot of `series` as an SVG document titled `title`.
///
/// Both axes run from 0 to the same round maximum at or above the largest predicted or observed
/// value, so the diagonal is at 45 degrees. Each point is a `<circle class="point">` carrying its
/// series, group, `data-predicted`, `data-observed` and `data-n` attributes and a `<title>`
/// tooltip, so the figures can be read back from the file.
pub fn calibration_svg(title: &str, series: &[Series<'_>]) -> String {
    let largest = series
        .iter()
        .flat_map(|s| s.bins.iter())
        .flat_map(|b| [b.mean_predicted, b.observed_rate])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let max = axis_max(largest);
    // Room for the longest legend label (about 7 px a character at 12 px).
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .chain(["perfect calibration".len()])
        .max()
        .unwrap_or(0);
    let width = MIN_WIDTH.max((LEFT + PLOT + 56.0 + 7.0 * longest as f64 + 16.0).ceil());
    let x = |v: f64| LEFT + PLOT * (v / max);
    let y = |v: f64| TOP + PLOT * (1.0 - v / max);
    let mut s = String::new();
    // `write!` to a String cannot fail; the results are ignored deliberately.
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<title>{}</title>
<rect x="0" y="0" width="{width}" height="{HEIGHT}" fill="#ffffff"/>
<text x="{:.2}" y="28" text-anchor="middle" font-size="15">{}</text>"##,
        escape(title),
        LEFT + PLOT / 2.0,
        escape(title)
    );
    // Grid, ticks and tick labels.
    let _ = writeln!(s, r##"<g class="axes" stroke="#cccccc" stroke-width="1">"##);
    for k in 0..=5 {
        let v = max * f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}"/><line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}"/>"#,
            x(v),
            TOP,
            x(v),
            TOP + PLOT,
            LEFT,
            y(v),
            LEFT + PLOT,
            y(v)
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<g class="ticks" fill="#333333">"##);
    for k in 0..=5 {
        let v = max * f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text><text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"#,
            x(v),
            TOP + PLOT + 18.0,
            tick_label(v),
            LEFT - 8.0,
            y(v) + 4.0,
            tick_label(v)
        );
    }
    let _ = writeln!(s, "</g>");
    // Frame and axis titles.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT}" height="{PLOT}" fill="none" stroke="#333333"/>
<text class="x-label" x="{:.2}" y="{:.2}" text-anchor="middle">Mean predicted risk (by tenth of predicted risk)</text>
<text class="y-label" x="{:.2}" y="{:.2}" text-anchor="middle" transform="rotate(-90 {:.2} {:.2})">Observed event rate</text>"##,
        LEFT + PLOT / 2.0,
        TOP + PLOT + 42.0,
        LEFT - 52.0,
        TOP + PLOT / 2.0,
        LEFT - 52.0,
        TOP + PLOT / 2.0
    );
    // The diagonal: perfect calibration.
    let _ = writeln!(
        s,
        r##"<line class="diagonal" x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="#888888" stroke-dasharray="6 4"/>"##,
        x(0.0),
        y(0.0),
        x(max),
        y(max)
    );
    // One line per series.
    for (i, ser) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let label = escape(ser.label);
        let pts: Vec<(usize, f64, f64, usize)> = ser
            .bins
            .iter()
            .enumerate()
            .filter_map(|(g, b)| match (b.mean_predicted, b.observed_rate) {
                (Some(p), Some(o)) if p.is_finite() && o.is_finite() => Some((g, p, o, b.n)),
                _ => None,
            })
            .collect();
        let _ = writeln!(s, r#"<g class="series" data-label="{label}">"#);
        let path: Vec<String> = pts
            .iter()
            .map(|&(_, p, o, _)| format!("{:.2},{:.2}", x(p), y(o)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(g, p, o, n) in &pts {
            let _ = writeln!(
                s,
                r#"<circle class="point" cx="{:.2}" cy="{:.2}" r="4" fill="{colour}" data-series="{label}" data-group="{}" data-predicted="{p:.6}" data-observed="{o:.6}" data-n="{n}"><title>{label}, group {}: predicted {p:.4}, observed {o:.4} (n {n})</title></circle>"#,
                x(p),
                y(o),
                g + 1,
                g + 1
            );
        }
        // Legend entry.
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let lx = LEFT + PLOT + 24.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{colour}" stroke-width="2"/><circle cx="{:.2}" cy="{ly:.2}" r="4" fill="{colour}"/><text x="{:.2}" y="{:.2}">{label}</text>"#,
            lx + 24.0,
            lx + 12.0,
            lx + 32.0,
            ly + 4.0
        );
        let _ = writeln!(s, "</g>");
    }
    let ly = TOP + 10.0 + 22.0 * series.len() as f64;
    let lx = LEFT + PLOT + 24.0;
    let _ = writeln!(
        s,
        r##"<line x1="{lx:.2}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="#888888" stroke-dasharray="6 4"/><text x="{:.2}" y="{:.2}">perfect calibration</text>
</svg>"##,
        lx + 24.0,
        lx + 32.0,
        ly + 4.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(p: f64, o: f64) -> CalibrationBin {
        CalibrationBin {
            n: 10,
            events: (o * 10.0).round() as usize,
            mean_predicted: Some(p),
            observed_rate: Some(o),
        }
    }

    #[test]
    fn one_point_per_group_and_escaped_labels() {
        let a: Vec<CalibrationBin> = (0..10)
            .map(|k| bin(0.01 * k as f64, 0.012 * k as f64))
            .collect();
        let mut b = a.clone();
        b[3].mean_predicted = None;
        b[3].observed_rate = None;
        let svg = calibration_svg(
            "t <&>",
            &[
                Series {
                    label: "model \"A\"",
                    bins: &a,
                },
                Series {
                    label: "eFI & co",
                    bins: &b,
                },
            ],
        );
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="point""#).count(), 19);
        assert!(svg.contains("model &quot;A&quot;") && svg.contains("eFI &amp; co"));
        assert!(!svg.contains("<&>"));
        // Axis maximum: the largest value 0.108 rounds up to 0.15.
        assert!(svg.contains(">0.15<"), "{svg}");
        assert!(svg.contains(r#"data-predicted="0.090000" data-observed="0.108000""#));
        // Deterministic.
        assert_eq!(
            svg,
            calibration_svg(
                "t <&>",
                &[
                    Series {
                        label: "model \"A\"",
                        bins: &a
                    },
                    Series {
                        label: "eFI & co",
                        bins: &b
                    },
                ],
            )
        );
    }

    #[test]
    fn axis_maxima_and_ticks() {
        assert_eq!(axis_max(0.0), 0.01);
        assert_eq!(axis_max(0.07), 0.1);
        assert_eq!(axis_max(0.95), 1.0);
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.04), "0.04");
        assert_eq!(tick_label(1.0), "1");
    }
}
