//! The contract between an agent and the training loop that drives it.

use tch::Tensor;

use crate::backend::BackendKind;

/// How [`Agent::act`] should choose actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// Sample from the policy (training, exploration noise included).
    Explore,
    /// The policy's deterministic action (its mode): evaluation.
    Deterministic,
}

/// A batch of actions, one row per environment, as an agent chose them: indices for discrete
/// spaces, floats for boxes (possibly outside the bounds; the trainer clips what it sends to
/// the environment, and the agent learns from what it chose).
#[derive(Clone, Debug, PartialEq)]
pub enum Actions {
    /// `width` indices per row (1 for `Discrete(n)`).
    Indices {
        /// `[rows * width]`, row-major.
        values: Vec<i64>,
        /// Indices per row.
        width: usize,
    },
    /// `width` floats per row (the box's dimension).
    Floats {
        /// `[rows * width]`, row-major.
        values: Vec<f32>,
        /// Floats per row.
        width: usize,
    },
}

impl Default for Actions {
    fn default() -> Self {
        Actions::Indices { values: Vec::new(), width: 1 }
    }
}

impl Actions {
    /// Rows (environments) in the batch.
    pub fn rows(&self) -> usize {
        match self {
            Actions::Indices { values, width } => values.len() / (*width).max(1),
            Actions::Floats { values, width } => values.len() / (*width).max(1),
        }
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        match self {
            Actions::Indices { width, .. } | Actions::Floats { width, .. } => *width,
        }
    }

    /// Makes this a batch of `rows × width` indices (zeros, reusing the allocation) and returns
    /// them to be written.
    pub fn indices(&mut self, rows: usize, width: usize) -> &mut [i64] {
        if !matches!(self, Actions::Indices { .. }) {
            *self = Actions::Indices { values: Vec::new(), width };
        }
        match self {
            Actions::Indices { values, width: w } => {
                *w = width;
                values.clear();
                values.resize(rows * width, 0);
                values
            }
            Actions::Floats { .. } => unreachable!("just made indices"),
        }
    }

    /// Makes this a batch of `rows × width` floats (zeros, reusing the allocation) and returns
    /// them to be written.
    pub fn floats(&mut self, rows: usize, width: usize) -> &mut [f32] {
        if !matches!(self, Actions::Floats { .. }) {
            *self = Actions::Floats { values: Vec::new(), width };
        }
        match self {
            Actions::Floats { values, width: w } => {
                *w = width;
                values.clear();
                values.resize(rows * width, 0.0);
                values
            }
            Actions::Indices { .. } => unreachable!("just made floats"),
        }
    }

    /// `rows` of this batch, in that order, into `out` (same kind and width).
    pub fn select_rows(&self, rows: &[usize], out: &mut Actions) {
        fn pick<T: Copy>(values: &[T], width: usize, rows: &[usize], out: &mut Vec<T>) {
            out.clear();
            for &r in rows {
                out.extend_from_slice(&values[r * width..(r + 1) * width]);
            }
        }
        match self {
            Actions::Indices { values, width } => {
                out.indices(0, *width);
                if let Actions::Indices { values: o, .. } = out {
                    pick(values, *width, rows, o);
                }
            }
            Actions::Floats { values, width } => {
                out.floats(0, *width);
                if let Actions::Floats { values: o, .. } = out {
                    pick(values, *width, rows, o);
                }
            }
        }
    }

    /// Writes row `k` of `src` into row `rows[k]` of this batch, which holds `total` rows
    /// (made of `src`'s kind and width, zeros elsewhere, when it is not already).
    pub fn set_rows(&mut self, rows: &[usize], src: &Actions, total: usize) {
        let width = src.width();
        let fits = std::mem::discriminant(self) == std::mem::discriminant(src)
            && self.width() == width
            && self.rows() == total;
        if !fits {
            match src {
                Actions::Indices { .. } => {
                    self.indices(total, width);
                }
                Actions::Floats { .. } => {
                    self.floats(total, width);
                }
            }
        }
        match (self, src) {
            (Actions::Indices { values, .. }, Actions::Indices { values: s, .. }) => {
                for (k, &r) in rows.iter().enumerate() {
                    values[r * width..(r + 1) * width]
                        .copy_from_slice(&s[k * width..(k + 1) * width]);
                }
            }
            (Actions::Floats { values, .. }, Actions::Floats { values: s, .. }) => {
                for (k, &r) in rows.iter().enumerate() {
                    values[r * width..(r + 1) * width]
                        .copy_from_slice(&s[k * width..(k + 1) * width]);
                }
            }
            _ => unreachable!("made of src's kind above"),
        }
    }

