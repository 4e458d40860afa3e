//! The HTML page: one file with inline CSS, inline SVG plots, the trials
//! table, the plotted data as JSON and a few lines of script that sort the
//! table. Every text that comes from the study is escaped: names, parameters
//! and error messages are written by plugins and are not trusted.

use super::{best_so_far, plots, ScatterPoint};
use crate::search::{StudyMeta, TrialRecord, TrialStatus};
use anyhow::Result;
use std::fmt::Write;

/// `s` escaped for HTML text and attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside a `<script>` element: `<`, `>` and `&` (which
/// JSON has only inside strings) become `\u` escapes, so no `</script>` or
/// `<!--` can appear; the JSON value is unchanged.
pub(super) fn script_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// `n` with thousands separators.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float with `digits` decimals; non-finite values as Rust prints them.
fn float(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        x.to_string()
    }
}

/// A numeric table cell: the shown text and the raw value to sort on.
fn num_cell(shown: Option<String>, sort: Option<f64>) -> String {
    match (shown, sort) {
        (Some(s), Some(v)) if v.is_finite() => {
            format!("<td class=\"n\" data-v=\"{v:e}\">{}</td>", escape(&s))
        }
        (Some(s), _) => format!("<td class=\"n\" data-v=\"\">{}</td>", escape(&s)),
        (None, _) => "<td class=\"n\" data-v=\"\">–</td>".to_string(),
    }
}

