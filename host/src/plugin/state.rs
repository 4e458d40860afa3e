//! The data a plugin instance's store carries: its tensors, its limits, its
//! random stream, its log, and (for learners) the model under compression.

use super::bindings::host;
use super::budget::Budget;
use super::limits::{self, Limits};
use super::model_api::ModelContext;
use super::tensor::HostTensorData;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use wasmtime::component::{Resource, ResourceTable};

/// A message a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: host::Level,
    /// The text.
    pub message: String,
}

/// Where a plugin's log lines go as they arrive.
pub type LogSink = Box<dyn FnMut(&str, &LogLine) + Send>;

pub use super::bounds::{printable, MAX_LOG_BYTES};

/// Prefix of the message the SDK's panic hook logs before aborting.
pub const PANIC_PREFIX: &str = "panic: ";

impl LogLine {
    /// Whether the line is worth showing a user: info and above.
    pub fn is_notable(&self) -> bool {
        !matches!(self.level, host::Level::Trace | host::Level::Debug)
    }
}

/// Store data of one plugin instance.
pub struct PluginState {
    /// The plugin's name, for messages.
    pub plugin: String,
    /// Host-owned resources the plugin holds handles to.
    pub table: ResourceTable,
    /// Live tensor handles.
    pub live_tensors: u32,
    /// Elements held by live tensors.
    pub live_elements: u64,
    /// Limits in force.
    pub limits: Limits,
    /// The only randomness the plugin sees.
    pub rng: ChaCha8Rng,
    /// What the plugin logged, in order (up to [`MAX_LOG_BYTES`]; the sink
    /// sees every line).
    pub log: Vec<LogLine>,
    /// Bytes of message text in `log`.
    pub log_bytes: usize,
    /// Receives log lines as they arrive (e.g. to print them).
    pub sink: Option<LogSink>,
    /// The panic message the plugin reported, if it panicked.
    pub panic: Option<String>,
    /// Set when the plugin asked for more memory than allowed.
    pub memory_limit_hit: bool,
    /// Set when a sandbox rule enforced by the host trapped the plugin.
    pub host_trap: Option<String>,
    /// The deadline and host-work allowance of this instance (a learner's
    /// trial) or of the current call (an optimizer's).
    pub budget: Budget,
    /// Whether every export call starts the budget afresh (optimizers,
    /// whose one instance serves the whole search).
    pub budget_per_call: bool,
    /// Set when the plugin ran out of its budget; why.
    pub budget_hit: Option<String>,
    /// Bytes of all memories and tables of the instance together.
    pub memory_in_use: u64,
    /// Bytes of the last memory or table growth allowed, taken back if the
    /// growth then fails.
    last_growth: u64,
    /// The model a learner works on; `None` for optimizers, and while the
    /// host itself trains the model.
    pub model: Option<ModelContext>,
    /// Last progress report (done, total, message).
    pub progress: Option<(u64, u64, String)>,
    /// Wall time spent inside export calls of this instance (including the
    /// host calls they make), in seconds.
    pub call_seconds: f64,
    /// Export calls made.
    pub calls: u64,
}

impl PluginState {
    /// Fresh state for one instance of `plugin`.
    pub fn new(plugin: &str, limits: Limits, rng: ChaCha8Rng) -> Self {
        PluginState {
            plugin: plugin.to_string(),
            limits: limits.clone(),
            table: ResourceTable::new(),
            live_tensors: 0,
            live_elements: 0,
            rng,
            log: Vec::new(),
            log_bytes: 0,
            sink: None,
            panic: None,
            memory_limit_hit: false,
            host_trap: None,
            budget: Budget::start(limits.trial_seconds, limits.host_work),
            budget_per_call: false,
            budget_hit: None,
            memory_in_use: 0,
            last_growth: 0,
            model: None,
            progress: None,
            call_seconds: 0.0,
            calls: 0,
        }
    }

