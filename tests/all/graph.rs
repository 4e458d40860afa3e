//! Graph validation, coupling and the pf model format.

use crate::support::tempdir;
use candle_core::{Device, Tensor};
use pf::graph::{Graph, GraphError, InputSpec, Layer, Op, INPUT};
use pf::model::{self, Model};
use pf::zoo::{self, ZooConfig};

fn conv(i: usize, o: usize) -> Op {
    Op::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        groups: 1,
        bias: false,
    }
}

fn tiny() -> Graph {
    Graph {
        name: "tiny".into(),
        input: InputSpec {
            channels: 1,
            height: 6,
            width: 6,
        },
        layers: vec![
            Layer::new("c1", conv(1, 4), &[INPUT]),
            Layer::new(
                "bn1",
                Op::BatchNorm {
                    channels: 4,
                    eps: 1e-5,
                    momentum: 0.1,
                },
                &["c1"],
            ),
            Layer::new("r1", Op::Relu, &["bn1"]),
            Layer::new("c2", conv(4, 4), &["r1"]),
            Layer::new("add", Op::Add, &["c2", "r1"]),
            Layer::new("gap", Op::GlobalAvgPool, &["add"]),
            Layer::new("flat", Op::Flatten, &["gap"]),
            Layer::new(
                "fc",
                Op::Linear {
                    in_features: 4,
                    out_features: 3,
                    bias: true,
                },
                &["flat"],
            ),
        ],
    }
}

fn resnet20() -> Graph {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 3,
            height: 32,
            width: 32,
        },
        num_classes: 10,
        width: 1.0,
    };
    zoo::build("resnet20", &cfg).unwrap()
}

#[test]
fn shape_inference_and_costs() {
    let g = tiny();
    let c = g.cost().unwrap();
    assert_eq!(c.layers[0].output.to_string(), "4×6×6");
    assert_eq!(c.layers[7].output.to_string(), "3");
    assert_eq!(c.layers[0].macs, 4 * 36 * 9);
    assert_eq!(c.params, 36 + 8 + 144 + 15);
    assert_eq!(c.param_bytes, c.params * 4);
}

#[test]
fn invalid_graphs_are_rejected_with_the_layer_named() {
    let mut g = tiny();
    g.layers[3].inputs = vec!["nope".into()];
    assert_eq!(
        g.validate().unwrap_err(),
        GraphError::UnknownInput {
            layer: "c2".into(),
            input: "nope".into()
        }
    );

    let mut g = tiny();
    g.layers[3].op = conv(5, 4);
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("`c2`") && e.contains("5 input channels"), "{e}");

    let mut g = tiny();
    g.layers[7].op = Op::Linear {
        in_features: 9,
        out_features: 3,
        bias: true,
    };
    assert!(g
        .validate()
        .unwrap_err()
        .to_string()
        .contains("expects 9 features but gets 4"));

    let mut g = tiny();
    g.layers[2].name = "c1".into();
    assert_eq!(
        g.validate().unwrap_err(),
        GraphError::DuplicateName("c1".into())
    );

    let mut g = tiny();
    g.layers[4].inputs.pop();
    assert!(matches!(
        g.validate().unwrap_err(),
        GraphError::Arity { .. }
    ));
}

#[test]
fn residual_adds_couple_their_producers() {
    let map = tiny().coupling().unwrap();
    let g = map.group_of("add").unwrap();
    assert_eq!(g.producers, vec!["c1", "c2"]);
    assert_eq!(g.followers, vec!["bn1"]);
    assert_eq!(g.consumers, vec!["c2", "fc"]);
    assert!(g.prunable);
    assert!(!map.group_of("fc").unwrap().prunable);
}

#[test]
fn resnet_inner_convs_are_prunable_and_the_residual_stream_is_not() {
    let map = resnet20().coupling().unwrap();
    for stage in 1..=3 {
        for block in 0..3 {
            let inner = map.group_of(&format!("layer{stage}.{block}.a.bn")).unwrap();
            assert!(inner.prunable, "layer{stage}.{block}.a");
            assert_eq!(
                inner.producers,
                vec![format!("layer{stage}.{block}.a.conv")]
            );
            assert_eq!(
                inner.consumers,
                vec![format!("layer{stage}.{block}.b.conv")]
            );
        }
    }
    let stream = map.group_of("layer3.2.add").unwrap();
    assert_eq!(stream.producers.len(), 3);
    assert!(!stream.prunable);
}

#[test]
fn mobilenet_depthwise_convs_follow_their_input_channels() {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 3,
            height: 224,
            width: 224,
        },
        num_classes: 1000,
        width: 1.0,
    };
    let map = zoo::build("mobilenet_v1", &cfg)
        .unwrap()
        .coupling()
        .unwrap();
    let g = map.group_of("block2.dw.conv").unwrap();
    assert_eq!(g.producers, vec!["block1.pw.conv"]);
    assert!(g.followers.contains(&"block2.dw.conv".to_string()));
    assert_eq!(g.consumers, vec!["block2.pw.conv"]);
    assert!(g.prunable);
}

