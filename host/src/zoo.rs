//! The model zoo: architectures from the compression literature, built as
//! [`Graph`]s.
//!
//! CIFAR ResNets use the parameter-free "option A" shortcut of He et al.
//! (2016): a stride-2 subsample (a 1×1 max pool) followed by zero channels.

use crate::graph::{Graph, InputSpec, Layer, Op, INPUT};
use serde::{Deserialize, Serialize};

/// What a zoo architecture is instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZooConfig {
    /// Shape of one input sample.
    pub input: InputSpec,
    /// Number of output classes.
    pub num_classes: usize,
    /// Width multiplier (MobileNets; 1.0 elsewhere).
    pub width: f64,
}

/// Names of every architecture in the zoo.
pub const NAMES: &[&str] = &[
    "digits_cnn",
    "lenet",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "mobilenet_v1",
    "mobilenet_v2",
];

/// Builds a zoo architecture by name.
pub fn build(name: &str, cfg: &ZooConfig) -> anyhow::Result<Graph> {
    if !(cfg.width > 0.0 && cfg.width <= 4.0) {
        anyhow::bail!(
            "width multiplier {} is out of range; use a value in (0, 4]",
            cfg.width
        );
    }
    let graph = match name {
        "digits_cnn" => digits_cnn(cfg),
        "lenet" => lenet(cfg),
        "resnet20" => cifar_resnet(cfg, 3),
        "resnet32" => cifar_resnet(cfg, 5),
        "resnet44" => cifar_resnet(cfg, 7),
        "resnet56" => cifar_resnet(cfg, 9),
        "mobilenet_v1" => mobilenet_v1(cfg),
        "mobilenet_v2" => mobilenet_v2(cfg),
        other => anyhow::bail!(
            "unknown model `{other}`; the zoo has {}, or pass a .pf model file",
            NAMES.join(", ")
        ),
    };
    graph.validate().map_err(|e| {
        anyhow::anyhow!(
            "`{name}` does not fit a {}×{}×{} input: {e}; choose a larger --input-size",
            cfg.input.channels,
            cfg.input.height,
            cfg.input.width
        )
    })?;
    Ok(graph)
}

/// Incremental graph builder that tracks the current tensor and its channels.
struct Builder {
    graph: Graph,
    cur: String,
    channels: usize,
}

impl Builder {
    fn new(name: &str, input: InputSpec) -> Self {
        Builder {
            graph: Graph {
                preprocessing: None,
                name: name.into(),
                input,
                layers: vec![],
            },
            cur: INPUT.into(),
            channels: input.channels,
        }
    }

    fn push(&mut self, name: String, op: Op, inputs: &[&str]) -> String {
        self.graph.layers.push(Layer::new(name.clone(), op, inputs));
        name
    }

    fn then(&mut self, name: impl Into<String>, op: Op) -> String {
        let name = name.into();
        match &op {
            Op::Conv2d { out_channels, .. } => self.channels = *out_channels,
            Op::Linear { out_features, .. } => self.channels = *out_features,
            Op::PadChannels { before, after } => self.channels += before + after,
            _ => {}
        }
        let cur = self.cur.clone();
        self.cur = self.push(name, op, &[&cur]);
        self.cur.clone()
    }

    /// Convolution without bias, batch norm, then an optional activation.
    fn conv_bn(
        &mut self,
        prefix: &str,
        out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        act: Option<Op>,
    ) -> String {
        let in_channels = self.channels;
        self.then(
            format!("{prefix}.conv"),
            Op::Conv2d {
                in_channels,
                out_channels: out,
                kernel: [k, k],
                stride: [stride, stride],
                padding: [k / 2, k / 2],
                groups,
                bias: false,
            },
        );
        self.then(
            format!("{prefix}.bn"),
            Op::BatchNorm {
                channels: out,
                eps: 1e-5,
                momentum: 0.1,
            },
        );
        if let Some(act) = act {
            self.then(format!("{prefix}.{}", act.kind()), act);
        }
        self.cur.clone()
    }

    fn classifier(&mut self, num_classes: usize) -> Graph {
        self.then("pool", Op::GlobalAvgPool);
        self.then("flatten", Op::Flatten);
        let in_features = self.channels;
        self.then(
            "fc",
            Op::Linear {
                in_features,
                out_features: num_classes,
                bias: true,
            },
        );
        self.graph.clone()
    }
}

fn scaled(channels: usize, width: f64, divisor: usize) -> usize {
    let v = channels as f64 * width;
    let rounded = ((v + divisor as f64 / 2.0) as usize / divisor * divisor).max(divisor);
    // Never round down by more than 10% (the MobileNetV2 rule).
    if (rounded as f64) < 0.9 * v {
        rounded + divisor
    } else {
        rounded
    }
}

/// A small CNN sized for the 8×8 digits: three 3×3 conv/BN/ReLU blocks, a
/// 2×2 max pool, global pooling and a linear classifier.
fn digits_cnn(cfg: &ZooConfig) -> Graph {
    let mut b = Builder::new("digits_cnn", cfg.input);
    let w = |c: usize| scaled(c, cfg.width, 4);
    b.conv_bn("block1", w(16), 3, 1, 1, Some(Op::Relu));
    b.conv_bn("block2", w(32), 3, 1, 1, Some(Op::Relu));
    b.then(
        "pool1",
        Op::MaxPool {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            ceil_mode: false,
        },
    );
    b.conv_bn("block3", w(64), 3, 1, 1, Some(Op::Relu));
    b.classifier(cfg.num_classes)
}

