//! Test fixture: random search seeded from the operating system's random
//! generator, the way third-party crates get randomness: `rand`'s
//! `StdRng::from_os_rng` (getrandom 0.3) and `getrandom` 0.2 called
//! directly. On `wasm32-unknown-unknown` neither has a source of its own;
//! the SDK's custom backends serve both from the host's seeded stream, so the
//! fixture builds without wasm-bindgen imports and stays deterministic.

use pf_sdk::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct OsRandom {
    space: Vec<ParamSpec>,
    rng: StdRng,
    budget: u32,
    suggested: u32,
}

impl Optimizer for OsRandom {
    type Options = ();

    fn info() -> Info {
        Info::new(
            "os_random",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: random search seeded from the OS random generator (getrandom 0.2 \
             and 0.3), which the SDK feeds from the host.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, _options: ()) -> Result<Self> {
        let mut bytes = [0u8; 8];
        getrandom02::getrandom(&mut bytes).map_err(|e| Error::host(e.to_string()))?;
        let mut os = StdRng::from_os_rng();
        let seed = os.random::<u64>() ^ u64::from_le_bytes(bytes);
        Ok(OsRandom {
            space,
            rng: StdRng::seed_from_u64(seed),
            budget,
            suggested: 0,
        })
    }

    fn suggest(&mut self) -> Result<Vec<Param>> {
        pf_sdk::count_suggestion(&mut self.suggested, self.budget)?;
        let rng = &mut self.rng;
        Ok(self
            .space
            .iter()
            .map(|spec| {
                let value = match &spec.kind {
                    ParamKind::Float(r) => ParamValue::Float(rng.random_range(r.low..=r.high)),
                    ParamKind::Int(r) => ParamValue::Int(rng.random_range(r.low..=r.high)),
                    ParamKind::Boolean => ParamValue::Boolean(rng.random()),
                    ParamKind::Choice(c) => {
                        ParamValue::Choice(c[rng.random_range(0..c.len())].clone())
                    }
                };
                Param::new(spec.name.clone(), value)
            })
            .collect())
    }

    fn observe(&mut self, _params: Vec<Param>, _outcome: Outcome) -> Result<()> {
        Ok(())
    }
}

pf_sdk::export_optimizer!(OsRandom);
