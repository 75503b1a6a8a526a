//! The settings of a training run: loaded from a TOML file plus `--set key=value` overrides,
//! checked, and written back as the run's `config.toml`.
//!
//! Two types, as ripgrep separates its raw flags from its resolved settings (in its
//! `crates/core/flags/` folder, `lowargs.rs` holds the raw arguments and `hiargs.rs` the
//! resolved ones): an [`Override`] is one raw `--set` argument, checked only for syntax; a
//! [`Config`] is the resolved result, every key known, every value in range, every default
//! filled in. Resolution is one pipeline, so a value from `--set` is checked exactly like the
//! same value written in the file:
//!
//! 1. parse the file as TOML, remembering where every key and value was written;
//! 2. reject keys no setting has (with the nearest valid key as a suggestion);
//! 3. apply the overrides to the parsed document;
//! 4. deserialize into [`Config`] (type errors name the key path);
//! 5. [`Config::validate`] the ranges and the agent sections;
//! 6. only when a [`Registry`] is given ([`Config::load_checked`]): check that it has the
//!    environment id, and the settings against the environment's spaces
//!    ([`Config::validate_against`]). Reading a config never needs its environment: a run of a
//!    user's environment lists and loads anywhere; training, evaluating and resuming it need a
//!    registry (or factory) that builds it.
//!
//! Every error is a [`ConfigError`] whose message is one line naming where the bad setting was
//! written (`file:line:column` or the `--set` argument) and its full key path.
//!
//! Like ripgrep's `flags/` folder, one concern per file:
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | [`Config`], [`AgentKind`], the defaults, loading and writing |
//! | `overrides.rs` | [`Override`], one raw `--set` argument |
//! | `resolve.rs` | the pipeline above, and the spans that locate an error in the file |
//! | `schema.rs` | which keys exist (from the serialized defaults), "did you mean" suggestions |
//! | `validate.rs` | [`Config::validate`] and [`Config::validate_against`] |
//! | `error.rs` | [`ConfigError`] and its [`Location`] |
//! | `gymnasium.rs` | env ids `gymnasium:<ID>`: their prefix, the bridge's entry for a config |
//! | `infos.rs` | `info_keywords` ([`InfoKeyword`]), checked against the env's infos and masks |

mod error;
mod gymnasium;
mod infos;
mod overrides;
mod resolve;
mod schema;
mod validate;

use std::fmt;
use std::path::Path;

use rlpg_agents::{PathwiseConfig, ReinforceConfig};
use rlpg_envs::{EnvThreads, Registry};
use serde::{Deserialize, Serialize};

use self::error::one_line;
pub use self::error::{ConfigError, Location};
pub(crate) use self::gymnasium::{GYMNASIUM_PREFIX, gymnasium_entry};
pub use self::infos::InfoKeyword;
pub use self::overrides::Override;
use self::resolve::{UnusedSections, resolve};
use self::schema::{Schema, collect_leaf_keys, collect_null_leaves};

/// Which learning algorithm a run uses; written in lowercase in config files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Score-function policy gradient (REINFORCE) with a learned value baseline; settings in
    /// `[reinforce]`. Works with discrete and continuous actions.
    Reinforce,
    /// Pathwise (reparameterized) policy gradient through a learned critic; settings in
    /// `[pathwise]`. Box actions with either estimator; Discrete actions with SAC's
    /// Gumbel-softmax relaxation.
    Pathwise,
}

impl AgentKind {
    /// Every agent, in the order they are documented.
    pub const ALL: [AgentKind; 2] = [AgentKind::Reinforce, AgentKind::Pathwise];

    /// The name used in config files, run directory names and messages.
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::Reinforce => "reinforce",
            AgentKind::Pathwise => "pathwise",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a run's networks, batches and optimizer state live; written in lowercase in config
/// files (`device = "cpu"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSetting {
    /// The CPU (the default; every test runs here).
    #[default]
    Cpu,
    /// The first CUDA device; a config asking for it on a machine without one is refused
    /// ([`Config::validate_against`]).
    Cuda,
    /// The first CUDA device if libtorch sees one, else the CPU.
    Auto,
}

