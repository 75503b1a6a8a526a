//! The environment contract: spaces, actions, steps, errors and the [`Env`] trait.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::render::Frame;
// Re-exported here too, where the rest of the crate has always found them.
pub(crate) use crate::space::{BoxSpace, Space};

/// An observation: a flat vector of `f32`, stored inline (no heap allocation) up to 8 values.
pub type Observation = SmallVec<[f32; 8]>;

/// One action, borrowed so that stepping allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action<'a> {
    /// An element of a [`Space::Discrete`].
    Discrete(usize),
    /// An element of a [`Space::Box`].
    Continuous(&'a [f32]),
    /// An element of a [`Space::MultiDiscrete`]: one value per component.
    MultiDiscrete(&'a [usize]),
    /// An element of a [`Space::MultiBinary`]: one flag per value.
    MultiBinary(&'a [bool]),
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Discrete(a) => write!(f, "{a}"),
            Action::Continuous(x) => write!(f, "{x:?}"),
            Action::MultiDiscrete(a) => write!(f, "{a:?}"),
            // As Gymnasium prints a MultiBinary sample: 0s and 1s.
            Action::MultiBinary(a) => {
                let bits: Vec<u8> = a.iter().map(|&b| u8::from(b)).collect();
                write!(f, "{bits:?}")
            }
        }
    }
}

/// How an info ([`InfoKey`]) adds up over an episode for logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InfoReduce {
    /// The sum over the episode's steps (counts: lost sales, invalid orders).
    Sum,
    /// The mean over the episode's steps (levels: stock on hand).
    Mean,
    /// The value of the episode's last step, as Stable-Baselines3's `Monitor` logs its
    /// `info_keywords` (outcomes: `is_success`).
    Last,
}

impl InfoReduce {
    /// The name used in configs and tags: `sum`, `mean` or `last`.
    pub fn name(self) -> &'static str {
        match self {
            InfoReduce::Sum => "sum",
            InfoReduce::Mean => "mean",
            InfoReduce::Last => "last",
        }
    }

    /// The reduction named `name` (`sum`, `mean`, `last`).
    pub fn from_name(name: &str) -> Option<Self> {
        [InfoReduce::Sum, InfoReduce::Mean, InfoReduce::Last].into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for InfoReduce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one info ([`InfoKey`]) added up over an episode: enough to give it as any [`InfoReduce`].
/// Steps that did not report it (a NaN value) are left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InfoTotals {
    /// Sum of the reported values.
    pub sum: f64,
    /// Number of steps that reported a value.
    pub steps: u64,
    /// The last reported value.
    pub last: f64,
}

impl InfoTotals {
    /// Adds one step's value (NaN: not reported, ignored).
    #[inline]
    pub fn add(&mut self, value: f64) {
        if !value.is_nan() {
            self.sum += value;
            self.steps += 1;
            self.last = value;
        }
    }

    /// The episode's value as `reduce` adds it up, or `None` if no step reported it.
    pub fn value(&self, reduce: InfoReduce) -> Option<f64> {
        (self.steps > 0).then(|| match reduce {
            InfoReduce::Sum => self.sum,
            InfoReduce::Mean => self.sum / self.steps as f64,
            InfoReduce::Last => self.last,
        })
    }
}

/// One named number that an environment's steps report besides the reward ([`Env::info_keys`]),
/// with how it adds up over an episode unless the user says otherwise.
///
/// ```
/// use rlpg_envs::InfoKey;
/// const INFOS: &[InfoKey] = &[InfoKey::sum("lost_sales"), InfoKey::mean("stock")];
/// assert_eq!(INFOS[1].name, "stock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InfoKey {
    /// The name (letters, digits, `_`, `-`, `.`, `/`), as it appears in configs and in the
    /// TensorBoard tag `infos/<name>`.
    pub name: Cow<'static, str>,
    /// How it adds up over an episode by default.
    pub reduce: InfoReduce,
}

impl InfoKey {
    /// An info summed over each episode.
    pub const fn sum(name: &'static str) -> Self {
        Self { name: Cow::Borrowed(name), reduce: InfoReduce::Sum }
    }

    /// An info averaged over each episode's steps.
    pub const fn mean(name: &'static str) -> Self {
        Self { name: Cow::Borrowed(name), reduce: InfoReduce::Mean }
    }

    /// An info taken at each episode's last step.
    pub const fn last(name: &'static str) -> Self {
        Self { name: Cow::Borrowed(name), reduce: InfoReduce::Last }
    }
}

