//! A learner that misbehaves on purpose, for pf's sandbox tests. The
//! parameter `attack` picks what `compress` (or, for `slow_finish`,
//! `finish`; for `slow_search_space`, `search-space`) does; `none` behaves.

use pf_sdk::prelude::*;
use pf_sdk::FloatRange;
use std::hint::black_box;

/// What `compress` does.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
enum Attack {
    /// Sets nothing and succeeds.
    #[default]
    None,
    /// Spins forever.
    InfiniteLoop,
    /// Allocates and touches 16 MiB chunks forever.
    MemoryBomb,
    /// Recurses without end until the call stack overflows.
    DeepRecursion,
    /// Panics with `hostile plugin panicked on purpose`.
    Panic,
    /// Uses a tensor handle it made up.
    ForgedHandle,
    /// Uses a tensor handle after dropping it.
    DroppedHandle,
    /// Creates tensors forever without dropping them.
    TensorFlood,
    /// Sets every layer's weight to NaN.
    NanWeights,
    /// Behaves, but makes 1,000,000 `host.random-u64` calls first (for
    /// measuring the cost of one host call).
    HostCalls,
    /// Calls `model.fine-tune` with the most steps allowed, forever: cheap
    /// in fuel, endless host work.
    FinetuneFlood,
    /// Asks for the gradients of every layer over the most batches
    /// allowed, forever.
    GradientFlood,
    /// Multiplies 8192 × 8192 matrices, forever.
    MatmulFlood,
    /// Behaves in `compress`, then in `finish` fine-tunes one step at a
    /// time, forever: each call is cheap, together they never end.
    SlowFinish,
    /// Reads the model's layers forever in `search-space`, when fixed with
    /// `--set` (before any trial runs).
    SlowSearchSpace,
    /// Returns an error whose message is 60 MiB of `A`.
    HugeError,
    /// Returns an error whose message holds terminal escapes (an OSC 52
    /// clipboard write, a screen clear, a bell, a forged result line).
    EscapeError,
    /// Returns a report whose summary and value name hold terminal escapes.
    EscapeReport,
    /// With `--set attack=huge_space`, `search-space` declares 100,000
    /// dimensions; in `compress`, fails saying so.
    HugeSpace,
    /// With `--set attack=escape_space`, `search-space` declares a dimension
    /// whose name, and a choice whose string, hold terminal escapes; in
    /// `compress`, fails saying so.
    EscapeSpace,
    /// Runs out of fuel inside `cabi_realloc`, while the host copies a host
    /// call's result into the plugin's memory.
    FuelInHostCall,
}

/// The side of the square matrices `matmul_flood` multiplies.
const FLOOD_MATRIX: u32 = 8192;

/// Terminal escapes a hostile plugin hides in text: an OSC 52 clipboard
/// write, a bell, a screen clear, a carriage return and a forged line.
const ESCAPES: &str =
    "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\u{1b}[H\rtrial 0 complete: accuracy 1.000";

/// The host calls `host_calls` makes.
const HOST_CALLS: u64 = 1_000_000;

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(crate = "pf_sdk::serde", default)]
#[schemars(crate = "pf_sdk::schemars")]
struct HostileParams {
    /// The misbehaviour `compress` performs.
    attack: Attack,
}

struct Hostile {
    attack: Attack,
}

/// Host work without end: each round is cheap in fuel, the host's share is
/// not. Ends only when the host refuses a call (the error returns).
fn flood(attack: Attack, model: &Model) -> Result<()> {
    let layers: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
    loop {
        match attack {
            Attack::FinetuneFlood => {
                black_box(model.fine_tune(100_000)?);
            }
            Attack::GradientFlood => {
                black_box(model.gradients(&layers, 10_000)?);
            }
            Attack::MatmulFlood => {
                let a = Tensor::full(&[FLOOD_MATRIX, FLOOD_MATRIX], 1.0)?;
                black_box(a.matmul(&a)?);
            }
            Attack::SlowFinish => {
                black_box(model.fine_tune(1)?);
            }
            _ => return Ok(()),
        }
    }
}

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

/// A float dimension in [0, 1] named `name`.
fn ratio(name: String) -> ParamSpec {
    ParamSpec {
        name,
        kind: ParamKind::Float(FloatRange {
            low: 0.0,
            high: 1.0,
            log: false,
        }),
        default: ParamValue::Float(0.5),
        help: String::new(),
        context: Vec::new(),
    }
}

