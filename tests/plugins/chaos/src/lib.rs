//! A learner that fails at random, for pf's soak run (`scripts/soak.sh`) and
//! its fault tests. Each trial draws, from the host's seeded stream (a plugin
//! has no other randomness), whether it misbehaves and how:
//!
//! * with probability `failure_rate` it picks one of the modes switched on
//!   (each a boolean setting, all on by default) uniformly;
//! * otherwise, and after a `slow` spin, it behaves: light magnitude pruning
//!   of every weight layer at the searched `sparsity`, so the study's best
//!   trial is a real one.
//!
//! The misbehaviour happens in `compress`, in the first `on-train-step` or in
//! `finish` (the `phase` setting, or a random one of the three): a learner
//! that only misbehaves late is the one a quick check misses. Each pick is
//! logged as `chaos: MODE in PHASE`, so a soak run that stalls can say which
//! mode stalled it.

use pf_sdk::prelude::*;
use pf_sdk::{log, Level};
use std::hint::black_box;

/// One way of misbehaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Panics (a trap).
    Trap,
    /// Spins forever: only the fuel limit ends it.
    Loop,
    /// Allocates and touches 16 MiB chunks until the memory cap stops it.
    Memory,
    /// Floods the host with work that costs it minutes and the plugin almost
    /// no fuel: endless maximal fine-tuning, gradient passes or large matrix
    /// products.
    HostWork,
    /// Sets every weight to NaN.
    Nan,
    /// Fails with an error message of `huge_mib` MiB that starts with
    /// terminal escapes (clear screen, a clipboard write).
    HugeString,
    /// Burns `slow_millions` million loop iterations of fuel, then behaves.
    Slow,
}

impl Mode {
    /// Every mode, in the order of their settings.
    const ALL: [Mode; 7] = [
        Mode::Trap,
        Mode::Loop,
        Mode::Memory,
        Mode::HostWork,
        Mode::Nan,
        Mode::HugeString,
        Mode::Slow,
    ];

    /// The name of the mode's setting.
    fn name(self) -> &'static str {
        match self {
            Mode::Trap => "trap",
            Mode::Loop => "loop",
            Mode::Memory => "memory",
            Mode::HostWork => "host_work",
            Mode::Nan => "nan",
            Mode::HugeString => "huge_string",
            Mode::Slow => "slow",
        }
    }
}

/// Where in the trial the misbehaviour happens.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
enum Phase {
    /// One of the three below, drawn per trial.
    #[default]
    Any,
    /// In `compress`.
    Compress,
    /// In the first `on-train-step` (in `finish` when the host runs no
    /// fine-tuning step).
    TrainStep,
    /// In `finish`.
    Finish,
}

/// The hyper-parameters: the searched `sparsity` and the settings that shape
/// the chaos (`--set NAME=VALUE`).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(crate = "pf_sdk::serde", default)]
#[schemars(crate = "pf_sdk::schemars")]
struct ChaosParams {
    /// Fraction of each layer's weights a well-behaved trial sets to zero.
    #[schemars(range(min = 0.0, max = 0.5))]
    sparsity: f64,
    /// Probability that a trial misbehaves (in one of the modes switched on).
    #[schemars(range(min = 0.0, max = 1.0), extend("x-fixed" = true))]
    failure_rate: f64,
    /// Where in the trial the misbehaviour happens.
    #[schemars(extend("x-fixed" = true))]
    phase: Phase,
    /// Mode `trap`: panic.
    #[schemars(extend("x-fixed" = true))]
    trap: bool,
    /// Mode `loop`: spin until the fuel runs out.
    #[schemars(extend("x-fixed" = true))]
    r#loop: bool,
    /// Mode `memory`: grow memory past the cap.
    #[schemars(extend("x-fixed" = true))]
    memory: bool,
    /// Mode `host_work`: flood the host with fine-tuning, gradients or matrix products.
    #[schemars(extend("x-fixed" = true))]
    host_work: bool,
    /// Mode `nan`: set every weight to NaN.
    #[schemars(extend("x-fixed" = true))]
    nan: bool,
    /// Mode `huge_string`: fail with a `huge_mib` MiB error full of terminal escapes.
    #[schemars(extend("x-fixed" = true))]
    huge_string: bool,
    /// Mode `slow`: burn `slow_millions` million loop iterations, then behave.
    #[schemars(extend("x-fixed" = true))]
    slow: bool,
    /// Size of the `huge_string` error, in MiB.
    #[schemars(range(min = 1, max = 256), extend("x-fixed" = true))]
    huge_mib: u32,
    /// Loop iterations of the `slow` mode, in millions.
    #[schemars(range(min = 0, max = 100000), extend("x-fixed" = true))]
    slow_millions: u32,
}

impl Default for ChaosParams {
    fn default() -> Self {
        ChaosParams {
            sparsity: 0.2,
            failure_rate: 0.7,
            phase: Phase::Any,
            trap: true,
            r#loop: true,
            memory: true,
            host_work: true,
            nan: true,
            huge_string: true,
            slow: true,
            huge_mib: 8,
            slow_millions: 20,
        }
    }
}