/// The result of one [`Env::step`], with Gymnasium's meaning of the two end flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Observation,
    /// Reward for the step.
    pub reward: f64,
    /// The task really ended (a terminal state): the value of what follows is zero, so learners
    /// must **not** bootstrap from `obs`.
    pub terminated: bool,
    /// The episode was cut short (a time limit): learners **should** bootstrap from `obs`.
    pub truncated: bool,
}

impl Step {
    /// Whether the episode is over for either reason; the env needs a reset before the next step.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// What [`Env::step_into`] returns besides the observation it wrote: the reward and end flags of
/// the step, with the meaning of [`Step`]'s fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Reward for the step.
    pub reward: f64,
    /// The task really ended (see [`Step::terminated`]).
    pub terminated: bool,
    /// The episode was cut short (see [`Step::truncated`]).
    pub truncated: bool,
}

impl StepInfo {
    /// Whether the episode is over for either reason; the env needs a reset before the next step.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// The error of [`Env::step_into`] when the observation (`obs`, as the env produced it) does not
/// fit the caller's buffer of `len` values.
#[cold]
#[inline(never)]
pub(crate) fn observation_buffer_error(
    env: &str,
    space: &Space,
    obs: &[f32],
    len: usize,
) -> EnvError {
    EnvError::InvalidOutput {
        env: env.to_owned(),
        message: format!(
            "step returned an observation of length {} ({obs:?}) but the observation space {} \
             has dimension {} and the buffer for it holds {len} values",
            obs.len(),
            space,
            space.flat_dim()
        ),
    }
}

/// Everything that can go wrong when driving an environment. Every variant names the env.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    /// `step` was called before the first `reset`.
    #[error("{env}: step called before reset")]
    NotReset {
        /// Env id.
        env: String,
    },
    /// `step` was called after `terminated` or `truncated` without a `reset` in between.
    #[error(
        "{env}: step called after the episode ended (terminated or truncated); call reset first"
    )]
    EpisodeOver {
        /// Env id.
        env: String,
    },
    /// The action is of the wrong kind or shape, or lies outside the action space.
    #[error("{env}: action {action} is not in the action space {space}")]
    InvalidAction {
        /// Env id.
        env: String,
        /// The offending action, formatted.
        action: String,
        /// The action space, formatted.
        space: String,
    },
    /// `make` was given an id that is not registered.
    #[error("unknown environment id '{id}'; known ids: {}", known.join(", "))]
    UnknownEnv {
        /// The requested id.
        id: String,
        /// Registered ids.
        known: Vec<String>,
    },
    /// Any other failure, reported by an environment (for example a user's env).
    #[error("{env}: {message}")]
    Other {
        /// Env id.
        env: String,
        /// What went wrong.
        message: String,
    },
    /// An environment broke its contract in what it returned: an observation of the wrong length
    /// or with a non-finite value, or a non-finite reward. Raised by the checks that guard
    /// untrusted (user-written) environments, such as those of the vector env.
    #[error("{env}: {message}")]
    InvalidOutput {
        /// Env id.
        env: String,
        /// What was wrong, naming the step and the offending value.
        message: String,
    },
    /// The environment cannot save or restore its state ([`Env::snapshot`], [`Env::restore`]
    /// are not implemented for it).
    #[error("{env}: this environment cannot save or restore its state (Env::snapshot)")]
    SnapshotUnsupported {
        /// Env id.
        env: String,
    },
    /// The environment cannot draw itself ([`Env::render`] is not implemented for it).
    #[error("{env}: this environment cannot render itself (Env::render)")]
    RenderUnsupported {
        /// Env id.
        env: String,
    },
    /// An error of one environment inside a vector env, tagged with its index there.
    #[error("vector env slot {index}: {source}")]
    InVecEnv {
        /// Index of the environment in the vector env.
        index: usize,
        /// The environment's own error.
        #[source]
        source: Box<EnvError>,
    },
}

impl EnvError {
    /// The [`EnvError::InvalidAction`] for `action` against `space` in env `env`.
    pub fn invalid_action(env: &str, action: Action<'_>, space: &Space) -> Self {
        EnvError::InvalidAction {
            env: env.to_owned(),
            action: action.to_string(),
            space: space.to_string(),
        }
    }

    /// This error tagged with the index of its environment in a vector env.
    pub fn in_vec_env(self, index: usize) -> Self {
        EnvError::InVecEnv { index, source: Box::new(self) }
    }
}

