//! Whole runs: from a resolved [`Config`](crate::Config) to a run directory with TensorBoard
//! curves and checkpoints; from a run directory back to a resumed run or an evaluation.
//!
//! One mechanism saves agents: the checkpoints of [`crate::checkpoint`]. A run writes one at
//! its start, every `checkpoint_every` env steps, at each new best evaluation, at its end, when
//! it is stopped (Ctrl-C, SIGTERM) and after an environment fault; [`resume`] continues from the
//! newest one that loads; [`evaluate_run`] evaluates the best one (or the newest).
//!
//! One concern per file:
//!
//! | file | holds |
//! | --- | --- |
//! | `error.rs` | [`RunError`], everything that can stop a run, a resumption or an evaluation |
//! | `env_source.rs` | [`EnvSource`]: where a run's environments come from |
//! | `lock.rs` | [`RunLock`], held by the process that trains a run |
//! | `agent.rs` | [`seed_torch`], [`build_agent`]: the agent a config names |
//! | `train.rs` | [`train`], [`train_with`]: a new run, and the training session resuming shares |
//! | `resume.rs` | [`resume`], [`resume_with`]: continuing a run, with changed settings or not |
//! | `eval.rs` | [`evaluate_run`], [`evaluate_checkpoint`]: which checkpoint, and its evaluation |

mod agent;
mod env_source;
mod error;
mod eval;
mod lock;
mod resume;
mod train;

pub use agent::{build_agent, build_agent_on, seed_torch};
pub(crate) use env_source::Envs;
pub use env_source::{EnvSource, registry_factory};
pub use error::RunError;
pub use eval::{default_eval_checkpoint, evaluate_checkpoint, evaluate_run, resolve_checkpoint};
pub use lock::{LOCK_FILE, RunLock};
pub use resume::{CHANGES_FILE, RESUME_CHANGEABLE, resume, resume_with};
pub(crate) use train::probe_env;
pub use train::{
    RunOutcome, SUMMARY_FILE, TrainOptions, TrainedRun, VIDEOS_DIR, loop_settings, train,
    train_with,
};
