"""Builds the ONNX test models of tests/all/onnx.rs with the `onnx` helper API.

    build_models.py OUT_DIR

These networks are written the way other tools write ONNX, not the way pf
does: other input and tensor names, unnamed nodes, other opsets, weights as
Constant nodes, Identity and Dropout nodes, Gemm with transB=1 and alpha and
beta, MatMul followed by Add, Reshape to [0, -1], Clip with input bounds.
Weights come from a seeded NumPy generator, so every run writes the same
files. Every model takes 1×8×8 images (the embedded digits) with a dynamic
batch dimension.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)


def weight(name, *shape, scale=None):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    s = scale if scale is not None else np.sqrt(2.0 / fan_in)
    return numpy_helper.from_array((RNG.standard_normal(shape) * s).astype(np.float32), name)


def bn_params(prefix, c):
    return [
        numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), f"{prefix}_gamma"),
        numpy_helper.from_array(RNG.uniform(-0.2, 0.2, c).astype(np.float32), f"{prefix}_beta"),
        numpy_helper.from_array(RNG.uniform(-0.3, 0.3, c).astype(np.float32), f"{prefix}_mean"),
        numpy_helper.from_array(RNG.uniform(0.5, 2.0, c).astype(np.float32), f"{prefix}_var"),
    ]


def bn(prefix, x, out, **attrs):
    return helper.make_node(
        "BatchNormalization",
        [x, f"{prefix}_gamma", f"{prefix}_beta", f"{prefix}_mean", f"{prefix}_var"],
        [out],
        **attrs,
    )


def image_input(name, dims=("N", 1, 8, 8)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def save(graph, opset, path):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="onnx-helper-test",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def resnet_block(out):
    """Stem conv + BN + ReLU, a residual block (two 3×3 convs with BNs and
    an identity shortcut), a strided conv, global pooling, PyTorch's
    dynamic-batch flatten (Shape, Gather, Unsqueeze, Concat, Reshape) and a
    Gemm. Opset 17; unnamed nodes; the stem's weight is a Constant node."""
    init = [weight("b1_w", 8, 8, 3, 3), weight("b2_w", 8, 8, 3, 3)]
    init += bn_params("bn0", 8) + bn_params("bn1", 8) + bn_params("bn2", 8)
    init += [weight("down_w", 16, 8, 3, 3)]
    init += [numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 16).astype(np.float32), "down_b")]
    init += [weight("fc_w", 16, 10), numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 10).astype(np.float32), "fc_b")]
    init += [
        numpy_helper.from_array(np.array(0, np.int64), "zero_index"),
        numpy_helper.from_array(np.array([0], np.int64), "zero_axis"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
    ]
    stem_w = weight("stem_w_value", 8, 1, 3, 3)
    nodes = [
        helper.make_node("Constant", [], ["stem_w"], value=stem_w),
        helper.make_node("Conv", ["pixels", "stem_w"], ["t0"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        bn("bn0", "t0", "t1", epsilon=1e-3, momentum=0.99),
        helper.make_node("Relu", ["t1"], ["t2"]),
        helper.make_node("Identity", ["t2"], ["t2_id"]),
        helper.make_node("Conv", ["t2_id", "b1_w"], ["t3"], pads=[1, 1, 1, 1]),
        bn("bn1", "t3", "t4"),
        helper.make_node("Relu", ["t4"], ["t5"]),
        helper.make_node("Conv", ["t5", "b2_w"], ["t6"], auto_pad="SAME_UPPER"),
        bn("bn2", "t6", "t7"),
        helper.make_node("Add", ["t7", "t2_id"], ["t8"]),
        helper.make_node("Relu", ["t8"], ["t9"]),
        helper.make_node("Conv", ["t9", "down_w", "down_b"], ["t10"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["t10"], ["t11"]),
        helper.make_node("GlobalAveragePool", ["t11"], ["t12"]),
        # x.view(x.size(0), -1) with a dynamic batch, as torch.onnx writes it.
        helper.make_node("Shape", ["t12"], ["s0"]),
        helper.make_node("Gather", ["s0", "zero_index"], ["s1"], axis=0),
        helper.make_node("Unsqueeze", ["s1", "zero_axis"], ["s2"]),
        helper.make_node("Concat", ["s2", "minus_one"], ["s3"], axis=0),
        helper.make_node("Reshape", ["t12", "s3"], ["t13"]),
        helper.make_node("Gemm", ["t13", "fc_w", "fc_b"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "resnet_block",
        [image_input("pixels")],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 17, out / "resnet_block.onnx")


def depthwise_separable(out):
    """MobileNet-style: conv, depthwise 3×3 (group = channels) and pointwise
    1×1 convs with BNs and ReLU6 as Clip (bounds as inputs), average and max
    pooling, Reshape [0, -1], MatMul + Add and Softmax. Opset 13; named
    nodes with '/' in their names, as PyTorch writes them."""
    init = [weight("c0.w", 8, 1, 3, 3), weight("dw.w", 8, 1, 3, 3), weight("pw.w", 16, 8, 1, 1)]
    init += bn_params("bn_a", 8) + bn_params("bn_b", 8) + bn_params("bn_c", 16)
    init += [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
        weight("head.w", 64, 10, scale=0.2),
        numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 10).astype(np.float32), "head.b"),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["image", "c0.w"], ["a0"], name="/features/0/Conv", pads=[1, 1, 1, 1]),
        bn("bn_a", "a0", "a1", name="/features/0/bn"),
        n("Clip", ["a1", "zero", "six"], ["a2"], name="/features/0/act"),
        n("Conv", ["a2", "dw.w"], ["a3"], name="/features/1/dw/Conv", pads=[1, 1, 1, 1], group=8),
        bn("bn_b", "a3", "a4", name="/features/1/dw/bn"),
        n("Clip", ["a4", "zero", "six"], ["a5"], name="/features/1/dw/act"),
        n("Conv", ["a5", "pw.w"], ["a6"], name="/features/1/pw/Conv"),
        bn("bn_c", "a6", "a7", name="/features/1/pw/bn"),
        n("Relu", ["a7"], ["a8"], name="/features/1/pw/act"),
        n("AveragePool", ["a8"], ["a9"], name="/pool/avg", kernel_shape=[2, 2], strides=[2, 2]),
        n("MaxPool", ["a9"], ["a10"], name="/pool/max", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Dropout", ["a10"], ["a11"], name="/dropout"),
        n("Reshape", ["a11", "flat_shape"], ["a12"], name="/flatten"),
        n("MatMul", ["a12", "head.w"], ["a13"], name="/head/MatMul"),
        n("Add", ["a13", "head.b"], ["logits"], name="/head/Add"),
        n("Softmax", ["logits"], ["probabilities"], name="/softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "depthwise_separable",
        [image_input("image")],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "depthwise_separable.onnx")


def gemm_net(out, name="gemm_transb", dims=("batch", 1, 8, 8)):
    """Flatten and two Gemm layers with transB=1 (weights stored out × in,
    as PyTorch's Linear writes them), the first with alpha and beta.
    Opset 11; the initializers are also listed as graph inputs, as older
    exporters do."""
    w1 = weight("fc1.weight", 32, 64)
    b1 = numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 32).astype(np.float32), "fc1.bias")
    w2 = weight("fc2.weight", 10, 32)
    b2 = numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 10).astype(np.float32), "fc2.bias")
    init = [w1, b1, w2, b2]
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["y"], transB=1),
    ]
    inputs = [image_input("x", dims)] + [
        helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in init
    ]
    graph = helper.make_graph(
        nodes,
        name,
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        init,
    )
    save(graph, 11, out / f"{name}.onnx")