/// Parameters as `name=value, …`.
fn params_text(params: &[crate::search::ParamRecord]) -> String {
    params
        .iter()
        .map(|p| format!("{}={}", p.name, p.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The worker that ran a trial, `host:pid` (empty in studies written
/// before pf recorded it); the host name is bounded again here, as the
/// study may come from anywhere.
fn worker_text(t: &TrialRecord) -> String {
    let host = t
        .worker_host
        .as_deref()
        .map(|h| crate::plugin::bounds::printable(h, crate::search::MAX_HOST_CHARS));
    match (host, t.worker_pid) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h,
        (None, Some(p)) => format!("pid {p}"),
        (None, None) => String::new(),
    }
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.25em 1.2em; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
.plots svg { max-width: 100%; height: auto; display: block; margin: 0.5em 0; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.88em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; cursor: pointer; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.p { font-family: ui-monospace, monospace; font-size: 0.92em; }
td.e { white-space: pre-wrap; word-break: break-word; max-width: 32em; color: #a33; }
tr.failed td { color: #888; }
tr.failed td.e { color: #a33; }
tr.front td { font-weight: 600; }
tr.best td { background: #eaf6ea; }
.note { color: #666; font-size: 0.9em; }
"#;

/// Sorts the trials table by a clicked column (numbers by their raw value,
/// missing values first); a second click reverses. Written not to throw.
const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById("pf-trials");
  if (!table || !table.tHead || !table.tBodies.length) return;
  var heads = table.tHead.rows[0].cells;
  function key(cell) {
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    if (v === null) return cell.textContent || "";
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }
  function compare(a, b) {
    if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
      th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (r, s) { return dir * compare(key(r.cells[col]), key(s.cells[col])); });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"#;

/// The whole page.
pub(super) fn page(
    meta: &StudyMeta,
    trials: &[TrialRecord],
    scatter: &[ScatterPoint],
) -> Result<String> {
    let best_svg = plots::single(|area| plots::best_plot(area, meta, trials))?;
    let scatter_svg = plots::single(|area| plots::scatter_plot(area, meta, scatter))?;
    let data = serde_json::json!({
        "meta": meta,
        "trials": trials,
        "scatter": scatter,
        "best_so_far": best_so_far(trials),
    });
    let data = script_safe_json(&serde_json::to_string(&data)?);

    let measure = meta.target.measure;
    let base = &meta.baseline;
    let complete = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .count();
    let failed = trials.len() - complete;
    let best = crate::search::best_of(trials);

    let mut h = String::with_capacity(64 * 1024 + 512 * trials.len());
    let title = format!(
        "pf study: {} on {} ({} × {})",
        base.model, meta.data, meta.learner, meta.optimizer
    );
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = escape(&title)
    );

    // Header.
    let mut rows: Vec<(&str, String)> = vec![
        ("Model", escape(&base.model)),
        ("Data", escape(&meta.data)),
        ("Learner", escape(&meta.learner)),
        ("Optimizer", escape(&meta.optimizer)),
        (
            "Target",
            escape(&format!(
                "{} ≤ {} × baseline ({} ≤ {})",
                measure.name(),
                meta.target.ratio,
                measure.unit(),
                grouped((meta.target.ratio * base.footprint.get(measure) as f64).floor() as u64)
            )),
        ),
        ("Reward", escape(meta.reward.name())),
        ("Seed", meta.seed.to_string()),
        (
            "Fine-tuning",
            format!(
                "{} steps per trial, {} at once",
                meta.finetune_steps, meta.jobs
            ),
        ),
    ];
    if !meta.fixed.is_empty() {
        rows.push(("Fixed parameters", escape(&params_text(&meta.fixed))));
    }
    rows.push((
        "Baseline",
        escape(&format!(
            "accuracy {}, {} MACs, {} parameters ({} non-zero), {} bytes",
            float(base.accuracy, 4),
            grouped(base.footprint.macs),
            grouped(base.footprint.params),
            grouped(base.footprint.nonzero_params),
            grouped(base.footprint.bytes),
        )),
    ));
    rows.push((
        "Trials",
        format!("{} ({complete} complete, {failed} failed)", trials.len()),
    ));
    rows.push((
        "Best trial",
        match best {
            Some(t) => escape(&format!(
                "#{}: reward {}, accuracy {}, target ratio {}",
                t.number,
                t.reward.map_or("–".into(), |r| float(r, 4)),
                t.accuracy.map_or("–".into(), |a| float(a, 4)),
                t.target_ratio.map_or("–".into(), |r| float(r, 4)),
            )),
            None => "none: no trial is complete".to_string(),
        },
    ));
    h.push_str("<dl class=\"meta\">\n");
    for (k, v) in rows {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{v}</dd>");
    }
    h.push_str("</dl>\n");

    // Plots.
    let _ = write!(
        h,
        "<h2>Search progress</h2>\n<div class=\"plots\">\n{best_svg}</div>\n\
         <h2>Accuracy and cost</h2>\n\
         <p class=\"note\">Pareto front (red): the complete trials that no other \
         complete trial beats on both accuracy and {unit}. The dashed line is the \
         target budget, the triangle the baseline; grey points are failed trials.</p>\n\
         <div class=\"plots\">\n{scatter_svg}</div>\n",
        unit = escape(measure.unit())
    );

    // Trials table.
    let front: std::collections::HashSet<u32> = scatter
        .iter()
        .filter(|p| p.on_front)
        .map(|p| p.trial)
        .collect();
    let mut sorted: Vec<&TrialRecord> = trials.iter().collect();
    sorted.sort_by_key(|t| t.number);
    h.push_str(
        "<h2>Trials</h2>\n<p class=\"note\">Bold: on the Pareto front. Highlighted: the best \
         trial. Click a column to sort.</p>\n<table id=\"pf-trials\">\n<thead><tr>\
         <th>#</th><th>status</th><th>reward</th><th>accuracy</th><th>target ratio</th>\
         <th>MACs</th><th>non-zero params</th><th>bytes</th><th>seconds</th>\
         <th>params</th><th>worker</th><th>error</th></tr></thead>\n<tbody>\n",
    );
    for t in sorted {
        let mut class = vec![t.status.name()];
        if front.contains(&t.number) {
            class.push("front");
        }
        if best.is_some_and(|b| std::ptr::eq(b, t)) {
            class.push("best");
        }
        let fp = t.footprint.as_ref();
        let count = |n: Option<u64>| num_cell(n.map(grouped), n.map(|n| n as f64));
        let _ = writeln!(
            h,
            "<tr class=\"{}\">{}<td>{}</td>{}{}{}{}{}{}{}<td class=\"p\">{}</td><td class=\"w\">{}</td><td class=\"e\">{}</td></tr>",
            class.join(" "),
            num_cell(Some(t.number.to_string()), Some(f64::from(t.number))),
            t.status.name(),
            num_cell(t.reward.map(|r| float(r, 4)), t.reward),
            num_cell(t.accuracy.map(|a| float(a, 4)), t.accuracy),
            num_cell(t.target_ratio.map(|r| float(r, 4)), t.target_ratio),
            count(fp.map(|f| f.macs)),
            count(fp.map(|f| f.nonzero_params)),
            count(fp.map(|f| f.bytes)),
            num_cell(Some(float(t.timings.total, 1)), Some(t.timings.total)),
            escape(&params_text(&t.params)),
            escape(&worker_text(t)),
            escape(t.error.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody>\n</table>\n");

    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"pf-data\">{data}</script>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    Ok(h)
}
