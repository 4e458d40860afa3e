//! `pf report`: a study rendered as one self-contained HTML page (header,
//! plots, the trials table and the plotted data as JSON) or as one SVG with
//! the two plots stacked.
//!
//! The plots are drawn by `plotters` on its SVG backend: text comes out as
//! SVG `<text>` elements that the viewer lays out with its own fonts, so
//! rendering needs no font file (see `plots.rs`).
//!
//! Plot 1 is the best reward so far against the trial number; plot 2 is the
//! validation accuracy against the target's measure, with the Pareto front of
//! the complete trials, the target budget and the baseline, in the manner of
//! Figure 2 of the PocketFlow paper.

mod html;
mod plots;
#[cfg(test)]
mod tests;

use crate::search::{StudyMeta, TrialRecord, TrialStatus};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One HTML page: header, both plots (inline SVG), the trials table and
    /// the plotted data as JSON. It loads nothing from elsewhere.
    Html,
    /// One SVG document: the two plots stacked, no table.
    Svg,
}

impl Format {
    /// The format a file name asks for: `.html` or `.htm` is [`Format::Html`],
    /// `.svg` [`Format::Svg`] (any case); any other name is an error that
    /// names the file, so a report is never written under a name that
    /// promises another format.
    pub fn from_path(p: &Path) -> anyhow::Result<Format> {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
            Some(e) if e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm") => {
                Ok(Format::Html)
            }
            _ => anyhow::bail!(
                "report {}: give a .html file name (the page with the trials table) or a .svg \
                 file name (the plots alone); pf writes no other format",
                p.display()
            ),
        }
    }
}

/// One point of the accuracy-against-cost scatter plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScatterPoint {
    /// The trial's number.
    pub trial: u32,
    /// The trial's target measure, absolute (MACs for a flops target,
    /// non-zero parameters for a params target, bytes for a size target).
    pub cost: f64,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Whether the point is on the Pareto front of the complete trials.
    pub on_front: bool,
    /// Whether the trial is complete (failed ones are drawn grey and are
    /// never on the front).
    pub complete: bool,
}

/// Indices (into `points`, ascending) of the Pareto front: the points
/// `(cost, accuracy)` that no other point dominates, where a point dominates
/// another when its cost is lower or equal and its accuracy higher or equal,
/// at least one of them strictly. Identical points do not dominate each other,
/// so they are all on the front or all off it. A point with a NaN or infinite
/// coordinate is never on the front and dominates nothing.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    // Cost ascending, then accuracy descending: every point that could
    // dominate a point comes before it.
    order.sort_by(|&a, &b| {
        let (ca, aa) = points[a];
        let (cb, ab) = points[b];
        // `+ 0.0` makes −0 and +0 one cost.
        (ca + 0.0).total_cmp(&(cb + 0.0)).then(ab.total_cmp(&aa))
    });
    let mut front = Vec::new();
    // Best accuracy among points of strictly lower cost.
    let mut best_cheaper = f64::NEG_INFINITY;
    let mut k = 0;
    while k < order.len() {
        let cost = points[order[k]].0;
        // The group of equal cost; its first point has the group's best
        // accuracy.
        let group_best = points[order[k]].1;
        let mut end = k;
        while end < order.len() && points[order[end]].0 == cost {
            let i = order[end];
            if points[i].1 == group_best && group_best > best_cheaper {
                front.push(i);
            }
            end += 1;
        }
        best_cheaper = best_cheaper.max(group_best);
        k = end;
    }
    front.sort_unstable();
    front
}

/// The points the scatter plot draws, in the order of `trials`: one for each
/// trial with a finite accuracy and a footprint. The cost is the footprint's
/// value of the target's measure. The front is computed over the complete
/// trials only.
pub fn scatter_points(meta: &StudyMeta, trials: &[TrialRecord]) -> Vec<ScatterPoint> {
    let measure = meta.target.measure;
    let mut points: Vec<ScatterPoint> = trials
        .iter()
        .filter_map(|t| {
            let accuracy = t.accuracy.filter(|a| a.is_finite())?;
            let footprint = t.footprint.as_ref()?;
            Some(ScatterPoint {
                trial: t.number,
                cost: footprint.get(measure) as f64,
                accuracy,
                on_front: false,
                complete: t.status == TrialStatus::Complete,
            })
        })
        .collect();
    let complete: Vec<usize> = (0..points.len()).filter(|&i| points[i].complete).collect();
    let coords: Vec<(f64, f64)> = complete
        .iter()
        .map(|&i| (points[i].cost, points[i].accuracy))
        .collect();
    for j in pareto_front(&coords) {
        points[complete[j]].on_front = true;
    }
    points
}

/// The best reward so far, as `(trial number, best reward among the complete
/// trials numbered up to it)`, one entry for each complete trial with a
/// finite reward, in trial-number order.
pub fn best_so_far(trials: &[TrialRecord]) -> Vec<(u32, f64)> {
    let mut rewarded: Vec<(u32, f64)> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .filter_map(|t| Some((t.number, t.reward.filter(|r| r.is_finite())?)))
        .collect();
    rewarded.sort_by_key(|&(n, _)| n);
    let mut best = f64::NEG_INFINITY;
    rewarded
        .into_iter()
        .map(|(n, r)| {
            best = best.max(r);
            (n, best)
        })
        .collect()
}

/// Renders the report of a study with settings `meta` and finished trials
/// `trials` (in any order) as a whole document in `format`.
pub fn render(meta: &StudyMeta, trials: &[TrialRecord], format: Format) -> Result<String> {
    let scatter = scatter_points(meta, trials);
    match format {
        Format::Html => html::page(meta, trials, &scatter),
        Format::Svg => plots::stacked(meta, trials, &scatter),
    }
}

/// Writes the report of a study to `path` (atomically), in the format its
/// extension names (`.html` or `.svg`).
pub fn write_file(meta: &StudyMeta, trials: &[TrialRecord], path: &Path) -> Result<()> {
    use anyhow::Context;
    let format = Format::from_path(path)?;
    let text = render(meta, trials, format)?;
    crate::io::atomic_write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
