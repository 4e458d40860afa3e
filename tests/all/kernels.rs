//! pf's CPU kernels agree with Candle's reference ops, forward and backward,
//! on grouped, depthwise, strided, padded and odd-sized cases, in f32 and f64.
//! (The finite-difference checks in `gradients` run through the same kernels.)

use candle_core::{DType, Device, Tensor, Var};
use pf::nn::{self, batchnorm::BatchNormParams, cpu_ops};
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn scale(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .max(1.0)
}

/// Forward output and gradients of input and weight for a conv function.
fn conv_with_grads(
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    proj: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let xv = Var::from_tensor(x).unwrap();
    let wv = Var::from_tensor(w).unwrap();
    let y = f(xv.as_tensor(), wv.as_tensor()).unwrap();
    let g = (&y * proj).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y,
        g.get(xv.as_tensor()).unwrap().clone(),
        g.get(wv.as_tensor()).unwrap().clone(),
    )
}

struct Case {
    n: usize,
    c: usize,
    o: usize,
    hw: [usize; 2],
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
}

fn check_conv(case: &Case, dtype: DType) {
    let x = random(&[case.n, case.c, case.hw[0], case.hw[1]], 1, dtype);
    let w = random(&[case.o, case.c / case.groups, case.k, case.k], 2, dtype);
    let st = [case.stride, case.stride];
    let pd = [case.pad, case.pad];
    let y_ref = nn::candle_conv2d(&x, &w, st, pd, case.groups).unwrap();
    let proj = random(y_ref.dims(), 3, dtype);
    let ours = conv_with_grads(
        |x, w| cpu_ops::conv2d(x, w, st, pd, case.groups),
        &x,
        &w,
        &proj,
    );
    let theirs = conv_with_grads(
        |x, w| nn::candle_conv2d(x, w, st, pd, case.groups),
        &x,
        &w,
        &proj,
    );
    let tol = if dtype == DType::F64 { 1e-10 } else { 2e-4 };
    for (what, a, b) in [
        ("output", &ours.0, &theirs.0),
        ("input grad", &ours.1, &theirs.1),
        ("weight grad", &ours.2, &theirs.2),
    ] {
        let d = max_diff(a, b);
        assert!(
            d <= tol * scale(b),
            "{what} differs by {d} for n{} c{} o{} {:?} k{} s{} p{} g{} {dtype:?}",
            case.n,
            case.c,
            case.o,
            case.hw,
            case.k,
            case.stride,
            case.pad,
            case.groups
        );
    }
}

const CASES: &[Case] = &[
    Case {
        n: 2,
        c: 3,
        o: 4,
        hw: [5, 5],
        k: 3,
        stride: 1,
        pad: 1,
        groups: 1,
    },
    Case {
        n: 3,
        c: 4,
        o: 6,
        hw: [7, 6],
        k: 3,
        stride: 2,
        pad: 1,
        groups: 2,
    },
    Case {
        n: 2,
        c: 8,
        o: 8,
        hw: [9, 9],
        k: 3,
        stride: 1,
        pad: 1,
        groups: 8,
    },
    Case {
        n: 2,
        c: 6,
        o: 6,
        hw: [8, 7],
        k: 3,
        stride: 2,
        pad: 1,
        groups: 6,
    },
    Case {
        n: 4,
        c: 5,
        o: 7,
        hw: [6, 6],
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    },
    Case {
        n: 1,
        c: 3,
        o: 2,
        hw: [11, 13],
        k: 5,
        stride: 3,
        pad: 2,
        groups: 1,
    },
    Case {
        n: 5,
        c: 2,
        o: 3,
        hw: [4, 4],
        k: 3,
        stride: 1,
        pad: 0,
        groups: 1,
    },
    Case {
        n: 2,
        c: 4,
        o: 4,
        hw: [3, 3],
        k: 5,
        stride: 1,
        pad: 2,
        groups: 4,
    },
    Case {
        n: 5,
        c: 6,
        o: 7,
        hw: [1, 1],
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    },
    Case {
        n: 1,
        c: 3,
        o: 2,
        hw: [1, 1],
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    },
    Case {
        n: 6,
        c: 5,
        o: 9,
        hw: [3, 2],
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    },
    Case {
        n: 3,
        c: 4,
        o: 4,
        hw: [4, 4],
        k: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    },
];

#[test]
fn conv2d_kernels_match_candle_in_f32_and_f64() {
    for case in CASES {
        check_conv(case, DType::F64);
        check_conv(case, DType::F32);
    }
}

#[test]
fn conv2d_kernels_handle_rectangular_padding_and_strides() {
    // Candle needs equal strides; compare against an explicitly padded and
    // subsampled equivalent instead.
    let x = random(&[2, 3, 9, 8], 4, DType::F64);
    let w = random(&[4, 3, 3, 3], 5, DType::F64);
    let ours = cpu_ops::conv2d(&x, &w, [2, 1], [1, 0], 1).unwrap();
    let full =
        nn::candle_conv2d(&x.pad_with_zeros(2, 1, 1).unwrap(), &w, [1, 1], [0, 0], 1).unwrap();
    let rows: Vec<u32> = (0..ours.dim(2).unwrap() as u32).map(|i| i * 2).collect();
    let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
    let expected = full.index_select(&idx, 2).unwrap();
    assert!(max_diff(&ours, &expected) < 1e-12);
}

