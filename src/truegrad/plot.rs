//! `rlpg gradlab --policy … --plot FILE.png`: each estimator's bias against its variance, both
//! relative to the true gradient, as a PNG (plotters' bitmap backend, the embedded font of
//! [`crate::plot`]).

use std::path::Path;

use plotters::prelude::*;

use super::TrueGradReport;
use crate::plot::{COLOURS, PLOT_SIZE, register_embedded_font};
use crate::run::RunError;

/// Draws `report` into `path`: one point per estimator at (variance per sample / ‖∇J‖²,
/// bias / ‖∇J‖), log–log, with a hollow marker at its noise floor joined to the point, so that
/// a point far above its hollow marker is a real bias.
pub fn plot(report: &TrueGradReport, path: &Path) -> Result<(), RunError> {
    let fail = |message: String| RunError::File { path: path.to_path_buf(), message };
    register_embedded_font().map_err(|m| fail(m.to_owned()))?;
    let finite = |v: f64| v.is_finite() && v > 0.0;
    let rows: Vec<_> = report
        .estimators
        .iter()
        .filter(|r| finite(r.relative_variance_per_sample) && finite(r.bias))
        .collect();
    if rows.is_empty() {
        return Err(fail("no estimator has a finite, positive bias and variance to plot".into()));
    }
    let xs: Vec<f64> = rows.iter().map(|r| r.relative_variance_per_sample.log10()).collect();
    let ys: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.bias, r.noise_floor])
        .filter(|v| finite(*v))
        .map(f64::log10)
        .collect();
    let span = |v: &[f64]| {
        let (lo, hi) =
            v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        (lo.floor() - 0.2)..(hi.ceil() + 0.2)
    };
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let caption = format!(
        "{} {}, step {}: bias against variance (filled: bias, hollow: its noise floor)",
        report.env, report.agent, report.step
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(span(&xs), span(&ys))
        .map_err(|e| fail(e.to_string()))?;
    // The axes hold log10 of the values; the labels show the values.
    let power = |v: &f64| super::report::sig(10f64.powf(*v), 2);
    chart
        .configure_mesh()
        .x_desc("variance per sample / ‖∇J‖² (log scale)")
        .y_desc("bias / ‖∇J‖ (log scale)")
        .x_label_formatter(&power)
        .y_label_formatter(&power)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    for (i, (r, &x)) in rows.iter().zip(&xs).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let (bias, floor) = (r.bias.log10(), r.noise_floor.max(1e-300).log10());
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, bias), (x, floor)],
                colour.stroke_width(2),
            )))
            .map_err(|e| fail(e.to_string()))?;
        chart
            .draw_series(std::iter::once(Circle::new((x, floor), 6, colour.stroke_width(2))))
            .map_err(|e| fail(e.to_string()))?;
        let label = format!("{} ({} {})", r.name, r.batch, r.unit);
        chart
            .draw_series(std::iter::once(Circle::new((x, bias), 6, colour.filled())))
            .map_err(|e| fail(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}
