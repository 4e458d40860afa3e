use super::*;
use crate::model::{Footprint, Measure, Target};
use crate::search::{BaselineRecord, ParamRecord, Reward, Timings, ValueRecord};

fn brute_front(points: &[(f64, f64)]) -> Vec<usize> {
    let ok = |p: (f64, f64)| p.0.is_finite() && p.1.is_finite();
    (0..points.len())
        .filter(|&i| ok(points[i]))
        .filter(|&i| {
            let (c, a) = points[i];
            !points
                .iter()
                .any(|&(c2, a2)| ok((c2, a2)) && c2 <= c && a2 >= a && (c2 < c || a2 > a))
        })
        .collect()
}

#[test]
fn pareto_front_drops_dominated_points() {
    let pts = [
        (1.0, 0.5),  // front: cheapest but one
        (2.0, 0.6),  // front
        (2.0, 0.55), // same cost, less accurate
        (3.0, 0.6),  // dearer, as accurate
        (0.5, 0.4),  // front: cheapest
        (4.0, 0.9),  // front: most accurate
        (5.0, 0.1),  // dominated by everything cheaper
    ];
    assert_eq!(pareto_front(&pts), vec![0, 1, 4, 5]);
    assert_eq!(pareto_front(&pts), brute_front(&pts));
    assert!(pareto_front(&[]).is_empty());
    assert_eq!(pareto_front(&[(3.0, 0.2)]), vec![0]);
}

#[test]
fn pareto_front_keeps_ties_and_skips_nan() {
    // Identical points are all on the front, or all off it.
    assert_eq!(pareto_front(&[(1.0, 1.0), (1.0, 1.0)]), vec![0, 1]);
    assert_eq!(pareto_front(&[(2.0, 0.5), (1.0, 0.7), (2.0, 0.5)]), vec![1]);
    // −0 and +0 are one cost.
    assert_eq!(pareto_front(&[(-0.0, 0.5), (0.0, 0.9)]), vec![1]);
    // NaN (and infinite) points are never on the front and dominate nothing.
    let nan = f64::NAN;
    assert_eq!(
        pareto_front(&[(nan, 1.0), (1.0, nan), (1.0, 0.5), (f64::NEG_INFINITY, 1.0)]),
        vec![2]
    );
    assert!(pareto_front(&[(nan, nan)]).is_empty());
}

#[test]
fn pareto_front_agrees_with_brute_force() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |k: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % k) as f64
    };
    for n in [0, 1, 2, 5, 20, 60] {
        for _ in 0..30 {
            // Few distinct values: many ties on either coordinate.
            let pts: Vec<(f64, f64)> = (0..n).map(|_| (next(8), next(6) / 5.0)).collect();
            assert_eq!(pareto_front(&pts), brute_front(&pts), "{pts:?}");
        }
    }
}

#[test]
fn format_follows_the_extension() {
    use std::path::Path;
    assert_eq!(
        Format::from_path(Path::new("a/study.svg")).unwrap(),
        Format::Svg
    );
    assert_eq!(
        Format::from_path(Path::new("STUDY.SVG")).unwrap(),
        Format::Svg
    );
    assert_eq!(
        Format::from_path(Path::new("study.html")).unwrap(),
        Format::Html
    );
    assert_eq!(
        Format::from_path(Path::new("study.HTM")).unwrap(),
        Format::Html
    );
    for wrong in ["study", "svg", "plot.png", "report.pdf"] {
        let e = Format::from_path(Path::new(wrong)).unwrap_err().to_string();
        assert!(e.contains(wrong) && e.contains(".html"), "{e}");
    }
}

fn footprint(nonzero: u64) -> Footprint {
    Footprint {
        macs: 10 * nonzero,
        params: 1000,
        nonzero_params: nonzero,
        bytes: 4 * nonzero,
    }
}

fn meta() -> StudyMeta {
    StudyMeta {
        format: 1,
        baseline: BaselineRecord {
            model: "lenet<b>".into(),
            weights_sha256: "00".repeat(32),
            accuracy: 0.95,
            loss: 0.2,
            footprint: footprint(1000),
        },
        data: "digits".into(),
        data_sha256: "11".repeat(32),
        learner: "weight_sparse".into(),
        learner_sha256: "22".repeat(32),
        optimizer: "random</script><script>alert(2)</script>".into(),
        optimizer_sha256: "33".repeat(32),
        optimizer_options: vec![],
        target: Target {
            measure: Measure::Params,
            ratio: 0.25,
        },
        no_target: false,
        latency: None,
        bn_images: 0,
        reward: Reward::AccLogRatio,
        seed: 7,
        fixed: vec![ParamRecord {
            name: "steps".into(),
            value: ValueRecord::Int(3),
        }],
        trials: 10,
        finetune_steps: 100,
        finetune_search: Default::default(),
        batch_size: 64,
        lr: 0.01,
        limits: [256 << 20, 20_000_000_000, 4096],
        jobs: 1,
        created: 1_700_000_000,
    }
}

