//! The kernel API model: one declarative table of what kernel interfaces
//! mean (locks, context-creating registrations, sleeping calls, lists,
//! per-CPU data, static calls, undo pairs).
//!
//! The default table is `api_model.toml`, embedded at build time; users
//! replace it with `--api-model FILE`. Every other layer asks this model
//! instead of knowing kernel function names itself.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

/// The embedded default table.
pub const DEFAULT_API_MODEL: &str = include_str!("api_model.toml");

/// Properties of an execution context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSpec {
    pub description: String,
    /// Code in this context must not sleep.
    pub atomic: bool,
    pub irqs_off: bool,
    /// Other CPUs may run kernel code concurrently.
    pub other_cpus_run: bool,
    /// Runs on another CPU or thread than the code that registered or
    /// triggered it: the trigger's locks are not held here.
    #[serde(default)]
    pub remote: bool,
    /// Locks the machinery holds for the whole callback on the triggering
    /// side (they exclude other holders, but are not held here).
    #[serde(default)]
    pub serialized_by: Vec<String>,
    /// Locks the code that runs the callback holds on some of its paths
    /// only (`cpus_read_lock()` around a cpufreq transition): an arrow
    /// from each to what the callback takes, as lockdep sees on a machine
    /// that takes such a path, but they exclude nothing, so no rule can
    /// count on them as it does on `serialized_by`.
    #[serde(default)]
    pub may_run_under: Vec<String>,
    /// Runs on the way down of a reboot, halt or power-off: the reboot
    /// path disables CPU hotplug (`migrate_to_reboot_cpu()`) before the
    /// machine stops, and nothing runs afterwards that relies on per-CPU
    /// state staying in step with the hotplug callbacks.
    #[serde(default)]
    pub system_shutdown: bool,
    /// Runs as an interrupt of whatever the CPU was executing (an IPI or
    /// other hardirq), which may be a guest of another hypervisor: state
    /// read from the CPU here may not be the host's (HW002).
    #[serde(default)]
    pub interrupts_running_code: bool,
    /// Runs whether or not any VM exists (module load and unload): work
    /// done here is done for no VM (HW012).
    #[serde(default)]
    pub runs_without_vm: bool,
}

/// A call that registers callbacks to run in another context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub functions: Vec<String>,
    /// Fixed context; absent when it comes from a CPU hotplug state.
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default)]
    pub callback_args: Vec<usize>,
    /// Argument holding the `enum cpuhp_state` value.
    #[serde(default)]
    pub cpuhp_state_arg: Option<usize>,
    /// Argument that is `&struct` whose `fields` are the callbacks.
    #[serde(default)]
    pub struct_arg: Option<usize>,
    #[serde(default)]
    pub fields: Vec<String>,
    /// The registration also runs the first callback on CPUs already online.
    #[serde(default)]
    pub invokes_now: bool,
    /// Position of the `wait` argument of a cross-CPU call.
    #[serde(default)]
    pub wait_arg: Option<usize>,
    /// The call returns only once the callbacks have run everywhere
    /// (`stop_machine()`), whatever its arguments.
    #[serde(default)]
    pub waits: bool,
}

