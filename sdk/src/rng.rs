//! Randomness from the host's seeded stream: the only source a plugin has.
//!
//! [`HostRng`] implements [`rand_core::RngCore`] (0.9), so anything built on
//! `rand_core` works with it, and has helpers for the common draws. Crates
//! that call `getrandom` (0.2 or 0.3) directly are served from the same
//! stream by the SDK's custom backends (see the crate's README): the same trial
//! seed gives the same plugin behaviour.

#[cfg(target_arch = "wasm32")]
use crate::bindings::host;

/// The host's random stream. Every `HostRng` draws from the same stream; it
/// holds no state of its own, so make one wherever you need it.
///
/// Its draws (`f64`, `uniform`, `normal`, `below`, ...) come from
/// [`RandomExt`], which every [`rand_core::RngCore`] has: an algorithm written
/// against `impl RandomExt` runs on the host's stream inside the plugin and on
/// a seeded [`SplitMix64`] in native unit tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostRng {
    _private: (),
}

impl HostRng {
    /// A handle to the host's stream.
    pub fn new() -> Self {
        HostRng { _private: () }
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        imports::random_u64()
    }
}

/// The host's stream, or (natively) a thread-local [`SplitMix64`] that
/// [`testing::seed`](crate::testing::seed) reseeds.
#[cfg(target_arch = "wasm32")]
mod imports {
    pub(super) use super::host::{random_bytes, random_u64};
}

/// Native stand-in for the host's stream: a seeded thread-local stream, so a
/// plugin's unit tests are as reproducible as a trial.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imports {
    use super::SplitMix64;
    use rand_core::RngCore;
    use std::cell::RefCell;

    thread_local! {
        static STREAM: RefCell<SplitMix64> = RefCell::new(SplitMix64::new(0));
    }

    pub(crate) fn reseed(seed: u64) {
        STREAM.with(|s| *s.borrow_mut() = SplitMix64::new(seed));
    }

    pub(crate) fn random_u64() -> u64 {
        STREAM.with(|s| s.borrow_mut().next_u64())
    }

    pub(crate) fn random_bytes(len: u32) -> Vec<u8> {
        let mut bytes = vec![0; len as usize];
        STREAM.with(|s| s.borrow_mut().fill_bytes(&mut bytes));
        bytes
    }
}

/// Common draws from any random stream. Implemented for every
/// [`rand_core::RngCore`]: [`HostRng`] in a plugin, [`SplitMix64`] anywhere.
pub trait RandomExt: rand_core::RngCore {
    /// A float uniform in `[0, 1)` (53 random bits).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A float uniform between `low` and `high` (`low ≤ high`, both finite;
    /// `high` itself only comes up through rounding).
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let u = self.f64();
        // The convex combination cannot overflow, even for bounds near ±f64::MAX.
        (low * (1.0 - u) + high * u).clamp(low.min(high), high.max(low))
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // in (0, 1]: the logarithm is finite
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// An integer uniform in `[0, n)`, without bias.
    ///
    /// # Panics
    /// When `n` is 0.
    fn below(&mut self, n: u64) -> u64 {
        below_with(n, || self.next_u64())
    }

    /// An integer uniform in `[low, high]` (both included).
    ///
    /// # Panics
    /// When `low > high`.
    fn range_inclusive(&mut self, low: i64, high: i64) -> i64 {
        assert!(low <= high, "range_inclusive({low}, {high}): empty range");
        let span = high.wrapping_sub(low) as u64;
        let offset = if span == u64::MAX {
            self.next_u64()
        } else {
            self.below(span + 1)
        };
        low.wrapping_add(offset as i64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    fn bernoulli(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Shuffles `items` uniformly (Fisher–Yates).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

impl<R: rand_core::RngCore + ?Sized> RandomExt for R {}

/// A small seeded stream (SplitMix64, Steele, Lea & Flood 2014): for native
/// unit tests of a plugin's algorithm, and for sub-streams seeded from the
/// host's (`SplitMix64::new(HostRng::new().u64())`), which keep a plugin
/// deterministic under the trial seed.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream from `seed`; the same seed gives the same stream.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }
}

impl rand_core::RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for part in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            part.copy_from_slice(&word[..part.len()]);
        }
    }
}