fn trial(number: u32, nonzero: Option<u64>, accuracy: Option<f64>) -> TrialRecord {
    let m = meta();
    let fp = nonzero.map(footprint);
    let ratio = fp.map(|f| m.target.ratio_of(&f, &m.baseline.footprint));
    let complete = matches!((fp, accuracy), (Some(f), Some(a))
        if a.is_finite() && m.target.is_met(&f, &m.baseline.footprint));
    TrialRecord {
        number,
        status: if complete {
            TrialStatus::Complete
        } else {
            TrialStatus::Failed
        },
        params: vec![
            ParamRecord {
                name: "sparsity".into(),
                value: ValueRecord::Float(0.5),
            },
            ParamRecord {
                name: "mode".into(),
                value: ValueRecord::Choice("a&b".into()),
            },
        ],
        seed: u64::from(number),
        accuracy,
        loss: accuracy.map(|a| 1.0 - a),
        footprint: fp,
        target_ratio: ratio,
        latency_ms: None,
        reward: match (complete, fp, accuracy) {
            (true, Some(f), Some(a)) => Some(m.reward.of(a, &f, &m.baseline.footprint, &m.target)),
            _ => None,
        },
        error: (!complete).then(|| "missed the target".to_string()),
        timings: Timings {
            total: 1.5 + f64::from(number),
            ..Timings::default()
        },
        learner_sha256: "22".repeat(32),
        optimizer_sha256: "33".repeat(32),
        worker_host: Some("node-<1>".into()),
        worker_pid: Some(4242),
    }
}

fn study() -> Vec<TrialRecord> {
    let mut plugin_error = trial(6, None, None);
    plugin_error.error = Some("trap: <script>alert(1)</script> & more".into());
    vec![
        trial(0, Some(250), Some(0.90)),
        trial(1, Some(200), Some(0.91)), // front
        trial(2, Some(100), Some(0.85)), // front
        trial(3, Some(240), Some(0.80)), // dominated
        trial(4, Some(600), Some(0.94)), // misses the target: failed
        trial(5, Some(150), Some(f64::NAN)),
        plugin_error,
        trial(8, Some(100), Some(0.85)), // ties trial 2: front
        trial(7, Some(50), Some(0.60)),  // front (out of order on purpose)
    ]
}

/// The pf-data JSON of a page.
fn data(html: &str) -> serde_json::Value {
    let open = "<script type=\"application/json\" id=\"pf-data\">";
    let start = html.find(open).expect("pf-data script") + open.len();
    let len = html[start..].find("</script>").expect("closed");
    serde_json::from_str(&html[start..start + len]).expect("pf-data parses")
}

#[test]
fn scatter_front_is_over_complete_trials() {
    let m = meta();
    let t = study();
    let pts = scatter_points(&m, &t);
    // Trial 5 (NaN accuracy) and 6 (no footprint) are not plotted.
    let trials: Vec<u32> = pts.iter().map(|p| p.trial).collect();
    assert_eq!(trials, vec![0, 1, 2, 3, 4, 8, 7]);
    let front: Vec<u32> = pts.iter().filter(|p| p.on_front).map(|p| p.trial).collect();
    assert_eq!(front, vec![1, 2, 8, 7]);
    let failed = pts.iter().find(|p| p.trial == 4).unwrap();
    assert!(!failed.complete && !failed.on_front);
    assert_eq!(pts[1].cost, 200.0);
}

