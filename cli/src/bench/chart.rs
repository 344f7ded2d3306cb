//! The chart of a report (SVG): left, each throughput figure as a ratio to
//! its baseline with its target; right, tenant start and idle memory as a
//! fraction of their limits (at most 1 meets the target). Over several
//! runs a bar is the median and a whisker spans the smallest to the largest
//! value.

use super::BenchError;
use super::report::{Figure, Report, TARGET_IDLE_KIB, TARGET_START_US, Target};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

struct Bar {
    label: String,
    value: f64,
    target: Option<f64>,
    met: Option<bool>,
    /// Smallest and largest value over the runs, if more than one.
    range: Option<(f64, f64)>,
}

/// Writes the chart of `report` as an SVG file.
pub fn write_chart(report: &Report, path: &Path) -> Result<(), BenchError> {
    let chart_error = |e: &dyn std::fmt::Display| BenchError::Chart(format!("{}: {e}", path.display()));
    let (ratios, limits): (Vec<&Figure>, Vec<&Figure>) = report
        .figures
        .iter()
        .partition(|f| f.unit == "MiB/s" || f.unit == "streams/s");
    let ratio_bars: Vec<Bar> = ratios
        .iter()
        .map(|f| Bar {
            label: f.key.clone(),
            value: f.ratio,
            target: match f.target {
                Some(Target::MinRatio(min)) => Some(min),
                _ => None,
            },
            met: f.met,
            range: f.spread.filter(|s| s.runs > 1).map(|s| (s.ratio_min, s.ratio_max)),
        })
        .collect();
    let limit_bars: Vec<Bar> = limits
        .iter()
        .map(|f| {
            let limit = if f.unit == "us" {
                TARGET_START_US
            } else {
                TARGET_IDLE_KIB
            };
            Bar {
                label: f.key.clone(),
                value: f.measured / limit,
                target: Some(1.0),
                met: f.met,
                range: f
                    .spread
                    .filter(|s| s.runs > 1)
                    .map(|s| (s.measured_min / limit, s.measured_max / limit)),
            }
        })
        .collect();
    let root = SVGBackend::new(path, (1400, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(&e))?;
    let (left, right) = root.split_horizontally(840);
    panel(
        &left,
        "Component / native (disk for \"vs disk\"); bar = target",
        "ratio (higher is better)",
        &ratio_bars,
    )
    .map_err(|e| chart_error(&e))?;
    panel(
        &right,
        &format!("Tenant start ({TARGET_START_US} us) and idle memory ({TARGET_IDLE_KIB} KiB)"),
        "measured / target (lower is better)",
        &limit_bars,
    )
    .map_err(|e| chart_error(&e))?;
    root.present().map_err(|e| chart_error(&e))?;
    Ok(())
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn panel(area: &DrawingArea<SVGBackend<'_>, Shift>, caption: &str, y_desc: &str, bars: &[Bar]) -> DrawResult {
    let n = bars.len().max(1);
    let top = bars
        .iter()
        .map(|b| {
            b.value
                .max(b.target.unwrap_or(0.0))
                .max(b.range.map_or(0.0, |(_, max)| max))
        })
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_style(("sans-serif", 11))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or_else(String::new, |b| b.label.clone()),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let color = match b.met {
            Some(true) => RGBColor(46, 139, 87),
            Some(false) => RGBColor(200, 60, 50),
            None => RGBColor(110, 140, 190),
        };
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), b.value.min(top)),
            ],
            color.filled(),
        );
        bar.set_margin(0, 0, 8, 8);
        bar
    }))?;
    chart.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
        b.target.map(|t| {
            PathElement::new(
                vec![(SegmentValue::Exact(i), t), (SegmentValue::Exact(i + 1), t)],
                BLACK.stroke_width(2),
            )
        })
    }))?;
    chart.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
        b.range.map(|(min, max)| {
            PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), min.min(top)),
                    (SegmentValue::CenterOf(i), max.min(top)),
                ],
                BLACK.stroke_width(1),
            )
        })
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!("{:.2}", b.value),
            (SegmentValue::CenterOf(i), b.value.min(top) + top * 0.01),
            TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    Ok(())
}