impl ChaosParams {
    /// The modes switched on.
    fn modes(&self) -> Vec<Mode> {
        let on = [
            self.trap,
            self.r#loop,
            self.memory,
            self.host_work,
            self.nan,
            self.huge_string,
            self.slow,
        ];
        Mode::ALL
            .into_iter()
            .zip(on)
            .filter_map(|(m, on)| on.then_some(m))
            .collect()
    }

    /// Refuses settings that cannot work: a failure rate above 0 with every
    /// mode off.
    fn check(&self) -> Result<()> {
        if self.failure_rate > 0.0 && self.modes().is_empty() {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            return Err(Error::invalid_argument(format!(
                "failure_rate is {} but every mode is off; switch one on (--set MODE=true, \
                 one of {}) or set failure_rate=0",
                self.failure_rate,
                names.join(", ")
            )));
        }
        Ok(())
    }
}

/// What a trial does, drawn in `compress`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// The misbehaviour, if any.
    mode: Option<Mode>,
    /// Where it happens.
    phase: Phase,
}

/// The state `compress` keeps for the later calls.
struct Chaos {
    /// The misbehaviour still to come (taken when it happens).
    pending: Option<Plan>,
    /// The settings, for the misbehaviour and the good behaviour after it.
    params: ChaosParams,
}

/// Draws the trial's plan from the host's stream.
fn draw_plan(params: &ChaosParams, rng: &mut HostRng) -> Plan {
    let modes = params.modes();
    let mode = (!modes.is_empty() && rng.bernoulli(params.failure_rate))
        .then(|| modes[rng.below(modes.len() as u64) as usize]);
    let phase = match params.phase {
        Phase::Any => [Phase::Compress, Phase::TrainStep, Phase::Finish][rng.below(3) as usize],
        fixed => fixed,
    };
    Plan { mode, phase }
}

/// Spins `iterations` times on a value the optimiser cannot see through.
fn spin(iterations: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iterations {
        x = black_box(x.rotate_left(5) ^ i);
    }
    x
}

/// Floods the host: work that costs it far more than the plugin's fuel, until
/// the host stops the call.
fn flood_host(model: &Model, rng: &mut HostRng) -> Result<()> {
    let layers: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
    match rng.below(3) {
        0 => loop {
            black_box(model.fine_tune(100_000)?);
        },
        1 => loop {
            black_box(model.gradients(&layers, 10_000)?);
        },
        _ => {
            let a = Tensor::full(&[4096, 4096], 1.0)?;
            loop {
                black_box(a.matmul(&a)?);
            }
        }
    }
}

/// Fails with an error of `mib` MiB that starts with terminal escapes: clear
/// the screen, write the clipboard (OSC 52), and a forged progress line for
/// trial 0 (the one trial whose real line always came before).
fn huge_error(mib: u32, phase: Phase) -> Error {
    let mut message = format!(
        "chaos: huge error in {phase:?}\u{1b}[2J\u{1b}]52;c;Y2hhb3M=\u{7}\r\n\
         trial   0  reward 1.0000  accuracy 100.00%  target ratio 0.0100  0.1s\n"
    );
    let len = (mib as usize) << 20;
    let fill = len.saturating_sub(message.len());
    message.push_str(&"x".repeat(fill));
    Error::invalid_argument(message)
}

/// Every layer's smallest `sparsity` of weights masked out.
fn prune(model: &Model, sparsity: f64) -> Result<()> {
    for layer in model.layers() {
        let k = (sparsity * layer.weight_numel() as f64).floor() as u64;
        if k == 0 {
            continue;
        }
        let magnitude = model.weight(&layer.name)?.abs()?;
        let threshold = magnitude.flatten()?.kth_smallest(k)?;
        model.set_mask(&layer.name, &magnitude.gt_scalar(threshold)?)?;
    }
    Ok(())
}

impl Chaos {
    /// Performs the pending misbehaviour if it is due in `phase` (or is
    /// overdue: `finish` performs whatever is left).
    fn act(&mut self, phase: Phase, model: &Model) -> Result<()> {
        let Some(plan) = self.pending else {
            return Ok(());
        };
        if plan.phase != phase && phase != Phase::Finish {
            return Ok(());
        }
        self.pending = None;
        let Some(mode) = plan.mode else {
            return Ok(());
        };
        let mut rng = HostRng::new();
        match mode {
            Mode::Trap => panic!("chaos plugin trapped on purpose in {:?}", plan.phase),
            Mode::Loop => {
                black_box(spin(u64::MAX));
            }
            Mode::Memory => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 16 << 20];
                    for i in (0..chunk.len()).step_by(4096) {
                        chunk[i] = 1;
                    }
                    hoard.push(black_box(chunk));
                }
            }
            Mode::HostWork => flood_host(model, &mut rng)?,
            Mode::Nan => {
                for layer in model.layers() {
                    let nan = Tensor::full(&layer.weight_shape, f32::NAN)?;
                    model.set_weight(&layer.name, &nan)?;
                }
            }
            Mode::HugeString => return Err(huge_error(self.params.huge_mib, plan.phase)),
            Mode::Slow => {
                black_box(spin(u64::from(self.params.slow_millions) * 1_000_000));
            }
        }
        Ok(())
    }
}

