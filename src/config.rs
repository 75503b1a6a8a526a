//! The settings of a training run: loaded from a TOML file plus `--set key=value` overrides,
//! checked, and written back as the run's `config.toml`.
//!
//! Two types, as ripgrep separates its raw flags from its resolved settings: an [`Override`] is
//! one raw `--set` argument, checked only for syntax; a [`Config`] is the resolved result, every
//! key known, every value in range, every default filled in. Resolution is one pipeline, so a
//! value from `--set` is checked exactly like the same value written in the file:
//!
//! 1. parse the file as TOML, remembering where every key and value was written;
//! 2. reject keys no setting has (with the nearest valid key as a suggestion);
//! 3. apply the overrides to the parsed document;
//! 4. deserialize into [`Config`] (type errors name the key path);
//! 5. [`Config::validate`] the ranges, then check the environment id against the registry and
//!    the settings against the environment's spaces ([`Config::validate_against`]).
//!
//! Every error is a [`ConfigError`] whose message is one line naming where the bad setting was
//! written (`file:line:column` or the `--set` argument) and its full key path.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rlpg_agents::{PathwiseConfig, ReinforceConfig, SettingsContext};
use rlpg_envs::{EnvError, Space};
use serde::{Deserialize, Serialize};

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

/// The resolved, validated settings of a training run. Keys follow CleanRL's names.
///
/// Build one with [`Config::load`] (file plus overrides), [`Config::from_overrides`],
/// [`Config::from_toml_str`], or [`Config::new`] in code; the loaders return only configs that
/// passed [`Config::validate`], the registry check of `env` and [`Config::validate_against`].
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
    /// libtorch intra-op threads (>= 1). One is fastest for networks this small on a few cores:
    /// more threads cost more in synchronization than they gain.
    #[serde(default = "defaults::torch_threads")]
    pub torch_threads: i32,
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
    // Agent sections. Adding an agent: add its section field here (`#[serde(default)]`, a type
    // with `Default`, `validate() -> Result<(), InvalidSetting>` and serde's
    // `deny_unknown_fields`, and no `skip_serializing_if`: the key schema comes from the
    // serialized defaults), and one line in `Config::section_checks`.
    /// Settings of the REINFORCE agent, used when `agent = "reinforce"`.
    #[serde(default)]
    pub reinforce: ReinforceConfig,
    /// Settings of the pathwise agent, used when `agent = "pathwise"`.
    #[serde(default)]
    pub pathwise: PathwiseConfig,
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
}

/// Keys a config must set: they have no sensible default.
const REQUIRED_KEYS: [(&str, &str); 2] = [
    ("env", "the environment id, e.g. env = \"CartPole-v1\""),
    ("agent", "the algorithm, agent = \"reinforce\" or \"pathwise\""),
];

