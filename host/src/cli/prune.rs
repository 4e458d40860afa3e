//! `pf prune`: uniform magnitude-based channel pruning (Li et al. 2017), the
//! simple baseline before the searched learners.

use super::common::print_json;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use pf::model::Model;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `pf prune`.
#[derive(Args, Debug)]
#[command(
    after_help = "Prunes physically: the output file has smaller layers, not masks. Fine-tune it \
afterwards with `pf train --model OUT`."
)]
pub struct PruneArgs {
    /// The model file (.pf) to prune, or a zoo architecture (pruned from
    /// fresh weights: for measuring what pruning buys, not for use).
    model: String,
    #[command(flatten)]
    zoo: super::common::ZooArgs,
    /// Seed of a zoo architecture's fresh weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of channels to keep in every prunable coupling group.
    #[arg(long, default_value_t = 0.5, value_name = "R")]
    keep: f64,
    /// Prune only the groups produced by these layers (default: every prunable group).
    #[arg(long, value_delimiter = ',', value_name = "LAYER,...")]
    layers: Vec<String>,
    /// Where to write the pruned model.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PruneReport {
    groups: Vec<GroupReport>,
    macs_before: u64,
    macs_after: u64,
    params_before: u64,
    params_after: u64,
    output: PathBuf,
}

#[derive(Serialize)]
struct GroupReport {
    producers: Vec<String>,
    channels_before: usize,
    channels_after: usize,
}

pub fn run(a: PruneArgs) -> Result<()> {
    if !(a.keep > 0.0 && a.keep <= 1.0) {
        bail!("--keep must be in (0, 1]");
    }
    let mut model = a.zoo.load_or_init(&a.model, a.seed)?;
    let before = model.graph.cost()?;
    let coupling = model.graph.coupling()?;
    // One (first producer, channels) per group to prune.
    let mut targets: Vec<(String, usize)> = Vec::new();
    if a.layers.is_empty() {
        for g in coupling.groups.iter().filter(|g| g.prunable) {
            if let Some(first) = g.producers.first() {
                targets.push((first.clone(), g.channels));
            }
        }
    }
    for want in &a.layers {
        let g = coupling
            .group_of(want)
            .with_context(|| format!("no layer `{want}` in {}", a.model))?;
        if !g.producers.contains(want) || !g.prunable {
            bail!(
                "`{want}` does not produce a prunable channel group{}",
                g.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
        if !targets.iter().any(|(p, _)| g.producers.contains(p)) {
            targets.push((g.producers[0].clone(), g.channels));
        }
    }
    if targets.is_empty() {
        bail!("{} has no prunable channel groups", a.model);
    }
    let mut groups = Vec::new();
    for (producer, channels) in targets {
        let keep_n = ((channels as f64 * a.keep).round() as usize).clamp(1, channels);
        let keep = strongest_channels(&model, &producer, keep_n)?;
        let producers = model
            .graph
            .coupling()?
            .group_of(&producer)
            .map(|g| g.producers.clone())
            .unwrap_or_default();
        model
            .prune_channels(&producer, &keep)
            .with_context(|| format!("pruning the group of `{producer}`"))?;
        groups.push(GroupReport {
            producers,
            channels_before: channels,
            channels_after: keep_n,
        });
    }
    pf::model::save(&model, &a.output).with_context(|| format!("saving {}", a.output.display()))?;
    let after = model.graph.cost()?;
    let report = PruneReport {
        groups,
        macs_before: before.macs,
        macs_after: after.macs,
        params_before: before.params,
        params_after: after.params,
        output: a.output.clone(),
    };
    if a.json {
        return print_json(&report);
    }
    println!(
        "pruned {} groups: MACs {} -> {} ({:.1}%), params {} -> {} ({:.1}%) -> {}",
        report.groups.len(),
        super::common::si(report.macs_before),
        super::common::si(report.macs_after),
        100.0 * report.macs_after as f64 / report.macs_before as f64,
        super::common::si(report.params_before),
        super::common::si(report.params_after),
        100.0 * report.params_after as f64 / report.params_before as f64,
        a.output.display()
    );
    Ok(())
}

/// The `n` output channels of `producer`'s group with the largest summed L1
/// norm over the group's producers, in ascending order.
fn strongest_channels(model: &Model, producer: &str, n: usize) -> Result<Vec<usize>> {
    let coupling = model.graph.coupling()?;
    let group = coupling.group_of(producer).context("layer vanished")?;
    let mut score = vec![0f64; group.channels];
    for p in &group.producers {
        let w = model.params[&format!("{p}.weight")].as_tensor();
        let norms = w
            .abs()?
            .flatten_from(1)?
            .sum(1)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        for (s, v) in score.iter_mut().zip(norms) {
            *s += v;
        }
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = order.into_iter().take(n).collect();
    keep.sort_unstable();
    Ok(keep)
}