impl DeviceSetting {
    /// The name used in config files and messages.
    pub fn name(self) -> &'static str {
        match self {
            DeviceSetting::Cpu => "cpu",
            DeviceSetting::Cuda => "cuda",
            DeviceSetting::Auto => "auto",
        }
    }

    /// The libtorch device this setting means on this machine: `cuda` is an error naming the
    /// setting when libtorch sees no CUDA device (a CPU build of libtorch, no driver or no GPU).
    pub fn resolve(self) -> Result<tch::Device, String> {
        match self {
            DeviceSetting::Cpu => Ok(tch::Device::Cpu),
            DeviceSetting::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceSetting::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceSetting::Cuda => {
                Err("\"cuda\" asks for a CUDA device, and libtorch sees none on this machine \
                 (`rlpg doctor` shows its build and devices; a GPU needs `scripts/setup.sh \
                 --cuda`); use device = \"cpu\", or \"auto\" for CUDA when there is one"
                    .to_owned())
            }
        }
    }
}

impl fmt::Display for DeviceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The resolved, validated settings of a training run. Keys follow CleanRL's names.
///
/// Build one with [`Config::load`] (file plus overrides), [`Config::from_overrides`],
/// [`Config::from_toml_str`], or [`Config::new`] in code; the loaders return only configs that
/// passed [`Config::validate`]. Their `_checked` forms take a [`Registry`] and also check that
/// it has `env` and [`Config::validate_against`] its spaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Environment id from the registry, e.g. `"CartPole-v1"` or `"Pendulum-v1"`.
    pub env: String,
    /// Learning algorithm: `"reinforce"` (score function with a learned baseline) or
    /// `"pathwise"` (reparameterized actions through a learned critic).
    pub agent: AgentKind,
    /// Seed of every random number generator: environments, network initialization, sampling.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// Environment steps to train for, summed over all parallel environments (>= 1).
    #[serde(default = "defaults::total_timesteps")]
    pub total_timesteps: u64,
    /// Environments stepped in lockstep to collect experience (>= 1).
    #[serde(default = "defaults::num_envs")]
    pub num_envs: usize,
    /// Threads that step the environments: a number (`0`: one per core; at most one per env is
    /// used) or `"auto"` (when a step of all envs measures at least 40 µs on one thread, one per
    /// core is timed too and the faster kept). The results are the same bit for bit whatever it is, so it may change when
    /// resuming. Pays off for envs whose step costs tens of microseconds or more; needs envs
    /// that are `Send` and run no Python code.
    #[serde(default)]
    pub env_threads: EnvThreads,
    /// Worker processes that step `gymnasium:<ID>` envs (`0`: the envs step in this process,
    /// taking turns at one Python interpreter lock). Each worker steps an equal share of the
    /// `num_envs` envs (at most one worker per env is used), in parallel, with the same results
    /// as in this process. For Gymnasium envs only; for Rust envs see `env_threads`.
    #[serde(default)]
    pub env_workers: usize,
    /// Seconds a worker process may take to answer a step or reset of its envs (> 0): one that
    /// takes longer is stopped and the run ends with an error naming the env and its step.
    #[serde(default = "defaults::env_worker_timeout")]
    pub env_worker_timeout: f64,
    /// Asynchronous batches, as EnvPool's: when above 0, the envs step on `env_threads`
    /// threads of their own (`"auto"` or 0: one per core) and the agent acts on, and learns
    /// from, whichever `async_batch` envs finished their step first, while the others step. For
    /// envs whose step time varies; it must divide `num_envs`. Runs are then not reproducible
    /// (and checkpoints hold no env states: a resumed run restarts its envs). Off-policy agents
    /// only (`pathwise`). 0 (the default): lockstep.
    #[serde(default)]
    pub async_batch: usize,
    /// Acting beside learning: the envs step, and a copy of the policy chooses their actions,
    /// on a thread of their own while the agent learns from the previous step, so that stepping
    /// and learning overlap (one actor thread, one learner). The actions are then one env step
    /// stale: they come from the policy before it learned from the step just taken. A run stays
    /// reproducible from its seed (the actor draws from its own generator) but differs from a
    /// lockstep run, and a run stopped by a signal and resumed differs from one never stopped
    /// (periodic checkpoints resume exactly). Pathwise agent only, with `Send` envs (every
    /// registered env; a Gymnasium env with `env_workers`). Default false: lockstep.
    #[serde(default)]
    pub act_beside_learning: bool,
    /// libtorch intra-op threads (>= 1). One is fastest for networks this small on a few cores:
    /// more threads cost more in synchronization than they gain.
    #[serde(default = "defaults::torch_threads")]
    pub torch_threads: i32,
    /// Where the networks, the batches they train on (rollouts, replay buffer) and the
    /// optimizer state live: `"cpu"`, `"cuda"` (an error on a machine without a CUDA device) or
    /// `"auto"` (CUDA when available, else the CPU). Environments always step on the CPU, and
    /// checkpoints are written from the CPU, so a run continues on another device.
    #[serde(default)]
    pub device: DeviceSetting,
    /// Normalize observations with a running mean and variance (needs Box observations).
    #[serde(default = "defaults::normalize_obs")]
    pub normalize_obs: bool,
    /// Environment steps between deterministic evaluations; 0 evaluates only at the end.
    #[serde(default = "defaults::eval_every")]
    pub eval_every: u64,
    /// Episodes per evaluation (>= 1).
    #[serde(default = "defaults::eval_episodes")]
    pub eval_episodes: usize,
    /// Environment steps between checkpoints; 0 saves only at the start and the end.
    #[serde(default = "defaults::checkpoint_every")]
    pub checkpoint_every: u64,
    /// Interval checkpoints kept in the run directory (>= 1); older ones are deleted. The
    /// checkpoint with the best evaluation return is kept as well, apart from these.
    #[serde(default = "defaults::keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// Save the pathwise agent's replay buffer in checkpoints, so that a resumed run continues
    /// exactly; without it the buffer starts empty again (smaller files, inexact resume).
    #[serde(default = "defaults::checkpoint_replay_buffer")]
    pub checkpoint_replay_buffer: bool,
    /// Environment steps between progress logs (steps per second, recent returns) (>= 1).
    #[serde(default = "defaults::log_every")]
    pub log_every: u64,
    /// Environment steps between evaluation videos; 0 records none. At each multiple, and at
    /// the end, one deterministic episode is rendered into `videos/step-NNNNNNNNN.gif` in the
    /// run directory and TensorBoard's Images dashboard (tag `videos/eval`). Needs an
    /// environment that renders.
    #[serde(default = "defaults::capture_video_every")]
    pub capture_video_every: u64,
    /// Keyword arguments for `gymnasium.make` when `env` is `"gymnasium:<ID>"` (the `gymnasium`
    /// feature), e.g. `[env_kwargs]` with `continuous = true`: any TOML value but a non-finite
    /// float, passed to Python as the JSON equivalent (a date or time as its TOML text). Empty
    /// for other envs.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub env_kwargs: toml::Table,
    /// The environment's step infos to log, by name (its `Env::info_keys`, listed by `rlpg
    /// envs`; Stable-Baselines3's `Monitor(info_keywords=...)`), e.g. `["lost_sales"]`. Each
    /// episode's value (the sum, mean or last value over its steps, as the env declares) goes to
    /// TensorBoard as `infos/<name>`, and the mean over the last 100 episodes to the run's
    /// summary and `train --json`. A `gymnasium:<ID>` env reports the keys of its `info` dict
    /// named here, each its episode's last value unless written `name:sum` or `name:mean`.
    #[serde(default)]
    pub info_keywords: Vec<String>,
    // Agent sections, one per agent; only the chosen agent's may be written (see
    // `Config::agent_sections`). Adding an agent takes, besides its crate's settings type
    // (`Default`, `PartialEq`, `validate(&SettingsContext) -> Result<(), InvalidSetting>` holding
    // every rule about the section, and serde's `deny_unknown_fields`, and no
    // `skip_serializing_if`: the key schema comes from the serialized defaults):
    // * a variant of `AgentKind`, with its `name` and its place in `AgentKind::ALL`;
    // * its section field here (`#[serde(default)]`) and in `Config::new`;
    // * one entry in `Config::agent_sections` and one in `Config::check_agent_sections`;
    // * its arm in `run::build_agent`.
    // The compiler finds every `match` that lacks the new variant; the two lists it does not.
    /// Settings of the REINFORCE agent, used when `agent = "reinforce"`.
    #[serde(default)]
    pub reinforce: ReinforceConfig,
    /// Settings of the pathwise agent, used when `agent = "pathwise"`.
    #[serde(default)]
    pub pathwise: PathwiseConfig,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