    /// The batch as a tensor: `Int64 [rows]` for one index per row, `Int64 [rows, width]` for
    /// several, `Float [rows, width]` for floats (for checkpoints and tests).
    pub fn to_tensor(&self) -> Tensor {
        match self {
            Actions::Indices { values, width: 1 } => Tensor::from_slice(values),
            Actions::Indices { values, width } => {
                Tensor::from_slice(values).view([-1, *width as i64])
            }
            Actions::Floats { values, width } => {
                Tensor::from_slice(values).view([-1, *width as i64])
            }
        }
    }
}

impl std::fmt::Display for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actions::Indices { width, .. } => {
                write!(f, "{} rows of {width} indices", self.rows())
            }
            Actions::Floats { width, .. } => write!(f, "{} rows of {width} floats", self.rows()),
        }
    }
}

/// One lockstep step of `n` environments, as the agent needs it for learning.
///
/// All slices are row-major with one row per environment.
pub struct Transition<'a> {
    /// `[n, obs_dim]` observations the actions were chosen from.
    pub obs: &'a [f32],
    /// The actions exactly as [`Agent::act`] chose them (before any clipping to the action
    /// bounds done for the environment).
    pub actions: &'a Actions,
    /// `[n]` rewards.
    pub rewards: &'a [f64],
    /// `[n]` true ends of the task: never bootstrap past these.
    pub terminated: &'a [bool],
    /// `[n]` time-limit ends: bootstrap from `next_obs`.
    pub truncated: &'a [bool],
    /// `[n, obs_dim]` the observation each action led to. For an env whose episode ended on this
    /// step this is the episode's **final** observation, not the first one of the next episode.
    pub next_obs: &'a [f32],
    /// `[n, mask_len]` the action masks the actions were chosen under ([`Agent::act_masked`]),
    /// when the envs declare masks: the update evaluates the policy under the same masks.
    pub masks: Option<&'a [bool]>,
    /// `[n, mask_len]` the action masks of the states `next_obs` lead on from, as the vector
    /// env reports them after the step (for an env whose episode ended, the next episode's
    /// first state: agents ignore those rows), when the envs declare masks. An off-policy agent
    /// draws the next action of its TD target within them.
    pub next_masks: Option<&'a [bool]>,
}

/// A copy of an agent's exploring policy that chooses actions on another thread while the agent
/// learns (the trainer's `act_beside_learning`). It owns everything it acts with, parameters
/// included, so the agent and its actor share nothing: the learner brings the actor up to date
/// by copying [`ActorParams`] ([`Agent::actor_params`]) and handing them over with each step.
pub trait Actor: Send + std::fmt::Debug {
    /// Exploring actions for `obs` (`[rows, obs_dim]` row-major) into `actions`, as
    /// [`Agent::act`] would choose them in [`ActMode::Explore`] with the parameters last
    /// [`Actor::load`]ed, drawing the noise from a generator seeded with `seed` (so the same
    /// parameters, observations and seed give the same actions).
    fn act(&mut self, obs: &[f32], seed: u64, actions: &mut Actions) -> Result<(), AgentError>;

    /// Takes `params` (from [`Agent::actor_params`] of the agent this actor was made from) as
    /// the policy to act with. Errors on parameters of another shape.
    fn load(&mut self, params: &ActorParams) -> Result<(), AgentError>;
}

/// What an [`Actor`] needs of its agent's current policy: the policy network's parameters and
/// whether the agent still explores with uniformly random actions (before `learning_starts`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActorParams {
    /// The policy network's parameters, flat, as the agent keeps them.
    pub(crate) values: Vec<f32>,
    /// Act uniformly at random (the agent has not started learning).
    pub(crate) random: bool,
}

/// Named scalar statistics of one update, tagged as CleanRL and Stable-Baselines3 tag them
/// (`losses/policy_loss`, `losses/value_loss`, ...). The trainer logs them as they are.
pub type Metrics = Vec<(&'static str, f64)>;

/// Errors an agent reports to the trainer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A loss, gradient norm or parameter became NaN or infinite.
    #[error("non-finite {quantity} ({value}) in {agent} update {update}")]
    NonFinite {
        /// Agent name.
        agent: &'static str,
        /// Which quantity, e.g. `losses/policy_loss` or `grad_norm`.
        quantity: String,
        /// Its value.
        value: f64,
        /// Update counter at which it happened.
        update: u64,
    },
    /// Failure in libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Invalid settings or inputs.
    #[error("{0}")]
    Invalid(String),
}

