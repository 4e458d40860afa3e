//! The report's two plots, drawn by plotters on its SVG backend.
//!
//! plotters is built without its font features (`ttf`, `ab_glyph`): its
//! layout then estimates a text's extent from the font size and the number of
//! characters, and the SVG backend writes each text as an SVG `<text>`
//! element (escaped) for the viewer to lay out with its own fonts. Nothing
//! reads a font file, so a machine without fonts renders the same report.

use super::{best_so_far, ScatterPoint};
use crate::search::{StudyMeta, TrialRecord, TrialStatus};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// Width of one plot, pixels.
pub(super) const WIDTH: u32 = 820;
/// Height of one plot, pixels.
pub(super) const HEIGHT: u32 = 500;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const FONT: &str = "sans-serif";
const COMPLETE: RGBColor = RGBColor(31, 119, 180);
const FRONT: RGBColor = RGBColor(214, 39, 40);
const FAILED: RGBColor = RGBColor(150, 150, 150);
const BEST: RGBColor = RGBColor(44, 160, 44);
const BUDGET: RGBColor = RGBColor(255, 127, 14);
const GRID: RGBColor = RGBColor(210, 210, 210);
const FINE_GRID: RGBColor = RGBColor(240, 240, 240);

/// One plot, drawn by `draw`, as an SVG document of [`WIDTH`] × [`HEIGHT`].
pub(super) fn single(draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(svg)
}

/// Both plots in one SVG document, the best-so-far curve above the scatter
/// plot.
pub(super) fn stacked(
    meta: &StudyMeta,
    trials: &[TrialRecord],
    scatter: &[ScatterPoint],
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 2 * HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(HEIGHT);
        best_plot(&top, meta, trials)?;
        scatter_plot(&bottom, meta, scatter)?;
        root.present()?;
    }
    Ok(svg)
}

/// Largest magnitude a plot range reaches: plotters' tick placement loops
/// forever on a range whose width overflows to infinity.
const LIMIT: f64 = 1e15;

/// A plot range covering the finite `values`, padded by 5 % on each side; a
/// single value gets a range around it, no value `[0, 1]`. Magnitudes beyond
/// ±1e15 are clamped (such points are drawn at the edge or beyond it), and a
/// range is never narrower than a billionth of its magnitude (or of 1):
/// plotters' tick search does not end on ranges that are too wide or too
/// narrow for f64.
fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        let v = v.clamp(-LIMIT, LIMIT);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    let half_span = (hi - lo) / 2.0;
    let magnitude = hi.abs().max(lo.abs());
    let pad = if half_span > magnitude * 1e-3 {
        half_span * 0.1
    } else if magnitude > 0.0 {
        // (Nearly) one value: a range 10 % wide around it.
        magnitude * 0.05
    } else {
        1.0
    };
    let (mut a, mut b) = (lo - pad, hi + pad);
    let min_span = 1e-9 * magnitude.max(1.0);
    if b - a < min_span {
        let mid = 0.5 * (a + b);
        (a, b) = (mid - min_span / 2.0, mid + min_span / 2.0);
    }
    // A range of non-negative values does not reach below zero.
    if lo >= 0.0 && a < 0.0 {
        (0.0, b - a)
    } else {
        (a, b)
    }
}

/// A tick label: short, with an SI suffix for large magnitudes.
fn tick(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e12 {
        return format!("{v:.2e}");
    } else if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else if a == 0.0 {
        return "0".into();
    } else if a < 1e-3 {
        return format!("{v:.2e}");
    } else {
        (v, "")
    };
    let mut s = format!("{x:.4}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + suffix
}

/// Plot 1: the best reward so far against the trial number (a step line), each
/// complete trial's reward, and failed trials as grey marks at the bottom.
pub(super) fn best_plot(area: &Area, meta: &StudyMeta, trials: &[TrialRecord]) -> Result<()> {
    let mut rewards: Vec<(i64, f64)> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .filter_map(|t| Some((i64::from(t.number), t.reward.filter(|r| r.is_finite())?)))
        .collect();
    rewards.sort_by_key(|&(n, _)| n);
    let failed: Vec<i64> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Failed)
        .map(|t| i64::from(t.number))
        .collect();
    let best = best_so_far(trials);
    let numbers = || trials.iter().map(|t| i64::from(t.number));
    let (first, last) = match (numbers().min(), numbers().max()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    };
    let (y0, y1) = range(rewards.iter().map(|&(_, r)| r));
    // Values beyond the range (clamped by `range`) are drawn at its edge:
    // plotters' pixel arithmetic overflows on coordinates far outside.
    let y = |r: f64| r.clamp(y0, y1);

    let mut chart = ChartBuilder::on(area)
        .caption("Best reward so far", (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(first - 1..last + 1, y0..y1)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(FINE_GRID)
        .max_light_lines(4)
        .x_desc("trial")
        .y_desc(format!("reward ({})", meta.reward))
        .y_label_formatter(&|y| tick(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;

    let mut labelled = false;
    if !best.is_empty() {
        // Step line: flat until a trial improves on the best, then up.
        let mut path: Vec<(i64, f64)> = Vec::with_capacity(2 * best.len() + 1);
        for &(n, b) in &best {
            if let Some(&(_, before)) = path.last() {
                path.push((i64::from(n), before));
            }
            path.push((i64::from(n), y(b)));
        }
        if let Some(&(n, b)) = path.last() {
            if last > n {
                path.push((last, b));
            }
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                path,
                BEST.stroke_width(2),
            )))?
            .label("best so far")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BEST.stroke_width(2)));
        chart
            .draw_series(
                rewards
                    .iter()
                    .map(|&(n, r)| Circle::new((n, y(r)), 3, COMPLETE.filled())),
            )?
            .label("complete trial")
            .legend(|(x, y)| Circle::new((x + 9, y), 3, COMPLETE.filled()));
        labelled = true;
    }
    if !failed.is_empty() {
        chart
            .draw_series(
                failed
                    .iter()
                    .map(|&n| Cross::new((n, y0), 3, FAILED.stroke_width(1))),
            )?
            .label("failed trial")
            .legend(|(x, y)| Cross::new((x + 9, y), 3, FAILED.stroke_width(1)));
        labelled = true;
    }
    if labelled {
        legend(&mut chart)?;
    }
    Ok(())
}