def mean_pool(out):
    """Global pooling written as PyTorch's x.mean((2, 3)): ReduceMean over
    the spatial axes without keepdims, straight into a Gemm. Opset 13."""
    init = [
        weight("conv.weight", 12, 1, 3, 3),
        numpy_helper.from_array(RNG.uniform(-0.1, 0.1, 12).astype(np.float32), "conv.bias"),
        weight("fc.weight", 10, 12),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceMean", ["r"], ["m"], axes=[-2, -1], keepdims=0),
        helper.make_node("Gemm", ["m", "fc.weight"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_pool",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "mean_pool.onnx")


def mobile_block(out):
    """The blocks of MobileNetV3 and EfficientNet, as PyTorch's exporter
    writes them: a stem conv + BN + HardSwish; a squeeze-and-excitation
    block with a HardSigmoid gate (alpha 1/6, beta 1/2, as
    torch.nn.Hardsigmoid); a conv with SiLU (Sigmoid then Mul); a second
    squeeze-and-excitation block with a Sigmoid gate (EfficientNet's); a
    strided conv + BN + HardSwish; global pooling and a Gemm. Opset 14
    (HardSwish)."""
    bias = lambda name, n: numpy_helper.from_array(RNG.uniform(-0.1, 0.1, n).astype(np.float32), name)
    init = [weight("stem_w", 8, 1, 3, 3)] + bn_params("bn0", 8)
    init += [weight("se1_down_w", 4, 8, 1, 1), bias("se1_down_b", 4)]
    init += [weight("se1_up_w", 8, 4, 1, 1), bias("se1_up_b", 8)]
    init += [weight("mid_w", 8, 8, 3, 3), bias("mid_b", 8)]
    init += [weight("se2_down_w", 2, 8, 1, 1), bias("se2_down_b", 2)]
    init += [weight("se2_up_w", 8, 2, 1, 1), bias("se2_up_b", 8)]
    init += [weight("last_w", 16, 8, 3, 3)] + bn_params("bn1", 16)
    init += [weight("fc_w", 10, 16), bias("fc_b", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "stem_w"], ["s"], pads=[1, 1, 1, 1]),
        bn("bn0", "s", "s_bn"),
        helper.make_node("HardSwish", ["s_bn"], ["s_act"]),
        helper.make_node("GlobalAveragePool", ["s_act"], ["se1_pool"]),
        helper.make_node("Conv", ["se1_pool", "se1_down_w", "se1_down_b"], ["se1_down"]),
        helper.make_node("Relu", ["se1_down"], ["se1_relu"]),
        helper.make_node("Conv", ["se1_relu", "se1_up_w", "se1_up_b"], ["se1_up"]),
        helper.make_node("HardSigmoid", ["se1_up"], ["se1_gate"], alpha=1.0 / 6.0, beta=0.5),
        helper.make_node("Mul", ["s_act", "se1_gate"], ["se1"]),
        helper.make_node("Conv", ["se1", "mid_w", "mid_b"], ["mid"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["mid"], ["mid_sig"]),
        helper.make_node("Mul", ["mid", "mid_sig"], ["mid_silu"]),
        helper.make_node("GlobalAveragePool", ["mid_silu"], ["se2_pool"]),
        helper.make_node("Conv", ["se2_pool", "se2_down_w", "se2_down_b"], ["se2_down"]),
        helper.make_node("Relu", ["se2_down"], ["se2_relu"]),
        helper.make_node("Conv", ["se2_relu", "se2_up_w", "se2_up_b"], ["se2_up"]),
        helper.make_node("Sigmoid", ["se2_up"], ["se2_gate"]),
        helper.make_node("Mul", ["se2_gate", "mid_silu"], ["se2"]),
        helper.make_node("Conv", ["se2", "last_w"], ["l"], pads=[1, 1, 1, 1], strides=[2, 2]),
        bn("bn1", "l", "l_bn"),
        helper.make_node("HardSwish", ["l_bn"], ["l_act"]),
        helper.make_node("GlobalAveragePool", ["l_act"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mobile_block",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 14, out / "mobile_block.onnx")


def concat_block(out):
    """An Inception block and a DenseNet step, as exporters write them: a
    stem conv + ReLU; three branches (a 1×1 conv, a 3×3 conv, a 3×3 max
    pool then a 1×1 conv), each with ReLU, joined by Concat on axis 1; a
    1×1 conv whose output is joined to its own input (DenseNet); global
    pooling and a Gemm. Opset 13."""
    bias = lambda name, n: numpy_helper.from_array(RNG.uniform(-0.1, 0.1, n).astype(np.float32), name)
    init = [weight("stem_w", 6, 1, 3, 3), bias("stem_b", 6)]
    init += [weight("a_w", 4, 6, 1, 1), bias("a_b", 4)]
    init += [weight("b_w", 5, 6, 3, 3), bias("b_b", 5)]
    init += [weight("c_w", 3, 6, 1, 1), bias("c_b", 3)]
    init += [weight("grow_w", 4, 12, 1, 1), bias("grow_b", 4)]
    init += [weight("fc_w", 10, 16), bias("fc_b", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["s_relu"]),
        helper.make_node("Conv", ["s_relu", "a_w", "a_b"], ["a"]),
        helper.make_node("Relu", ["a"], ["a_relu"]),
        helper.make_node("Conv", ["s_relu", "b_w", "b_b"], ["b"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["b_relu"]),
        helper.make_node("MaxPool", ["s_relu"], ["c_pool"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c_pool", "c_w", "c_b"], ["c"]),
        helper.make_node("Relu", ["c"], ["c_relu"]),
        helper.make_node("Concat", ["a_relu", "b_relu", "c_relu"], ["inception"], axis=1),
        helper.make_node("Conv", ["inception", "grow_w", "grow_b"], ["grow"]),
        helper.make_node("Relu", ["grow"], ["grow_relu"]),
        helper.make_node("Concat", ["inception", "grow_relu"], ["dense"], axis=1),
        helper.make_node("GlobalAveragePool", ["dense"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "concat_block",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "concat_block.onnx")


def ceil_pool_block(out):
    """Pools that round their output size up (`ceil_mode=1`, GoogLeNet's
    and SqueezeNet's): a 3×3 stride-2 max pool padded by 1 on the stem's
    8×8 map (5×5, its last windows overhang: no SAME padding matches), a
    2×2 one on the 5×5 result (3×3), a 2×2 average pool without padding
    counted (2×2), no ReLU in between, so the padding's value matters.
    Then Flatten and Gemm. Opset 13."""
    bias = lambda name, n: numpy_helper.from_array(RNG.uniform(-0.1, 0.1, n).astype(np.float32), name)
    init = [weight("stem_w", 6, 1, 3, 3), bias("stem_b", 6)]
    init += [weight("mix_w", 8, 6, 1, 1), bias("mix_b", 8)]
    init += [weight("fc_w", 10, 32), bias("fc_b", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "MaxPool", ["s"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1
        ),
        helper.make_node("Conv", ["p1", "mix_w", "mix_b"], ["m"]),
        helper.make_node("MaxPool", ["m"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node(
            "AveragePool", ["p2"], ["p3"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=0
        ),
        helper.make_node("Flatten", ["p3"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "ceil_pool_block",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "ceil_pool_block.onnx")


def shuffle_block(out):
    """ShuffleNet v2's units as PyTorch exports them: a stem conv + ReLU; a
    stride-1 unit (Split of the channels in halves, one half through 1×1
    conv, depthwise 3×3, 1×1 conv, joined back to the other by Concat); a
    stride-2 unit (two branches of depthwise stride-2 and 1×1 convs,
    joined); each unit ending in a channel shuffle (Reshape to
    N×2×C/2×H×W, Transpose of axes 1 and 2, Reshape back, with the batch
    copied (0) in one and inferred (-1) in the other). A third unit as the
    legacy exporter writes it with a dynamic batch: Slices and views whose
    bounds are shape arithmetic (Div included), after a one-input Concat.
    Global pooling and a Gemm. Opset 13 (Split sizes as an input)."""
    bias = lambda name, n: numpy_helper.from_array(RNG.uniform(-0.1, 0.1, n).astype(np.float32), name)
    ints = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    init = [weight("stem_w", 8, 1, 3, 3), bias("stem_b", 8)]
    init += [weight("u1_a_w", 4, 4, 1, 1), weight("u1_dw_w", 4, 1, 3, 3), weight("u1_b_w", 4, 4, 1, 1)]
    init += [weight("u2_l_dw_w", 8, 1, 3, 3), weight("u2_l_w", 4, 8, 1, 1)]
    init += [weight("u2_r_a_w", 4, 8, 1, 1), weight("u2_r_dw_w", 4, 1, 3, 3), weight("u2_r_b_w", 4, 4, 1, 1)]
    init += [weight("fc_w", 10, 8), bias("fc_b", 10)]
    init += [ints("halves", [4, 4]), ints("view1", [0, 2, 4, 8, 8]), ints("back1", [0, 8, 8, 8])]
    init += [ints("view2", [-1, 2, 4, 4, 4]), ints("back2", [-1, 8, 4, 4])]
    init += [weight("u3_w", 4, 4, 1, 1)]
    scalar = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    init += [scalar("i0", 0), scalar("i1", 1), scalar("i2", 2), scalar("i3", 3), scalar("two", 2)]
    init += [ints("axis0", [0]), ints("zero1", [0]), ints("one1", [1]), ints("two1", [2])]
    init += [ints("big1", [2**63 - 1]), ints("minus1", [-1])]
    conv = lambda x, w, y, **kw: helper.make_node("Conv", [x, w], [y], **kw)
    nodes = [
        helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["s_relu"]),
        # Unit 1: x1, x2 = x.chunk(2, dim=1); cat(x1, branch(x2)); shuffle.
        helper.make_node("Split", ["s_relu", "halves"], ["u1_x1", "u1_x2"], axis=1),
        conv("u1_x2", "u1_a_w", "u1_a"),
        helper.make_node("Relu", ["u1_a"], ["u1_a_relu"]),
        conv("u1_a_relu", "u1_dw_w", "u1_dw", group=4, pads=[1, 1, 1, 1]),
        conv("u1_dw", "u1_b_w", "u1_b"),
        helper.make_node("Relu", ["u1_b"], ["u1_b_relu"]),
        helper.make_node("Concat", ["u1_x1", "u1_b_relu"], ["u1_cat"], axis=1),
        helper.make_node("Reshape", ["u1_cat", "view1"], ["u1_view"]),
        helper.make_node("Transpose", ["u1_view"], ["u1_t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["u1_t", "back1"], ["u1_out"]),
        # Unit 2 (stride 2): cat(branch1(x), branch2(x)); shuffle.
        conv("u1_out", "u2_l_dw_w", "u2_l_dw", group=8, pads=[1, 1, 1, 1], strides=[2, 2]),
        conv("u2_l_dw", "u2_l_w", "u2_l"),
        helper.make_node("Relu", ["u2_l"], ["u2_l_relu"]),
        conv("u1_out", "u2_r_a_w", "u2_r_a"),
        helper.make_node("Relu", ["u2_r_a"], ["u2_r_a_relu"]),
        conv("u2_r_a_relu", "u2_r_dw_w", "u2_r_dw", group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
        conv("u2_r_dw", "u2_r_b_w", "u2_r_b"),
        helper.make_node("Relu", ["u2_r_b"], ["u2_r_b_relu"]),
        helper.make_node("Concat", ["u2_l_relu", "u2_r_b_relu"], ["u2_cat"], axis=1),
        helper.make_node("Reshape", ["u2_cat", "view2"], ["u2_view"]),
        helper.make_node("Transpose", ["u2_view"], ["u2_t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["u2_t", "back2"], ["u2_out"]),
        # Unit 3 as the legacy exporter writes it with a dynamic batch: the
        # chunk as two Slices and the shuffle's view, both with bounds from
        # shape arithmetic (Shape, Gather, Div, Unsqueeze, Concat), after a
        # one-input Concat (DenseNet's torch.cat([x], 1)).
        helper.make_node("Concat", ["u2_out"], ["u3_in"], axis=1),
        helper.make_node("Shape", ["u3_in"], ["u3_shape"]),
        helper.make_node("Gather", ["u3_shape", "i0"], ["u3_n"], axis=0),
        helper.make_node("Gather", ["u3_shape", "i1"], ["u3_c"], axis=0),
        helper.make_node("Gather", ["u3_shape", "i2"], ["u3_h"], axis=0),
        helper.make_node("Gather", ["u3_shape", "i3"], ["u3_wd"], axis=0),
        helper.make_node("Div", ["u3_c", "two"], ["u3_half"]),
        helper.make_node("Unsqueeze", ["u3_half", "axis0"], ["u3_half1"]),
        helper.make_node("Slice", ["u3_in", "zero1", "u3_half1", "one1"], ["u3_x1"]),
        helper.make_node("Slice", ["u3_in", "u3_half1", "big1", "one1"], ["u3_x2"]),
        conv("u3_x2", "u3_w", "u3_b"),
        helper.make_node("Relu", ["u3_b"], ["u3_b_relu"]),
        helper.make_node("Concat", ["u3_x1", "u3_b_relu"], ["u3_cat"], axis=1),
        helper.make_node("Unsqueeze", ["u3_n", "axis0"], ["u3_n1"]),
        helper.make_node("Unsqueeze", ["u3_h", "axis0"], ["u3_h1"]),
        helper.make_node("Unsqueeze", ["u3_wd", "axis0"], ["u3_w1"]),
        helper.make_node("Concat", ["u3_n1", "two1", "u3_half1", "u3_h1", "u3_w1"], ["u3_view_shape"], axis=0),
        helper.make_node("Reshape", ["u3_cat", "u3_view_shape"], ["u3_view"]),
        helper.make_node("Transpose", ["u3_view"], ["u3_t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Concat", ["u3_n1", "minus1", "u3_h1", "u3_w1"], ["u3_back_shape"], axis=0),
        helper.make_node("Reshape", ["u3_t", "u3_back_shape"], ["u3_out"]),
        helper.make_node("GlobalAveragePool", ["u3_out"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "shuffle_block",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "shuffle_block.onnx")


def grouped_block(out):
    """RegNet's grouped convolution and DenseNet's pre-activation: a stem
    conv + BatchNormalization + ReLU; a 3×3 convolution in 4 groups + ReLU;
    a 2×2 max pool, then a BatchNormalization and ReLU with no convolution
    before them, a 1×1 conv; global pooling and a Gemm. Opset 13."""
    bias = lambda name, n: numpy_helper.from_array(RNG.uniform(-0.1, 0.1, n).astype(np.float32), name)
    init = [weight("stem_w", 8, 1, 3, 3)] + bn_params("stem_bn", 8)
    init += [weight("g_w", 8, 2, 3, 3), bias("g_b", 8)]
    init += bn_params("pre_bn", 8) + [weight("mix_w", 6, 8, 1, 1)]
    init += [weight("fc_w", 10, 6), bias("fc_b", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "stem_w"], ["s"], pads=[1, 1, 1, 1]),
        bn("stem_bn", "s", "s_bn"),
        helper.make_node("Relu", ["s_bn"], ["s_relu"]),
        helper.make_node("Conv", ["s_relu", "g_w", "g_b"], ["g"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["g"], ["g_relu"]),
        helper.make_node("MaxPool", ["g_relu"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        bn("pre_bn", "p", "p_bn"),
        helper.make_node("Relu", ["p_bn"], ["p_relu"]),
        helper.make_node("Conv", ["p_relu", "mix_w"], ["m"]),
        helper.make_node("GlobalAveragePool", ["m"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "grouped_block",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    save(graph, 13, out / "grouped_block.onnx")


def lone_transpose(out):
    """A Transpose of a feature map outside any channel shuffle."""
    init = [weight("w", 4, 1, 3, 3)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Transpose", ["c"], ["y"], name="turn", perm=[0, 1, 3, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "lone_transpose",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        init,
    )
    save(graph, 13, out / "lone_transpose.onnx")


def unsupported(out):
    """A LeakyRelu, which pf does not import."""
    init = [weight("w", 4, 1, 3, 3)]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("LeakyRelu", ["c"], ["y"], name="act1", alpha=0.1),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [image_input("x")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        init,
    )
    save(graph, 13, out / "unsupported.onnx")


def external_data(out):
    """resnet_block with its weights in data files beside it: every tensor
    (the stem's Constant node included) in one file at its own offset, as
    PyTorch's default exporter writes `model.onnx.data`; and, in the folder
    `per_tensor`, one file per tensor without offsets."""
    model = onnx.load(str(out / "resnet_block.onnx"))
    onnx.save_model(
        model,
        str(out / "resnet_block_ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="resnet_block_ext.onnx.data",
        size_threshold=0,
        convert_attribute=True,
    )
    (out / "per_tensor").mkdir(exist_ok=True)
    model = onnx.load(str(out / "resnet_block.onnx"))
    onnx.save_model(
        model,
        str(out / "per_tensor" / "resnet_block.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
        convert_attribute=True,
    )


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    resnet_block(out)
    depthwise_separable(out)
    gemm_net(out)
    gemm_net(out, name="dynamic", dims=("batch", 1, "height", "width"))
    mean_pool(out)
    mobile_block(out)
    concat_block(out)
    ceil_pool_block(out)
    shuffle_block(out)
    grouped_block(out)
    lone_transpose(out)
    unsupported(out)
    external_data(out)


if __name__ == "__main__":
    main()