/// The largest integer a TOML file can hold; larger `u64` settings could not be written back.
const TOML_INT_MAX: u64 = i64::MAX as u64;

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
            torch_threads: defaults::torch_threads(),
            normalize_obs: defaults::normalize_obs(),
            eval_every: defaults::eval_every(),
            eval_episodes: defaults::eval_episodes(),
            checkpoint_every: defaults::checkpoint_every(),
            keep_checkpoints: defaults::keep_checkpoints(),
            checkpoint_replay_buffer: defaults::checkpoint_replay_buffer(),
            log_every: defaults::log_every(),
            reinforce: ReinforceConfig::default(),
            pathwise: PathwiseConfig::default(),
        }
    }

    /// Reads the TOML file at `path`, applies `overrides` in order (a later one wins), and
    /// resolves and validates the result, including the registry check of `env` and
    /// [`Config::validate_against`] the registered environment's spaces.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        resolve(Some((path, &text)), overrides)
    }

    /// Like [`Config::load`] for TOML `text` that did not come from a file; `name` stands in
    /// for the file path in error messages.
    pub fn from_toml_str(
        text: &str,
        name: &str,
        overrides: &[Override],
    ) -> Result<Self, ConfigError> {
        resolve(Some((Path::new(name), text)), overrides)
    }

    /// A config from `--set` overrides alone (no file); they must set `env` and `agent`.
    pub fn from_overrides(overrides: &[Override]) -> Result<Self, ConfigError> {
        resolve(None, overrides)
    }

    /// Checks every setting's range, and the chosen agent's settings against `num_envs`. Errors
    /// name the full key path, e.g. `reinforce.gamma: must be in (0, 1], got 1.5`. Does not
    /// consult the environment registry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.env.trim().is_empty() {
            return Err(invalid("env", "must name an environment, got an empty string"));
        }
        at_least_one("total_timesteps", self.total_timesteps)?;
        at_least_one("num_envs", self.num_envs as u64)?;
        at_least_one("eval_episodes", self.eval_episodes as u64)?;
        at_least_one("log_every", self.log_every)?;
        at_least_one("keep_checkpoints", self.keep_checkpoints as u64)?;
        if self.torch_threads < 1 {
            return Err(invalid(
                "torch_threads",
                format!("must be an integer >= 1, got {}", self.torch_threads),
            ));
        }
        for (key, value) in [
            ("seed", self.seed),
            ("total_timesteps", self.total_timesteps),
            ("eval_every", self.eval_every),
            ("checkpoint_every", self.checkpoint_every),
            ("log_every", self.log_every),
        ] {
            if value > TOML_INT_MAX {
                return Err(invalid(
                    key,
                    format!(
                        "must be at most {TOML_INT_MAX} (TOML integers are signed 64-bit), got \
                         {value}"
                    ),
                ));
            }
        }
        self.check_agent_sections(None)
    }

    /// Checks every agent section with its settings' own `validate` (the one the agent's
    /// constructor calls too): the chosen agent's against `num_envs` and, when known, the
    /// action space; the others' ranges only. Errors name the full key, e.g.
    /// `pathwise.learning_starts`. Adding an agent's section means adding one line here.
    fn check_agent_sections(&self, action_space: Option<&Space>) -> Result<(), ConfigError> {
        let chosen =
            SettingsContext { num_envs: Some(self.num_envs), action_space, env: &self.env };
        let context =
            |agent| if self.agent == agent { chosen } else { SettingsContext::RANGES_ONLY };
        let checks = [
            ("reinforce", self.reinforce.validate(&context(AgentKind::Reinforce))),
            ("pathwise", self.pathwise.validate(&context(AgentKind::Pathwise))),
        ];
        for (section, check) in checks {
            check.map_err(|e| invalid(&format!("{section}.{}", e.key), e.message))?;
        }
        Ok(())
    }

    /// Checks the settings that depend on the environment: observation normalization that needs
    /// Box observations, then the chosen agent's section against the action space (its
    /// settings' own `validate`: estimators that need continuous actions, options that apply to
    /// one kind of action space only, an option counting as given when it differs from its
    /// default). Errors name the key and the space.
    pub fn validate_against(
        &self,
        observation_space: &Space,
        action_space: &Space,
    ) -> Result<(), ConfigError> {
        let env = &self.env;
        if self.normalize_obs && !matches!(observation_space, Space::Box(_)) {
            return Err(invalid(
                "normalize_obs",
                format!(
                    "needs Box observations, but {env} has observations {observation_space}; \
                     set normalize_obs = false"
                ),
            ));
        }
        self.check_agent_sections(Some(action_space))
    }

    /// The fully resolved config as TOML (every default written out) under a header comment.
    /// Loading the result gives a config equal to `self`; an error means some value cannot be
    /// written so that it reads back the same (e.g. an integer above `i64::MAX`).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self)
            .map_err(|e| ConfigError::Unrepresentable { message: one_line(&e.to_string()) })?;
        // TOML has no null: optional settings left unset are absent, and named in the header.
        let unset = self.unset_keys();
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
        let unrepresentable =
            |e: toml::de::Error| ConfigError::Unrepresentable { message: one_line(e.message()) };
        let document: toml::Table = toml::from_str(&text).map_err(unrepresentable)?;
        let reread = Config::deserialize(toml::Value::Table(document)).map_err(unrepresentable)?;
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

    /// Every key a config file or `--set` can set, as dotted paths sorted by name within each
    /// level (e.g. `agent`, ..., `reinforce.activation`, ...).
    pub fn keys() -> Vec<String> {
        let mut out = Vec::new();
        collect_leaf_keys(&Schema::get().root, "", &mut out);
        out
    }
}