fn bn_with_grads(
    x: &Tensor,
    g: &Tensor,
    b: &Tensor,
    train: bool,
    relu: bool,
    fused: bool,
    proj: &Tensor,
) -> Vec<Tensor> {
    let (xv, gv, bv) = (
        Var::from_tensor(x).unwrap(),
        Var::from_tensor(g).unwrap(),
        Var::from_tensor(b).unwrap(),
    );
    let c = g.elem_count();
    let rm = random(&[c], 9, x.dtype()).affine(0.1, 0.0).unwrap();
    let rv = random(&[c], 10, x.dtype())
        .abs()
        .unwrap()
        .affine(1.0, 0.5)
        .unwrap();
    let p = BatchNormParams {
        weight: gv.as_tensor(),
        bias: bv.as_tensor(),
        running_mean: &rm,
        running_var: &rv,
        eps: 1e-5,
        momentum: 0.1,
    };
    let (y, update) = if fused {
        nn::batchnorm::batch_norm(xv.as_tensor(), &p, train, relu).unwrap()
    } else {
        let (y, u) = nn::batchnorm::composed(xv.as_tensor(), &p, train).unwrap();
        (if relu { y.relu().unwrap() } else { y }, u)
    };
    let grads = (&y * proj).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![
        y,
        grads.get(xv.as_tensor()).unwrap().clone(),
        grads.get(gv.as_tensor()).unwrap().clone(),
        grads.get(bv.as_tensor()).unwrap().clone(),
    ];
    if let Some(u) = update {
        out.push(u.mean);
        out.push(u.var);
    }
    out
}

#[test]
fn fused_batch_norm_matches_the_composed_reference() {
    for dtype in [DType::F64, DType::F32] {
        for shape in [vec![4usize, 3, 5, 5], vec![6, 7], vec![3, 2, 1, 1]] {
            for train in [true, false] {
                for relu in [false, true] {
                    let x = random(&shape, 1, dtype);
                    let c = shape[1];
                    let g = random(&[c], 2, dtype).affine(1.0, 1.5).unwrap();
                    let b = random(&[c], 3, dtype);
                    let proj = random(&shape, 4, dtype);
                    let ours = bn_with_grads(&x, &g, &b, train, relu, true, &proj);
                    let theirs = bn_with_grads(&x, &g, &b, train, relu, false, &proj);
                    assert_eq!(ours.len(), theirs.len());
                    let tol = if dtype == DType::F64 { 1e-9 } else { 1e-4 };
                    for (i, (a, r)) in ours.iter().zip(&theirs).enumerate() {
                        let d = max_diff(a, r);
                        assert!(d <= tol * scale(r), "output {i} differs by {d} ({shape:?} train {train} relu {relu} {dtype:?})");
                    }
                }
            }
        }
    }
}

#[test]
fn inference_with_folded_batch_norms_matches_the_layer_by_layer_pass() {
    use pf::graph::InputSpec;
    use pf::model::Model;
    use pf::zoo::{self, ZooConfig};
    for (name, size) in [
        ("resnet20", 16),
        ("mobilenet_v2", 32),
        ("digits_cnn", 8),
        ("lenet", 28),
    ] {
        let cfg = ZooConfig {
            input: InputSpec {
                channels: 3,
                height: size,
                width: size,
            },
            num_classes: 10,
            width: 0.5,
        };
        let mut m = Model::init(zoo::build(name, &cfg).unwrap(), 3, &Device::Cpu).unwrap();
        // Non-trivial running statistics and affine parameters.
        let keys: Vec<String> = m.buffers.keys().cloned().collect();
        for (i, k) in keys.iter().enumerate() {
            let t = &m.buffers[k];
            let r = random(t.dims(), 100 + i as u64, DType::F32);
            let v = if k.ends_with("running_var") {
                r.abs().unwrap().affine(1.0, 0.2).unwrap()
            } else {
                r.affine(0.3, 0.0).unwrap()
            };
            m.buffers.insert(k.clone(), v);
        }
        for (i, (k, v)) in m.params.iter().enumerate() {
            if k.ends_with(".bias") {
                v.set(&random(v.dims(), 200 + i as u64, DType::F32))
                    .unwrap();
            }
        }
        let x = random(&[3, 3, size, size], 7, DType::F32);
        let layered = m.forward(&x, false, &[]).unwrap().output;
        let folded = m.forward_inference(&x).unwrap();
        let d = max_diff(&folded, &layered);
        assert!(
            d <= 1e-4 * scale(&layered),
            "{name}: folded inference differs by {d}"
        );
    }
}
