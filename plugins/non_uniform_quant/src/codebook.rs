//! k-means codebooks of one layer's weights (Han, Mao & Dally 2016, §3).

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use pf_sdk::prelude::*;

/// Where the k-means centroids start (Han et al. §3.2).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
pub enum Init {
    /// Evenly spaced between the smallest and the largest weight (the
    /// paper's best: large weights keep centroids of their own).
    Linear,
    /// At evenly spaced quantiles of the weights (density-based).
    Quantile,
    /// Uniformly random between the smallest and the largest weight.
    Uniform,
}

/// `k` starting centroids for `values` (sorted ascending), ascending.
pub fn initial(values: &[f64], k: usize, init: Init, rng: &mut impl RandomExt) -> Vec<f64> {
    let (lo, hi) = (values[0], values[values.len() - 1]);
    let mut c: Vec<f64> = match init {
        Init::Linear if k == 1 => vec![0.5 * (lo + hi)],
        Init::Linear => (0..k)
            .map(|i| lo + (hi - lo) * i as f64 / (k - 1) as f64)
            .collect(),
        Init::Quantile => (0..k)
            .map(|i| {
                let q = (i as f64 + 0.5) / k as f64;
                pf_sdk::math::quantile(values, q).unwrap_or(lo)
            })
            .collect(),
        Init::Uniform => (0..k).map(|_| rng.uniform(lo, hi)).collect(),
    };
    c.sort_by(f64::total_cmp);
    c
}

/// The `k`-means codebook of `values` (sorted ascending) from `start`:
/// Lloyd's algorithm in linfa, sorted ascending.
pub fn kmeans(values: &[f64], start: Vec<f64>) -> Result<Vec<f32>> {
    let k = start.len();
    let records = Array2::from_shape_vec((values.len(), 1), values.to_vec())
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    let init = Array2::from_shape_vec((k, 1), start)
        .map_err(|e| Error::invalid_argument(e.to_string()))?;
    let data = DatasetBase::from(records);
    let model = KMeans::params(k)
        .init_method(KMeansInit::Precomputed(init))
        .n_runs(1)
        .max_n_iterations(40)
        .tolerance(1e-6)
        .fit(&data)
        .map_err(|e| Error::numerical(format!("k-means did not converge: {e}")))?;
    let mut c: Vec<f32> = model.centroids().iter().map(|&v| v as f32).collect();
    if c.iter().any(|v| !v.is_finite()) {
        return Err(Error::numerical(
            "k-means gave a centroid that is not finite",
        ));
    }
    c.sort_by(f32::total_cmp);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_finds_well_separated_clusters_from_every_start() {
        let mut rng = SplitMix64::new(3);
        let mut values: Vec<f64> = (0..300)
            .map(|i| [-1.0, 0.1, 2.0][i % 3] + 0.01 * rng.normal())
            .collect();
        values.sort_by(f64::total_cmp);
        for init in [Init::Linear, Init::Quantile, Init::Uniform] {
            let start = initial(&values, 3, init, &mut rng);
            assert!(start.windows(2).all(|w| w[0] <= w[1]));
            let c = kmeans(&values, start).unwrap();
            let want = [-1.0, 0.1, 2.0];
            for (got, want) in c.iter().zip(want) {
                assert!((f64::from(*got) - want).abs() < 0.05, "{init:?}: {c:?}");
            }
        }
    }

    #[test]
    fn linear_and_quantile_starts_span_the_weights() {
        let values: Vec<f64> = (0..101).map(|i| f64::from(i) / 100.0).collect();
        let mut rng = SplitMix64::new(1);
        assert_eq!(
            initial(&values, 3, Init::Linear, &mut rng),
            vec![0.0, 0.5, 1.0]
        );
        let q = initial(&values, 4, Init::Quantile, &mut rng);
        assert!(
            (q[0] - 0.125).abs() < 1e-9 && (q[3] - 0.875).abs() < 1e-9,
            "{q:?}"
        );
    }
}
