//! The environment contract: spaces, actions, steps, errors and the [`Env`] trait.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::render::Frame;

/// An observation: a flat vector of `f32`, stored inline (no heap allocation) up to 8 values.
pub type Observation = SmallVec<[f32; 8]>;

/// A set of valid observations or actions, as Gymnasium's `Discrete` and `Box` spaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Space {
    /// Integers `0..n`.
    Discrete(usize),
    /// Real vectors with per-dimension bounds `low[i] <= x[i] <= high[i]` (bounds may be infinite).
    Box(BoxSpace),
}

/// Per-dimension bounds of a [`Space::Box`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxSpace {
    /// Lower bound of each dimension (may be `-inf`).
    pub low: Vec<f32>,
    /// Upper bound of each dimension (may be `+inf`).
    pub high: Vec<f32>,
}

impl BoxSpace {
    /// A box with the given bounds.
    ///
    /// # Panics
    /// If `low` and `high` differ in length or some `low[i] > high[i]`: a space is declared by the
    /// programmer, so a malformed one is a bug, not bad input.
    pub fn new(low: Vec<f32>, high: Vec<f32>) -> Self {
        assert_eq!(low.len(), high.len(), "BoxSpace bounds differ in length");
        assert!(low.iter().zip(&high).all(|(l, h)| l <= h), "BoxSpace has low > high");
        Self { low, high }
    }

    /// The same bound `[low, high]` on each of `dim` dimensions.
    pub fn uniform(dim: usize, low: f32, high: f32) -> Self {
        Self::new(vec![low; dim], vec![high; dim])
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.low.len()
    }

    /// Whether `x` has the right length and lies within the bounds (NaN never does).
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.dim()
            && x.iter().zip(self.low.iter().zip(&self.high)).all(|(v, (l, h))| *l <= *v && *v <= *h)
    }
}

impl Space {
    /// Length of the flat `f32` vector that represents one element: 1 for `Discrete`, the
    /// dimension for `Box`.
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box(b) => b.dim(),
        }
    }

    /// Whether `action` is an element of this space (right kind, shape and bounds).
    pub fn contains(&self, action: Action<'_>) -> bool {
        match (self, action) {
            (Space::Discrete(n), Action::Discrete(a)) => a < *n,
            (Space::Box(b), Action::Continuous(x)) => b.contains(x),
            _ => false,
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete(n) => write!(f, "Discrete({n})"),
            Space::Box(b) => {
                let same = |v: &[f32]| v.iter().all(|x| x.to_bits() == v[0].to_bits());
                if !b.low.is_empty() && same(&b.low) && same(&b.high) {
                    write!(f, "Box({}, {}, ({},))", b.low[0], b.high[0], b.dim())
                } else {
                    write!(f, "Box({:?}, {:?})", b.low, b.high)
                }
            }
        }
    }
}

/// One action, borrowed so that stepping allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action<'a> {
    /// An element of a [`Space::Discrete`].
    Discrete(usize),
    /// An element of a [`Space::Box`].
    Continuous(&'a [f32]),
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Discrete(a) => write!(f, "{a}"),
            Action::Continuous(x) => write!(f, "{x:?}"),
        }
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