/// LeNet in the Caffe form used by the pruning literature: conv 5×5 ×20, max
/// pool, conv 5×5 ×50, max pool, linear 500, ReLU, linear to the classes.
fn lenet(cfg: &ZooConfig) -> Graph {
    let mut b = Builder::new("lenet", cfg.input);
    let in_channels = b.channels;
    let conv = |i, o| Op::Conv2d {
        in_channels: i,
        out_channels: o,
        kernel: [5, 5],
        stride: [1, 1],
        padding: [0, 0],
        groups: 1,
        bias: true,
    };
    let pool = || Op::MaxPool {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
    };
    b.then("conv1", conv(in_channels, 20));
    b.then("relu1", Op::Relu);
    b.then("pool1", pool());
    b.then("conv2", conv(20, 50));
    b.then("relu2", Op::Relu);
    b.then("pool2", pool());
    b.then("flatten", Op::Flatten);
    let n = {
        let h = ((cfg.input.height.saturating_sub(4)) / 2).saturating_sub(4) / 2;
        let w = ((cfg.input.width.saturating_sub(4)) / 2).saturating_sub(4) / 2;
        50 * h * w
    };
    b.then(
        "fc1",
        Op::Linear {
            in_features: n,
            out_features: 500,
            bias: true,
        },
    );
    b.then("relu3", Op::Relu);
    b.then(
        "fc2",
        Op::Linear {
            in_features: 500,
            out_features: cfg.num_classes,
            bias: true,
        },
    );
    b.graph
}

/// CIFAR ResNet-(6n+2) with basic blocks and option-A shortcuts.
fn cifar_resnet(cfg: &ZooConfig, n: usize) -> Graph {
    let name = format!("resnet{}", 6 * n + 2);
    let mut b = Builder::new(&name, cfg.input);
    b.conv_bn("stem", 16, 3, 1, 1, Some(Op::Relu));
    for (stage, planes) in [16usize, 32, 64].into_iter().enumerate() {
        for block in 0..n {
            let p = format!("layer{}.{}", stage + 1, block);
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let input = b.cur.clone();
            let in_planes = b.channels;
            b.conv_bn(&format!("{p}.a"), planes, 3, stride, 1, Some(Op::Relu));
            b.conv_bn(&format!("{p}.b"), planes, 3, 1, 1, None);
            let main = b.cur.clone();
            let shortcut = if stride != 1 || in_planes != planes {
                let sub = b.push(
                    format!("{p}.shortcut.subsample"),
                    Op::MaxPool {
                        kernel: [1, 1],
                        stride: [stride, stride],
                        padding: [0, 0],
                        ceil_mode: false,
                    },
                    &[&input],
                );
                let extra = planes - in_planes;
                b.push(
                    format!("{p}.shortcut.pad"),
                    Op::PadChannels {
                        before: extra / 2,
                        after: extra - extra / 2,
                    },
                    &[&sub],
                )
            } else {
                input
            };
            b.cur = b.push(format!("{p}.add"), Op::Add, &[&main, &shortcut]);
            b.channels = planes;
            b.then(format!("{p}.relu"), Op::Relu);
        }
    }
    b.classifier(cfg.num_classes)
}

/// MobileNetV1 (Howard et al. 2017) with width multiplier; stride-2 layers
/// follow the ImageNet model, so the input size sets the feature-map sizes.
fn mobilenet_v1(cfg: &ZooConfig) -> Graph {
    let mut b = Builder::new("mobilenet_v1", cfg.input);
    // TF-slim's rule: truncate, with at least 8 channels.
    let w = |c: usize| ((c as f64 * cfg.width) as usize).max(8);
    b.conv_bn("conv0", w(32), 3, 2, 1, Some(Op::Relu));
    let plan: [(usize, usize); 13] = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    for (i, (out, stride)) in plan.into_iter().enumerate() {
        let c = b.channels;
        b.conv_bn(
            &format!("block{}.dw", i + 1),
            c,
            3,
            stride,
            c,
            Some(Op::Relu),
        );
        b.conv_bn(
            &format!("block{}.pw", i + 1),
            w(out),
            1,
            1,
            1,
            Some(Op::Relu),
        );
    }
    b.classifier(cfg.num_classes)
}

/// MobileNetV2 (Sandler et al. 2018): inverted residual blocks with linear
/// bottlenecks and ReLU6.
fn mobilenet_v2(cfg: &ZooConfig) -> Graph {
    let mut b = Builder::new("mobilenet_v2", cfg.input);
    let w = |c: usize| scaled(c, cfg.width, 8);
    b.conv_bn("conv0", w(32), 3, 2, 1, Some(Op::Relu6));
    // (expansion t, output channels c, repeats n, first stride s)
    let plan = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut index = 0;
    for (t, c, n, s) in plan {
        for i in 0..n {
            index += 1;
            let p = format!("block{index}");
            let stride = if i == 0 { s } else { 1 };
            let input = b.cur.clone();
            let in_c = b.channels;
            let hidden = in_c * t;
            if t != 1 {
                b.conv_bn(&format!("{p}.expand"), hidden, 1, 1, 1, Some(Op::Relu6));
            }
            b.conv_bn(
                &format!("{p}.dw"),
                hidden,
                3,
                stride,
                hidden,
                Some(Op::Relu6),
            );
            let out = w(c);
            b.conv_bn(&format!("{p}.project"), out, 1, 1, 1, None);
            if stride == 1 && in_c == out {
                let main = b.cur.clone();
                b.cur = b.push(format!("{p}.add"), Op::Add, &[&main, &input]);
            }
        }
    }
    let last = if cfg.width > 1.0 { w(1280) } else { 1280 };
    b.conv_bn("conv_last", last, 1, 1, 1, Some(Op::Relu6));
    b.classifier(cfg.num_classes)
}
