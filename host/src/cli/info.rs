//! `pf info`.

use super::common::{print_json, si};
use anyhow::Result;
use clap::Args;
use pf::graph::{Graph, InputSpec};
use pf::source::is_model_file;
use pf::zoo;
use serde::Serialize;

/// Arguments of `pf info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A .pf model file or a zoo architecture name.
    model: String,
    #[command(flatten)]
    zoo: super::common::ZooArgs,
    /// Also list the channel coupling groups.
    #[arg(long)]
    coupling: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Info {
    name: String,
    input: InputSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    preprocessing: Option<pf::graph::Preprocessing>,
    cost: pf::graph::GraphCost,
    #[serde(skip_serializing_if = "Option::is_none")]
    coupling: Option<Vec<pf::graph::CouplingGroup>>,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let graph: Graph = if is_model_file(&a.model) {
        pf::source::load_model_file(
            std::path::Path::new(&a.model),
            &candle_core::Device::Cpu,
            a.zoo.input_shape,
        )?
        .graph
    } else {
        let cfg = a.zoo.config(&a.model);
        zoo::build(&a.model, &cfg)?
    };
    let cost = graph.cost()?;
    let coupling = if a.coupling {
        Some(graph.coupling()?.groups)
    } else {
        None
    };
    if a.json {
        return print_json(&Info {
            name: graph.name.clone(),
            input: graph.input,
            preprocessing: graph.preprocessing.clone(),
            cost,
            coupling,
        });
    }
    let i = graph.input;
    println!(
        "{}  input {}×{}×{}",
        graph.name, i.channels, i.height, i.width
    );
    if let Some(p) = &graph.preprocessing {
        println!(
            "inputs normalised with the model's own mean {:?} and std {:?} (pixels scaled to [0, 1])",
            p.mean, p.std
        );
    }
    let width = cost
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$}  {:<15}  {:>12}  {:>10}  {:>10}  {:>10}",
        "layer", "op", "output", "MACs", "params", "bytes"
    );
    for l in &cost.layers {
        println!(
            "{:<width$}  {:<15}  {:>12}  {:>10}  {:>10}  {:>10}",
            l.name,
            l.kind,
            l.output.to_string(),
            si(l.macs),
            si(l.params),
            si(l.param_bytes)
        );
    }
    println!(
        "{:<width$}  {:<15}  {:>12}  {:>10}  {:>10}  {:>10}",
        "total",
        "",
        "",
        si(cost.macs),
        si(cost.params),
        si(cost.param_bytes)
    );
    if let Some(groups) = coupling {
        println!("\ncoupling groups (channels pruned together):");
        for (n, g) in groups.iter().enumerate() {
            println!(
                "  #{n:<3} {:>5} ch  {}  producers: {}  followers: {}  consumers: {}{}",
                g.channels,
                if g.prunable { "prunable" } else { "fixed   " },
                g.producers.join(","),
                g.followers.join(","),
                g.consumers.join(","),
                g.reason
                    .as_ref()
                    .map(|r| format!("  ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
