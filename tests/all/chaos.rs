//! The chaos learner (`tests/plugins/chaos`) in a short `pf compress`: trials
//! that trap, spin out their fuel or write NaN weights, in `compress`, in the
//! fine-tuning hook or in `finish`, fail with their own reason in the study,
//! and the study still completes with a real best trial. The long run with
//! every mode is `scripts/soak.sh`.

use crate::support::{digits_model, path_str, plugin_file, run_pf, stderr, tempdir};
use pf::search::{SqliteStudy, StudyStore, TrialStatus};

/// What the reason of each failure mode run here says (the panic's own
/// message; the host's words for fuel and non-finite weights).
const REASONS: [(&str, &str); 3] = [
    ("trap", "chaos plugin trapped on purpose"),
    ("loop", "fuel"),
    ("nan", "NaN"),
];

#[test]
fn chaos_trials_fail_with_their_reasons_and_the_best_trial_is_a_real_one() {
    let dir = tempdir();
    let model = digits_model(dir.path(), 150);
    let chaos = plugin_file("chaos");
    let trials = 10;
    let out = run_pf(
        dir.path(),
        &[
            "compress",
            "--plugin",
            chaos.to_str().unwrap(),
            "--optimizer",
            "random",
            "--model",
            &model,
            "--trials",
            &trials.to_string(),
            "--finetune-steps",
            "5",
            "--retrain-epochs",
            "0",
            "--study",
            &path_str(dir.path(), "study.db"),
            "--no-report",
            "--seed",
            "3",
            // A loop runs out of fuel in well under a second.
            "--plugin-fuel",
            "300",
            // The modes today's host bounds; the soak run has the others.
            "--set",
            "failure_rate=0.6",
            "--set",
            "memory=false",
            "--set",
            "host_work=false",
            "--set",
            "huge_string=false",
            "--set",
            "slow=false",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked at"), "{err}");

    let study = SqliteStudy::open(&dir.path().join("study.db")).unwrap();
    let records = study.trials().unwrap();
    assert_eq!(records.len(), trials, "{err}");
    let mut seen = std::collections::BTreeSet::new();
    let mut calls = std::collections::BTreeSet::new();
    for t in records.iter().filter(|t| t.status == TrialStatus::Failed) {
        let reason = t.error.as_deref().unwrap_or("");
        let (mode, _) = REASONS
            .iter()
            .find(|(_, r)| reason.contains(r))
            .unwrap_or_else(|| panic!("trial {} failed for no known reason: {reason:?}", t.number));
        seen.insert(*mode);
        // The reason names the call that failed: misbehaving late (in the
        // fine-tuning hook or in `finish`) fails the trial as well.
        let call = ["compress", "on-train-step", "finish"]
            .into_iter()
            .find(|c| reason.contains(&format!("failed in `{c}`")))
            .unwrap_or_else(|| panic!("trial {} names no call: {reason:?}", t.number));
        calls.insert(call);
        // The reason is printed with the trial, too.
        assert!(
            err.contains(&format!("trial {:>3}  failed", t.number)),
            "{err}"
        );
    }
    assert_eq!(
        seen.len(),
        REASONS.len(),
        "seed 3 draws every mode: {seen:?}"
    );
    assert_eq!(calls.len(), 3, "seed 3 fails in every call: {calls:?}");

    // The best trial is one that behaved: complete, with the accuracy of a
    // lightly pruned digits network.
    let best = study.final_result().unwrap().expect("final result stored");
    let record = records.iter().find(|t| t.number == best.trial).unwrap();
    assert_eq!(record.status, TrialStatus::Complete, "{record:?}");
    let accuracy = record.accuracy.unwrap();
    let baseline = study.meta().baseline.accuracy;
    assert!(
        accuracy.is_finite() && accuracy >= baseline - 0.05,
        "best trial {accuracy} vs baseline {baseline}"
    );
    let completed = records
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .count();
    assert!(
        completed >= 2 && completed < trials,
        "{completed} of {trials} complete"
    );
}