/// The error for `key` with a message and no location yet (the resolver adds it).
fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { location: None, key: key.to_owned(), message: message.into() }
}

fn at_least_one(key: &str, value: u64) -> Result<(), ConfigError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(invalid(key, format!("must be an integer >= 1, got {value}")))
    }
}

/// Where a setting was written, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A position in a config file, 1-based; the column counts characters.
    File {
        /// The file as it was named.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1, in characters.
        column: usize,
    },
    /// A config file as a whole (for something missing from it).
    WholeFile {
        /// The file as it was named.
        path: PathBuf,
    },
    /// A `--set` argument.
    Override {
        /// The argument as given, e.g. `reinforce.gamma=1.5`.
        arg: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Location::WholeFile { path } => write!(f, "{}", path.display()),
            Location::Override { arg } => write!(f, "--set {arg}"),
        }
    }
}

/// Why a config could not be loaded or written. Its message is one line, starting with the
/// [`Location`] of the problem when it has one. The CLI exits with code 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file as it was named.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file (or a `--set` value) is not valid TOML.
    #[error("{location}: invalid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// What the parser expected.
        message: String,
    },
    /// A key that no setting has.
    #[error("{}unknown key `{}`{}{}", prefix(.location), last_segment(.key), section_of(.key), did_you_mean(.suggestion))]
    UnknownKey {
        /// Where the key was written.
        location: Option<Location>,
        /// Its full dotted path, e.g. `reinforce.learning_rat`.
        key: String,
        /// The nearest valid key: a sibling's name, or a full path if the key belongs elsewhere.
        suggestion: Option<String>,
    },
    /// A key without a default is not set.
    #[error("{}missing required key `{key}`: {hint}", prefix(.location))]
    MissingKey {
        /// The file it is missing from, if any.
        location: Option<Location>,
        /// The missing key.
        key: String,
        /// What it should look like.
        hint: String,
    },
    /// A value of the wrong type, out of range, or contradicting the environment.
    #[error("{}{key}: {message}", prefix(.location))]
    Invalid {
        /// Where the value was written, if it was.
        location: Option<Location>,
        /// Full dotted key path, e.g. `reinforce.gamma` or `reinforce.hidden[1]`.
        key: String,
        /// What is allowed and what was given.
        message: String,
    },
    /// A `--set` argument that is not `KEY=VALUE` with a dotted key path, or that names a
    /// section instead of a setting.
    #[error("--set {arg}: {message}")]
    BadOverride {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        message: String,
    },
    /// The config cannot be written as TOML that reads back identically.
    #[error("cannot write the config as TOML: {message}")]
    Unrepresentable {
        /// Why.
        message: String,
    },
}

impl ConfigError {
    /// The full key path this error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The location this error points at, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. } => Some(location),
            ConfigError::UnknownKey { location, .. }
            | ConfigError::MissingKey { location, .. }
            | ConfigError::Invalid { location, .. } => location.as_ref(),
            _ => None,
        }
    }
}

fn prefix(location: &Option<Location>) -> String {
    location.as_ref().map_or_else(String::new, |l| format!("{l}: "))
}

fn last_segment(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(_, last)| last)
}

fn section_of(key: &str) -> String {
    key.rsplit_once('.').map_or_else(String::new, |(section, _)| format!(" in [{section}]"))
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

/// Multi-line parser messages joined into one line.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// One raw `--set KEY=VALUE` argument: a dotted key path and a TOML value, checked for syntax
/// only (whether the key exists is checked when it is applied, by [`Config::load`]).
///
/// The value is read as a TOML value, so `true`, `3e-4`, `"text"` and `[64, 64]` mean what they
/// mean in a file; text that is not a TOML value is taken as a string, so
/// `env=Pendulum-v1` works without quotes.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    key: String,
    value: toml::Value,
    arg: String,
}