/// A learning agent. The trainer owns the loop: it calls [`Agent::act`], steps the environments,
/// and hands the result to [`Agent::observe`], which stores it and updates when the agent's own
/// schedule says so (after a full rollout for on-policy agents, every step after
/// `learning_starts` for off-policy ones).
pub trait Agent {
    /// Short name used in run directory names and messages, e.g. `"reinforce"`.
    fn name(&self) -> &'static str;

    /// Which backend the agent's updates (and acting) run on, chosen once at construction
    /// (its `backend` setting).
    fn backend(&self) -> BackendKind;

    /// Actions for a batch of observations `obs` (`[n, obs_dim]` row-major) into `actions`:
    /// one index per row for discrete policies, `act_dim` floats per row for continuous ones
    /// (possibly outside the action bounds; the trainer clips what it sends to the
    /// environment). Errors on observations of the wrong width and in the backend.
    fn act(&mut self, obs: &[f32], mode: ActMode, actions: &mut Actions) -> Result<(), AgentError>;

    /// [`Agent::act`] within action masks: `masks` (`[n, mask_len]`, the action space's
    /// `Space::mask_len` layout; `None`: every action allowed) says which choices each row may
    /// take, and no action outside them is chosen (sb3-contrib's `MaskablePPO` semantics: the
    /// masked distribution is sampled, or its mode taken). The default accepts no masks: an
    /// agent that cannot sample within them says so instead of choosing refused actions.
    fn act_masked(
        &mut self,
        obs: &[f32],
        masks: Option<&[bool]>,
        mode: ActMode,
        actions: &mut Actions,
    ) -> Result<(), AgentError> {
        match masks {
            None => self.act(obs, mode, actions),
            Some(_) => Err(AgentError::Invalid(format!(
                "the {} agent cannot act within action masks",
                self.name()
            ))),
        }
    }

    /// Records one step of experience; returns the metrics of an update if one happened.
    fn observe(&mut self, transition: &Transition<'_>) -> Result<Option<Metrics>, AgentError>;

    /// An [`Actor`] acting with a copy of this agent's exploring policy on another thread, for
    /// acting beside learning; `None` for an agent that offers none (the default). The actor
    /// acts with the parameters of its latest [`Actor::load`]; load [`Agent::actor_params`]
    /// before its first action.
    fn actor(&self) -> Option<Result<Box<dyn Actor>, AgentError>> {
        None
    }

    /// Copies this agent's current exploring policy into `params` for its [`Actor`] (reusing
    /// `params`' allocation). The default, for agents without an actor, is an error.
    fn actor_params(&self, params: &mut ActorParams) -> Result<(), AgentError> {
        let _ = params;
        Err(AgentError::Invalid(format!(
            "the {} agent has no actor to act beside learning",
            self.name()
        )))
    }

    /// Every tensor the agent learns or keeps (network parameters, optimizer state where the
    /// agent owns it), by unique name. Used for saving and loading checkpoints.
    fn named_tensors(&self) -> Vec<(String, Tensor)>;

    /// Copies saved tensors back into the agent. Errors name the first missing or mis-shaped one.
    fn load_named_tensors(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError>;

    /// What training needs beyond [`Agent::named_tensors`] to continue exactly where it
    /// stopped: the experience collected but not yet learned from (a partial rollout; the
    /// replay buffer when `include_replay`), update counters and schedules, as named tensors
    /// (counters as one-element tensors). Saved in checkpoints next to `named_tensors`.
    ///
    /// The default saves nothing: such an agent resumes with empty buffers and fresh counters,
    /// which continues training but not exactly as an uninterrupted run would.
    fn training_state(&self, include_replay: bool) -> Result<Vec<(String, Tensor)>, AgentError> {
        let _ = include_replay;
        Ok(Vec::new())
    }

    /// The agent's policy as a measurable object (see [`crate::probe`]), for measuring its
    /// policy gradient from the outside; `None` for an agent that offers none.
    fn probe(&self) -> Option<&dyn crate::probe::PolicyProbe> {
        None
    }

    /// Restores what [`Agent::training_state`] saved. A replay buffer absent from `tensors`
    /// leaves the buffer empty. The default accepts only an empty list.
    fn load_training_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), AgentError> {
        crate::scaffold::reject_foreign(self.name(), "training-state", tensors, |_| false)
    }
}