/// Default values of the top-level settings (serde needs them as functions).
mod defaults {
    pub(super) fn seed() -> u64 {
        1
    }
    pub(super) fn total_timesteps() -> u64 {
        100_000
    }
    pub(super) fn num_envs() -> usize {
        8
    }
    pub(super) fn torch_threads() -> i32 {
        1
    }
    pub(super) fn env_worker_timeout() -> f64 {
        rlpg_envs::Stepping::DEFAULT_WORKER_TIMEOUT.as_secs_f64()
    }
    pub(super) fn normalize_obs() -> bool {
        false
    }
    pub(super) fn eval_every() -> u64 {
        10_000
    }
    pub(super) fn eval_episodes() -> usize {
        10
    }
    pub(super) fn checkpoint_every() -> u64 {
        0
    }
    pub(super) fn keep_checkpoints() -> usize {
        3
    }
    pub(super) fn checkpoint_replay_buffer() -> bool {
        true
    }
    pub(super) fn log_every() -> u64 {
        2_000
    }
    pub(super) fn capture_video_every() -> u64 {
        0
    }
}

impl Config {
    /// A config for `env` and `agent` with every other setting at its default. Not yet
    /// validated: call [`Config::validate`] (and [`Config::validate_against`]) after changing it.
    pub fn new(env: impl Into<String>, agent: AgentKind) -> Self {
        Self {
            env: env.into(),
            agent,
            seed: defaults::seed(),
            total_timesteps: defaults::total_timesteps(),
            num_envs: defaults::num_envs(),
            env_threads: EnvThreads::default(),
            env_workers: 0,
            env_worker_timeout: defaults::env_worker_timeout(),
            async_batch: 0,
            act_beside_learning: false,
            torch_threads: defaults::torch_threads(),
            device: DeviceSetting::default(),
            normalize_obs: defaults::normalize_obs(),
            eval_every: defaults::eval_every(),
            eval_episodes: defaults::eval_episodes(),
            checkpoint_every: defaults::checkpoint_every(),
            keep_checkpoints: defaults::keep_checkpoints(),
            checkpoint_replay_buffer: defaults::checkpoint_replay_buffer(),
            log_every: defaults::log_every(),
            capture_video_every: defaults::capture_video_every(),
            env_kwargs: toml::Table::new(),
            info_keywords: Vec::new(),
            reinforce: ReinforceConfig::default(),
            pathwise: PathwiseConfig::default(),
        }
    }