/// The complete state of an environment between two steps, from [`Env::snapshot`]: enough for
/// [`Env::restore`] to continue exactly as the environment would have (its physical state, its
/// random generator, the step counters of its wrappers).
///
/// The state is held as JSON text, tagged with the id of the environment that made it, so that
/// any `Serialize` type works and every `f64` round-trips exactly. Serialisable itself, for
/// checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvSnapshot {
    env: String,
    state: String,
}

impl EnvSnapshot {
    /// A snapshot of `state` taken by the environment `env` (its [`Env::id`]).
    pub fn new<T: Serialize>(env: &str, state: &T) -> Result<Self, EnvError> {
        let state = serde_json::to_string(state).map_err(|e| EnvError::Other {
            env: env.to_owned(),
            message: format!("cannot snapshot the state: {e}"),
        })?;
        Ok(Self { env: env.to_owned(), state })
    }

    /// The id of the environment that took the snapshot.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// The state, for the environment `env` to restore: an error if the snapshot was taken by
    /// another environment or does not decode as a `T`.
    pub fn state<T: DeserializeOwned>(&self, env: &str) -> Result<T, EnvError> {
        if self.env != env {
            return Err(EnvError::Other {
                env: env.to_owned(),
                message: format!("cannot restore a snapshot taken by {}", self.env),
            });
        }
        serde_json::from_str(&self.state).map_err(|e| EnvError::Other {
            env: env.to_owned(),
            message: format!("snapshot does not decode: {e}"),
        })
    }
}

/// An environment with Gymnasium's step/reset semantics. Object safe: `Box<dyn Env>` works.
///
/// Implementations validate their input: stepping before `reset`, after the episode ended, or
/// with an action outside [`Env::action_space`] returns an [`EnvError`], never panics. The one
/// exception is an environment whose [`Env::clips_actions`] is true: it clips a finite action
/// outside its `Box` action space into the box and steps with that, as Gymnasium's own
/// continuous-control environments do.
pub trait Env {
    /// The registry id or a descriptive name, used in error messages (e.g. `"CartPole-v1"`).
    fn id(&self) -> &str;

    /// The space that every observation lies in.
    fn observation_space(&self) -> &Space;

    /// The space that every valid action lies in.
    fn action_space(&self) -> &Space;

    /// Whether a finite action outside the [`Space::Box`] action space is accepted, its dynamics
    /// using the action clipped into the box (every value to its bound), rather than refused with
    /// [`EnvError::InvalidAction`]. Gymnasium's `Pendulum-v1` and `MountainCarContinuous-v0`
    /// clip, and so do rlpg's ports of them, exactly as Gymnasium does: Pendulum's step is then
    /// the step of the bound, bit for bit; MountainCarContinuous's reward still charges the
    /// unclipped action. Non-finite values and actions of the wrong kind or length are errors
    /// either way.
    ///
    /// Optional: the default is `false` (out-of-bounds actions are errors). Wrappers forward the
    /// inner environment's answer. [`crate::check_env`] holds the environment to what it says.
    fn clips_actions(&self) -> bool {
        false
    }

    /// Whether stepping this environment runs Python code (the `gymnasium` bridge's
    /// `GymnasiumEnv`). A [`crate::VecEnv`] of such environments attaches to the Python
    /// interpreter (takes the GIL) once per batch step for all of them, instead of once per
    /// environment. Optional: the default is `false`; wrappers forward the inner environment's
    /// answer.
    fn runs_python(&self) -> bool {
        false
    }

    /// Whether this environment says, in every state, which actions are allowed in it
    /// (invalid-action masking, as sb3-contrib's `MaskablePPO` reads an env's `action_masks()`):
    /// then [`Env::action_mask`] is asked after every `reset` and `step`, the agents sample only
    /// allowed actions, and an env may refuse a masked-out action with an error. Optional: the
    /// default is `false`. Only `Discrete`, `MultiDiscrete` and `MultiBinary` action spaces have
    /// masks. Wrappers forward the inner environment's answer.
    fn masks_actions(&self) -> bool {
        false
    }