#[test]
fn model_file_round_trips_exactly() {
    let dir = tempdir();
    let path = dir.path().join("m.pf");
    let m = Model::init(tiny(), 3, &Device::Cpu).unwrap();
    model::save(&m, &path).unwrap();
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.graph, m.graph);
    assert_eq!(back.weights_sha256().unwrap(), m.weights_sha256().unwrap());
    // No temporary files are left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn masks_and_quantizers_are_saved_with_the_model() {
    let dir = tempdir();
    let path = dir.path().join("m.pf");
    let mut m = Model::init(tiny(), 3, &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(
        (0..144).map(|i| (i % 2) as f32).collect::<Vec<_>>(),
        (4, 4, 3, 3),
        &Device::Cpu,
    )
    .unwrap();
    m.set_mask("c2", mask).unwrap();
    m.graph.layers[3].quant = Some(pf::graph::LayerQuant {
        weight: Some(pf::graph::Quantizer::Uniform {
            bits: 4,
            symmetric: true,
            per_channel: true,
            bucket: 0,
        }),
        activation: Some(pf::graph::Quantizer::Uniform {
            bits: 8,
            symmetric: false,
            per_channel: false,
            bucket: 0,
        }),
    });
    m.ensure_quant_buffers().unwrap();
    model::save(&m, &path).unwrap();
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert!(back.masks.contains_key("c2"));
    assert!(back.buffers.contains_key("c2.act_range"));
    assert_eq!(back.graph.layers[3].quant, m.graph.layers[3].quant);
    // 4-bit weights: 144 weights in 72 bytes plus 4 scales.
    assert_eq!(back.graph.layers[3].param_bytes(), 72 + 16);
}

#[test]
fn codebook_weights_are_saved_packed_with_their_masks_as_bits() {
    let dir = tempdir();
    let path = dir.path().join("k.pf");
    let mut m = Model::init(tiny(), 3, &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(
        (0..144)
            .map(|i| (i % 3 != 0) as u8 as f32)
            .collect::<Vec<_>>(),
        (4, 4, 3, 3),
        &Device::Cpu,
    )
    .unwrap();
    m.set_mask("c2", mask.clone()).unwrap();
    // Four centroids with 0 among them: 2-bit codes.
    m.graph.layers[3].quant = Some(pf::graph::LayerQuant {
        weight: Some(pf::graph::Quantizer::Codebook {
            centroids: vec![-0.2, 0.0, 0.05, 0.3],
        }),
        activation: None,
    });
    let x = Tensor::randn(0f32, 1.0, (2, 1, 6, 6), &Device::Cpu).unwrap();
    let before = m.forward_inference(&x).unwrap();
    model::save(&m, &path).unwrap();
    // 144 codes of 2 bits and 144 mask bits, not 2 × 144 floats.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(String::from).collect();
    assert!(names.contains(&"c2.weight.codes".to_string()), "{names:?}");
    assert!(names.contains(&"c2.mask.bits".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n == "c2.weight" || n == "c2.mask"));
    assert_eq!(st.tensor("c2.weight.codes").unwrap().data().len(), 36);
    assert_eq!(st.tensor("c2.mask.bits").unwrap().data().len(), 18);

    let back = model::load(&path, &Device::Cpu).unwrap();
    let same = |a: &Tensor, b: &Tensor| {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap()
    };
    assert_eq!(same(&back.masks["c2"], &mask), 0.0);
    assert_eq!(same(&back.forward_inference(&x).unwrap(), &before), 0.0);
    // Every stored weight is a centroid, and masked ones are 0.
    let w = back.params["c2.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(w.iter().all(|v| [-0.2, 0.0, 0.05, 0.3].contains(v)));
    assert!(w.iter().step_by(3).all(|&v| v == 0.0));
}

fn write_with(
    dir: &std::path::Path,
    name: &str,
    edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>, &mut Graph),
) -> std::path::PathBuf {
    let m = Model::init(tiny(), 3, &Device::Cpu).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> =
        m.named_tensors().into_iter().collect();
    let mut graph = m.graph.clone();
    edit(&mut tensors, &mut graph);
    let mut meta = std::collections::HashMap::new();
    let header = serde_json::json!({"format": "pf-model", "version": "1", "graph": graph});
    meta.insert("pf".to_string(), header.to_string());
    let views: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.dims().to_vec(),
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )
        })
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = views
        .iter()
        .map(|(k, s, b)| {
            (
                k.as_str(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn loading_a_bad_model_file_names_the_problem() {
    let dir = tempdir();
    let load_err = |p: &std::path::Path| {
        format!(
            "{:#}",
            model::load(p, &Device::Cpu).err().expect("load fails")
        )
    };

    let p = write_with(dir.path(), "missing.pf", |t, _| {
        t.remove("c2.weight");
    });
    let e = load_err(&p);
    assert!(
        e.contains("missing.pf") && e.contains("`c2.weight`") && e.contains("missing"),
        "{e}"
    );

    let p = write_with(dir.path(), "shape.pf", |t, _| {
        t.insert(
            "fc.bias".into(),
            Tensor::zeros(7, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let e = load_err(&p);
    assert!(
        e.contains("`fc.bias` has shape [7]") && e.contains("needs [3]"),
        "{e}"
    );

    let p = write_with(dir.path(), "graph.pf", |_, g| {
        g.layers[3].inputs = vec!["ghost".into()];
    });
    let e = load_err(&p);
    assert!(e.contains("graph.pf") && e.contains("ghost"), "{e}");

    let good = write_with(dir.path(), "good.pf", |_, _| {});
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.pf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&truncated);
    assert!(e.contains("truncated.pf") && e.contains("truncated"), "{e}");

    let garbage = dir.path().join("garbage.pf");
    std::fs::write(&garbage, b"not a model").unwrap();
    assert!(load_err(&garbage).contains("not a pf model file"));

    let e = load_err(&dir.path().join("absent.pf"));
    assert!(
        e.contains("cannot read model file") && e.contains("absent.pf"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn saved_files_are_readable_like_ordinary_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let path = dir.path().join("m.pf");
    let m = Model::init(tiny(), 3, &Device::Cpu).unwrap();
    model::save(&m, &path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Rewriting keeps a mode the user chose.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    model::save(&m, &path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}