impl Override {
    /// Parses `KEY=VALUE`. Errors if there is no `=` or the key is not a dotted path of bare
    /// TOML keys (letters, digits, `_`, `-`).
    pub fn parse(arg: &str) -> Result<Self, ConfigError> {
        let bad = |message: String| ConfigError::BadOverride { arg: arg.to_owned(), message };
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(bad("expected KEY=VALUE, e.g. reinforce.learning_rate=3e-4".to_owned()));
        };
        let key = key.trim();
        let valid_segment = |s: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !key.split('.').all(valid_segment) {
            return Err(bad(format!(
                "`{key}` is not a dotted key path like `total_timesteps` or `reinforce.gamma`"
            )));
        }
        let raw = raw.trim();
        let value =
            raw.parse::<toml::Value>().unwrap_or_else(|_| toml::Value::String(raw.to_owned()));
        Ok(Self { key: key.to_owned(), value, arg: arg.to_owned() })
    }

    /// The dotted key path, e.g. `reinforce.learning_rate`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value to set.
    pub fn value(&self) -> &toml::Value {
        &self.value
    }
}

impl FromStr for Override {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arg)
    }
}

/// The shape of a config: which keys exist and which of them are sections, taken from the
/// serialized defaults (every section has a default, so every key appears).
struct Schema {
    root: serde_json::Map<String, serde_json::Value>,
    /// Every leaf key path, for suggestions across sections.
    leaves: Vec<String>,
}

impl Schema {
    fn get() -> &'static Schema {
        static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| {
            // Serializing to JSON rather than TOML keeps keys whose default is `None` (as null),
            // so an optional setting is never mistaken for an unknown key.
            let root = match serde_json::to_value(Config::new("", AgentKind::Reinforce)) {
                Ok(serde_json::Value::Object(map)) => map,
                other => unreachable!("Config serializes to a JSON object, got {other:?}"),
            };
            let mut leaves = Vec::new();
            collect_leaf_keys(&root, "", &mut leaves);
            Schema { root, leaves }
        })
    }

    /// The schema node at a dotted path, if the path exists.
    fn node(&self, path: &[&str]) -> Option<&serde_json::Value> {
        let (first, rest) = path.split_first()?;
        let mut node = self.root.get(*first)?;
        for segment in rest {
            node = node.as_object()?.get(*segment)?;
        }
        Some(node)
    }

    /// The nearest valid key for `unknown` written in the section `siblings` describes: a
    /// sibling with a similar name, else the full path of a same-named key in another section,
    /// else a similar key anywhere. Keys of the `preferred` section (the chosen agent's) win
    /// over equally good keys elsewhere.
    fn suggest(
        &self,
        unknown: &str,
        siblings: &serde_json::Map<String, serde_json::Value>,
        preferred: Option<&str>,
    ) -> Option<String> {
        const SIMILAR: f64 = 0.8;
        let unknown_lower = unknown.to_lowercase();
        let score =
            |candidate: &str| strsim::jaro_winkler(&unknown_lower, &candidate.to_lowercase());
        let best = |candidates: &mut dyn Iterator<Item = (String, f64)>| {
            candidates
                .filter(|(_, s)| *s >= SIMILAR)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(name, _)| name)
        };
        if let Some(sibling) = best(&mut siblings.keys().map(|k| (k.clone(), score(k)))) {
            return Some(sibling);
        }
        let in_preferred =
            |p: &&String| preferred.is_some_and(|section| p.starts_with(&format!("{section}.")));
        // The preferred section's keys first: `max_by` keeps the last maximum, `find` the first.
        let (mut ordered, others): (Vec<&String>, Vec<&String>) =
            self.leaves.iter().partition(in_preferred);
        ordered.extend(others);
        if let Some(path) = ordered.iter().find(|p| last_segment(p) == unknown) {
            return Some((*path).clone());
        }
        best(&mut ordered.iter().rev().map(|p| ((*p).clone(), score(last_segment(p)))))
    }
}

fn collect_leaf_keys(
    node: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in node {
        let path = join_key(prefix, key);
        match value {
            serde_json::Value::Object(children) => collect_leaf_keys(children, &path, out),
            _ => out.push(path),
        }
    }
}

