//! The `dis_chn_pruned` learner (Zhuang et al. 2018): discrimination-aware
//! heads and targets, and its errors (its conformance suite runs from the
//! learner list in `plugins.rs`).

use crate::support::{assert_refused, digits_model, json, pf, tempdir};
use std::path::Path;

/// `pf plugin apply -p dis_chn_pruned --model MODEL ARGS... --json`.
fn apply(dir: &Path, model: &str, args: &[&str]) -> std::process::Output {
    pf().current_dir(dir)
        .args(["plugin", "apply", "-p", "dis_chn_pruned", "--model", model])
        .args(args)
        .arg("--json")
        .output()
        .unwrap()
}

#[test]
fn stages_get_heads_and_the_flops_target_is_met() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    for (stages, heads) in [("1", 0.0), ("3", 2.0)] {
        let o = apply(
            dir.path(),
            &model,
            &[
                "--set",
                &format!("stages={stages}"),
                "--set",
                "stage_steps=5",
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
        assert_eq!(
            r["plugin_report"]["auxiliary_heads"].as_f64(),
            Some(heads),
            "{r}"
        );
        assert!(r["test_accuracy_after"].as_f64().unwrap() > 0.5, "{r}");
        // The heads are not part of the saved model: it loads and runs as
        // the zoo graph, only thinner.
        let pruned =
            pf::model::load(&dir.path().join("pruned.pf"), &candle_core::Device::Cpu).unwrap();
        assert!(pruned.params.keys().all(|k| !k.starts_with("aux")));
    }
}

#[test]
fn bad_settings_are_clear_errors() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 30);
    for bad in [
        "preserve_ratio=0",
        "stages=0",
        "greedy_steps=0",
        "lambda=-1",
    ] {
        let o = apply(dir.path(), &model, &["--set", bad, "--finetune-steps", "0"]);
        assert_refused(&o, bad.split('=').next().unwrap());
    }
}