#[test]
fn html_report_has_table_data_and_escapes() {
    let m = meta();
    let t = study();
    let html = render(&m, &t, Format::Html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // One row per trial, in number order.
    assert_eq!(html.matches("<tr class=").count(), t.len());
    let row = |n: u32| {
        html.find(&format!("data-v=\"{:e}\">{n}</td>", f64::from(n)))
            .unwrap()
    };
    assert!(row(6) < row(7) && row(7) < row(8));
    assert!(
        html.contains("<tr class=\"complete front best\">"),
        "{html}"
    );
    assert!(html.contains("sparsity=0.5, mode=a&amp;b"));
    // Untrusted text is escaped, wherever it appears.
    assert!(html.contains("trap: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("lenet&lt;b&gt;"));
    // Exactly the page's two scripts: the data and the table sorter.
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
    assert!(html.contains("params ≤ 0.25 × baseline"));
    // No external resources.
    for bad in ["http://", "https://", "src=", "<link"] {
        let n = html.matches(bad).count();
        // The only URL is the SVG namespace, twice.
        let allowed = if bad == "http://" { 2 } else { 0 };
        assert_eq!(n, allowed, "{bad}");
    }

    let d = data(&html);
    assert_eq!(d["meta"]["optimizer"], m.optimizer.as_str());
    assert_eq!(d["trials"].as_array().unwrap().len(), t.len());
    assert_eq!(
        d["trials"][6]["error"],
        "trap: <script>alert(1)</script> & more"
    );
    let scatter: Vec<ScatterPoint> = serde_json::from_value(d["scatter"].clone()).unwrap();
    assert_eq!(scatter, scatter_points(&m, &t));
    let complete: Vec<&ScatterPoint> = scatter.iter().filter(|p| p.complete).collect();
    let coords: Vec<(f64, f64)> = complete.iter().map(|p| (p.cost, p.accuracy)).collect();
    let front = pareto_front(&coords);
    for (j, p) in complete.iter().enumerate() {
        assert_eq!(p.on_front, front.contains(&j), "trial {}", p.trial);
    }
    assert!(scatter.iter().filter(|p| !p.complete).all(|p| !p.on_front));
    let best: Vec<(u32, f64)> = serde_json::from_value(d["best_so_far"].clone()).unwrap();
    assert_eq!(
        best.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 7, 8]
    );
    assert!(best.windows(2).all(|w| w[0].1 <= w[1].1));
    let top = crate::search::best_of(&t).unwrap();
    assert_eq!(best.last().unwrap().1, top.reward.unwrap());
}

#[test]
fn svg_report_stacks_both_plots() {
    let m = meta();
    let svg = render(&m, &study(), Format::Svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert!(!svg.contains("<table"));
    for text in [
        "\nBest reward so far\n</text>",
        "\nnon-zero parameters\n</text>",
        "\nvalidation accuracy\n</text>",
        "\ntrial\n</text>",
        "\nreward (acc-log-ratio)\n</text>",
        "\nPareto front\n</text>",
        "\nbaseline\n</text>",
    ] {
        assert!(svg.contains(text), "{text}");
    }
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
}

#[test]
fn degenerate_studies_render() {
    let m = meta();
    let same_cost: Vec<TrialRecord> = (0..3)
        .map(|i| trial(i, Some(200), Some(0.5 + 0.1 * f64::from(i))))
        .collect();
    let same_acc: Vec<TrialRecord> = (0..3)
        .map(|i| trial(i, Some(100 + 50 * u64::from(i)), Some(0.7)))
        .collect();
    let mut weird = vec![
        trial(0, Some(100), Some(0.8)),
        trial(1, Some(200), Some(0.9)),
    ];
    weird[0].reward = Some(f64::INFINITY);
    weird[1].reward = Some(f64::NAN);
    weird[1].accuracy = Some(f64::NEG_INFINITY);
    let mut huge = vec![
        trial(0, Some(100), Some(0.8)),
        trial(1, Some(200), Some(0.9)),
    ];
    huge[0].reward = Some(-f64::MAX);
    huge[1].reward = Some(f64::MAX);
    huge[1].footprint = Some(Footprint {
        nonzero_params: u64::MAX,
        ..footprint(1)
    });
    let mut tiny = vec![
        trial(0, Some(100), Some(0.8)),
        trial(1, Some(200), Some(0.9)),
    ];
    tiny[0].reward = Some(1e-300);
    tiny[1].reward = Some(2e-300);
    let mut zero_base = meta();
    zero_base.baseline.footprint = Footprint {
        macs: 0,
        params: 0,
        nonzero_params: 0,
        bytes: 0,
    };
    zero_base.baseline.accuracy = f64::NAN;
    let studies: Vec<(&str, StudyMeta, Vec<TrialRecord>)> = vec![
        ("none", meta(), vec![]),
        (
            "all failed",
            meta(),
            vec![trial(0, Some(900), Some(0.9)), trial(1, None, None)],
        ),
        ("single", meta(), vec![trial(3, Some(100), Some(0.8))]),
        ("same cost", meta(), same_cost),
        ("same accuracy", meta(), same_acc),
        ("non-finite", meta(), weird),
        ("huge", meta(), huge),
        ("tiny", meta(), tiny),
        (
            "zero baseline",
            zero_base,
            vec![trial(0, Some(0), Some(0.0))],
        ),
    ];
    for (name, m, t) in studies {
        for format in [Format::Html, Format::Svg] {
            let out = render(&m, &t, format).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(out.contains("<svg"), "{name}");
            if format == Format::Html {
                let d = data(&out);
                assert_eq!(d["trials"].as_array().unwrap().len(), t.len(), "{name}");
            }
        }
    }
    let _ = m;
}

#[test]
fn json_cannot_leave_its_script() {
    let s = html::script_safe_json(r#"{"a":"</script><!-- & \u2028"}"#);
    assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["a"], "</script><!-- & \u{2028}");
}
