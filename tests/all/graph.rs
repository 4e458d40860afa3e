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
        preprocessing: None,
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

/// `digits_cnn` with 75% of every conv and linear weight zeroed by masks,
/// the smallest magnitudes first, as `weight_sparse` prunes.
fn pruned_digits_cnn() -> Model {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        num_classes: 10,
        width: 1.0,
    };
    let mut m = Model::init(zoo::build("digits_cnn", &cfg).unwrap(), 7, &Device::Cpu).unwrap();
    let layers: Vec<String> = m
        .graph
        .layers
        .iter()
        .filter(|l| l.op.has_weight())
        .map(|l| l.name.clone())
        .collect();
    for layer in layers {
        let w = m.params[&format!("{layer}.weight")].as_tensor().clone();
        let mut mags: Vec<f32> = w
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        mags.sort_by(f32::total_cmp);
        let threshold = mags[mags.len() * 3 / 4];
        let mask = w
            .abs()
            .unwrap()
            .ge(threshold)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        m.set_mask(&layer, mask).unwrap();
    }
    m
}

/// The tensors of a safetensors file (name, dtype, shape, bytes) and its
/// metadata.
type Raw = (
    Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    std::collections::HashMap<String, String>,
);

fn read_raw(path: &std::path::Path) -> Raw {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    (tensors, meta.metadata().clone().unwrap())
}

fn write_raw(path: &std::path::Path, (tensors, meta): &Raw) {
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.as_str(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        path,
        safetensors::serialize(views, Some(meta.clone())).unwrap(),
    )
    .unwrap();
}

#[test]
fn sparse_weights_are_saved_at_their_compressed_size() {
    let dir = tempdir();
    let dense = pruned_digits_cnn();
    // The baseline: the same network unpruned.
    let base = Model::init(dense.graph.clone(), 7, &Device::Cpu).unwrap();
    let base_path = dir.path().join("base.pf");
    model::save(&base, &base_path).unwrap();
    let path = dir.path().join("sparse.pf");
    model::save(&dense, &path).unwrap();

    let base_file = std::fs::metadata(&base_path).unwrap().len();
    let file = std::fs::metadata(&path).unwrap().len();
    let base_fp = base.footprint().unwrap();
    let fp = dense.footprint().unwrap();
    let zeros: u64 = dense
        .masks
        .keys()
        .map(|l| model::zero_count(dense.params[&format!("{l}.weight")].as_tensor()).unwrap())
        .sum();
    eprintln!(
        "baseline file {base_file} B (footprint {} B); sparse file {file} B (footprint {} B, \
         {zeros} zero weights)",
        base_fp.bytes, fp.bytes
    );
    assert!(file < base_file / 2, "{file} vs {base_file}");
    // The file is the footprint's bytes plus what the footprint does not
    // count: the header (graph JSON and tensor index) and the batch-norm
    // statistics, which the baseline file shows, plus per-weight extras the
    // baseline does not have: the sign bit of each zero (a masked negative
    // weight is -0.0, kept so that loading is bit-identical) and a few more
    // index entries (at most 4 a layer, 128 bytes each).
    let others = base_file - base_fp.bytes;
    let layers = dense.masks.len() as u64;
    let slack = zeros.div_ceil(8) + layers * 4 * 128;
    assert!(
        file >= fp.bytes && file <= fp.bytes + others + slack,
        "file {file}, footprint {}, other data {others}, slack {slack}",
        fp.bytes
    );
    // Which is within 30% of the footprint's figure for so small a model:
    // the header and statistics are 4 KB (15% of it), the zero signs 8%.
    assert!(
        (file as f64) < 1.3 * fp.bytes as f64,
        "{file} vs {}",
        fp.bytes
    );

    // Stored sparse, masks implied by the zeros; nothing stored as floats
    // twice.
    let (tensors, meta) = read_raw(&path);
    let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    for layer in dense.masks.keys() {
        for suffix in [".weight.nonzero", ".weight.values", ".mask.from_weight"] {
            assert!(
                names.contains(&format!("{layer}{suffix}").as_str()),
                "{names:?}"
            );
        }
        assert!(!names.contains(&format!("{layer}.weight").as_str()));
        assert!(!names.contains(&format!("{layer}.mask").as_str()));
    }
    assert!(meta["pf"].contains(r#""version":"3""#), "{}", meta["pf"]);

    // Loading gives back the same bits: weights (with their -0.0s), masks,
    // buffers, and so the same outputs.
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(
        back.weights_sha256().unwrap(),
        dense.weights_sha256().unwrap()
    );
    assert_eq!(back.masks.len(), dense.masks.len());
    assert!(names.iter().any(|n| n.ends_with(".weight.negzero")));
    let x = Tensor::randn(0f32, 1.0, (3, 1, 8, 8), &Device::Cpu).unwrap();
    let (a, b) = (
        dense.forward_inference(&x).unwrap(),
        back.forward_inference(&x).unwrap(),
    );
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    // Saving the loaded model gives the same file.
    let again = dir.path().join("again.pf");
    model::save(&back, &again).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&path).unwrap()
    );

    // A dense model's file is unchanged: version 1, weights as floats.
    let (_, meta) = read_raw(&base_path);
    assert!(meta["pf"].contains(r#""version":"1""#), "{}", meta["pf"]);
}

#[test]
fn an_old_file_with_float_masks_still_loads() {
    let dir = tempdir();
    let m = pruned_digits_cnn();
    // What pf wrote before sparse storage: every tensor as f32, version 1.
    let tensors = m
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            let bytes = t
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (n, safetensors::Dtype::F32, t.dims().to_vec(), bytes)
        })
        .collect();
    let header = serde_json::json!({"format": "pf-model", "version": "1", "graph": m.graph});
    let meta = [("pf".to_string(), header.to_string())]
        .into_iter()
        .collect();
    let path = dir.path().join("old.pf");
    write_raw(&path, &(tensors, meta));
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.weights_sha256().unwrap(), m.weights_sha256().unwrap());
}

