//! An optimizer that misbehaves on purpose, for pf's sandbox tests.
//!
//! Optimizers take no parameters, so the attack comes from the search space:
//! when it has a choice dimension named `attack`, its default names what
//! `suggest` does: `infinite_loop`, `panic`, `out_of_bounds` (floats and ints
//! above their range), `wrong_type` (a boolean for each float), `nan` (NaN
//! for each float), `matmul_flood` (multiplies 8192 × 8192 matrices
//! forever: cheap in fuel, endless host work) or `tensor_spin` (makes and
//! drops tiny tensors forever: every call is cheap, together they never
//! end). Otherwise it behaves: it suggests every dimension's default until
//! the budget is used up.

use pf_sdk::prelude::*;
use std::hint::black_box;

struct HostileSearch {
    space: Vec<ParamSpec>,
    attack: String,
    budget: u32,
    suggested: u32,
}

impl Optimizer for HostileSearch {
    type Options = ();

    fn info() -> Info {
        Info::new(
            "hostile_optimizer",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: misbehaves in `suggest` as the default of the space's `attack` \
             dimension says; suggests the defaults otherwise.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, _options: ()) -> Result<Self> {
        let attack = space
            .iter()
            .find(|s| s.name == "attack" && matches!(s.kind, ParamKind::Choice(_)))
            .and_then(|s| s.default.as_str().map(String::from))
            .unwrap_or_default();
        Ok(HostileSearch {
            space,
            attack,
            budget,
            suggested: 0,
        })
    }

    fn suggest(&mut self) -> Result<Vec<Param>> {
        match self.attack.as_str() {
            "infinite_loop" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "panic" => panic!("hostile optimizer panicked on purpose"),
            "matmul_flood" => loop {
                let a = Tensor::full(&[8192, 8192], 1.0)?;
                black_box(a.matmul(&a)?);
            },
            "tensor_spin" => loop {
                black_box(Tensor::full(&[64, 64], 1.0)?.sum_all()?);
            },
            _ => {}
        }
        pf_sdk::count_suggestion(&mut self.suggested, self.budget)?;
        Ok(self
            .space
            .iter()
            .map(|spec| {
                let value = match (self.attack.as_str(), &spec.kind) {
                    ("out_of_bounds", ParamKind::Float(r)) => {
                        ParamValue::Float(r.high + (r.high - r.low).abs() + 1.0)
                    }
                    ("out_of_bounds", ParamKind::Int(r)) => {
                        ParamValue::Int(r.high.saturating_add(1))
                    }
                    ("wrong_type", ParamKind::Float(_)) => ParamValue::Boolean(true),
                    ("nan", ParamKind::Float(_)) => ParamValue::Float(f64::NAN),
                    _ => spec.default.clone(),
                };
                Param::new(spec.name.clone(), value)
            })
            .collect())
    }

    fn observe(&mut self, _params: Vec<Param>, _outcome: Outcome) -> Result<()> {
        Ok(())
    }
}

pf_sdk::export_optimizer!(HostileSearch);
