//! The data a plugin instance's store carries: its tensors, its limits, its
//! random stream, its log, and (for learners) the model under compression.

use super::bindings::host;
use super::limits::Limits;
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
            table: ResourceTable::new(),
            live_tensors: 0,
            live_elements: 0,
            limits,
            rng,
            log: Vec::new(),
            log_bytes: 0,
            sink: None,
            panic: None,
            memory_limit_hit: false,
            host_trap: None,
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
    }
}

impl wasmtime::ResourceLimiter for PluginState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limits.memory_bytes {
            self.memory_limit_hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes reached",
                self.limits.memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
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
