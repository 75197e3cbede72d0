//! SVG plots of `flowlab bench loop`: per task, the best score found so far after each round,
//! one line per method (the mean over seeds) inside its 95% confidence band.

use super::stats::MeanCi;
use anyhow::anyhow;
use plotters::prelude::*;
use std::path::Path;

/// One method's curve: per round (0 = the common initial batch), the mean over seeds with
/// its interval; `None` where no seed had a success yet.
#[derive(Debug, Clone)]
pub struct Curve {
    pub method: &'static str,
    /// Index of the line's colour, fixed per method so that a method looks the same in
    /// every plot whatever else ran.
    pub colour: usize,
    pub points: Vec<Option<MeanCi>>,
}

/// Line colours, indexed by [`Curve::colour`].
const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
];

/// The y range of the curves with their bands, padded by 5% (a unit range around a flat
/// curve); `None` without any point.
fn y_range(curves: &[Curve]) -> Option<(f64, f64)> {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in curves.iter().flat_map(|c| c.points.iter().flatten()) {
        let (l, h) = if p.half_width.is_finite() {
            (p.low(), p.high())
        } else {
            (p.mean, p.mean)
        };
        low = low.min(l);
        high = high.max(h);
    }
    if !(low.is_finite() && high.is_finite()) {
        return None;
    }
    let pad = if high > low { 0.05 * (high - low) } else { 0.5 };
    Some((low - pad, high + pad))
}

/// Writes `path` (SVG): best so far against the round for each curve. Does nothing when no
/// curve has a point.
pub fn best_so_far(path: &Path, title: &str, curves: &[Curve]) -> anyhow::Result<()> {
    let Some((y_low, y_high)) = y_range(curves) else {
        return Ok(());
    };
    let rounds = curves.iter().map(|c| c.points.len()).max().unwrap_or(1);
    let x_high = rounds.saturating_sub(1).max(1) as f64;
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_high, y_low..y_high)
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_labels(rounds.clamp(2, 21))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("round (0 = common initial batch)")
        .y_desc("best score so far (mean ± 95% CI over seeds)")
        .draw()
        .map_err(|e| plot_error(&e))?;
    for curve in curves {
        let colour = COLOURS[curve.colour % COLOURS.len()];
        let defined: Vec<(f64, MeanCi)> = curve
            .points
            .iter()
            .enumerate()
            .filter_map(|(round, p)| p.map(|p| (round as f64, p)))
            .collect();
        let banded: Vec<&(f64, MeanCi)> = defined
            .iter()
            .filter(|(_, p)| p.half_width.is_finite())
            .collect();
        if banded.len() >= 2 {
            let band: Vec<(f64, f64)> = banded
                .iter()
                .map(|(x, p)| (*x, p.high()))
                .chain(banded.iter().rev().map(|(x, p)| (*x, p.low())))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    colour.mix(0.15).filled(),
                )))
                .map_err(|e| plot_error(&e))?;
        }
        chart
            .draw_series(LineSeries::new(
                defined.iter().map(|(x, p)| (*x, p.mean)),
                colour.stroke_width(2),
            ))
            .map_err(|e| plot_error(&e))?
            .label(curve.method)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn point(mean: f64, half_width: f64) -> Option<MeanCi> {
        Some(MeanCi {
            mean,
            half_width,
            n: 3,
        })
    }

    #[test]
    fn a_plot_names_every_method() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("best.svg");
        let curves = vec![
            Curve {
                method: "flowlab",
                colour: 0,
                points: vec![point(1.0, 0.2), point(2.0, 0.3), point(3.0, 0.1)],
            },
            Curve {
                method: "genetic",
                colour: 4,
                points: vec![None, point(1.5, f64::NAN), point(2.5, f64::NAN)],
            },
        ];
        best_so_far(&path, "motif", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("flowlab") && svg.contains("genetic"));
        // The bands reach from 1.0 - 0.2 to 3.0 + 0.1; padded by 5% of that span (2.3).
        let (low, high) = y_range(&curves).unwrap();
        assert!((low - (0.8 - 0.115)).abs() < 1e-9, "{low}");
        assert!((high - (3.1 + 0.115)).abs() < 1e-9, "{high}");
    }

    #[test]
    fn nothing_to_plot_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.svg");
        let curves = vec![Curve {
            method: "random",
            colour: 3,
            points: vec![None, None],
        }];
        best_so_far(&path, "t", &curves).unwrap();
        assert!(!path.exists());
    }
}
