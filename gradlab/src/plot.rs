//! `--plot FILE.png`: the report as charts, drawn with plotters' bitmap backend.
//!
//! Text needs a font. plotters' default `ttf` feature finds system fonts through fontconfig,
//! which a bare machine may not have; the `ab_glyph` feature instead renders a font registered
//! from bytes, and the `dejavu` crate ships DejaVu Sans inside the binary. So the chart renders
//! the same on any machine, with no system font package.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::error::GradlabError;
use super::estimates::{Baseline, Estimator, ProblemReport};
use super::format::num;
use super::problems::ProblemKind;
use super::report::Report;

const PANEL: (u32, u32) = (760, 520);
const TITLE_HEIGHT: u32 = 50;

/// Draws the report into a PNG at `path` (the extension picks the format: `.png`, `.bmp`,
/// `.jpg`), one panel per problem plus one for the relaxation's temperatures:
/// - per problem: the mean squared error of one estimate against the number of samples per
///   estimate, `Σθ bias² + variance / N`, from the measured per-sample variance and bias, with the
///   measured MSE at the run's own sample count as dots (log–log). Unbiased estimators contribute
///   no bias term; a relaxation contributes its measured `bias² − SE²` (the unbiased estimate of
///   its squared bias), which is where its curve flattens;
/// - for the categorical problem: per-sample variance and squared bias (summed over logits)
///   against the Gumbel-softmax temperature, with the score function's variances as references.
pub fn plot(report: &Report, path: &Path) -> Result<(), GradlabError> {
    let fail = |message: String| GradlabError::Plot { path: path.to_path_buf(), message };
    register_embedded_font().map_err(|m| fail(m.to_string()))?;
    let categorical = report.problem(ProblemKind::Categorical).filter(|p| has_relaxed(p));
    // One panel per problem, one for the temperatures, and the claims' verdicts in the spare
    // cell when the count is odd (otherwise they are in the markdown only).
    let panels = report.problems.len() + usize::from(categorical.is_some());
    let rows = panels.div_ceil(2).max(1) as u32;
    let size = (2 * PANEL.0, rows * PANEL.1 + TITLE_HEIGHT);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let title = format!(
        "Gradient estimators: {} trials × {} samples, seed {}",
        report.trials, report.samples, report.seed
    );
    let body = root.titled(&title, ("sans-serif", 28)).map_err(|e| fail(e.to_string()))?;
    let areas = body.split_evenly((rows as usize, 2));
    for (area, p) in areas.iter().zip(&report.problems) {
        draw_mse_panel(area, p, report.samples).map_err(|e| fail(e.to_string()))?;
    }
    let mut next = report.problems.len();
    if let (Some(p), Some(area)) = (categorical, areas.get(next)) {
        draw_temperature_panel(area, p).map_err(|e| fail(e.to_string()))?;
        next += 1;
    }
    if let Some(area) = areas.get(next) {
        draw_claims_panel(area, report).map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Registers DejaVu Sans as plotters' `sans-serif` font, once per process.
fn register_embedded_font() -> Result<(), &'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok { Ok(()) } else { Err("the embedded DejaVu Sans font could not be parsed") }
}

fn has_relaxed(p: &ProblemReport) -> bool {
    p.rows
        .iter()
        .any(|r| matches!(r.estimator, Estimator::GumbelSoftmax { temperature: Some(_), .. }))
}

/// The estimators of a problem that were measured and apply, in row order; straight-through
/// relaxations are left to the temperature panel, where they can be told apart from soft ones.
fn estimators(p: &ProblemReport) -> Vec<Estimator> {
    let mut out: Vec<Estimator> = Vec::new();
    for r in &p.rows {
        let straight_through =
            matches!(r.estimator, Estimator::GumbelSoftmax { straight_through: true, .. });
        if r.applies() && r.measured.is_some() && !straight_through && !out.contains(&r.estimator) {
            out.push(r.estimator);
        }
    }
    out
}

/// A line to draw.
struct Curve {
    label: String,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    dashed: bool,
}

/// One estimator's numbers summed over the parameters.
#[derive(Clone, Copy, Default)]
struct Totals {
    /// Σ squared bias: 0 for estimators that theory says are unbiased (their measured bias is
    /// noise, checked separately against 3 SE), `max(bias² − SE², 0)` otherwise.
    bias2: f64,
    /// Σ per-sample variance.
    variance: f64,
    /// Σ measured mean squared error of one estimate.
    mse: f64,
}

fn totals(p: &ProblemReport, e: Estimator) -> Totals {
    let mut out = Totals::default();
    for r in p.rows.iter().filter(|r| r.estimator == e) {
        if let Some(m) = &r.measured {
            if !r.unbiased_in_theory {
                out.bias2 += (m.bias * m.bias - m.standard_error * m.standard_error).max(0.0);
            }
            out.variance += m.variance;
            out.mse += m.estimate_mse;
        }
    }
    out
}

/// A colour per estimator: the score functions in warm colours, pathwise in blue, relaxations
/// along a palette.
fn colour(e: Estimator, index: usize) -> RGBColor {
    match e {
        Estimator::Reinforce { baseline: Baseline::None } => RGBColor(200, 30, 30),
        Estimator::Reinforce { baseline: Baseline::Mean } => RGBColor(240, 130, 20),
        Estimator::Reinforce { baseline: Baseline::Optimal } => RGBColor(170, 120, 0),
        Estimator::Pathwise => RGBColor(20, 70, 200),
        Estimator::GumbelSoftmax { .. } => {
            let (r, g, b) = Palette99::pick(index + 3).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// A tick label: plain for ordinary magnitudes, `1e-5` rather than `1.000e-5` for the rest.
fn axis_label(v: f64) -> String {
    if v == 0.0 || (1e-3..1e5).contains(&v.abs()) { num(v) } else { format!("{v:.0e}") }
}

/// Log-spaced points from `lo` to `hi`.
fn log_space(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
}

/// A positive range around `values` with some margin, for a log axis.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() || hi <= 0.0 {
        return 1e-3..1.0;
    }
    lo / 2.0..hi * 2.0
}

type PanelResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_mse_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &ProblemReport,
    samples: usize,
) -> PanelResult {
    let n_max = (samples as f64 * 100.0).max(1e4);
    let grid = log_space(1.0, n_max, 60);
    let series: Vec<(Estimator, Curve, f64)> = estimators(p)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let t = totals(p, e);
            let points = grid.iter().map(|&n| (n, t.bias2 + t.variance / n)).collect();
            let curve = Curve { label: e.to_string(), points, colour: colour(e, i), dashed: false };
            (e, curve, t.mse)
        })
        .collect();
    let y =
        log_range(series.iter().flat_map(|(_, c, mse)| c.points.iter().map(|p| p.1).chain([*mse])));
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: MSE of one estimate vs samples", p.kind), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..n_max).log_scale(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("samples per estimate N")
        .y_desc("Σθ (bias² + var/N)")
        .x_label_formatter(&|v| axis_label(*v))
        .y_label_formatter(&|v| axis_label(*v))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (_, curve, mse) in &series {
        let c = curve.colour;
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), c.stroke_width(2)))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(std::iter::once(Circle::new((samples as f64, *mse), 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

fn draw_temperature_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    p: &ProblemReport,
) -> PanelResult {
    let mut temps: Vec<f64> = p
        .rows
        .iter()
        .filter_map(|r| match r.estimator {
            Estimator::GumbelSoftmax { temperature: Some(t), .. } if r.measured.is_some() => {
                Some(t)
            }
            _ => None,
        })
        .collect();
    temps.sort_by(f64::total_cmp);
    temps.dedup();
    let (t_lo, t_hi) =
        (temps.first().copied().unwrap_or(0.1), temps.last().copied().unwrap_or(1.0));
    let x = (t_lo / 1.5)..(t_hi * 1.5);
    let curve = |straight_through: bool, pick: fn(Totals) -> f64| -> Vec<(f64, f64)> {
        temps
            .iter()
            .map(|&t| {
                (
                    t,
                    pick(totals(
                        p,
                        Estimator::GumbelSoftmax { temperature: Some(t), straight_through },
                    )),
                )
            })
            .collect()
    };
    let (soft, st) = (RGBColor(20, 120, 60), RGBColor(120, 40, 160));
    let lines = [
        ("soft: Σ variance", curve(false, |t| t.variance), soft, false),
        ("soft: Σ bias²", curve(false, |t| t.bias2), soft, true),
        ("ST: Σ variance", curve(true, |t| t.variance), st, false),
        ("ST: Σ bias²", curve(true, |t| t.bias2), st, true),
    ]
    .map(|(label, points, colour, dashed)| Curve {
        label: label.into(),
        points,
        colour,
        dashed,
    });
    let references: Vec<(Estimator, f64)> = [Baseline::None, Baseline::Optimal]
        .into_iter()
        .map(|baseline| {
            let e = Estimator::Reinforce { baseline };
            (e, totals(p, e).variance)
        })
        .collect();
    let y = log_range(
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(references.iter().map(|r| r.1)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: Gumbel-softmax vs temperature", p.kind), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x.clone().log_scale(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("temperature τ")
        .y_desc("per sample, Σ over logits")
        .x_labels(6)
        .x_label_formatter(&|v| axis_label(*v))
        .y_label_formatter(&|v| axis_label(*v))
        .label_style(("sans-serif", 14))
        .draw()?;
    for Curve { label, points: pts, colour: c, dashed } in lines {
        let style = c.stroke_width(2);
        let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 18, y)], style);
        if dashed {
            // Squared bias can be 0 after subtracting SE²; a log axis cannot show 0.
            let pts: Vec<_> = pts.into_iter().filter(|p| p.1 > 0.0).collect();
            chart
                .draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))?
                .label(label)
                .legend(legend);
            chart.draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 5, c.filled())))?;
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))?
                .label(label)
                .legend(legend);
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
    }
    for (i, (e, v)) in references.into_iter().enumerate() {
        let c = colour(e, i);
        chart
            .draw_series(LineSeries::new([(x.start, v), (x.end, v)], c.stroke_width(1)))?
            .label(format!("{e}: variance"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

/// The claims and their verdicts, as lines of text.
fn draw_claims_panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, report: &Report) -> PanelResult {
    const MAX_CHARS: usize = 88;
    let title = ("sans-serif", 20).into_font().color(&BLACK);
    area.draw(&Text::new("The usual claims, measured", (20, 12), title))?;
    let mut y = 48;
    for c in &report.claims {
        let (mark, colour) = if c.holds { ("yes", RGBColor(20, 120, 60)) } else { ("NO", RED) };
        let problem = c.problem.map(|p| p.name()).unwrap_or("all");
        let mut text = format!("{problem}: {}", c.claim);
        if text.chars().count() > MAX_CHARS {
            text = text.chars().take(MAX_CHARS - 1).collect::<String>() + "…";
        }
        let style = ("sans-serif", 14).into_font().color(&colour);
        area.draw(&Text::new(mark, (20, y), style))?;
        area.draw(&Text::new(text, (60, y), ("sans-serif", 14).into_font().color(&BLACK)))?;
        y += 20;
    }
    Ok(())
}
