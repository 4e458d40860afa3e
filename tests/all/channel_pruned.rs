//! The `channel_pruned` learner (He et al. 2017): its channel selection
//! against the baselines, per-layer ratios under a FLOPs target, and its
//! errors (its conformance suite runs from the learner list in `plugins.rs`).

use crate::support::{assert_refused, digits_model, json, pf, stderr, tempdir};
use pf::graph::{Graph, InputSpec, Layer, Op, INPUT};
use std::path::Path;

/// `pf plugin apply -p channel_pruned --model MODEL ARGS... --json`.
fn apply(dir: &Path, model: &str, args: &[&str]) -> std::process::Output {
    pf().current_dir(dir)
        .args(["plugin", "apply", "-p", "channel_pruned", "--model", model])
        .args(args)
        .arg("--json")
        .output()
        .unwrap()
}

#[test]
fn lasso_selection_with_reconstruction_beats_l1_and_random_channels() {
    // He et al.'s Fig. 3, on a digits CNN trained for 5 epochs, at a 0.5
    // preserve ratio and before any fine-tuning: the held-out error of the
    // next layers' outputs (averaged over the pruned layers), with the kept
    // weights rebuilt by least squares for all three selections; random
    // selection for three seeds, and L1 also as it is usually done, without
    // reconstruction.
    let dir = tempdir();
    let o = pf()
        .current_dir(dir.path())
        .args(["train", "--epochs", "5", "--seed", "0", "-o", "base.pf"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let model = dir.path().join("base.pf").to_str().unwrap().to_string();
    let error = |selection: &str, reconstruct: &str, seed: &str| {
        let o = apply(
            dir.path(),
            &model,
            &[
                "--set",
                &format!("selection={selection}"),
                "--set",
                &format!("reconstruct={reconstruct}"),
                "--set",
                "preserve_ratio=0.5",
                "--seed",
                seed,
                "--finetune-steps",
                "0",
            ],
        );
        let r = json(&o);
        assert!(r["measured"]["macs_ratio"].as_f64().unwrap() < 0.5, "{r}");
        r["plugin_report"]["reconstruction_error"].as_f64().unwrap()
    };
    let lasso = error("lasso", "true", "0");
    let l1 = error("l1", "true", "0");
    let l1_plain = error("l1", "false", "0");
    assert!(lasso > 0.0, "pruning half the channels loses something");
    assert!(lasso < l1, "LASSO {lasso} vs L1 {l1}");
    for seed in ["0", "1", "2"] {
        let random = error("random", "true", seed);
        assert!(
            lasso < random,
            "LASSO {lasso} vs random {random} (seed {seed})"
        );
    }
    assert!(l1 < l1_plain, "reconstruction helps: {l1} vs {l1_plain}");
}

#[test]
fn per_layer_ratios_keep_their_proportions_under_a_flops_target() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    // The per-layer dimensions appear with `per_layer` and carry context.
    let o = pf()
        .args(["plugin", "inspect", "channel_pruned", "--json"])
        .output()
        .unwrap();
    let settings = json(&o)["settings"].to_string();
    assert!(settings.contains("selection") && settings.contains("per_layer"));
    let o = apply(
        dir.path(),
        &model,
        &[
            "--set",
            "per_layer=true",
            "--set",
            "preserve.block1.conv=1.0",
            "--set",
            "preserve.block2.conv=0.2",
            "--set",
            "preserve.block3.conv=0.5",
            "--target",
            "flops=0.5",
            "--finetune-steps",
            "5",
            "--output",
            "pruned.pf",
        ],
    );
    let r = json(&o);
    assert!(r["measured"]["macs_ratio"].as_f64().unwrap() <= 0.5, "{r}");
    let pruned = pf::model::load(&dir.path().join("pruned.pf"), &candle_core::Device::Cpu).unwrap();
    let out = |name: &str| match pruned.graph.layer(name).unwrap().op {
        Op::Conv2d { out_channels, .. } => out_channels,
        ref other => panic!("{other:?}"),
    };
    // One common factor scales the preferences: block1 (1.0) keeps all
    // of its 16 channels, block3 (0.5) keeps a larger fraction than block2
    // (0.2).
    assert_eq!(out("block1.conv"), 16);
    let (b2, b3) = (
        out("block2.conv") as f64 / 32.0,
        out("block3.conv") as f64 / 64.0,
    );
    assert!(b2 < 0.6 * b3, "block2 keeps {b2}, block3 {b3}");
}

#[test]
fn without_a_target_preserve_ratio_sets_every_group_per_layer_or_not() {
    // Per-layer ratios are the default; without a target their dimensions
    // default to `preserve_ratio`, so it still prunes every group to it, as
    // the uniform `per_layer=false` does.
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    let o = pf()
        .args(["plugin", "inspect", "channel_pruned", "--json"])
        .output()
        .unwrap();
    let r = json(&o);
    let settings = r["settings"].as_array().unwrap();
    let per_layer = settings.iter().find(|s| s["name"] == "per_layer").unwrap();
    assert_eq!(per_layer["default"], "true", "{per_layer}");
    for extra in [&[][..], &["--set", "per_layer=false"][..]] {
        let mut args = vec!["--set", "preserve_ratio=0.3", "--finetune-steps", "0"];
        args.extend(extra);
        args.extend(["--output", "pruned.pf"]);
        let o = apply(dir.path(), &model, &args);
        let r = json(&o);
        let pruned =
            pf::model::load(&dir.path().join("pruned.pf"), &candle_core::Device::Cpu).unwrap();
        for (layer, channels) in [("block1.conv", 5), ("block2.conv", 10), ("block3.conv", 20)] {
            match pruned.graph.layer(layer).unwrap().op {
                Op::Conv2d { out_channels, .. } => {
                    assert_eq!(out_channels, channels, "{layer} {extra:?}: {r}")
                }
                ref other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn bad_ratios_and_models_with_nothing_to_prune_are_clear_errors() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    for bad in [
        "preserve_ratio=0",
        "preserve_ratio=1.5",
        "images=0",
        "selection=greedy",
    ] {
        let o = apply(dir.path(), &model, &["--set", bad, "--finetune-steps", "0"]);
        assert_refused(&o, bad.split('=').next().unwrap());
    }
    // A linear classifier has no channels between layers to prune.
    let graph = Graph {
        preprocessing: None,
        name: "linear".into(),
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        layers: vec![
            Layer::new("flat", Op::Flatten, &[INPUT]),
            Layer::new(
                "fc",
                Op::Linear {
                    in_features: 64,
                    out_features: 10,
                    bias: true,
                },
                &["flat"],
            ),
        ],
    };
    let linear = pf::model::Model::init(graph, 0, &candle_core::Device::Cpu).unwrap();
    let path = dir.path().join("linear.pf");
    pf::model::save(&linear, &path).unwrap();
    let o = apply(
        dir.path(),
        path.to_str().unwrap(),
        &["--finetune-steps", "0"],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("nothing to prune") && !e.contains("panicked"),
        "{e}"
    );
    // A FLOPs target below what pruning every group to one channel costs.
    let o = apply(
        dir.path(),
        &model,
        &["--target", "flops=0.001", "--finetune-steps", "0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("out of reach"), "{}", stderr(&o));
}

#[test]
fn ddpg_searches_per_layer_ratios_that_meet_the_flops_target() {
    // The per-layer dimensions carry the producers' features as context,
    // which DDPG takes as its state (AMC).
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    let study = dir.path().join("study.db");
    let o = pf()
        .current_dir(dir.path())
        .args(["compress", "--model", &model, "--plugin", "channel_pruned"])
        .args(["--optimizer", "ddpg", "--set", "per_layer=true"])
        .args([
            "--target",
            "flops=0.5",
            "--trials",
            "3",
            "--finetune-steps",
            "2",
        ])
        .args(["--retrain-epochs", "0", "--study", study.to_str().unwrap()])
        .args(["--export", "out.pf", "--report", "report.html", "--json"])
        .output()
        .unwrap();
    let r = json(&o);
    assert_eq!(r["complete"].as_u64(), Some(3), "{r}");
    let params = r["best"]["params"].to_string();
    assert!(params.contains("preserve.block2.conv"), "{params}");
    let macs = r["final"]["footprint"]["macs"].as_f64().unwrap();
    let base = r["baseline"]["footprint"]["macs"].as_f64().unwrap();
    assert!(macs <= 0.5 * base, "{macs} of {base}");
}
