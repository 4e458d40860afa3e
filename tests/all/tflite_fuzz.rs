//! The TFLite write → LiteRT read round trip on random graphs: small
//! models of every layer kind pf lowers (convolutions of any kernel, stride,
//! padding and grouping, depthwise ones, batch norm after a convolution or
//! on its own, ReLU / ReLU6, pooling
//! (padded, rounding up), residual adds, zero-channel padding, channel
//! slices and shuffles, flatten or global pooling before the classifier,
//! softmax), drawn from a seed, within what the exporter documents it
//! lowers (activations right after the convolution, add or batch norm they
//! fold into). Each must load in LiteRT's reference kernels and give
//! pf's logits; the exporter may refuse one only with an error. A failure
//! prints its seed and graph; more cases: `PF_TFLITE_FUZZ_CASES=500`,
//! another series: `PF_TFLITE_FUZZ_SEED=N`.

use crate::support::tempdir;
use crate::tflite::{random, run_litert};
use candle_core::{DType, Device};
use pf::graph::{pool_padding, Graph, InputSpec, Layer, Op};
use pf::model::Model;

/// A small xorshift generator: the cases follow from the seed alone.
struct Draw(u64);

impl Draw {
    fn new(seed: u64) -> Draw {
        Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

/// The graph being drawn: its layers and the shape after the last one.
struct Builder {
    layers: Vec<Layer>,
    last: String,
    shape: [usize; 3],
}

impl Builder {
    fn push(&mut self, op: Op, inputs: &[&str], shape: [usize; 3]) {
        let name = format!("l{}", self.layers.len());
        self.layers.push(Layer::new(name.clone(), op, inputs));
        self.last = name;
        self.shape = shape;
    }

    /// A convolution from the last layer, if one fits its input, with batch
    /// norm and an activation, each maybe.
    fn conv(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let depthwise = c > 1 && d.one_in(4);
        // Grouped (RegNet's): a divisor of the channels other than 1 and C.
        let divisors: Vec<usize> = (2..c).filter(|g| c % g == 0).collect();
        let groups = match depthwise {
            true => c,
            false if !divisors.is_empty() && d.one_in(3) => divisors[d.int(0, divisors.len() - 1)],
            false => 1,
        };
        let out = match groups {
            1 => d.int(1, 6),
            g if g == c => c,
            g => g * d.int(1, 2),
        };
        let kernel = [d.int(1, 3.min(h + 2)), d.int(1, 3.min(w + 2))];
        let padding = [d.int(0, kernel[0] / 2), d.int(0, kernel[1] / 2)];
        let stride = [d.int(1, 2), d.int(1, 2)];
        let side = |n: usize, i: usize| (n + 2 * padding[i]).checked_sub(kernel[i]);
        let (Some(ho), Some(wo)) = (side(h, 0), side(w, 1)) else {
            return;
        };
        let op = Op::Conv2d {
            in_channels: c,
            out_channels: out,
            kernel,
            stride,
            padding,
            groups,
            bias: d.one_in(2),
        };
        let last = self.last.clone();
        self.push(op, &[&last], [out, ho / stride[0] + 1, wo / stride[1] + 1]);
        self.norm_and_activation(d);
    }

    /// Batch norm and an activation, each maybe (after a convolution).
    fn norm_and_activation(&mut self, d: &mut Draw) {
        if d.one_in(2) {
            self.pre_activation(d);
        } else {
            self.activation(d);
        }
    }

    /// A batch norm, then an activation, maybe: after a convolution it
    /// folds into, or on its own (DenseNet's pre-activation after a join
    /// or a pool).
    fn pre_activation(&mut self, d: &mut Draw) {
        let last = self.last.clone();
        let op = Op::BatchNorm {
            channels: self.shape[0],
            eps: 1e-5,
            momentum: 0.1,
        };
        self.push(op, &[&last], self.shape);
        self.activation(d);
    }

    /// A residual block: a shape-keeping convolution added to its input.
    fn residual(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let from = self.last.clone();
        let k = [1 + 2 * d.int(0, 1), 1 + 2 * d.int(0, 1)];
        let op = Op::Conv2d {
            in_channels: c,
            out_channels: c,
            kernel: k,
            stride: [1, 1],
            padding: [k[0] / 2, k[1] / 2],
            groups: 1,
            bias: d.one_in(2),
        };
        self.push(op, &[&from], [c, h, w]);
        self.norm_and_activation(d);
        let branch = self.last.clone();
        self.push(Op::Add, &[&from, &branch], [c, h, w]);
        self.activation(d);
    }

    /// An activation, maybe (ReLU and ReLU6 fused into the layer before
    /// it; sigmoid and hard-swish operators of their own).
    fn activation(&mut self, d: &mut Draw) {
        let last = self.last.clone();
        match d.int(0, 4) {
            0 => self.push(Op::Relu, &[&last], self.shape),
            1 => self.push(Op::Relu6, &[&last], self.shape),
            2 => self.push(Op::Sigmoid, &[&last], self.shape),
            3 => self.push(Op::HardSwish, &[&last], self.shape),
            _ => {}
        }
    }

    /// Two branches from the last layer, joined along the channels: a 1×1
    /// convolution, and a 3×3 one or the map itself (DenseNet's join).
    fn branches(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let from = self.last.clone();
        let conv = |out: usize, k: usize| Op::Conv2d {
            in_channels: c,
            out_channels: out,
            kernel: [k, k],
            stride: [1, 1],
            padding: [k / 2, k / 2],
            groups: 1,
            bias: true,
        };
        let a = d.int(1, 4);
        self.push(conv(a, 1), &[&from], [a, h, w]);
        self.activation(d);
        let first = self.last.clone();
        let (second, b) = if d.one_in(2) {
            (from.clone(), c)
        } else {
            let b = d.int(1, 4);
            self.push(conv(b, 3), &[&from], [b, h, w]);
            (self.last.clone(), b)
        };
        self.push(Op::Concat, &[&first, &second], [a + b, h, w]);
    }

    /// A squeeze-and-excitation gate: global pooling, a 1×1 convolution, a
    /// sigmoid or hard-sigmoid, multiplied into the map channel by channel.
    fn gate(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let from = self.last.clone();
        self.push(Op::GlobalAvgPool, &[&from], [c, 1, 1]);
        let op = Op::Conv2d {
            in_channels: c,
            out_channels: c,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
            groups: 1,
            bias: true,
        };
        let pooled = self.last.clone();
        self.push(op, &[&pooled], [c, 1, 1]);
        let squeezed = self.last.clone();
        let gate = match d.one_in(2) {
            true => Op::Sigmoid,
            false => Op::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            },
        };
        self.push(gate, &[&squeezed], [c, 1, 1]);
        let g = self.last.clone();
        // Either order: the gate first (as EfficientNet's exporter writes
        // it) or the map first.
        match d.one_in(2) {
            true => self.push(Op::Mul, &[&g, &from], [c, h, w]),
            false => self.push(Op::Mul, &[&from, &g], [c, h, w]),
        }
    }

    /// A ShuffleNet unit's moves: part of the channels (a slice), or all
    /// of them shuffled in groups that divide them.
    fn shuffle(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let last = self.last.clone();
        if d.one_in(2) {
            let start = d.int(0, c - 1);
            let len = d.int(1, c - start);
            self.push(Op::ChannelSlice { start, len }, &[&last], [len, h, w]);
        } else {
            let divisors: Vec<usize> = (1..=c).filter(|g| c % g == 0).collect();
            let groups = divisors[d.int(0, divisors.len() - 1)];
            self.push(Op::ChannelShuffle { groups }, &[&last], [c, h, w]);
        }
    }

    /// Max or average pooling, if the map is large enough.
    fn pool(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let kernel = [d.int(1, 2), d.int(1, 2)];
        if h < kernel[0] || w < kernel[1] {
            return;
        }
        let stride = [d.int(1, 2), d.int(1, 2)];
        let max = d.one_in(2);
        let padding = [d.int(0, kernel[0] / 2), d.int(0, kernel[1] / 2)];
        // Max pools may round their size up (`PADV2` pads them where SAME
        // does not match); an average pool padded otherwise than SAME is
        // refused, with its reason.
        let ceil_mode = max && d.one_in(2);
        let [t, b, l, r] = pool_padding([h, w], kernel, stride, padding, ceil_mode).unwrap();
        let out = [
            (h + t + b - kernel[0]) / stride[0] + 1,
            (w + l + r - kernel[1]) / stride[1] + 1,
        ];
        let op = match max {
            true => Op::MaxPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            },
            false => Op::AvgPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            },
        };
        let last = self.last.clone();
        self.push(op, &[&last], [c, out[0], out[1]]);
    }

    /// Zero channels before and after.
    fn pad_channels(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let (before, after) = (d.int(0, 2), d.int(0, 2));
        let last = self.last.clone();
        self.push(
            Op::PadChannels { before, after },
            &[&last],
            [c + before + after, h, w],
        );
    }

    /// Global pooling or flattening, a classifier, maybe a softmax.
    fn head(&mut self, d: &mut Draw) {
        let [c, h, w] = self.shape;
        let last = self.last.clone();
        let features = if d.one_in(2) {
            self.push(Op::GlobalAvgPool, &[&last], [c, 1, 1]);
            c
        } else {
            c * h * w
        };
        let last = self.last.clone();
        self.push(Op::Flatten, &[&last], [features, 1, 1]);
        let last = self.last.clone();
        let classes = d.int(2, 5);
        let op = Op::Linear {
            in_features: features,
            out_features: classes,
            bias: d.one_in(2),
        };
        self.push(op, &[&last], [classes, 1, 1]);
        self.activation(d);
        if d.one_in(3) {
            let last = self.last.clone();
            self.push(Op::Softmax, &[&last], [classes, 1, 1]);
        }
    }
}