/// Plot 2: accuracy against the target's measure: complete trials, failed ones
/// in grey, the Pareto front of the complete trials highlighted and joined, the
/// target budget as a dashed vertical line and the baseline.
pub(super) fn scatter_plot(area: &Area, meta: &StudyMeta, points: &[ScatterPoint]) -> Result<()> {
    let measure = meta.target.measure;
    let base_cost = meta.baseline.footprint.get(measure) as f64;
    let budget = meta.target.ratio * base_cost;
    let base_acc = meta.baseline.accuracy;
    let points: Vec<&ScatterPoint> = points
        .iter()
        .filter(|p| p.cost.is_finite() && p.accuracy.is_finite())
        .collect();

    let (x0, x1) = range(points.iter().map(|p| p.cost).chain([base_cost, budget]));
    let (y0, y1) = range(
        points
            .iter()
            .map(|p| p.accuracy)
            .chain(base_acc.is_finite().then_some(base_acc)),
    );
    // Values beyond the ranges (clamped by `range`) are drawn at their edges:
    // plotters' pixel arithmetic overflows on coordinates far outside.
    let at = |cost: f64, accuracy: f64| (cost.clamp(x0, x1), accuracy.clamp(y0, y1));

    let mut chart = ChartBuilder::on(area)
        .caption(format!("Accuracy against {}", measure.unit()), (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(FINE_GRID)
        .max_light_lines(4)
        .x_desc(measure.unit())
        .y_desc("validation accuracy")
        .x_label_formatter(&|x| tick(*x))
        .y_label_formatter(&|y| tick(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;

    if budget.is_finite() {
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![at(budget, y0), at(budget, y1)],
                6,
                4,
                BUDGET.stroke_width(2),
            )))?
            .label(format!("target: {} × baseline", meta.target.ratio))
            .legend(|(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 18, y)], 5, 3, BUDGET.stroke_width(2))
            });
    }

    let failed: Vec<&ScatterPoint> = points.iter().copied().filter(|p| !p.complete).collect();
    if !failed.is_empty() {
        chart
            .draw_series(
                failed
                    .iter()
                    .map(|p| Circle::new(at(p.cost, p.accuracy), 3, FAILED.mix(0.7).filled())),
            )?
            .label("failed trial")
            .legend(|(x, y)| Circle::new((x + 9, y), 3, FAILED.mix(0.7).filled()));
    }
    let complete: Vec<&ScatterPoint> = points
        .iter()
        .copied()
        .filter(|p| p.complete && !p.on_front)
        .collect();
    if !complete.is_empty() {
        chart
            .draw_series(
                complete
                    .iter()
                    .map(|p| Circle::new(at(p.cost, p.accuracy), 4, COMPLETE.filled())),
            )?
            .label("complete trial")
            .legend(|(x, y)| Circle::new((x + 9, y), 4, COMPLETE.filled()));
    }
    let mut front: Vec<&ScatterPoint> = points.iter().copied().filter(|p| p.on_front).collect();
    if !front.is_empty() {
        front.sort_by(|a, b| {
            (a.cost.total_cmp(&b.cost))
                .then(b.accuracy.total_cmp(&a.accuracy))
                .then(a.trial.cmp(&b.trial))
        });
        chart.draw_series(std::iter::once(PathElement::new(
            front
                .iter()
                .map(|p| at(p.cost, p.accuracy))
                .collect::<Vec<_>>(),
            FRONT.stroke_width(2),
        )))?;
        chart
            .draw_series(
                front
                    .iter()
                    .map(|p| Circle::new(at(p.cost, p.accuracy), 5, FRONT.filled())),
            )?
            .label("Pareto front")
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (18, 0)], FRONT.stroke_width(2))
                    + Circle::new((9, 0), 5, FRONT.filled())
            });
        // Trial numbers beside the front, one label for identical points.
        let mut labels: Vec<((f64, f64), String)> = Vec::new();
        for p in &front {
            match labels.last_mut() {
                Some((xy, text)) if *xy == (p.cost, p.accuracy) => {
                    text.push_str(&format!(", #{}", p.trial));
                }
                _ => labels.push(((p.cost, p.accuracy), format!("#{}", p.trial))),
            }
        }
        let style = (FONT, 11).into_font().color(&FRONT);
        chart.draw_series(labels.into_iter().map(|((x, y), text)| {
            EmptyElement::at(at(x, y)) + Text::new(text, (6, -16), style.clone())
        }))?;
    }
    if base_cost.is_finite() && base_acc.is_finite() {
        chart
            .draw_series(std::iter::once(TriangleMarker::new(
                at(base_cost, base_acc),
                7,
                BLACK.filled(),
            )))?
            .label("baseline")
            .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, BLACK.filled()));
    }
    legend(&mut chart)
}

/// The series legend both plots draw, in the lower right corner.
fn legend<'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'a>, CT>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .draw()?;
    Ok(())
}
