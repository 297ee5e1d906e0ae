//! What a plugin runs under: a tenant's limits and settings, and the
//! engine-wide sizing shared by every tenant.
//!
//! Domain types: the configuration file is validated into them
//! ([`crate::config`]), the runtime only reads them. Every value here has
//! already passed validation (a non-zero deadline, a memory limit within the
//! engine's, and so on).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::background::HeavyPriority;

/// A tenant's `settings` table: what `config-get` answers its plugin.
pub type Settings = BTreeMap<String, String>;

/// Default wall-clock budget of one plugin invocation.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(500);

/// Default linear-memory limit of one plugin instance.
pub const DEFAULT_MEMORY: u64 = 32 * MIB;

/// Default of `limits.log_volume`: plugin log bytes per window.
pub const DEFAULT_LOG_VOLUME: u64 = 256 * 1024;

/// Default of `limits.log_window`.
pub const DEFAULT_LOG_WINDOW: Duration = Duration::from_secs(10);

/// Default of `limits.reuse_max_requests`: requests one reused instance serves before it is dropped.
pub const DEFAULT_REUSE_MAX_REQUESTS: u32 = 1000;

pub(crate) const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// What one invocation of a tenant's plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory: u64,
    /// Wall-clock budget of one invocation (instantiation included).
    pub deadline: Duration,
    /// Fuel per invocation; `None`: unmetered (or, on a metering engine, unlimited).
    pub fuel: Option<u64>,
    /// Invocations of this tenant's plugin in flight at once; beyond → 503.
    pub max_concurrency: u32,
    /// Whether a request gets a new instance or may reuse one of this tenant's warm ones.
    pub instance_mode: InstanceMode,
    /// Bytes of plugin log lines per `log_window`, all requests together;
    /// beyond, lines are dropped and counted ([`crate::log::LogBudget`]).
    pub log_volume: u64,
    /// The window `log_volume` is counted over.
    pub log_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            deadline: DEFAULT_DEADLINE,
            fuel: None,
            max_concurrency: 64,
            instance_mode: InstanceMode::Fresh,
            log_volume: DEFAULT_LOG_VOLUME,
            log_window: DEFAULT_LOG_WINDOW,
        }
    }
}

/// How a tenant's requests get their plugin instance (`limits.instance_mode`).
/// The isolation each gives is documented on [`crate::plugin::Instances`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// A new instance per request, dropped when it ends: nothing survives between requests.
    #[default]
    Fresh,
    /// Warm instances of this tenant are kept and reused, each for at most
    /// `max_requests` requests, and only while every call on it succeeded.
    Reuse {
        /// Requests one instance serves before it is dropped.
        max_requests: u32,
    },
}

/// Engine-wide sizing of the instance pool (shared by all tenants).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Plugin instances alive at once across all tenants.
    pub max_instances: u32,
    /// Upper bound of any tenant's memory limit (sizes the pool's slots).
    pub max_memory: u64,
    /// Whether any tenant meters fuel (fuel metering is an engine-wide setting).
    pub fuel: bool,
    /// Where compiled plugins are cached (`None`: every start compiles).
    pub cache_dir: Option<PathBuf>,
    /// What the cache may hold; past it the least recently used files go.
    pub cache_max_size: u64,
    /// Bytes of a linear memory's slot kept resident (reset in place rather
    /// than given back to the kernel) after its instance is dropped, for as
    /// long as the pool lives (see [`crate::recycle`] for how it ends).
    pub memory_keep_resident: u64,
    /// The same for a table's slot.
    pub table_keep_resident: u64,
    /// Pool slots that served a plugin and are now unused that the pool
    /// prefers over never-used ones, up to this many: bounds how many slots
    /// (each keeping up to the keep-resident sizes) are warm at low load.
    pub max_unused_warm_slots: u32,
    /// The most the pool may keep resident in unused slots for longer than
    /// `idle_resident_grace`; past it the tenants move to a new engine and
    /// the old pool's memory goes back to the kernel ([`crate::recycle`]).
    /// `None`: never (what is kept stays, up to `max_instances` ×
    /// the keep-resident sizes).
    pub idle_resident_limit: Option<u64>,
    /// How long the pool may keep more than `idle_resident_limit`.
    pub idle_resident_grace: Duration,
    /// Plugin calls running wasm at once, all tenants together (the fair
    /// CPU scheduler's slots, [`crate::plugin::CpuScheduler`]).
    pub cpu_slots: u32,
    /// Of those, the most one tenant's calls may hold at once.
    pub cpu_slots_per_tenant: u32,
    /// The operating-system priority of heavy tenants' calls.
    pub heavy_priority: HeavyPriority,
}

/// Default of `engine.cpu_slots`: the cores this process may use.
pub fn default_cpu_slots() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// Default of `engine.cpu_slots_per_tenant` for `slots` slots: all but one
/// (at least one), so one tenant never holds every slot when there are two.
pub fn default_cpu_slots_per_tenant(slots: u32) -> u32 {
    slots.saturating_sub(1).max(1)
}

/// Default of `engine.memory_keep_resident`.
pub const DEFAULT_MEMORY_KEEP_RESIDENT: u64 = MIB;

/// Default of `engine.table_keep_resident`.
pub const DEFAULT_TABLE_KEEP_RESIDENT: u64 = 64 * 1024;

/// Default of `engine.idle_resident_limit`: twice what the warm set of
/// [`DEFAULT_MAX_UNUSED_WARM_SLOTS`] slots keeps at the default keep-resident
/// sizes, so steady traffic (which keeps about that set warm) never
/// recycles, and what a burst leaves beyond it does.
pub const DEFAULT_IDLE_RESIDENT_LIMIT: u64 = 2
    * DEFAULT_MAX_UNUSED_WARM_SLOTS as u64
    * (DEFAULT_MEMORY_KEEP_RESIDENT + DEFAULT_TABLE_KEEP_RESIDENT);

/// Default of `engine.idle_resident_grace`.
pub const DEFAULT_IDLE_RESIDENT_GRACE: Duration = Duration::from_secs(10);

/// Default of `engine.max_unused_warm_slots`.
pub const DEFAULT_MAX_UNUSED_WARM_SLOTS: u32 = 16;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 256,
            max_memory: 256 * MIB,
            fuel: false,
            cache_dir: None,
            cache_max_size: GIB,
            memory_keep_resident: DEFAULT_MEMORY_KEEP_RESIDENT,
            table_keep_resident: DEFAULT_TABLE_KEEP_RESIDENT,
            max_unused_warm_slots: DEFAULT_MAX_UNUSED_WARM_SLOTS,
            idle_resident_limit: Some(DEFAULT_IDLE_RESIDENT_LIMIT),
            idle_resident_grace: DEFAULT_IDLE_RESIDENT_GRACE,
            cpu_slots: default_cpu_slots(),
            cpu_slots_per_tenant: default_cpu_slots_per_tenant(default_cpu_slots()),
            heavy_priority: HeavyPriority::default(),
        }
    }
}