impl rand_core::RngCore for HostRng {
    fn next_u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        fill_bytes(dest)
    }
}

/// An integer uniform in `[0, n)` from the 64-bit words of `next`: Lemire's
/// multiply-and-reject (take the high word of `x·n`; reject the few low words
/// that would make some results more likely).
fn below_with(n: u64, mut next: impl FnMut() -> u64) -> u64 {
    assert!(n > 0, "HostRng::below(0): the range is empty");
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(next()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Fills `dest` from the host's stream.
pub(crate) fn fill_bytes(dest: &mut [u8]) {
    const CHUNK: usize = 1 << 16;
    for chunk in dest.chunks_mut(CHUNK) {
        let bytes = imports::random_bytes(chunk.len() as u32);
        if bytes.len() == chunk.len() {
            chunk.copy_from_slice(&bytes);
        } else {
            // A host that returned the wrong length: fall back to words.
            for part in chunk.chunks_mut(8) {
                let word = imports::random_u64().to_le_bytes();
                part.copy_from_slice(&word[..part.len()]);
            }
        }
    }
}

/// The custom `getrandom` backends (wasm only: natively the OS serves them).
#[cfg(target_arch = "wasm32")]
mod getrandom_backends {
    /// getrandom 0.3's custom backend, selected by
    /// `--cfg getrandom_backend="custom"`.
    ///
    /// # Safety
    /// getrandom calls it with a writable buffer of `len` bytes.
    #[unsafe(no_mangle)]
    unsafe extern "Rust" fn __getrandom_v03_custom(
        dest: *mut u8,
        len: usize,
    ) -> Result<(), getrandom::Error> {
        if len > 0 {
            // SAFETY: the caller passes a valid, writable buffer of `len` bytes.
            let buf = unsafe { core::slice::from_raw_parts_mut(dest, len) };
            super::fill_bytes(buf);
        }
        Ok(())
    }

    fn getrandom_v02(dest: &mut [u8]) -> Result<(), getrandom02::Error> {
        super::fill_bytes(dest);
        Ok(())
    }

    getrandom02::register_custom_getrandom!(getrandom_v02);
}

#[cfg(test)]
mod tests {
    use super::{below_with, RandomExt, SplitMix64};
    use rand_core::RngCore;

    /// A stand-in for the host's stream.
    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut rng = SplitMix64::new(seed);
        move || rng.next_u64()
    }

    #[test]
    fn seeded_streams_repeat_and_draws_stay_in_range() {
        let (mut a, mut b) = (SplitMix64::new(3), SplitMix64::new(3));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = a.uniform(-2.0, 5.0);
            assert!((-2.0..=5.0).contains(&u));
            let i = a.range_inclusive(-3, 3);
            assert!((-3..=3).contains(&i));
            sum += a.normal();
        }
        assert!((sum / 10_000.0).abs() < 0.05, "mean of normals {sum}");
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut next = stream(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[below_with(6, &mut next) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(below_with(1, &mut next), 0);
        let big = u64::MAX - 1;
        assert!(below_with(big, &mut next) < big);
    }

    #[test]
    fn below_rejects_the_biased_low_words() {
        // With n = 3·2^62 the words whose product's low half is under
        // 2^64 mod n = 2^62 are rejected: x = 1 gives low word n ≥ 2^62 (kept).
        let n = 3u64 << 62;
        let mut words = [0u64, 1].into_iter();
        // 0 → low word 0 < 2^62: rejected; 1 → accepted, high word 0.
        assert_eq!(below_with(n, || words.next().unwrap()), 0);
    }

    #[test]
    #[should_panic(expected = "empty")]
    fn below_zero_panics() {
        below_with(0, || 0);
    }
}