impl Registration {
    /// The argument positions of the callbacks a call of this registration
    /// runs while its caller waits for them: all of them for a call that
    /// always waits; for a cross-CPU call, unless its `wait` argument is a
    /// literal 0 (or absent: the caller is then assumed to wait, as the
    /// callers that do not pass it are); the startup callback of a
    /// registration that runs it on the CPUs already online.
    pub fn waited_callbacks(&self, args: &[crate::facts::Arg]) -> Vec<usize> {
        if self.waits {
            return self.callback_args.clone();
        }
        if let Some(i) = self.wait_arg {
            let no_wait = args.get(i).is_some_and(|a| matches!(a.text.trim(), "0" | "false"));
            return if no_wait { Vec::new() } else { self.callback_args.clone() };
        }
        if self.invokes_now {
            return self.callback_args.first().copied().into_iter().collect();
        }
        Vec::new()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMacro {
    pub macros: Vec<String>,
    pub context: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryStruct {
    pub struct_type: String,
    pub fields: Vec<String>,
    pub context: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockKindSpec {
    pub sleeps: bool,
    pub atomic: bool,
    /// Holding it keeps other CPUs out of the section it guards (false for
    /// states local to a CPU or a reader: preemption or interrupts off,
    /// the RCU read side), so it can guard data against writers elsewhere.
    #[serde(default = "yes")]
    pub excludes: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOps {
    pub acquire: Vec<String>,
    pub release: Vec<String>,
    pub kind: String,
    #[serde(default)]
    pub lock_arg: Option<usize>,
    /// Fixed lock name for functions without a lock argument.
    #[serde(default)]
    pub lock: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardSpec {
    pub kind: String,
    #[serde(default)]
    pub lock: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sleeping {
    pub functions: Vec<String>,
    pub gfp_allocators: Vec<String>,
    pub atomic_gfp: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOps {
    pub functions: Vec<String>,
    pub op: ListOpKind,
    pub entry_arg: usize,
    #[serde(default)]
    pub head_arg: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListOpKind {
    Add,
    Del,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListIterators {
    pub macros: Vec<String>,
    pub head_arg: usize,
    /// Negative counts from the end (the member is the last argument).
    pub member_arg: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpumaskOp {
    pub function: String,
    #[serde(default)]
    pub cpu_arg: Option<usize>,
    pub mask_arg: usize,
    pub op: CpumaskOpKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpumaskOpKind {
    Test,
    Set,
    Clear,
    /// An operation on the whole mask (not indexed by one CPU).
    Whole,
    Alloc,
    Free,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PercpuAccessor {
    pub function: String,
    pub var_arg: usize,
    #[serde(default)]
    pub cpu_arg: Option<usize>,
    #[serde(default)]
    pub current_cpu: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpus {
    pub current_cpu: Vec<String>,
    pub cpumask_ops: Vec<CpumaskOp>,
    pub cpumask_types: Vec<String>,
    pub percpu_accessors: Vec<PercpuAccessor>,
    pub percpu_define_macros: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReads {
    pub functions: Vec<String>,
    pub dest_arg: usize,
}

/// What makes an enable hook heavy (HW012): kernel primitives only, never
/// the helpers built on them (those are found through what they call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heavy {
    /// Whole-machine maintenance: costly wherever it is called (flushing
    /// every TLB entry or the whole cache).
    pub functions: Vec<String>,
    /// Per-entry hardware maintenance (writing or invalidating one TLB or
    /// cache entry): costly when done in a loop over the entries.
    #[serde(default)]
    pub per_entry: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticCalls {
    pub prefix: String,
    pub ops_type: String,
    #[serde(default)]
    pub call_macros: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoPair {
    #[serde(rename = "do")]
    pub do_: Vec<String>,
    pub undo: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoSuffix {
    #[serde(rename = "do")]
    pub do_: String,
    pub undo: Vec<String>,
}

/// A call that increments or decrements a counter (`atomic_inc(&x)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterOp {
    pub functions: Vec<String>,
    /// Argument position of the counter (`&x`).
    pub var_arg: usize,
    /// `inc` or `dec`.
    pub op: String,
}

/// The whole table, as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTable {
    pub contexts: BTreeMap<String, ContextSpec>,
    pub registrations: Vec<Registration>,
    pub entry_macros: Vec<EntryMacro>,
    pub entry_structs: Vec<EntryStruct>,
    pub lock_kinds: BTreeMap<String, LockKindSpec>,
    pub lock_ops: Vec<LockOps>,
    pub guards: BTreeMap<String, GuardSpec>,
    pub sleeping: Sleeping,
    pub list_ops: Vec<ListOps>,
    pub list_iterators: Vec<ListIterators>,
    pub cpus: Cpus,
    pub state_reads: Vec<StateReads>,
    pub heavy: Heavy,
    pub static_calls: Vec<StaticCalls>,
    pub undo_pairs: Vec<UndoPair>,
    pub undo_suffixes: Vec<UndoSuffix>,
    /// Cross-CPU calls and iterators that reach every online CPU (HW004).
    #[serde(default)]
    pub online_cpus: OnlineCpus,
    /// Counter increments and decrements (HW010).
    #[serde(default)]
    pub counter_ops: Vec<CounterOp>,
    /// Lock ordering (HW014): read acquisitions, waits that are
    /// acquisitions, what kernel functions outside KVM take.
    #[serde(default)]
    pub lock_order: LockOrderSpec,
}

/// Calls whose targets are the CPUs online at the time of the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineCpus {
    /// Cross-CPU calls to every online CPU (`on_each_cpu`).
    #[serde(default)]
    pub broadcasts: Vec<String>,
    /// Cross-CPU calls to a mask, broadcasts when the mask is an online mask.
    #[serde(default)]
    pub masked_broadcasts: Vec<MaskedBroadcast>,
    /// Masks of the online CPUs (`cpu_online_mask`).
    #[serde(default)]
    pub online_masks: Vec<String>,
    /// Iterator macros over the online CPUs (`for_each_online_cpu`).
    #[serde(default)]
    pub iterators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedBroadcast {
    pub function: String,
    pub mask_arg: usize,
}

/// What a call means to lock tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEffect {
    Acquire,
    Release,
}

/// A lock operation recognised on a call: which lock, what kind, which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOpMatch<'a> {
    pub effect: LockEffect,
    pub kind: &'a str,
    /// Argument position of the lock expression, or a fixed lock name.
    pub lock_arg: Option<usize>,
    pub fixed_lock: Option<&'a str>,
    /// `*_trylock`: the lock is held only when the call succeeds.
    pub is_try: bool,
}

/// Errors loading an API model file.
#[derive(Debug, thiserror::Error)]
pub enum ApiModelError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The hash of the table's canonical JSON (maps are ordered, so equal
/// tables give equal bytes).
fn table_fingerprint(table: &ApiTable) -> u64 {
    crate::hash::fnv(&[&serde_json::to_vec(table).unwrap_or_default()])
}

/// The table plus lookup indexes.
#[derive(Debug, Clone)]
pub struct ApiModel {
    pub table: ApiTable,
    lock_ops: HashMap<String, (usize, LockEffect)>,
    registrations: HashMap<String, usize>,
    list_ops: HashMap<String, usize>,
    list_iterators: HashMap<String, usize>,
    cpumask_ops: HashMap<String, usize>,
    percpu_accessors: HashMap<String, usize>,
    sleeping: HashMap<String, ()>,
    gfp_allocators: HashMap<String, ()>,
    state_reads: HashMap<String, usize>,
    heavy: HashMap<String, ()>,
    entry_macros: HashMap<String, usize>,
    /// Hash of the table's contents, for cache keys.
    fingerprint: u64,
}

impl Default for ApiModel {
    fn default() -> Self {
        ApiModel::from_toml("<embedded api_model.toml>", DEFAULT_API_MODEL)
            .expect("the embedded API model is valid (checked by tests)")
    }
}

/// The largest `--api-model` file read: 250 times the embedded table
/// (17 KiB), far below what would strain memory.
pub const MAX_API_MODEL_BYTES: u64 = 4 << 20;

impl ApiModel {
    /// Parse and check a table.
    pub fn from_toml(path: &str, text: &str) -> Result<Self, ApiModelError> {
        let table: ApiTable = toml::from_str(text)
            .map_err(|e| ApiModelError::Parse { path: path.to_string(), message: e.to_string() })?;
        Self::from_table(path, table)
    }

    /// Load a table from a file: a regular file of at most
    /// [`MAX_API_MODEL_BYTES`] (a FIFO or a device is refused without
    /// being read, so `/dev/zero` neither blocks nor fills memory).
    pub fn load(path: &std::path::Path) -> Result<Self, ApiModelError> {
        use crate::read::{human_size, read_bounded, Links};
        let parse_error = |message: String| ApiModelError::Parse { path: path.display().to_string(), message };
        let bytes = read_bounded(path, MAX_API_MODEL_BYTES, Links::Follow).map_err(|e| {
            parse_error(format!(
                "cannot read the API model: {e} (an API model is a TOML file of at most {})",
                human_size(MAX_API_MODEL_BYTES)
            ))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| parse_error(format!("not UTF-8: {e}")))?;
        Self::from_toml(&path.display().to_string(), &text)
    }

    fn from_table(path: &str, table: ApiTable) -> Result<Self, ApiModelError> {
        let invalid = |message: String| ApiModelError::Invalid { path: path.to_string(), message };
        for ops in &table.lock_ops {
            if !table.lock_kinds.contains_key(&ops.kind) {
                return Err(invalid(format!(
                    "lock_ops {:?}: unknown lock kind `{}` (known: {})",
                    ops.acquire,
                    ops.kind,
                    table.lock_kinds.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if ops.lock_arg.is_none() && ops.lock.is_none() {
                return Err(invalid(format!("lock_ops {:?}: needs `lock_arg` or `lock`", ops.acquire)));
            }
        }
        for (name, g) in &table.guards {
            if !table.lock_kinds.contains_key(&g.kind) {
                return Err(invalid(format!("guards.{name}: unknown lock kind `{}`", g.kind)));
            }
        }
        for r in &table.registrations {
            match (&r.context, r.cpuhp_state_arg) {
                (Some(c), _) if !table.contexts.contains_key(c) => {
                    return Err(invalid(format!("registrations {:?}: unknown context `{c}`", r.functions)))
                }
                (None, None) => {
                    return Err(invalid(format!(
                        "registrations {:?}: needs `context` or `cpuhp_state_arg`",
                        r.functions
                    )))
                }
                _ => {}
            }
        }
        for e in &table.entry_macros {
            if !table.contexts.contains_key(&e.context) {
                return Err(invalid(format!("entry_macros {:?}: unknown context `{}`", e.macros, e.context)));
            }
        }
        for e in &table.entry_structs {
            if !table.contexts.contains_key(&e.context) {
                return Err(invalid(format!("entry_structs {}: unknown context `{}`", e.struct_type, e.context)));
            }
        }
        for needed in ["process", "cpuhp_prepare", "cpuhp_starting", "cpuhp_online"] {
            if !table.contexts.contains_key(needed) {
                return Err(invalid(format!("contexts: missing required context `{needed}`")));
            }
        }

        let mut lock_ops = HashMap::default();
        for (i, ops) in table.lock_ops.iter().enumerate() {
            for f in &ops.acquire {
                lock_ops.insert(f.clone(), (i, LockEffect::Acquire));
            }
            for f in &ops.release {
                lock_ops.insert(f.clone(), (i, LockEffect::Release));
            }
        }
        let index = |names: &mut dyn Iterator<Item = (usize, &String)>| {
            let mut m = HashMap::default();
            for (i, n) in names {
                m.insert(n.clone(), i);
            }
            m
        };
        let registrations = index(
            &mut table.registrations.iter().enumerate().flat_map(|(i, r)| r.functions.iter().map(move |f| (i, f))),
        );
        let list_ops =
            index(&mut table.list_ops.iter().enumerate().flat_map(|(i, r)| r.functions.iter().map(move |f| (i, f))));
        let list_iterators =
            index(&mut table.list_iterators.iter().enumerate().flat_map(|(i, r)| r.macros.iter().map(move |f| (i, f))));
        let cpumask_ops = index(&mut table.cpus.cpumask_ops.iter().enumerate().map(|(i, o)| (i, &o.function)));
        let percpu_accessors =
            index(&mut table.cpus.percpu_accessors.iter().enumerate().map(|(i, o)| (i, &o.function)));
        let state_reads =
            index(&mut table.state_reads.iter().enumerate().flat_map(|(i, r)| r.functions.iter().map(move |f| (i, f))));
        let entry_macros =
            index(&mut table.entry_macros.iter().enumerate().flat_map(|(i, r)| r.macros.iter().map(move |f| (i, f))));
        let set = |v: &[String]| v.iter().map(|f| (f.clone(), ())).collect::<HashMap<_, _>>();
        Ok(ApiModel {
            sleeping: set(&table.sleeping.functions),
            gfp_allocators: set(&table.sleeping.gfp_allocators),
            heavy: set(&table.heavy.functions),
            lock_ops,
            registrations,
            list_ops,
            list_iterators,
            cpumask_ops,
            percpu_accessors,
            state_reads,
            entry_macros,
            fingerprint: table_fingerprint(&table),
            table,
        })
    }

    /// A hash of the table's contents (stable across runs): two models with
    /// the same fingerprint give the same analysis, so cached results are
    /// keyed by it.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The properties of a context kind, by its table key.
    pub fn context(&self, name: &str) -> Option<&ContextSpec> {
        self.table.contexts.get(name)
    }

    /// A lock operation performed by a call to `function`.
    pub fn lock_op(&self, function: &str) -> Option<LockOpMatch<'_>> {
        let (i, effect) = *self.lock_ops.get(function)?;
        let ops = &self.table.lock_ops[i];
        Some(LockOpMatch {
            effect,
            kind: &ops.kind,
            lock_arg: ops.lock_arg,
            fixed_lock: ops.lock.as_deref(),
            is_try: function.contains("trylock"),
        })
    }

    /// The guard type of `guard(type)` / `scoped_guard(type, ...)`.
    pub fn guard(&self, guard_type: &str) -> Option<&GuardSpec> {
        self.table.guards.get(guard_type)
    }

    /// Properties of a lock kind (`mutex`, `raw_spinlock`, ...).
    pub fn lock_kind(&self, kind: &str) -> Option<&LockKindSpec> {
        self.table.lock_kinds.get(kind)
    }

    pub fn registration(&self, function: &str) -> Option<&Registration> {
        self.registrations.get(function).map(|&i| &self.table.registrations[i])
    }

    /// The context of an entry macro (`module_init`).
    pub fn entry_macro(&self, name: &str) -> Option<&EntryMacro> {
        self.entry_macros.get(name).map(|&i| &self.table.entry_macros[i])
    }

    pub fn entry_structs(&self) -> &[EntryStruct] {
        &self.table.entry_structs
    }

    /// Whether a call may sleep by itself (not counting lock acquisition).
    /// `args` are the argument texts, to judge GFP flags of allocators.
    pub fn call_may_sleep(&self, function: &str, args: &[&str]) -> bool {
        if self.sleeping.contains_key(function) {
            return true;
        }
        if self.gfp_allocators.contains_key(function) {
            let atomic = args.iter().any(|a| self.table.sleeping.atomic_gfp.iter().any(|g| a.contains(g.as_str())));
            return !atomic;
        }
        false
    }

    /// Whether a cross-CPU call reaches every online CPU: a broadcast, or a
    /// masked call given an online mask (argument texts in `args`).
    pub fn is_online_broadcast(&self, function: &str, args: &[&str]) -> bool {
        let oc = &self.table.online_cpus;
        if oc.broadcasts.iter().any(|b| b == function) {
            return true;
        }
        oc.masked_broadcasts.iter().any(|m| {
            m.function == function
                && args
                    .get(m.mask_arg)
                    .is_some_and(|a| oc.online_masks.iter().any(|o| a.trim().trim_start_matches('&') == o))
        })
    }

    /// Whether an iterator macro walks the online CPUs.
    pub fn is_online_cpu_iterator(&self, macro_name: &str) -> bool {
        self.table.online_cpus.iterators.iter().any(|i| i == macro_name)
    }

    /// The counter operation a call performs (`atomic_inc`), if any.
    pub fn counter_op(&self, function: &str) -> Option<&CounterOp> {
        self.table.counter_ops.iter().find(|c| c.functions.iter().any(|f| f == function))
    }

    /// Whether `function` is an allocator that sleeps unless passed an
    /// atomic GFP flag.
    pub fn is_gfp_allocator(&self, function: &str) -> bool {
        self.gfp_allocators.contains_key(function)
    }

    pub fn list_op(&self, function: &str) -> Option<&ListOps> {
        self.list_ops.get(function).map(|&i| &self.table.list_ops[i])
    }

    pub fn list_iterator(&self, macro_name: &str) -> Option<&ListIterators> {
        self.list_iterators.get(macro_name).map(|&i| &self.table.list_iterators[i])
    }

    pub fn cpumask_op(&self, function: &str) -> Option<&CpumaskOp> {
        self.cpumask_ops.get(function).map(|&i| &self.table.cpus.cpumask_ops[i])
    }

    pub fn percpu_accessor(&self, function: &str) -> Option<&PercpuAccessor> {
        self.percpu_accessors.get(function).map(|&i| &self.table.cpus.percpu_accessors[i])
    }

    pub fn is_current_cpu_call(&self, function: &str) -> bool {
        self.table.cpus.current_cpu.iter().any(|f| f == function)
    }

    pub fn is_cpumask_type(&self, type_text: &str) -> bool {
        let t = type_text.trim();
        self.table.cpus.cpumask_types.iter().any(|c| c == t)
    }

    pub fn is_percpu_define(&self, macro_name: &str) -> bool {
        self.table.cpus.percpu_define_macros.iter().any(|m| m == macro_name)
    }

    pub fn state_read(&self, function: &str) -> Option<&StateReads> {
        self.state_reads.get(function).map(|&i| &self.table.state_reads[i])
    }

    pub fn is_heavy(&self, function: &str) -> bool {
        self.heavy.contains_key(function)
    }

    /// Whether `function` maintains one hardware TLB/cache entry (heavy in
    /// a loop over the entries, HW012).
    pub fn is_per_entry_maintenance(&self, function: &str) -> bool {
        self.table.heavy.per_entry.iter().any(|f| f == function)
    }

    /// Map a static-call key (or a call macro's argument) to the ops struct
    /// type and field it dispatches to.
    pub fn static_call_target(&self, key: &str, via_macro: Option<&str>) -> Option<(&str, String)> {
        for sc in &self.table.static_calls {
            match via_macro {
                Some(m) if sc.call_macros.iter().any(|c| c == m) => {
                    return Some((&sc.ops_type, key.to_string()));
                }
                Some(_) => continue,
                None => {}
            }
        }
        if via_macro.is_some() {
            return None;
        }
        // The longest matching prefix wins (`kvm_x86_pmu_` over `kvm_x86_`).
        self.table
            .static_calls
            .iter()
            .filter(|sc| key.starts_with(&sc.prefix))
            .max_by_key(|sc| sc.prefix.len())
            .map(|sc| (sc.ops_type.as_str(), key[sc.prefix.len()..].to_string()))
    }

    /// The calls that undo a call to `function`, from the pair table and the
    /// name-suffix table.
    pub fn undo_of(&self, function: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.table.undo_pairs {
            if p.do_.iter().any(|d| d == function) {
                out.extend(p.undo.iter().cloned());
            }
        }
        for s in &self.table.undo_suffixes {
            if let Some(stem) = function.strip_suffix(&s.do_) {
                if !stem.is_empty() {
                    out.extend(s.undo.iter().map(|u| format!("{stem}{u}")));
                }
            }
        }
        out
    }
}

/// How an acquisition takes its lock, as lockdep distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcquireMode {
    /// Exclusive (a mutex, a spinlock, a write lock, a wait for all readers).
    Write,
    /// Shared, but queued behind a waiting writer (`down_read()`,
    /// `cpus_read_lock()`): it can block while another reader holds the lock.
    Read,
    /// Shared and never blocked by a waiting writer while another reader
    /// holds it (`srcu_read_lock()`, `rcu_read_lock()`, `read_lock()`).
    RecursiveRead,
}

/// Lock-order knowledge (HW014), in `[lock_order]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOrderSpec {
    /// Acquire functions (of `lock_ops`) that take the lock shared, behind a waiting writer.
    #[serde(default)]
    pub read_acquire: Vec<String>,
    /// Acquire functions that take the lock shared, recursively.
    #[serde(default)]
    pub recursive_read_acquire: Vec<String>,
    /// Guard types taking their lock shared / shared recursively.
    #[serde(default)]
    pub read_guards: Vec<String>,
    #[serde(default)]
    pub recursive_read_guards: Vec<String>,
    /// Lock kinds that are states of the CPU, not locks (preemption,
    /// interrupts off): no order between them and real locks.
    #[serde(default)]
    pub unordered_kinds: Vec<String>,
    /// Waits for every reader of a lock class (`synchronize_srcu(&ssp)`):
    /// an exclusive acquisition of the class, as lockdep models it.
    #[serde(default)]
    pub reader_waits: Vec<LockWait>,
    /// What kernel functions outside the KVM directories take.
    #[serde(default)]
    pub takes: Vec<ExternTakes>,
    /// Waits for a completion (`wait_for_completion(&c)`): the completion at `arg`.
    #[serde(default)]
    pub completion_waits: Vec<ArgFunctions>,
    /// Signals of a completion (`complete(&c)`): the completion at `arg`.
    #[serde(default)]
    pub completion_signals: Vec<ArgFunctions>,
    /// Binding of a work item to its function (`INIT_WORK(&w, fn)`).
    #[serde(default)]
    pub work_inits: Vec<WorkInit>,
    /// Waits for a work item's function to finish (`flush_work(&w)`): the work at `arg`.
    #[serde(default)]
    pub work_waits: Vec<ArgFunctions>,
    /// Thread starts (`kthread_run(fn, ...)`): the thread function at
    /// `fn_arg`, bound to the task pointer the call's value is stored in.
    #[serde(default)]
    pub thread_starts: Vec<ThreadStart>,
    /// Waits for a thread to exit (`kthread_stop(task)`): the task at `arg`.
    #[serde(default)]
    pub thread_waits: Vec<ArgFunctions>,
}

/// A call waiting for all readers of the lock at `lock_arg` (or of `lock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWait {
    pub functions: Vec<String>,
    #[serde(default)]
    pub lock_arg: Option<usize>,
    #[serde(default)]
    pub lock: Option<String>,
}

/// Kernel functions outside KVM that take `lock` (mode `write`, `read` or
/// `recursive_read`) before returning; `taken_in` names where the kernel
/// takes it, so the entry can be checked against the real function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternTakes {
    pub functions: Vec<String>,
    pub lock: String,
    pub mode: AcquireMode,
    /// Where the kernel takes it: the file (relative to a full tree) and the
    /// function defined there that calls `acquire` (directly or through
    /// functions of the same file), so the entry can be checked.
    pub file: String,
    pub function: String,
    /// The acquire call made there (`cpus_read_lock`).
    pub acquire: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgFunctions {
    pub functions: Vec<String>,
    pub arg: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkInit {
    pub functions: Vec<String>,
    pub work_arg: usize,
    pub fn_arg: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStart {
    pub functions: Vec<String>,
    pub fn_arg: usize,
}

impl ApiModel {
    /// The mode an acquire function (or guard type) takes its lock in.
    pub fn acquire_mode(&self, function_or_guard: &str, is_guard: bool) -> AcquireMode {
        let lo = &self.table.lock_order;
        let (read, recursive) = if is_guard {
            (&lo.read_guards, &lo.recursive_read_guards)
        } else {
            (&lo.read_acquire, &lo.recursive_read_acquire)
        };
        if recursive.iter().any(|f| f == function_or_guard) {
            AcquireMode::RecursiveRead
        } else if read.iter().any(|f| f == function_or_guard) {
            AcquireMode::Read
        } else {
            AcquireMode::Write
        }
    }

    /// Whether a lock kind takes part in lock ordering.
    pub fn is_ordered_kind(&self, kind: &str) -> bool {
        !self.table.lock_order.unordered_kinds.iter().any(|k| k == kind)
    }

    /// The wait-for-readers entry of a call, if it is one.
    pub fn reader_wait(&self, function: &str) -> Option<&LockWait> {
        self.table.lock_order.reader_waits.iter().find(|w| w.functions.iter().any(|f| f == function))
    }

    /// What an external kernel function takes, if the model says.
    pub fn extern_takes<'s>(&'s self, function: &'s str) -> impl Iterator<Item = &'s ExternTakes> + 's {
        self.table.lock_order.takes.iter().filter(move |t| t.functions.iter().any(|f| f == function))
    }

    fn arg_of(list: &[ArgFunctions], function: &str) -> Option<usize> {
        list.iter().find(|w| w.functions.iter().any(|f| f == function)).map(|w| w.arg)
    }

    /// The completion argument of a wait on a completion.
    pub fn completion_wait_arg(&self, function: &str) -> Option<usize> {
        Self::arg_of(&self.table.lock_order.completion_waits, function)
    }

    /// The completion argument of a signal of a completion.
    pub fn completion_signal_arg(&self, function: &str) -> Option<usize> {
        Self::arg_of(&self.table.lock_order.completion_signals, function)
    }

    /// The work argument of a wait for a work item.
    pub fn work_wait_arg(&self, function: &str) -> Option<usize> {
        Self::arg_of(&self.table.lock_order.work_waits, function)
    }

    /// (work argument, function argument) of a work-item initialization.
    pub fn work_init(&self, function: &str) -> Option<(usize, usize)> {
        self.table
            .lock_order
            .work_inits
            .iter()
            .find(|w| w.functions.iter().any(|f| f == function))
            .map(|w| (w.work_arg, w.fn_arg))
    }

    /// The thread-function argument of a thread start.
    pub fn thread_start_arg(&self, function: &str) -> Option<usize> {
        self.table.lock_order.thread_starts.iter().find(|w| w.functions.iter().any(|f| f == function)).map(|w| w.fn_arg)
    }

    /// The task argument of a wait for a thread to exit.
    pub fn thread_wait_arg(&self, function: &str) -> Option<usize> {
        Self::arg_of(&self.table.lock_order.thread_waits, function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_and_indexes() {
        let m = ApiModel::default();
        let op = m.lock_op("raw_spin_lock").unwrap();
        assert_eq!(op.kind, "raw_spinlock");
        assert_eq!(op.effect, LockEffect::Acquire);
        assert!(!m.lock_kind("raw_spinlock").unwrap().sleeps);
        assert!(m.lock_kind("mutex").unwrap().sleeps);
        assert_eq!(m.lock_op("cpus_read_lock").unwrap().fixed_lock, Some("cpu_hotplug_lock"));
        assert_eq!(m.registration("on_each_cpu").unwrap().callback_args, vec![0]);
        assert_eq!(m.guard("mutex").unwrap().kind, "mutex");
        assert!(m.call_may_sleep("kzalloc", &["sizeof(*x)", "GFP_KERNEL"]));
        assert!(!m.call_may_sleep("kzalloc", &["sizeof(*x)", "GFP_ATOMIC"]));
        assert!(m.context("ipi").unwrap().other_cpus_run);
        assert!(!m.context("syscore").unwrap().other_cpus_run);
    }

    #[test]
    fn static_call_keys_map_to_ops_fields() {
        let m = ApiModel::default();
        assert_eq!(
            m.static_call_target("kvm_x86_hardware_enable", None),
            Some(("kvm_x86_ops", "hardware_enable".to_string()))
        );
        assert_eq!(
            m.static_call_target("enable_virtualization_cpu", Some("kvm_x86_call")),
            Some(("kvm_x86_ops", "enable_virtualization_cpu".to_string()))
        );
        assert_eq!(m.static_call_target("kvm_x86_pmu_refresh", None), Some(("kvm_pmu_ops", "refresh".to_string())));
        assert_eq!(m.static_call_target("other_key", None), None);
    }

    #[test]
    fn undo_pairs_come_from_table_and_suffixes() {
        let m = ApiModel::default();
        assert!(m.undo_of("list_add").contains(&"list_del".to_string()));
        assert!(m.undo_of("kvm_coalesced_mmio_init").contains(&"kvm_coalesced_mmio_free".to_string()));
        assert!(m.undo_of("hardware_enable_all").contains(&"hardware_disable_all".to_string()));
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let bad = DEFAULT_API_MODEL.replace("kind = \"mutex\"\nlock_arg = 0", "kind = \"mutexx\"\nlock_arg = 0");
        let err = ApiModel::from_toml("my.toml", &bad).unwrap_err().to_string();
        assert!(err.starts_with("my.toml: lock_ops"), "{err}");
        assert!(err.contains("unknown lock kind `mutexx`"), "{err}");
        let err = ApiModel::from_toml("my.toml", "contexts = 3").unwrap_err().to_string();
        assert!(err.starts_with("my.toml: "), "{err}");
    }
}
