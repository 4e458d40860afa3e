//! Optimizers, schedules, masks, fake quantization and short real training
//! runs on the embedded digits.

use candle_core::{DType, Device, Tensor, Var};
use pf::data::{self, Augment, DataSource, LoadOptions, Normalization};
use pf::graph::{InputSpec, LayerQuant, Quantizer};
use pf::model::Model;
use pf::train::{self, Optimizer, OptimizerKind, Schedule, ScheduleKind, TrainConfig, Trainer};
use pf::zoo::{self, ZooConfig};
use std::collections::BTreeMap;

fn scalar_problem(kind: OptimizerKind, wd: f64, steps: usize, lr: f64) -> Vec<f64> {
    // Minimise 0.5 * w²: the gradient is w.
    let w = Var::new(&[1.0f64], &Device::Cpu).unwrap();
    let mut params = BTreeMap::new();
    params.insert("w".to_string(), w.clone());
    let mut opt = Optimizer::new(kind, wd);
    let mut out = vec![];
    for _ in 0..steps {
        let loss = (w.as_tensor().sqr().unwrap() * 0.5)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&params, &grads, lr).unwrap();
        out.push(w.as_tensor().to_vec1::<f64>().unwrap()[0]);
    }
    out
}

#[test]
fn sgd_momentum_and_nesterov_follow_pytorch() {
    // PyTorch: buf = μ·buf + g; plain: w -= lr·buf; Nesterov: w -= lr·(g + μ·buf).
    let w = scalar_problem(
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        0.0,
        2,
        0.1,
    );
    assert!((w[0] - 0.9).abs() < 1e-12);
    // step 2: g = 0.9, buf = 0.9·1 + 0.9 = 1.8, w = 0.9 − 0.18
    assert!((w[1] - 0.72).abs() < 1e-12);
    let w = scalar_problem(
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
        },
        0.0,
        1,
        0.1,
    );
    // g = 1, buf = 1, update = 1 + 0.9 = 1.9
    assert!((w[0] - (1.0 - 0.19)).abs() < 1e-12);
    // Weight decay adds wd·w to the gradient.
    let w = scalar_problem(
        OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
        },
        0.5,
        1,
        0.1,
    );
    assert!((w[0] - (1.0 - 0.1 * 1.5)).abs() < 1e-12);
}

#[test]
fn adam_takes_a_learning_rate_sized_first_step_and_converges() {
    let w = scalar_problem(
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.0,
        300,
        0.05,
    );
    assert!((w[0] - 0.95).abs() < 1e-6, "first step {}", w[0]);
    assert!(w[299].abs() < 0.05, "after 300 steps {}", w[299]);
}

#[test]
fn schedules() {
    let cos = Schedule {
        base: 1.0,
        kind: ScheduleKind::Cosine,
        warmup_steps: 0,
    };
    assert_eq!(cos.lr(0, 100), 1.0);
    assert!((cos.lr(50, 100) - 0.5).abs() < 1e-12);
    assert!(cos.lr(99, 100) < 0.001);
    let warm = Schedule {
        base: 1.0,
        kind: ScheduleKind::Constant,
        warmup_steps: 4,
    };
    assert_eq!(
        (warm.lr(0, 100), warm.lr(3, 100), warm.lr(50, 100)),
        (0.25, 1.0, 1.0)
    );
    let step = Schedule {
        base: 1.0,
        kind: ScheduleKind::Step {
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
        },
        warmup_steps: 0,
    };
    assert_eq!(step.lr(49, 100), 1.0);
    assert!((step.lr(50, 100) - 0.1).abs() < 1e-12);
    assert!((step.lr(80, 100) - 0.01).abs() < 1e-12);
}

fn digits() -> data::Splits {
    data::load(&DataSource::Digits, &LoadOptions::default()).unwrap()
}

fn small_model(seed: u64) -> Model {
    let cfg = ZooConfig {
        input: InputSpec {
            channels: 1,
            height: 8,
            width: 8,
        },
        num_classes: 10,
        width: 0.5,
    };
    Model::init(zoo::build("digits_cnn", &cfg).unwrap(), seed, &Device::Cpu).unwrap()
}