#[test]
fn damaged_sparse_sections_are_clear_errors() {
    let dir = tempdir();
    let good = dir.path().join("good.pf");
    model::save(&pruned_digits_cnn(), &good).unwrap();
    let raw = read_raw(&good);
    let load_err = |name: &str, edit: &dyn Fn(&mut Raw)| -> String {
        let mut r = raw.clone();
        edit(&mut r);
        let p = dir.path().join(name);
        write_raw(&p, &r);
        match model::load(&p, &Device::Cpu) {
            Ok(_) => panic!("{name} loaded"),
            Err(e) => format!("{e:#}"),
        }
    };
    let edit_tensor = |r: &mut Raw, name: &str, f: &dyn Fn(&mut Vec<usize>, &mut Vec<u8>)| {
        let t = r.0.iter_mut().find(|t| t.0 == name).expect(name);
        f(&mut t.2, &mut t.3);
    };
    let remove = |r: &mut Raw, name: &str| {
        let before = r.0.len();
        r.0.retain(|t| t.0 != name);
        assert_eq!(r.0.len(), before - 1, "{name}");
    };

    let e = load_err("short_bitmap.pf", &|r| {
        edit_tensor(r, "block2.conv.weight.nonzero", &|s, d| {
            d.pop();
            s[0] -= 1;
        })
    });
    assert!(
        e.contains("short_bitmap.pf")
            && e.contains("block2.conv.weight.nonzero")
            && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("short_values.pf", &|r| {
        edit_tensor(r, "block3.conv.weight.values", &|s, d| {
            d.truncate(d.len() - 4);
            s[0] -= 1;
        })
    });
    assert!(
        e.contains("block3.conv.weight.values") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("no_values.pf", &|r| remove(r, "block3.conv.weight.values"));
    assert!(
        e.contains("block3.conv.weight.values") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("no_bitmap.pf", &|r| remove(r, "block3.conv.weight.nonzero"));
    assert!(
        e.contains("block3.conv.weight") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("flipped_bit.pf", &|r| {
        edit_tensor(r, "block2.conv.weight.nonzero", &|_, d| d[0] ^= 1)
    });
    assert!(
        e.contains("block2.conv.weight.values") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("short_signs.pf", &|r| {
        edit_tensor(r, "block2.conv.weight.negzero", &|s, d| {
            d.pop();
            s[0] -= 1;
        })
    });
    assert!(
        e.contains("block2.conv.weight.negzero") && e.contains("corrupt"),
        "{e}"
    );

    // A mask as bits, one byte short of block1's 144 entries. (Bits set
    // past the end of a bitmap are tested in the format's unit tests: every
    // weight here is a whole number of bytes.)
    let e = load_err("short_mask.pf", &|r| {
        remove(r, "block1.conv.mask.from_weight");
        r.0.push((
            "block1.conv.mask.bits".into(),
            safetensors::Dtype::U8,
            vec![17],
            vec![0xff; 17],
        ));
    });
    assert!(
        e.contains("block1.conv.mask.bits") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("full_marker.pf", &|r| {
        edit_tensor(r, "fc.mask.from_weight", &|s, d| {
            d.push(1);
            s[0] = 1;
        })
    });
    assert!(
        e.contains("fc.mask.from_weight") && e.contains("corrupt"),
        "{e}"
    );

    let e = load_err("ghost.pf", &|r| {
        r.0.push((
            "ghost.weight.nonzero".into(),
            safetensors::Dtype::U8,
            vec![1],
            vec![0],
        ))
    });
    assert!(
        e.contains("ghost.weight.nonzero") && e.contains("no layer"),
        "{e}"
    );

    let e = load_err("claims_v2.pf", &|r| {
        let pf = r.1["pf"].replace(r#""version":"3""#, r#""version":"2""#);
        r.1.insert("pf".into(), pf);
    });
    assert!(e.contains("version 2") && e.contains("corrupt"), "{e}");

    let e = load_err("newer.pf", &|r| {
        let pf = r.1["pf"].replace(r#""version":"3""#, r#""version":"6""#);
        r.1.insert("pf".into(), pf);
    });
    assert!(e.contains("version 6") && e.contains("newer pf"), "{e}");

    // Cut anywhere, the file is an error, never a panic.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.pf");
    for len in (0..bytes.len()).step_by(bytes.len() / 97) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let e = model::load(&cut, &Device::Cpu)
            .err()
            .expect("a cut file fails");
        assert!(format!("{e:#}").contains("cut.pf"), "{e:#}");
    }
}

/// A pool that rounds its size up (GoogLeNet's `ceil_mode`) gives the
/// size PyTorch gives, is saved as format version 5 and reads back the
/// same; a file that claims an older version with the flag is corrupt.
#[test]
fn ceil_mode_pooling_rounds_up_and_is_saved_as_format_version_5() {
    let pool = Op::MaxPool {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        ceil_mode: true,
    };
    let g = Graph {
        name: "ceil".into(),
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        layers: vec![
            Layer::new("conv", conv(1, 4), &[INPUT]),
            Layer::new("pool", pool, &["conv"]),
            Layer::new("flat", Op::Flatten, &["pool"]),
        ],
        preprocessing: None,
    };
    // PyTorch: ceil((8 + 2 − 3) / 2) + 1 = 5 (4 rounding down).
    assert_eq!(g.shapes().unwrap()[1].to_string(), "4×5×5");
    let m = Model::init(g, 3, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 1, 8, 8), &Device::Cpu).unwrap();
    let y = m.forward_inference(&x).unwrap();
    assert_eq!(y.dims(), [2, 100]);
    let dir = tempdir();
    let path = dir.path().join("ceil.pf");
    model::save(&m, &path).unwrap();
    let mut raw = read_raw(&path);
    assert!(raw.1["pf"].contains(r#""version":"5""#), "{}", raw.1["pf"]);
    let back = model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.graph, m.graph);
    let again = back.forward_inference(&x).unwrap();
    assert_eq!(
        (again - &y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    let pf = raw.1["pf"].replace(r#""version":"5""#, r#""version":"4""#);
    raw.1.insert("pf".into(), pf);
    write_raw(&path, &raw);
    let e = format!("{:#}", model::load(&path, &Device::Cpu).err().unwrap());
    assert!(
        e.contains("version 4") && e.contains("ceil_mode") && e.contains("corrupt"),
        "{e}"
    );
}
