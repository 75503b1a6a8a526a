//! [`RunError`]: everything that can stop a run, its resumption or its evaluation.

use std::path::PathBuf;

use rlpg_agents::AgentError;
use rlpg_envs::EnvError;

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::rundir::RunDirError;
use crate::trainer::TrainError;

/// Everything that can stop `rlpg train` or `rlpg eval`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The run directory could not be created or opened.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The environment could not be created.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The agent could not be built or loaded.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Training stopped before it began (setup of the loop).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Training stopped on an error after it began; the newest good checkpoint is named. When
    /// resuming as it is cannot be expected to work ([`TrainError::resuming_can_work`]), the run
    /// is marked failed ([`crate::runs::FAILURE_FILE`]) and `rlpg runs` lists it so. (The
    /// message names no command: the CLI adds the ones that can work, [`resume`](super::resume)
    /// is the library's.)
    #[error("{source}; {}", match (checkpoint, source.resuming_can_work()) {
        (Some(path), true) => format!(
            "training stopped; last good checkpoint {}, from which the run can be resumed",
            path.display()
        ),
        (Some(path), false) => format!(
            "training stopped and the run is marked failed (last checkpoint {})",
            path.display()
        ),
        (None, _) => "training stopped before any checkpoint was written".to_owned(),
    })]
    Stopped {
        /// Why.
        source: Box<TrainError>,
        /// The run directory.
        run_dir: PathBuf,
        /// The newest checkpoint on disk, if any.
        checkpoint: Option<PathBuf>,
        /// The run's environment id (for a command that checks it).
        env: String,
    },
    /// A checkpoint is missing, incomplete or corrupt.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// `--resume` was given a run that already finished, without a larger `total_timesteps`.
    #[error(
        "nothing to resume: the run in {} is complete ({steps} steps); to train it further, give \
         it a larger budget with --set total_timesteps=N (N > {steps})",
        run_dir.display()
    )]
    Complete {
        /// The run directory.
        run_dir: PathBuf,
        /// Steps it trained.
        steps: u64,
    },
    /// Another process is training the run (it holds the run's lock).
    #[error("{} is in use: another rlpg process is training this run", run_dir.display())]
    InUse {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// The run's environment is not in the registry it was looked up in (e.g. a run of a
    /// user's environment given to a program that does not register it).
    #[error(
        "environment `{id}` is not registered in this program (registered: {}); train, \
         evaluate and resume it with a program whose registry has it (see rlpg::cli::main_with)",
        registered.join(", ")
    )]
    NotRegistered {
        /// The run's environment id.
        id: String,
        /// The ids the registry has.
        registered: Vec<String>,
    },
    /// The Ctrl-C / SIGTERM handlers could not be installed.
    #[error("cannot install the Ctrl-C / SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    /// A result could not be written to stdout.
    #[error("cannot write the {what} to stdout: {message}")]
    Output {
        /// What was being written, e.g. `results as JSON`.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The command line asks for something impossible (what the argument parser cannot catch).
    #[error("{0}")]
    Usage(String),
    /// A file of the run could not be read or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl RunError {
    /// Whether the error is the user's input (exit code 2) rather than a failure while running.
    pub fn is_usage_error(&self) -> bool {
        matches!(
            self,
            RunError::Config(_)
                | RunError::RunDir(RunDirError::NotARunDir { .. })
                | RunError::Complete { .. }
                | RunError::Usage(_)
                | RunError::NotRegistered { .. }
        )
    }
}