fn collect_null_leaves(
    node: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in node {
        match value {
            serde_json::Value::Object(children) => {
                collect_null_leaves(children, &join_key(prefix, key), out)
            }
            serde_json::Value::Null => out.push(join_key(prefix, key)),
            _ => {}
        }
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

/// Byte ranges of a key and of its value in the config text.
struct Spans {
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// A parsed config file with the position of everything written in it.
struct SourceFile<'a> {
    path: &'a Path,
    text: &'a str,
    /// By key path: `reinforce.gamma`, `reinforce.hidden[1]`.
    spans: HashMap<String, Spans>,
}

impl SourceFile<'_> {
    fn location_at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location::File {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

fn collect_spans(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut HashMap<String, Spans>) {
    for (key, value) in table.iter() {
        let path = join_key(prefix, key.get_ref());
        collect_value_spans(value, &path, out);
        if let Some(spans) = out.get_mut(&path) {
            spans.key = Some(key.span());
        }
    }
}

fn collect_value_spans(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    out: &mut HashMap<String, Spans>,
) {
    out.insert(path.to_owned(), Spans { key: None, value: value.span() });
    match value.get_ref() {
        toml::de::DeValue::Table(table) => collect_spans(table, path, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_value_spans(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The state of one resolution: the file (if any) and the overrides, for locating errors.
struct Resolver<'a> {
    file: Option<SourceFile<'a>>,
    overrides: &'a [Override],
}

/// Which part of a written `key = value` an error points at.
#[derive(Clone, Copy)]
enum Part {
    Key,
    Value,
}

impl Resolver<'_> {
    /// Where `key` (a dotted path, maybe with `[i]` indices) was set: the last override that
    /// set it or a section containing it, else its position in the file, else the nearest
    /// enclosing section's position, else the file as a whole.
    fn locate(&self, key: &str, part: Part) -> Option<Location> {
        let covers = |ov: &Override| {
            key == ov.key
                || key.strip_prefix(ov.key.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
        };
        if let Some(ov) = self.overrides.iter().rev().find(|ov| covers(ov)) {
            return Some(Location::Override { arg: ov.arg.clone() });
        }
        let file = self.file.as_ref()?;
        let mut path = key;
        loop {
            if let Some(spans) = file.spans.get(path) {
                let span = match part {
                    Part::Key => spans.key.clone().unwrap_or_else(|| spans.value.clone()),
                    Part::Value => spans.value.clone(),
                };
                return Some(file.location_at(span.start));
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return Some(Location::WholeFile { path: file.path.to_owned() }),
            }
        }
    }

    /// Adds the location of its key to an error made without one.
    fn locate_error(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Invalid { location: None, key, message } => {
                ConfigError::Invalid { location: self.locate(&key, Part::Value), key, message }
            }
            other => other,
        }
    }
}

fn resolve(file: Option<(&Path, &str)>, overrides: &[Override]) -> Result<Config, ConfigError> {
    let schema = Schema::get();
    let mut resolver = Resolver { file: None, overrides };
    let mut document = toml::Table::new();
    if let Some((path, text)) = file {
        let mut source = SourceFile { path, text, spans: HashMap::new() };
        let syntax_error = |e: toml::de::Error| ConfigError::Syntax {
            location: match e.span() {
                Some(span) => source_location(path, text, span.start),
                None => Location::WholeFile { path: path.to_owned() },
            },
            message: one_line(e.message()),
        };
        let parsed = toml::de::DeTable::parse(text).map_err(syntax_error)?;
        collect_spans(parsed.get_ref(), "", &mut source.spans);
        document = toml::from_str(text).map_err(syntax_error)?;
        resolver.file = Some(source);
        check_unknown_keys(&document, schema, &resolver)?;
    }
    for ov in overrides {
        apply_override(&mut document, ov, schema, &resolver)?;
    }
    for (key, hint) in REQUIRED_KEYS {
        if !document.contains_key(key) {
            let location = file.map(|(path, _)| Location::WholeFile { path: path.to_owned() });
            let hint = if file.is_some() {
                hint.to_owned()
            } else {
                format!("{hint} (no config file was given, so set it with --set {key}=...)")
            };
            return Err(ConfigError::MissingKey { location, key: key.to_owned(), hint });
        }
    }
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(document)).map_err(|e| {
            let key = key_path(e.path());
            let message = one_line(e.inner().message());
            ConfigError::Invalid { location: resolver.locate(&key, Part::Value), key, message }
        })?;
    config.validate().map_err(|e| resolver.locate_error(e))?;
    let spec = rlpg_envs::spec(&config.env).map_err(|e| {
        let message = match e {
            EnvError::UnknownEnv { id, known } => {
                let nearest = known
                    .iter()
                    .map(|k| (k, strsim::jaro_winkler(&id.to_lowercase(), &k.to_lowercase())))
                    .filter(|(_, s)| *s >= 0.8)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let hint =
                    nearest.map_or_else(String::new, |(k, _)| format!("did you mean `{k}`? "));
                format!("unknown environment `{id}`; {hint}known: {}", known.join(", "))
            }
            other => other.to_string(),
        };
        resolver.locate_error(invalid("env", message))
    })?;
    config
        .validate_against(&spec.observation_space, &spec.action_space)
        .map_err(|e| resolver.locate_error(e))?;
    Ok(config)
}

fn source_location(path: &Path, text: &str, offset: usize) -> Location {
    SourceFile { path, text, spans: HashMap::new() }.location_at(offset)
}

/// A serde path as our key paths: `reinforce.hidden[1]`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// The `agent` the document names, if it names one: its section is the likeliest home of a
/// misplaced key.
fn chosen_agent(document: &toml::Table) -> Option<&str> {
    document.get("agent").and_then(toml::Value::as_str)
}

/// Rejects the first key (in file order) that no setting has.
fn check_unknown_keys(
    document: &toml::Table,
    schema: &Schema,
    resolver: &Resolver<'_>,
) -> Result<(), ConfigError> {
    let mut unknown = Vec::new();
    find_unknown(document, &schema.root, "", &mut unknown);
    let position = |key: &str| {
        resolver
            .file
            .as_ref()
            .and_then(|f| f.spans.get(key))
            .map_or(usize::MAX, |s| s.key.as_ref().map_or(s.value.start, |k| k.start))
    };
    match unknown.into_iter().min_by_key(|(key, _)| position(key)) {
        None => Ok(()),
        Some((key, section)) => Err(ConfigError::UnknownKey {
            location: resolver.locate(&key, Part::Key),
            suggestion: schema.suggest(last_segment(&key), section, chosen_agent(document)),
            key,
        }),
    }
}

/// Collects `(path, schema of the section it is in)` for every key absent from the schema.
/// Values that should be sections but are not are left to deserialization (a type error).
fn find_unknown<'s>(
    table: &toml::Table,
    schema: &'s serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<(String, &'s serde_json::Map<String, serde_json::Value>)>,
) {
    for (key, value) in table {
        let path = join_key(prefix, key);
        match (schema.get(key), value) {
            (None, _) => out.push((path, schema)),
            (Some(serde_json::Value::Object(section)), toml::Value::Table(t)) => {
                find_unknown(t, section, &path, out)
            }
            _ => {}
        }
    }
}

/// Sets one override in the document, after checking that its key names a setting.
fn apply_override(
    document: &mut toml::Table,
    ov: &Override,
    schema: &Schema,
    resolver: &Resolver<'_>,
) -> Result<(), ConfigError> {
    let segments: Vec<&str> = ov.key.split('.').collect();
    for depth in 1..=segments.len() {
        let path = &segments[..depth];
        if schema.node(path).is_none() {
            let section = match schema.node(&segments[..depth - 1]) {
                Some(serde_json::Value::Object(section)) => section,
                Some(_) => {
                    let parent = segments[..depth - 1].join(".");
                    return Err(ConfigError::BadOverride {
                        arg: ov.arg.clone(),
                        message: format!(
                            "`{parent}` is a setting, not a section, so `{}` does not exist",
                            ov.key
                        ),
                    });
                }
                None => &schema.root,
            };
            let key = path.join(".");
            return Err(ConfigError::UnknownKey {
                location: Some(Location::Override { arg: ov.arg.clone() }),
                suggestion: schema.suggest(path[depth - 1], section, chosen_agent(document)),
                key,
            });
        }
    }
    if let Some(serde_json::Value::Object(section)) = schema.node(&segments) {
        let example =
            section.keys().next().map_or_else(String::new, |k| format!(", e.g. `{}.{k}`", ov.key));
        return Err(ConfigError::BadOverride {
            arg: ov.arg.clone(),
            message: format!(
                "`{}` is a section, not a setting; set one of its keys{example}",
                ov.key
            ),
        });
    }
    let (leaf, parents) = segments.split_last().expect("a parsed override key has a segment");
    let mut table = document;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            other => {
                let key = segments[..=depth].join(".");
                return Err(ConfigError::Invalid {
                    location: resolver.locate(&key, Part::Value),
                    message: format!("expected a section ([{key}]), found {}", other.type_str()),
                    key,
                });
            }
        };
    }
    table.insert(leaf.to_string(), ov.value.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(arg: &str) -> Override {
        Override::parse(arg).unwrap_or_else(|e| panic!("`{arg}` should parse: {e}"))
    }

    #[test]
    fn override_values_are_read_as_toml_or_else_as_strings() {
        assert_eq!(ov("normalize_obs=true").value(), &toml::Value::Boolean(true));
        assert_eq!(ov("reinforce.learning_rate=1e-3").value(), &toml::Value::Float(1e-3));
        assert_eq!(ov("env=\"CartPole-v1\"").value(), &toml::Value::String("CartPole-v1".into()));
        assert_eq!(ov("env=Pendulum-v1").value(), &toml::Value::String("Pendulum-v1".into()));
        let hidden = ov("reinforce.hidden=[64, 64]");
        assert_eq!(
            hidden.value(),
            &toml::Value::Array(vec![toml::Value::Integer(64), toml::Value::Integer(64)])
        );
        assert_eq!(hidden.key(), "reinforce.hidden");
        assert_eq!(hidden.to_string(), "reinforce.hidden=[64, 64]");
    }

    #[test]
    fn an_override_without_equals_or_with_a_bad_key_is_rejected() {
        for arg in ["seed", "=3", "reinforce..gamma=1", ".seed=1", "see d=1", "a.b.=1"] {
            let e = Override::parse(arg).expect_err(arg);
            assert!(
                matches!(&e, ConfigError::BadOverride { arg: a, .. } if a == arg),
                "`{arg}` should be a BadOverride, got {e:?}"
            );
        }
    }

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = |offset| source_location(Path::new("f.toml"), text, offset).to_string();
        assert_eq!(at(0), "f.toml:1:1");
        assert_eq!(at(6), "f.toml:2:1");
        // `=` after the two-byte `é`: byte offset 10, character column 4.
        assert_eq!(at(10), "f.toml:2:4");
        assert_eq!(at(text.len()), "f.toml:3:1");
    }

    #[test]
    fn schema_lists_every_top_level_setting_and_section_key() {
        let keys = Config::keys();
        for key in
            ["env", "agent", "seed", "log_every", "reinforce.learning_rate", "reinforce.hidden"]
        {
            assert!(keys.iter().any(|k| k == key), "`{key}` missing from {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "reinforce"), "sections are not settable leaves");
    }

    #[test]
    fn suggestions_prefer_similar_siblings_then_the_same_name_elsewhere() {
        let schema = Schema::get();
        let reinforce = schema.root["reinforce"].as_object().expect("section");
        let suggest = |unknown, section, agent| schema.suggest(unknown, section, agent);
        assert_eq!(suggest("learning_rat", reinforce, None).as_deref(), Some("learning_rate"));
        assert_eq!(suggest("gama", reinforce, None).as_deref(), Some("gamma"));
        let root = &schema.root;
        // `gamma` is in both agent sections: the chosen agent's wins.
        assert_eq!(suggest("gamma", root, Some("reinforce")).as_deref(), Some("reinforce.gamma"));
        assert_eq!(suggest("gamma", root, Some("pathwise")).as_deref(), Some("pathwise.gamma"));
        assert_eq!(suggest("batch_size", root, None).as_deref(), Some("pathwise.batch_size"));
        assert_eq!(suggest("zzzzqqq", root, None), None);
    }
}
