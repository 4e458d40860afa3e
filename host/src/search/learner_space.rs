//! The learner's part of a study's search space: what the learner offers
//! under the target, less what the user fixed with `--set`.

use super::host_space;
use crate::model::{Model, Target};
use crate::plugin::Plugin;
use crate::plugin::{space, FineTune, ModelContext, Runtime, TrialData};
use crate::plugin::{Param, ParamSpec};
use anyhow::{bail, Result};
use std::sync::Arc;

/// The learner's search space under the target, less the dimensions the
/// user fixed with `--set`, and those fixed values.
pub fn searched(
    rt: &Runtime,
    learner: &Plugin,
    base: &Model,
    data: &Arc<TrialData>,
    set: &[String],
    seed: u64,
    target: Option<Target>,
) -> Result<(Vec<ParamSpec>, Vec<Param>)> {
    let space_for = |settings: &[Param], target: Option<Target>| -> Result<Vec<ParamSpec>> {
        let probe = ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), seed);
        rt.learner(learner, Some(probe), seed)?
            .search_space(settings, target)
            .map_err(anyhow::Error::from)
    };
    let settings = space::fixed_settings(&learner.info.params_schema)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    explain_target_derived(set, learner, &settings, target, &space_for)?;
    let (full, fixed) = space::shape_space(set, &settings, |s| space_for(s, target))?;
    space::validate_space(&full)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    let searched = full
        .into_iter()
        .filter(|d| !fixed.iter().any(|f| f.name == d.name))
        .collect();
    Ok((searched, fixed))
}

/// The learner's space for some fixed settings under some target.
type SpaceFor<'a> = dyn Fn(&[Param], Option<Target>) -> Result<Vec<ParamSpec>> + 'a;

/// A `--set` of a parameter that the target decides (a channel pruner's
/// `preserve_ratio` under a FLOPs target, say) is refused with the reason,
/// instead of as an unknown name; so is one of the host's own dimensions.
fn explain_target_derived(
    set: &[String],
    learner: &Plugin,
    settings: &[ParamSpec],
    target: Option<Target>,
    space_for: &SpaceFor<'_>,
) -> Result<()> {
    let names: Vec<&str> = set
        .iter()
        .map(|s| s.split_once('=').map_or(s.as_str(), |(n, _)| n).trim())
        .collect();
    if let Some(n) = names
        .iter()
        .find(|n| [host_space::FINETUNE_LR, host_space::FINETUNE_STEPS].contains(n))
    {
        bail!(
            "--set {n}: `{n}` is the host's fine-tuning dimension, not the learner's; fix it with {}",
            if *n == host_space::FINETUNE_LR { "--lr" } else { "--finetune-steps" }
        );
    }
    let Some(t) = target else { return Ok(()) };
    let known = |space: &[ParamSpec], n: &str| space.iter().chain(settings).any(|d| d.name == n);
    let with_target = space_for(&[], Some(t))?;
    let unknown: Vec<&&str> = names.iter().filter(|n| !known(&with_target, n)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let without = space_for(&[], None)?;
    if let Some(n) = unknown.into_iter().find(|n| known(&without, n)) {
        bail!(
            "--set {n}: learner `{}` derives `{n}` from the target {t} (it scales what it keeps to meet the budget), so it cannot be fixed under it; drop --set {n}, or run with --target none to fix it by hand",
            learner.name()
        );
    }
    Ok(())
}
