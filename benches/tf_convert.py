"""Rebuilds a pf float32 .tflite file as a TensorFlow graph with the same
architecture and weights, and converts it with TensorFlow's own
TFLiteConverter, as the peer in benches/tflite-vs-tensorflow.sh.

    tf_convert.py PF_FLOAT.tflite OUT_FLOAT.tflite OUT_INT8.tflite CALIBRATION.npy

The graph is built from raw TensorFlow ops (tf.nn.conv2d, tf.nn.depthwise_conv2d,
tf.matmul, pools, tf.pad, tf.reduce_mean, tf.reshape, softmax), with pf's
weights as constants; the converter does its own fusing. The int8 file is
TensorFlow's full-integer post-training quantization with float input and
output (as pf's default), calibrated on the same NHWC images pf used.
"""

import sys

import numpy as np
import tensorflow as tf
import tflite


def options(op, cls):
    table = op.BuiltinOptions()
    o = cls()
    o.Init(table.Bytes, table.Pos)
    return o


ACT = {0: None, 1: tf.nn.relu, 3: tf.nn.relu6}
PAD = {0: "SAME", 1: "VALID"}


def activate(x, code):
    f = ACT[code]
    return f(x) if f else x


def load(path):
    buf = open(path, "rb").read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)

    def const(i):
        t = sg.Tensors(i)
        data = m.Buffers(t.Buffer()).DataAsNumpy()
        dtype = {tflite.TensorType.FLOAT32: "<f4", tflite.TensorType.INT32: "<i4"}[t.Type()]
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy())

    ops = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = m.OperatorCodes(op.OpcodeIndex())
        c = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.append((c, op, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())))
    shape = [int(d) for d in sg.Tensors(sg.Inputs(0)).ShapeAsNumpy()]
    return sg, ops, const, shape, sg.Inputs(0), sg.Outputs(0)


def build(path):
    sg, ops, const, shape, inp, outp = load(path)
    B = tflite.BuiltinOperator

    def forward(x):
        v = {inp: x}
        for code, op, ins, outs in ops:
            a = v.get(ins[0])
            if code == B.CONV_2D:
                o = options(op, tflite.Conv2DOptions)
                w = tf.constant(np.transpose(const(ins[1]), (1, 2, 3, 0)))
                y = tf.nn.conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], PAD[o.Padding()])
                y = activate(tf.nn.bias_add(y, const(ins[2])), o.FusedActivationFunction())
            elif code == B.DEPTHWISE_CONV_2D:
                o = options(op, tflite.DepthwiseConv2DOptions)
                w = tf.constant(np.transpose(const(ins[1]), (1, 2, 3, 0)))
                y = tf.nn.depthwise_conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], PAD[o.Padding()])
                y = activate(tf.nn.bias_add(y, const(ins[2])), o.FusedActivationFunction())
            elif code == B.FULLY_CONNECTED:
                o = options(op, tflite.FullyConnectedOptions)
                y = tf.matmul(a, tf.constant(const(ins[1]).T)) + const(ins[2])
                y = activate(y, o.FusedActivationFunction())
            elif code == B.ADD:
                o = options(op, tflite.AddOptions)
                y = activate(a + v[ins[1]], o.FusedActivationFunction())
            elif code in (B.MAX_POOL_2D, B.AVERAGE_POOL_2D):
                o = options(op, tflite.Pool2DOptions)
                pool = tf.nn.max_pool2d if code == B.MAX_POOL_2D else tf.nn.avg_pool2d
                y = pool(a, [o.FilterHeight(), o.FilterWidth()], [o.StrideH(), o.StrideW()], PAD[o.Padding()])
            elif code == B.MEAN:
                y = tf.reduce_mean(a, axis=[int(d) for d in const(ins[1])], keepdims=True)
            elif code == B.PAD:
                y = tf.pad(a, const(ins[1]))
            elif code == B.RESHAPE:
                y = tf.reshape(a, [int(d) for d in const(ins[1])])
            elif code == B.SOFTMAX:
                y = tf.nn.softmax(a)
            else:
                raise SystemExit(f"{path}: operator {code} is not rebuilt")
            v[outs[0]] = y
        return v[outp]

    fn = tf.function(forward, input_signature=[tf.TensorSpec(shape, tf.float32)])
    return fn.get_concrete_function(), shape


def main():
    src, out_float, out_int8, calib = sys.argv[1:5]
    fn, shape = build(src)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    open(out_float, "wb").write(conv.convert())
    images = np.load(calib).astype(np.float32)

    def representative():
        for x in images:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    open(out_int8, "wb").write(conv.convert())


if __name__ == "__main__":
    main()