    /// Reads the TOML file at `path`, applies `overrides` in order (a later one wins), and
    /// resolves and validates the result ([`Config::validate`]). The environment is not looked
    /// up: any id loads. [`Config::load_checked`] also checks it against a registry.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = read(path)?;
        resolve(Some((path, &text)), overrides, UnusedSections::Rejected, None)
    }

    /// [`Config::load`], then checks that `registry` has `env` and [`Config::validate_against`]
    /// its spaces (building the environment once), with errors located in the file or the
    /// overrides like every other.
    pub fn load_checked(
        path: &Path,
        overrides: &[Override],
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        let text = read(path)?;
        resolve(Some((path, &text)), overrides, UnusedSections::Rejected, Some(registry))
    }

    /// Like [`Config::load`] for TOML `text` that did not come from a file; `name` stands in
    /// for the file path in error messages.
    pub fn from_toml_str(
        text: &str,
        name: &str,
        overrides: &[Override],
    ) -> Result<Self, ConfigError> {
        resolve(Some((Path::new(name), text)), overrides, UnusedSections::Rejected, None)
    }

    /// Like [`Config::load_checked`] for TOML `text` that did not come from a file.
    pub fn from_toml_str_checked(
        text: &str,
        name: &str,
        overrides: &[Override],
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        let file = Some((Path::new(name), text));
        resolve(file, overrides, UnusedSections::Rejected, Some(registry))
    }

    /// A config from `--set` overrides alone (no file); they must set `env` and `agent`. The
    /// environment is not looked up, as in [`Config::load`].
    pub fn from_overrides(overrides: &[Override]) -> Result<Self, ConfigError> {
        resolve(None, overrides, UnusedSections::Rejected, None)
    }

    /// [`Config::from_overrides`], then the registry checks of [`Config::load_checked`].
    pub fn from_overrides_checked(
        overrides: &[Override],
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        resolve(None, overrides, UnusedSections::Rejected, Some(registry))
    }

    /// Reads a run's resolved config (its `config.toml`, or the text in a checkpoint, named
    /// `name` in errors) as [`Config::from_toml_str`] does, except that an unused agent section
    /// holding only defaults is accepted: an earlier rlpg wrote every agent's section.
    pub(crate) fn from_run_toml_str(text: &str, name: &Path) -> Result<Self, ConfigError> {
        resolve(Some((name, text)), &[], UnusedSections::DefaultsAllowed, None)
    }

    /// [`Config::from_run_toml_str`] of the file at `path`.
    pub(crate) fn load_run_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Config::from_run_toml_str(&text, path)
    }

    /// The fully resolved config as TOML (every default written out) under a header comment.
    /// Loading the result gives a config equal to `self`; an error means some value cannot be
    /// written so that it reads back the same (e.g. an integer above `i64::MAX`).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        let unrepresentable = |message: String| ConfigError::Unrepresentable { message };
        self.check_unused_sections().map_err(|e| unrepresentable(e.to_string()))?;
        let mut document =
            toml::Table::try_from(self).map_err(|e| unrepresentable(one_line(&e.to_string())))?;
        // Only the chosen agent's section: the others would be ignored, and are rejected on
        // loading (check_unused_sections made sure they hold nothing but defaults).
        let unused = |key: &str| {
            self.agent_sections().iter().any(|(kind, _)| *kind != self.agent && kind.name() == key)
        };
        document.retain(|key, _| !unused(key));
        let body =
            toml::to_string(&document).map_err(|e| unrepresentable(one_line(&e.to_string())))?;
        // TOML has no null: optional settings left unset are absent, and named in the header.
        let unset: Vec<String> = self
            .unset_keys()
            .into_iter()
            .filter(|key| !key.split_once('.').is_some_and(|(section, _)| unused(section)))
            .collect();
        let unset = if unset.is_empty() {
            String::new()
        } else {
            format!("# Unset, so chosen automatically: {}.\n", unset.join(", "))
        };
        let text = format!(
            "# The resolved settings of an rlpg run: the config file, the --set overrides and\n\
             # every default, written by rlpg {}. Loading this file gives exactly these settings.\n\
             {unset}\n{body}",
            env!("CARGO_PKG_VERSION")
        );
        // Read back the way `load` reads (document first, then the struct): deserializing the
        // struct straight from text would accept integers above i64::MAX that `load` refuses.
        let unreadable = |e: toml::de::Error| unrepresentable(one_line(e.message()));
        let document: toml::Table = toml::from_str(&text).map_err(unreadable)?;
        let reread = Config::deserialize(toml::Value::Table(document)).map_err(unreadable)?;
        if reread != *self {
            return Err(ConfigError::Unrepresentable {
                message: format!("the TOML text reads back as {reread:?}, not {self:?}"),
            });
        }
        Ok(text)
    }

    /// Optional settings without a value (e.g. `pathwise.target_entropy`, which is then derived
    /// from the action space), as dotted paths.
    pub fn unset_keys(&self) -> Vec<String> {
        let mut leaves = Vec::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            collect_null_leaves(&map, "", &mut leaves);
        }
        leaves
    }

    /// Every agent with whether its section holds only defaults. A section other than the chosen
    /// agent's must: its settings would be ignored. Adding an agent adds one entry here.
    pub(crate) fn agent_sections(&self) -> [(AgentKind, bool); 2] {
        [
            (AgentKind::Reinforce, self.reinforce == ReinforceConfig::default()),
            (AgentKind::Pathwise, self.pathwise == PathwiseConfig::default()),
        ]
    }

    /// Every key a config file or `--set` can set, as dotted paths sorted by name within each
    /// level (e.g. `agent`, ..., `reinforce.activation`, ...).
    pub fn keys() -> Vec<String> {
        let mut out = Vec::new();
        collect_leaf_keys(&Schema::get().root, "", &mut out);
        out
    }
}
