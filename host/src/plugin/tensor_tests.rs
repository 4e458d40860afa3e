//! The host's tensor operations as a plugin reaches them, called directly on
//! the store data (no WebAssembly in between), with the sandbox caps.
//!
//! (Once `tests/all/plugin_tensors.rs`: these call the WIT host traits with
//! wasmtime resources, which only the sandbox module sees.)

use super::bindings::types::{BinaryOp, CompareOp, Error, HostTensor, ReduceOp, UnaryOp};
use super::state::PluginState;
use super::tensor::HostTensorData;
use super::Limits;
use wasmtime::component::Resource;

type H = Resource<HostTensorData>;

fn state(limits: Limits) -> PluginState {
    PluginState::new("test", limits, crate::rng::stream(0, &["t"]))
}

fn borrow(h: &H) -> H {
    Resource::new_borrow(h.rep())
}

fn t(s: &mut PluginState, shape: &[u32], data: &[f32]) -> H {
    s.from_data(shape.to_vec(), data.to_vec()).unwrap().unwrap()
}

fn v(s: &mut PluginState, h: &H) -> Vec<f32> {
    s.to_vec(borrow(h)).unwrap().unwrap()
}

#[test]
fn element_wise_ops_broadcast_and_compare() {
    let mut s = state(Limits::default());
    let a = t(&mut s, &[2, 3], &[1., -2., 3., -4., 5., -6.]);
    let row = t(&mut s, &[3], &[10., 20., 30.]);
    let sum = s
        .binary(borrow(&a), BinaryOp::Add, borrow(&row))
        .unwrap()
        .unwrap();
    assert_eq!(v(&mut s, &sum), vec![11., 18., 33., 6., 25., 24.]);
    let abs = s.unary(borrow(&a), UnaryOp::Abs).unwrap().unwrap();
    assert_eq!(v(&mut s, &abs), vec![1., 2., 3., 4., 5., 6.]);
    let sign = s.unary(borrow(&a), UnaryOp::Sign).unwrap().unwrap();
    assert_eq!(v(&mut s, &sign), vec![1., -1., 1., -1., 1., -1.]);
    let gt = s
        .compare_scalar(borrow(&abs), CompareOp::Gt, 3.5)
        .unwrap()
        .unwrap();
    assert_eq!(v(&mut s, &gt), vec![0., 0., 0., 1., 1., 1.]);
    let picked = s
        .where_else(borrow(&gt), borrow(&a), borrow(&abs))
        .unwrap()
        .unwrap();
    assert_eq!(v(&mut s, &picked), vec![1., 2., 3., -4., 5., -6.]);
    let clamped = s.clamp(borrow(&a), -1.0, 2.0).unwrap().unwrap();
    assert_eq!(v(&mut s, &clamped), vec![1., -1., 2., -1., 2., -1.]);
    let bad = t(&mut s, &[2], &[1., 2.]);
    assert!(matches!(
        s.binary(borrow(&a), BinaryOp::Mul, borrow(&bad)).unwrap(),
        Err(Error::InvalidArgument(m)) if m.contains("do not broadcast")
    ));
}