impl Learner for Chaos {
    type Params = ChaosParams;

    fn info() -> Info {
        Info::new(
            "chaos",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: per trial, fails in a random way (trap, endless loop, memory \
             growth, host-work flood, NaN weights, a huge error, a slow spin) or prunes \
             lightly by magnitude.",
        )
    }

    fn search_space(
        settings: &ChaosParams,
        _: Option<Target>,
        _: &Model,
    ) -> Result<Vec<ParamSpec>> {
        settings.check()?;
        ChaosParams::search_space()
    }

    fn compress(
        params: ChaosParams,
        _: Option<Target>,
        _: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        params.check()?;
        let plan = draw_plan(&params, &mut HostRng::new());
        let mode = plan.mode.map_or("none", Mode::name);
        log(Level::Info, &format!("chaos: {mode} in {:?}", plan.phase));
        let sparsity = params.sparsity;
        prune(model, sparsity)?;
        let mut chaos = Chaos {
            pending: Some(plan),
            params,
        };
        chaos.act(Phase::Compress, model)?;
        let report = Report::new(format!("chaos: {mode} in {:?}", plan.phase))
            .with("sparsity", model.weight_sparsity());
        Ok((chaos, report))
    }

    fn on_train_step(&mut self, model: &Model, _: u32, _: u32) -> Result<()> {
        self.act(Phase::TrainStep, model)
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        self.act(Phase::Finish, model)?;
        Ok(Report::new("chaos: behaved").with("sparsity", model.weight_sparsity()))
    }
}

pf_sdk::export_learner!(Chaos);

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings with only `modes` switched on, at this failure rate.
    fn only(modes: &[Mode], failure_rate: f64) -> ChaosParams {
        let on = |m: Mode| modes.contains(&m);
        ChaosParams {
            failure_rate,
            trap: on(Mode::Trap),
            r#loop: on(Mode::Loop),
            memory: on(Mode::Memory),
            host_work: on(Mode::HostWork),
            nan: on(Mode::Nan),
            huge_string: on(Mode::HugeString),
            slow: on(Mode::Slow),
            ..ChaosParams::default()
        }
    }

    #[test]
    fn draws_follow_the_failure_rate_and_the_modes_switched_on() {
        pf_sdk::testing::seed(7);
        let mut rng = HostRng::new();
        // Rate 0: every trial behaves.
        let calm = only(&Mode::ALL, 0.0);
        assert!((0..200).all(|_| draw_plan(&calm, &mut rng).mode.is_none()));
        // Rate 1 with two modes: only those two, both drawn.
        let two = only(&[Mode::Trap, Mode::Nan], 1.0);
        let drawn: Vec<Mode> = (0..200)
            .map(|_| draw_plan(&two, &mut rng).mode.unwrap())
            .collect();
        assert!(drawn.iter().all(|m| [Mode::Trap, Mode::Nan].contains(m)));
        assert!(drawn.contains(&Mode::Trap) && drawn.contains(&Mode::Nan));
        // The defaults: about 70 % fail, every mode and phase comes up.
        let chaos = ChaosParams::default();
        let plans: Vec<Plan> = (0..2000).map(|_| draw_plan(&chaos, &mut rng)).collect();
        let failing = plans.iter().filter(|p| p.mode.is_some()).count();
        assert!((1250..1550).contains(&failing), "{failing} of 2000 fail");
        for mode in Mode::ALL {
            assert!(plans.iter().any(|p| p.mode == Some(mode)), "{mode:?}");
        }
        for phase in [Phase::Compress, Phase::TrainStep, Phase::Finish] {
            assert!(plans.iter().any(|p| p.phase == phase), "{phase:?}");
        }
        // A fixed phase is kept.
        let late = ChaosParams {
            phase: Phase::Finish,
            ..ChaosParams::default()
        };
        assert!((0..50).all(|_| draw_plan(&late, &mut rng).phase == Phase::Finish));
    }

    #[test]
    fn a_failure_rate_with_every_mode_off_is_refused_by_name() {
        let e = only(&[], 0.5).check().unwrap_err();
        assert_eq!(e.kind(), "invalid-argument");
        assert!(
            e.message()
                .contains("failure_rate is 0.5 but every mode is off")
                && e.message().contains("host_work"),
            "{}",
            e.message()
        );
        assert!(only(&[], 0.0).check().is_ok());
        assert!(only(&[Mode::Slow], 1.0).check().is_ok());
    }

    #[test]
    fn the_huge_error_has_its_size_and_opens_with_terminal_escapes() {
        let e = huge_error(2, Phase::Finish);
        assert_eq!(e.message().len(), 2 << 20);
        let head = &e.message()[..160];
        assert!(
            head.contains("\u{1b}[2J") && head.contains("\u{1b}]52;c;"),
            "{head:?}"
        );
        assert!(head.contains("\r\ntrial   0  reward 1.0000"), "{head:?}");
    }
}