    /// Writes which actions are allowed in the current state (after the last `reset` or `step`)
    /// into `mask`, of [`Space::mask_len`] flags in the layout that method describes (`true`:
    /// allowed). Every part of an action must keep at least one allowed choice (a component of a
    /// `MultiDiscrete` at least one value, a `MultiBinary` value 0 or 1 or both); a mask that
    /// allows nothing is an error naming the env, the step and the mask. Asked only when
    /// [`Env::masks_actions`] is true; the default allows every action. Must not change the
    /// environment, and must not depend on anything but its state.
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        mask.fill(true);
        Ok(())
    }

    /// The named numbers that every step reports besides its reward (the env's own metrics, such
    /// as lost sales or invalid orders; Gymnasium's `info` dict, scalars only), each with how it
    /// adds up over an episode. Fixed for the environment's life. A user names the ones to log
    /// (the config's `info_keywords`, as Stable-Baselines3's `Monitor(info_keywords=...)`), and
    /// they reach TensorBoard, `rlpg plot` and `--json` once per episode. Optional: the default
    /// is none. Wrappers forward the inner environment's answer.
    fn info_keys(&self) -> &[InfoKey] {
        &[]
    }

    /// Writes the values of the infos of the last `step` into `values`, one per
    /// [`Env::info_keys`] entry in the same order. A value that the step does not report (an
    /// info Gymnasium gives only at an episode's end) is NaN and is left out of the episode's
    /// sum, mean or last value; infinite values are errors. The default writes nothing.
    fn step_infos(&self, values: &mut [f64]) {
        let _ = values;
    }

    /// Starts a new episode and returns its first observation. `Some(seed)` re-seeds the env's own
    /// random number generator, so the same seed always gives the same episode; `None` continues
    /// the current random stream.
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError>;

    /// Advances the episode by one action.
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError>;

    /// Advances the episode by one action as [`Env::step`] does, but writes the observation into
    /// `obs` (which must hold exactly [`Space::flat_dim`] of the observation space values) and
    /// returns the rest of the step. [`crate::VecEnv`] steps its envs this way, straight into its
    /// batch buffer.
    ///
    /// Optional: the default calls [`Env::step`] and copies its observation, returning an
    /// [`EnvError::InvalidOutput`] (and leaving `obs` unchanged) if that observation's length is
    /// not `obs.len()`. Implement it only to save that copy; it must then behave exactly as
    /// `step` ([`crate::check_env`] compares the two). On error, `obs` may or may not have been
    /// written, and the env needs a `reset` if the step was taken.
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        let step = self.step(action)?;
        if step.obs.len() != obs.len() {
            return Err(observation_buffer_error(
                self.id(),
                self.observation_space(),
                &step.obs,
                obs.len(),
            ));
        }
        obs.copy_from_slice(&step.obs);
        Ok(StepInfo { reward: step.reward, terminated: step.terminated, truncated: step.truncated })
    }

    /// The environment's complete state, for checkpoints (see [`EnvSnapshot`]). Optional: the
    /// default returns [`EnvError::SnapshotUnsupported`], and a trainer resuming such an
    /// environment resets it instead (the run continues, but not exactly as it would have).
    /// Implement it together with [`Env::restore`], usually by putting the state fields and
    /// the [`crate::EnvRng`] into a `Serialize` struct.
    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        Err(EnvError::SnapshotUnsupported { env: self.id().to_owned() })
    }

    /// Puts the environment back in the state `snapshot` holds. The default returns
    /// [`EnvError::SnapshotUnsupported`].
    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        let _ = snapshot;
        Err(EnvError::SnapshotUnsupported { env: self.id().to_owned() })
    }

    /// A picture of the current state, as Gymnasium's `render_mode="rgb_array"` gives (see
    /// [`crate::render`] for the built-in pictures). Optional: the default returns
    /// [`EnvError::RenderUnsupported`]. Rendering never changes the environment.
    fn render(&self) -> Result<Frame, EnvError> {
        Err(EnvError::RenderUnsupported { env: self.id().to_owned() })
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn clips_actions(&self) -> bool {
        (**self).clips_actions()
    }
    fn runs_python(&self) -> bool {
        (**self).runs_python()
    }
    fn masks_actions(&self) -> bool {
        (**self).masks_actions()
    }
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        (**self).action_mask(mask)
    }
    fn info_keys(&self) -> &[InfoKey] {
        (**self).info_keys()
    }
    fn step_infos(&self, values: &mut [f64]) {
        (**self).step_infos(values)
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        (**self).reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        (**self).step(action)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<StepInfo, EnvError> {
        (**self).step_into(action, obs)
    }
    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        (**self).snapshot()
    }
    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError> {
        (**self).restore(snapshot)
    }
    fn render(&self) -> Result<Frame, EnvError> {
        (**self).render()
    }
}