    /// Stores a tensor and returns its handle, enforcing the handle and
    /// element caps. Exceeding them traps the plugin.
    pub fn push_tensor(
        &mut self,
        t: candle_core::Tensor,
    ) -> wasmtime::Result<Resource<HostTensorData>> {
        if self.live_tensors >= self.limits.max_tensors {
            return Err(self.trap(format!(
                "it holds more than {} live tensor handles; drop tensors it no longer needs (or raise --plugin-tensors)",
                self.limits.max_tensors
            )));
        }
        let n = t.elem_count() as u64;
        if self.live_elements + n > self.limits.max_live_elements() {
            return Err(self.trap(format!(
                "its live tensors would hold more than {} elements",
                self.limits.max_live_elements()
            )));
        }
        let r = self.table.push(HostTensorData(t))?;
        self.live_tensors += 1;
        self.live_elements += n;
        Ok(r)
    }

    /// The tensor behind a handle. An unknown handle traps.
    pub fn tensor(&self, r: &Resource<HostTensorData>) -> wasmtime::Result<candle_core::Tensor> {
        match self.table.get(r) {
            Ok(t) => Ok(t.0.clone()),
            Err(_) => Err(wasmtime::Error::msg(format!(
                "tensor handle {} is not a live tensor of this plugin",
                r.rep()
            ))),
        }
    }

    /// Frees a tensor handle.
    pub fn drop_tensor(&mut self, r: Resource<HostTensorData>) -> wasmtime::Result<()> {
        let t = self.table.delete(r)?;
        self.live_tensors -= 1;
        self.live_elements -= t.0.elem_count() as u64;
        Ok(())
    }

    /// Records a sandbox violation and returns the trap to raise.
    pub fn trap(&mut self, message: String) -> wasmtime::Error {
        self.host_trap = Some(message.clone());
        wasmtime::Error::msg(message)
    }

    /// Records that the budget ran out and returns the trap to raise.
    pub fn budget_trap(&mut self, message: String) -> wasmtime::Error {
        self.budget_hit = Some(message.clone());
        wasmtime::Error::msg(message)
    }

    /// Charges `work` element-operations of host work for `what` against
    /// the budget, before the host does it; traps when the budget cannot
    /// pay (or its deadline has passed).
    pub fn charge(&mut self, what: &str, work: u64) -> wasmtime::Result<()> {
        match self.budget.charge(what, work) {
            Ok(()) => Ok(()),
            Err(m) => Err(self.budget_trap(m)),
        }
    }

    /// Charges one tensor operation of `work` element-operations (see
    /// [`Budget::charge_op`]); traps when it cannot be paid.
    pub fn charge_op(&mut self, what: &str, work: u64) -> wasmtime::Result<()> {
        match self.budget.charge_op(what, work) {
            Ok(()) => Ok(()),
            Err(m) => Err(self.budget_trap(m)),
        }
    }

    /// Traps when the deadline has passed (between steps of a host loop).
    pub fn check_deadline(&mut self) -> wasmtime::Result<()> {
        match self.budget.check_time() {
            Ok(()) => Ok(()),
            Err(m) => Err(self.budget_trap(m)),
        }
    }

    /// Records a log line from the plugin.
    pub fn push_log(&mut self, level: host::Level, message: String) {
        if level == host::Level::Error {
            if let Some(rest) = message.strip_prefix(PANIC_PREFIX) {
                self.panic = Some(rest.to_string());
            }
        }
        let line = LogLine { level, message };
        if let Some(sink) = self.sink.as_mut() {
            sink(&self.plugin, &line);
        }
        if self.log_bytes + line.message.len() <= MAX_LOG_BYTES {
            self.log_bytes += line.message.len();
            self.log.push(line);
        }
    }

    /// Clears the per-call trap markers before a new export call.
    pub fn reset_call_markers(&mut self) {
        self.panic = None;
        self.memory_limit_hit = false;
        self.host_trap = None;
        self.budget_hit = None;
        if self.budget_per_call {
            self.budget.restart();
        }
    }

