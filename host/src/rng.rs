//! Deterministic random streams. Every random decision pf makes (weights,
//! shuffles, augmentation, plugin randomness) draws from a stream named by the
//! run's seed and a purpose, so the same seed gives the same run and resuming
//! needs no saved generator state.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A generator for `seed` and a purpose path such as `["shuffle", "epoch 3"]`.
pub fn stream(seed: u64, purpose: &[&str]) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in purpose {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// One standard-normal sample (Box–Muller).
pub fn normal(r: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - r.random::<f64>();
    let u2: f64 = r.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A seeded permutation of `0..n`.
pub fn permutation(r: &mut impl Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = r.random_range(0..=i);
        v.swap(i, j);
    }
    v
}