fn config(seed: u64, steps: u64) -> TrainConfig {
    TrainConfig {
        epochs: 100,
        max_steps: Some(steps),
        batch_size: 32,
        optimizer: OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
        },
        weight_decay: 5e-4,
        schedule: Schedule {
            base: 0.05,
            kind: ScheduleKind::Cosine,
            warmup_steps: 5,
        },
        label_smoothing: 0.0,
        augment: Augment::None,
        seed,
        distill: None,
    }
}

fn train(model: &mut Model, splits: &data::Splits, seed: u64, steps: u64) -> train::TrainReport {
    let trainer = Trainer {
        config: config(seed, steps),
        data: &splits.train,
        norm: Normalization::of(&splits.train),
        teacher: None,
        checkpoint: None,
        progress: false,
        auxiliary: &[],
    };
    trainer.run(model, None).unwrap()
}

#[test]
fn a_short_run_learns_the_digits_and_is_deterministic() {
    let splits = digits();
    let norm = Normalization::of(&splits.train);
    let mut a = small_model(7);
    let before = train::evaluate(&a, &splits.val, &norm, 128, false).unwrap();
    train(&mut a, &splits, 7, 120);
    let after = train::evaluate(&a, &splits.val, &norm, 128, false).unwrap();
    assert!(
        before.accuracy < 0.3,
        "untrained accuracy {}",
        before.accuracy
    );
    assert!(after.accuracy > 0.85, "trained accuracy {}", after.accuracy);
    assert!(after.loss < before.loss);

    let mut b = small_model(7);
    train(&mut b, &splits, 7, 120);
    assert_eq!(a.weights_sha256().unwrap(), b.weights_sha256().unwrap());
    let mut c = small_model(8);
    train(&mut c, &splits, 8, 120);
    assert_ne!(a.weights_sha256().unwrap(), c.weights_sha256().unwrap());
}

#[test]
fn evaluation_mode_leaves_batch_norm_statistics_alone() {
    let splits = digits();
    let mut m = small_model(1);
    let x = Tensor::randn(0f32, 1.0, (4, 1, 8, 8), &Device::Cpu).unwrap();
    let before = m.buffers["block1.bn.running_mean"]
        .to_vec1::<f32>()
        .unwrap();
    let out = m.forward(&x, false, &[]).unwrap();
    assert!(out.updates.is_empty());
    let out = m.forward(&x, true, &[]).unwrap();
    assert_eq!(out.updates.len(), 6);
    m.apply_updates(out.updates);
    assert_ne!(
        m.buffers["block1.bn.running_mean"]
            .to_vec1::<f32>()
            .unwrap(),
        before
    );
    // Train-mode and eval-mode outputs differ before the statistics settle.
    let _ = splits;
}

