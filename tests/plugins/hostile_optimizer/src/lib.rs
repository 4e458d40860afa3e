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
//!
//! Its option `attack` (`--optimizer-set attack=NAME`) picks what `suggest`
//! does with any space: `huge_error` (an error of 60 MiB), `escape_error`
//! (an error holding terminal escapes), `escape_names` (a parameter whose
//! name, and a choice value whose string, hold terminal escapes) or
//! `many_params` (100,000 parameters) or `fuel_in_host_call` (runs out of
//! fuel inside `cabi_realloc`, called on the host's behalf during a host
//! call).

use pf_sdk::prelude::*;
use std::hint::black_box;

/// What `suggest` does, whatever the space (the option `attack`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
enum OptionAttack {
    /// The space's `attack` dimension decides.
    #[default]
    None,
    /// Returns an error whose message is 60 MiB of `A`.
    HugeError,
    /// Returns an error whose message holds terminal escapes.
    EscapeError,
    /// Suggests a parameter whose name, and a choice value whose string,
    /// hold terminal escapes.
    EscapeNames,
    /// Suggests 100,000 parameters.
    ManyParams,
    /// Runs out of fuel inside `cabi_realloc`, while the host copies a host
    /// call's result into the plugin's memory.
    FuelInHostCall,
}

/// The options.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(crate = "pf_sdk::serde", default)]
#[schemars(crate = "pf_sdk::schemars")]
struct HostileOptions {
    /// The misbehaviour `suggest` performs with any space.
    attack: OptionAttack,
}

/// Terminal escapes a hostile plugin hides in text: an OSC 52 clipboard
/// write, a bell, a screen clear, a carriage return and a forged line.
const ESCAPES: &str =
    "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\u{1b}[H\rtrial 0 complete: accuracy 1.000";

/// The allocator: the system one, except that once [`BURN`] is set every
/// allocation spins, so that the fuel runs out inside `cabi_realloc`, which
/// wasmtime calls on the host's behalf to copy a host call's result into
/// the plugin's memory (the attack `fuel_in_host_call`).
struct Burner;

/// Makes every later allocation spin.
static BURN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

// SAFETY: defers to the system allocator; spinning allocates nothing.
unsafe impl std::alloc::GlobalAlloc for Burner {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if BURN.load(std::sync::atomic::Ordering::Relaxed) {
            let mut x = 0u64;
            loop {
                x = black_box(x.wrapping_add(1));
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Burner = Burner;

/// Spins in the allocator during a host call: sets [`BURN`], then asks the
/// host for a tensor's shape, whose list the host copies in through
/// `cabi_realloc`.
fn burn_fuel_in_host_call() -> Result<()> {
    let t = Tensor::full(&[4], 0.0)?;
    BURN.store(true, std::sync::atomic::Ordering::Relaxed);
    black_box(t.shape());
    Ok(())
}

struct HostileSearch {
    space: Vec<ParamSpec>,
    attack: String,
    budget: u32,
    suggested: u32,
    option: OptionAttack,
}

impl Optimizer for HostileSearch {
    type Options = HostileOptions;

    fn info() -> Info {
        Info::new(
            "hostile_optimizer",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: misbehaves in `suggest` as the default of the space's `attack` \
             dimension says; suggests the defaults otherwise.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, options: HostileOptions) -> Result<Self> {
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
            option: options.attack,
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
        match self.option {
            OptionAttack::None => {}
            OptionAttack::HugeError => return Err(Error::invalid_argument("A".repeat(60 << 20))),
            OptionAttack::EscapeError => {
                return Err(Error::invalid_argument(format!("evil{ESCAPES}")))
            }
            OptionAttack::EscapeNames => {
                return Ok(vec![
                    Param::new(format!("evil{ESCAPES}"), ParamValue::Float(0.5)),
                    Param::new("mode", ParamValue::Choice(format!("evil{ESCAPES}"))),
                ])
            }
            OptionAttack::FuelInHostCall => {
                burn_fuel_in_host_call()?;
            }
            OptionAttack::ManyParams => {
                return Ok((0..100_000)
                    .map(|i| Param::new(format!("p{i}"), ParamValue::Float(0.5)))
                    .collect())
            }
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