    /// Accounts a memory or table growing from `current` to `desired`
    /// bytes against the one budget of all memories and tables; refuses
    /// (with a trap) growth past it.
    fn grow(&mut self, what: &str, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let extra = desired.saturating_sub(current);
        let total = self.memory_in_use.saturating_add(extra);
        if total > self.limits.memory_bytes {
            self.memory_limit_hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes (all memories and tables together) reached: growing a {what} \
                 by {extra} bytes with {} bytes in use",
                self.limits.memory_bytes, self.memory_in_use
            )));
        }
        self.memory_in_use = total;
        self.last_growth = extra;
        Ok(true)
    }

    /// Takes back the growth last allowed, which then failed.
    fn growth_failed(&mut self) {
        self.memory_in_use = self.memory_in_use.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

/// One budget per instance: every memory and table of the plugin, whatever
/// core instance declared it, is paid from [`Limits::memory_bytes`], and
/// their number is capped, so a component cannot multiply its allowance by
/// declaring many memories.
impl wasmtime::ResourceLimiter for PluginState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        self.grow("memory", current as u64, desired as u64)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.growth_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > 1_000_000 || maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let bytes = |n: usize| (n as u64).saturating_mul(limits::TABLE_ELEMENT_BYTES);
        self.grow("table", bytes(current), bytes(desired))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.growth_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        limits::MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        limits::MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        limits::MAX_TABLES
    }
}

impl host::Host for PluginState {
    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        // Bounded and escaped before it is kept, printed or recorded.
        let message = super::bounds::text(&message, super::bounds::MAX_LOG_LINE_BYTES);
        self.push_log(level, message);
        Ok(())
    }

    fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        self.progress = Some((
            done,
            total,
            super::bounds::text(&message, super::bounds::MAX_SUMMARY_BYTES),
        ));
        Ok(())
    }

    fn random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.rng.next_u64())
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if u64::from(len) > self.limits.max_copy_elements * 4 {
            return Err(self.trap(format!("it asked for {len} random bytes at once")));
        }
        let mut v = vec![0u8; len as usize];
        self.rng.fill_bytes(&mut v);
        Ok(v)
    }

    fn limits(&mut self) -> wasmtime::Result<host::SandboxLimits> {
        Ok(host::SandboxLimits {
            max_tensors: self.limits.max_tensors,
            max_copy_elements: self.limits.max_copy_elements,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    fn state(memory_bytes: u64) -> PluginState {
        let limits = Limits {
            memory_bytes,
            ..Limits::default()
        };
        PluginState::new("test", limits, crate::rng::stream(0, &["t"]))
    }

    #[test]
    fn every_memory_and_table_is_paid_from_one_budget() {
        let mib = 1usize << 20;
        let mut s = state(8 << 20);
        // Three memories of 2 MiB each and a table of 64 Ki elements
        // (512 KiB): 6.5 MiB, within 8.
        for _ in 0..3 {
            assert!(s.memory_growing(0, 2 * mib, None).unwrap());
        }
        assert!(s.table_growing(0, 64 << 10, None).unwrap());
        assert_eq!(s.memory_in_use, (6 << 20) + (512 << 10));
        // A fourth memory of 2 MiB would fit the cap alone, not the sum.
        let e = s.memory_growing(0, 2 * mib, None).unwrap_err();
        assert!(
            e.to_string().contains("all memories and tables together"),
            "{e}"
        );
        assert!(s.memory_limit_hit);
        // Growth that then fails is taken back.
        assert!(s.memory_growing(2 * mib, 3 * mib, None).unwrap());
        s.memory_grow_failed(wasmtime::Error::msg("failed"))
            .unwrap();
        assert_eq!(s.memory_in_use, (6 << 20) + (512 << 10));
        // Growth past a memory's own maximum is refused without a charge.
        assert!(!s.memory_growing(0, mib, Some(mib / 2)).unwrap());
        assert_eq!(s.memory_in_use, (6 << 20) + (512 << 10));
    }

    #[test]
    fn the_number_of_memories_tables_and_instances_is_capped() {
        let s = state(8 << 20);
        assert_eq!(s.memories(), limits::MAX_MEMORIES);
        assert_eq!(s.tables(), limits::MAX_TABLES);
        assert_eq!(s.instances(), limits::MAX_CORE_INSTANCES);
    }
}