#[test]
fn masked_weights_stay_zero_through_training() {
    let splits = digits();
    let mut m = small_model(3);
    let w = m.params["block2.conv.weight"].as_tensor().clone();
    let mask = w
        .abs()
        .unwrap()
        .ge(0.05)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let zeros_wanted = mask
        .eq(0f32)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(zeros_wanted > 0.0);
    m.set_mask("block2.conv", mask.clone()).unwrap();
    train(&mut m, &splits, 3, 40);
    let w = m.params["block2.conv.weight"].as_tensor();
    let leaked = (w.abs().unwrap() * (1.0 - &mask).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(leaked, 0.0);
    let zeros = w
        .eq(0f32)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(zeros >= zeros_wanted);
    assert!(m
        .set_mask(
            "block2.conv",
            Tensor::ones(3, DType::F32, &Device::Cpu).unwrap()
        )
        .is_err());
    assert!(m.set_mask("block2.conv", (mask * 0.5).unwrap()).is_err());
}

fn distinct_weight_values(m: &Model, layer: &str) -> usize {
    let w = m.params[&format!("{layer}.weight")].as_tensor().clone();
    let layer = m.graph.layer(layer).unwrap().clone();
    let q = layer.quant.unwrap().weight.unwrap();
    let wq = pf::nn::quant::fake_quant_weight(&w, &q).unwrap();
    let mut v: Vec<u32> = wq
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[test]
fn fake_quantization_trains_with_a_straight_through_gradient() {
    let splits = digits();
    let mut m = small_model(5);
    let set = |m: &mut Model, layer: &str, weight: Quantizer, act: Option<Quantizer>| {
        let l = m.graph.layers.iter_mut().find(|l| l.name == layer).unwrap();
        l.quant = Some(LayerQuant {
            weight: Some(weight),
            activation: act,
        });
    };
    set(
        &mut m,
        "block2.conv",
        Quantizer::Uniform {
            bits: 2,
            symmetric: true,
            per_channel: false,
            bucket: 0,
        },
        None,
    );
    set(
        &mut m,
        "block3.conv",
        Quantizer::Codebook {
            centroids: vec![-0.1, -0.02, 0.02, 0.1],
        },
        Some(Quantizer::Uniform {
            bits: 8,
            symmetric: false,
            per_channel: false,
            bucket: 0,
        }),
    );
    m.ensure_quant_buffers().unwrap();
    // 2-bit symmetric: {-s, 0, s}; the codebook: its 4 centroids at most.
    assert!(distinct_weight_values(&m, "block2.conv") <= 3);
    assert!(distinct_weight_values(&m, "block3.conv") <= 4);
    // The straight-through estimator lets gradients reach the float weights.
    let x = Tensor::randn(0f32, 1.0, (4, 1, 8, 8), &Device::Cpu).unwrap();
    let loss = m
        .forward(&x, true, &[])
        .unwrap()
        .output
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(m.params["block2.conv.weight"].as_tensor())
        .unwrap();
    assert!(
        g.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
    // And it still learns.
    train(&mut m, &splits, 5, 120);
    let acc = train::evaluate(
        &m,
        &splits.val,
        &Normalization::of(&splits.train),
        128,
        false,
    )
    .unwrap()
    .accuracy;
    assert!(acc > 0.8, "quantized accuracy {acc}");
    let range = m.buffers["block3.conv.act_range"].to_vec1::<f32>().unwrap();
    assert!(range[0] < range[1], "activation range {range:?}");
}

#[test]
fn auxiliary_heads_train_with_the_network_and_learn_the_classes() {
    // A head on the second block's output (Zhuang et al.'s discrimination-
    // aware loss): its own accuracy rises from chance as it trains along.
    let splits = digits();
    let norm = Normalization::of(&splits.train);
    let mut m = small_model(3);
    let tensor = m.graph.block_output("block2.conv").to_string();
    let head =
        pf::train::auxiliary::AuxHead::new("block2.conv", &tensor, 16, 10, 3, 0, &m).unwrap();
    let head_accuracy = |m: &Model, head: &pf::train::auxiliary::AuxHead| {
        let b = pf::data::Batcher::new(&splits.val, norm.clone(), &Device::Cpu);
        let idx: Vec<usize> = (0..splits.val.len()).collect();
        let mut r = pf::rng::stream(0, &["eval"]);
        let batch = b.batch(&idx, Augment::None, &mut r).unwrap();
        let out = m.forward(&batch.images, false, &[tensor.as_str()]).unwrap();
        let pred = head.logits(&out).unwrap().argmax(1).unwrap();
        let right = pred
            .eq(&batch.labels)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .mean_all()
            .unwrap();
        right.to_scalar::<f32>().unwrap()
    };
    let before = head_accuracy(&m, &head);
    let start = head.weight.as_tensor().copy().unwrap();
    let heads = [head];
    let trainer = Trainer {
        config: config(3, 120),
        data: &splits.train,
        norm: norm.clone(),
        teacher: None,
        checkpoint: None,
        progress: false,
        auxiliary: &heads,
    };
    trainer.run(&mut m, None).unwrap();
    let after = head_accuracy(&m, &heads[0]);
    assert!(before < 0.3, "untrained head {before}");
    assert!(
        after > before + 0.3,
        "trained head {after}, untrained {before}"
    );
    let moved = (heads[0].weight.as_tensor() - &start)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 0.0);
    // Pruning the channels it reads shrinks it.
    let mut head = heads.into_iter().next().unwrap();
    head.keep_channels(&[0, 2, 5]).unwrap();
    assert_eq!(head.weight.dims(), &[10, 3]);
}