#[test]
fn linear_algebra_shapes_and_reductions() {
    let mut s = state(Limits::default());
    let a = t(&mut s, &[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let at = s.transpose(borrow(&a), 0, 1).unwrap().unwrap();
    assert_eq!(s.shape(borrow(&at)).unwrap(), vec![3, 2]);
    let gram = s.matmul(borrow(&a), borrow(&at)).unwrap().unwrap();
    assert_eq!(v(&mut s, &gram), vec![14., 32., 32., 77.]);
    let rows = s
        .reduce(borrow(&a), ReduceOp::Sum, vec![1], false)
        .unwrap()
        .unwrap();
    assert_eq!(v(&mut s, &rows), vec![6., 15.]);
    let maxes = s
        .reduce(borrow(&a), ReduceOp::Max, vec![0], true)
        .unwrap()
        .unwrap();
    assert_eq!(s.shape(borrow(&maxes)).unwrap(), vec![1, 3]);
    assert_eq!(v(&mut s, &maxes), vec![4., 5., 6.]);
    let sel = s.index_select(borrow(&a), 1, vec![2, 0]).unwrap().unwrap();
    assert_eq!(v(&mut s, &sel), vec![3., 1., 6., 4.]);
    let nar = s.narrow(borrow(&a), 1, 1, 2).unwrap().unwrap();
    assert_eq!(v(&mut s, &nar), vec![2., 3., 5., 6.]);
    let r = s.reshape(borrow(&a), vec![3, 2]).unwrap().unwrap();
    assert_eq!(s.shape(borrow(&r)).unwrap(), vec![3, 2]);
    assert!(s.reshape(borrow(&a), vec![4, 2]).unwrap().is_err());
    assert!(s.index_select(borrow(&a), 1, vec![3]).unwrap().is_err());
    assert!(s.narrow(borrow(&a), 1, 2, 2).unwrap().is_err());
    assert!(s.matmul(borrow(&a), borrow(&a)).unwrap().is_err());
    let joined = s.concat(vec![borrow(&a), borrow(&a)], 0).unwrap().unwrap();
    assert_eq!(s.shape(borrow(&joined)).unwrap(), vec![4, 3]);
}

#[test]
fn sorting_top_k_and_quantiles() {
    let mut s = state(Limits::default());
    let a = t(&mut s, &[2, 3], &[3., 1., 2., 9., 7., 8.]);
    let sorted = s.sort(borrow(&a), 1, false).unwrap().unwrap();
    assert_eq!(v(&mut s, &sorted), vec![1., 2., 3., 7., 8., 9.]);
    let idx = s.argsort(borrow(&a), 0, true).unwrap().unwrap();
    assert_eq!(v(&mut s, &idx), vec![1., 1., 1., 0., 0., 0.]);
    let (vals, at) = s.top_k(borrow(&a), 2, true).unwrap().unwrap();
    assert_eq!(vals, vec![9., 8.]);
    assert_eq!(at, vec![3, 5]);
    let (vals, _) = s.top_k(borrow(&a), 1, false).unwrap().unwrap();
    assert_eq!(vals, vec![1.]);
    assert_eq!(s.quantile(borrow(&a), 0.0).unwrap().unwrap(), 1.0);
    assert_eq!(s.quantile(borrow(&a), 1.0).unwrap().unwrap(), 9.0);
    // Six values: q = 0.5 lies halfway between the 3rd and 4th (3 and 7).
    assert_eq!(s.quantile(borrow(&a), 0.5).unwrap().unwrap(), 5.0);
    assert!(s.quantile(borrow(&a), 1.5).unwrap().is_err());
}

#[test]
fn size_and_handle_caps_are_enforced_before_the_host_allocates() {
    let mut s = state(Limits {
        max_tensors: 4,
        max_tensor_elements: 1000,
        max_copy_elements: 10,
        ..Limits::default()
    });
    let big = s.full(vec![100_000, 100_000], 1.0).unwrap();
    assert!(matches!(big, Err(Error::LimitExceeded(_))));
    let col = t(&mut s, &[40, 1], &[1.0; 40]);
    let row = t(&mut s, &[1, 40], &[1.0; 40]);
    // 40×40 = 1600 elements would exceed the cap: refused, not computed.
    assert!(matches!(
        s.matmul(borrow(&col), borrow(&row)).unwrap(),
        Err(Error::LimitExceeded(_))
    ));
    assert!(matches!(
        s.binary(borrow(&col), BinaryOp::Add, borrow(&row)).unwrap(),
        Err(Error::LimitExceeded(_))
    ));
    assert!(matches!(
        s.to_vec(borrow(&col)).unwrap(),
        Err(Error::LimitExceeded(_))
    ));
    let _c = t(&mut s, &[1], &[0.0]);
    let _d = t(&mut s, &[1], &[0.0]);
    // The fifth live handle is a sandbox violation: a trap, not a value.
    let e = s.from_data(vec![1], vec![0.0]).expect_err("trap");
    assert!(
        e.to_string().contains("more than 4 live tensor handles"),
        "{e}"
    );
    // Dropping frees a slot.
    s.drop_tensor(col).unwrap();
    assert!(s.from_data(vec![1], vec![0.0]).is_ok());
    // A handle that was never issued traps.
    let forged: H = Resource::new_borrow(0xDEAD);
    assert!(s.shape(forged).is_err());
    assert!(matches!(
        s.from_data(vec![2, 2], vec![1.0; 3]),
        Ok(Err(Error::InvalidArgument(_))) | Err(_)
    ));
}

#[test]
fn nan_and_empty_inputs_are_errors_or_empty_results_never_host_panics() {
    let mut s = state(Limits::default());
    let mut data: Vec<f32> = (0..64).map(|i| i as f32).collect();
    data[5] = f32::NAN;
    data[40] = f32::NAN;
    let nan = t(&mut s, &[64], &data);
    for r in [
        s.sort(borrow(&nan), 0, false).unwrap().err(),
        s.argsort(borrow(&nan), 0, true).unwrap().err(),
        s.top_k(borrow(&nan), 3, true).unwrap().err(),
        s.quantile(borrow(&nan), 0.5).unwrap().err(),
    ] {
        assert!(matches!(r, Some(Error::Numerical(m)) if m.contains("NaN")));
    }
    let empty = s.full(vec![3, 0], 0.0).unwrap().unwrap();
    let sorted = s.sort(borrow(&empty), 1, false).unwrap().unwrap();
    assert_eq!(s.shape(borrow(&sorted)).unwrap(), vec![3, 0]);
    let idx = s.argsort(borrow(&empty), 1, false).unwrap().unwrap();
    assert_eq!(s.numel(borrow(&idx)).unwrap(), 0);
    let (v, i) = s.top_k(borrow(&empty), 0, true).unwrap().unwrap();
    assert!(v.is_empty() && i.is_empty());
}

#[test]
fn broadcast_matmul_counts_the_operand_copies_against_the_limit() {
    let mut s = state(Limits {
        max_tensor_elements: 10_000,
        ..Limits::default()
    });
    // [64, 64] × [64, 64, 1]: the result is 4,096 elements, but the left
    // operand would be copied to 64 × 64 × 64 = 262,144.
    let a = s.full(vec![64, 64], 1.0).unwrap().unwrap();
    let b = s.full(vec![64, 64, 1], 1.0).unwrap().unwrap();
    assert!(matches!(
        s.matmul(borrow(&a), borrow(&b)).unwrap(),
        Err(Error::LimitExceeded(_))
    ));
}