/// Recursion the optimiser cannot turn into a loop: every frame makes a host
/// call and does non-commutative work after the recursive call. Nothing
/// lives in linear memory (no address is taken), so it is the engine's own
/// call stack that overflows, not the module's shadow stack.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let r = HostRng::new().u64();
    let below = recurse(depth.wrapping_add(r | 1));
    below.wrapping_sub(r).rotate_left((depth & 63) as u32)
}

impl Learner for Hostile {
    type Params = HostileParams;

    fn info() -> Info {
        Info::new(
            "hostile_learner",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: misbehaves in `compress` as the parameter `attack` says.",
        )
        // It claims every target; the host's own count catches the lie.
        .with_targets(&[Measure::Flops, Measure::Params, Measure::Size])
    }

    fn search_space(
        settings: &HostileParams,
        _: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        if settings.attack == Attack::SlowSearchSpace {
            loop {
                black_box(model.layers());
            }
        }
        let mut space = HostileParams::search_space()?;
        match settings.attack {
            Attack::HugeSpace => space.extend((0..100_000).map(|i| ratio(format!("d{i}")))),
            Attack::EscapeSpace => {
                space.push(ratio(format!("evil{ESCAPES}")));
                space.push(ParamSpec {
                    name: "mode".into(),
                    kind: ParamKind::Choice(vec!["plain".into(), format!("evil{ESCAPES}")]),
                    default: ParamValue::Choice("plain".into()),
                    help: String::new(),
                    context: Vec::new(),
                });
            }
            _ => {}
        }
        Ok(space)
    }

    fn compress(
        params: HostileParams,
        _: Option<Target>,
        _: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        match params.attack {
            Attack::None
            | Attack::HostCalls
            | Attack::SlowFinish
            | Attack::SlowSearchSpace
            | Attack::EscapeReport => {}
            Attack::FinetuneFlood | Attack::GradientFlood | Attack::MatmulFlood => {
                flood(params.attack, model)?;
            }
            Attack::InfiniteLoop => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            Attack::MemoryBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 16 << 20];
                    for i in (0..chunk.len()).step_by(4096) {
                        chunk[i] = 1;
                    }
                    hoard.push(black_box(chunk));
                }
            }
            Attack::DeepRecursion => {
                black_box(recurse(black_box(0)));
            }
            Attack::Panic => panic!("hostile plugin panicked on purpose"),
            Attack::ForgedHandle => {
                // SAFETY: not safe at all: the point is to see the host refuse it.
                let forged = unsafe { Tensor::from_handle(0xDEAD) };
                black_box(forged.numel());
            }
            Attack::DroppedHandle => {
                let t = Tensor::full(&[2, 2], 1.0)?;
                let raw = t.handle();
                drop(t);
                // SAFETY: not safe at all: the handle was freed above.
                let stale = unsafe { Tensor::from_handle(raw) };
                black_box(stale.sum_all()?);
            }
            Attack::TensorFlood => loop {
                // Ends only when the host refuses a tensor (the error returns).
                std::mem::forget(Tensor::full(&[16], 0.0)?);
            },
            Attack::NanWeights => {
                for layer in model.layers() {
                    let nan = Tensor::full(&layer.weight_shape, f32::NAN)?;
                    model.set_weight(&layer.name, &nan)?;
                }
            }
            Attack::HugeError => {
                return Err(Error::invalid_argument("A".repeat(60 << 20)));
            }
            Attack::EscapeError => {
                return Err(Error::invalid_argument(format!("evil{ESCAPES}")));
            }
            Attack::FuelInHostCall => burn_fuel_in_host_call()?,
            Attack::HugeSpace | Attack::EscapeSpace => {
                return Err(Error::invalid_argument(format!(
                    "attack {:?} works in search-space only (--set attack=...)",
                    params.attack
                )));
            }
        }
        if params.attack == Attack::EscapeReport {
            return Ok((
                Hostile {
                    attack: params.attack,
                },
                Report::new(format!("summary{ESCAPES}")).with(&format!("value{ESCAPES}"), 1.0),
            ));
        }
        let mut report = Report::new(format!("attack {:?} done", params.attack));
        if params.attack == Attack::HostCalls {
            let mut rng = HostRng::new();
            let mut acc = 0u64;
            for _ in 0..HOST_CALLS {
                acc ^= black_box(rng.u64());
            }
            report = report
                .with("host_calls", HOST_CALLS as f64)
                .with("xor", (acc >> 11) as f64);
        }
        Ok((
            Hostile {
                attack: params.attack,
            },
            report,
        ))
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        if self.attack == Attack::SlowFinish {
            flood(self.attack, model)?;
        }
        Ok(Report::default())
    }
}

pf_sdk::export_learner!(Hostile);