/// The random graph of `seed`.
fn graph(seed: u64) -> Graph {
    let mut d = Draw::new(seed);
    let input = InputSpec {
        channels: d.int(1, 3),
        height: d.int(1, 9),
        width: d.int(1, 9),
    };
    let mut b = Builder {
        layers: Vec::new(),
        last: pf::graph::INPUT.to_string(),
        shape: [input.channels, input.height, input.width],
    };
    for _ in 0..d.int(1, 4) {
        match d.int(0, 8) {
            0 | 1 => b.conv(&mut d),
            2 => b.residual(&mut d),
            3 => b.pool(&mut d),
            4 => b.gate(&mut d),
            5 => b.branches(&mut d),
            6 => b.shuffle(&mut d),
            7 => b.pre_activation(&mut d),
            _ => b.pad_channels(&mut d),
        }
    }
    b.head(&mut d);
    Graph {
        preprocessing: None,
        name: format!("random_{seed}"),
        input,
        layers: b.layers,
    }
}

/// The model of `seed`: its random graph with random weights, batch-norm
/// statistics and biases.
fn model(seed: u64) -> Model {
    let mut m = Model::init(graph(seed), seed, &Device::Cpu).expect("a drawn graph is valid");
    let keys: Vec<String> = m.buffers.keys().cloned().collect();
    for (i, k) in keys.iter().enumerate() {
        let r = random(m.buffers[k].dims(), seed * 1000 + i as u64);
        let v = if k.ends_with("running_var") {
            r.abs().unwrap().affine(1.0, 0.2).unwrap()
        } else {
            r.affine(0.3, 0.0).unwrap()
        };
        m.buffers.insert(k.clone(), v.to_dtype(DType::F32).unwrap());
    }
    for (i, (k, v)) in m.params.iter().enumerate() {
        if k.ends_with(".bias") {
            let r = random(v.dims(), seed * 1000 + 500 + i as u64);
            v.set(&r.affine(0.1, 0.0).unwrap()).unwrap();
        }
    }
    m
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_graphs_export_to_tflite_and_litert_computes_what_pf_does() {
    let cases = env_or("PF_TFLITE_FUZZ_CASES", 24);
    let first = env_or("PF_TFLITE_FUZZ_SEED", 1);
    let dir = tempdir();
    let mut exported = 0;
    let mut refused = Vec::new();
    for seed in first..first + cases {
        let m = model(seed);
        let show = || serde_json::to_string(&m.graph).unwrap();
        let path = dir.path().join(format!("{seed}.tflite"));
        if let Err(e) = pf::export::tflite::export(&m, &path) {
            // Refusing is allowed, with a reason; the test counts them.
            refused.push(format!("seed {seed}: {e:#}"));
            continue;
        }
        exported += 1;
        let i = m.graph.input;
        let x = random(&[2, i.channels, i.height, i.width], seed);
        let ours = m.forward_inference(&x).unwrap().to_vec2::<f32>().unwrap();
        let theirs = run_litert(&path, &x, true);
        assert_eq!(theirs.outputs.len(), 2, "seed {seed}: {}", show());
        for (a, b) in ours.iter().zip(&theirs.outputs) {
            let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert_eq!(a.len(), b.len(), "seed {seed}: {}", show());
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-4 * scale,
                    "seed {seed}: pf {x} vs LiteRT {y}\npf     {a:?}\nLiteRT {b:?}\ngraph \
                     {}",
                    show()
                );
            }
        }
    }
    assert!(
        exported * 10 >= cases * 9,
        "only {exported} of {cases} random graphs exported:\n{}",
        refused.join("\n")
    );
}
