//! Your own environment on rlpg: implement [`Env`], register it, and the whole `rlpg` command
//! line works for it (TOML configs, `--set`, `train`, `eval`, `train --resume`, `runs`,
//! `export`, `bench`, `envs`):
//!
//! ```text
//! cargo run --release -- train configs/grid_reach.toml
//! cargo run --release -- eval runs/<the run>
//! ```
//!
//! Replace `GridReach` with your environment; keep `main` as it is.

use std::process::ExitCode;

use rlpg::envs::{
    Action, BoxSpace, Env, EnvEntry, EnvError, EnvRng, Observation, Registry, Space, Step,
};
// rlpg's own `rand` (the one `EnvRng` implements), so no version can mismatch.
use rlpg::rand::RngExt;

/// A walk on a line of [`GridReach::CELLS`] cells: step left or right, reach the right end.
///
/// * Observation `f32([position / (CELLS - 1)])`, in `Box([0], [1])`.
/// * Actions `Discrete(2)`: 0 moves left (not past the left end), 1 moves right.
/// * Reward -0.1 per step, +1 on reaching the last cell, which terminates the episode.
/// * Episodes start in a random cell of the left half, drawn from an [`EnvRng`] (so that
///   `reset(Some(seed))` repeats exactly and `reset(None)` continues the stream).
#[derive(Clone, Debug)]
pub struct GridReach {
    position: usize,
    started: bool,
    over: bool,
    rng: EnvRng,
    observation_space: Space,
    action_space: Space,
}

impl GridReach {
    /// Its id in the registry and in configs (`env = "GridReach-v0"`).
    pub const ID: &'static str = "GridReach-v0";
    /// Cells on the line.
    pub const CELLS: usize = 8;

    /// A walk that must be reset before its first step.
    pub fn new() -> Self {
        Self {
            position: 0,
            started: false,
            over: false,
            rng: EnvRng::new(),
            observation_space: Space::Box(BoxSpace::uniform(1, 0.0, 1.0)),
            action_space: Space::Discrete(2),
        }
    }

    fn observation(&self) -> Observation {
        Observation::from_slice(&[self.position as f32 / (Self::CELLS - 1) as f32])
    }
}

impl Default for GridReach {
    fn default() -> Self {
        Self::new()
    }
}

impl Env for GridReach {
    fn id(&self) -> &str {
        Self::ID
    }

    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.position = self.rng.for_reset(seed).random_range(0..Self::CELLS / 2);
        self.started = true;
        self.over = false;
        Ok(self.observation())
    }

    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        if !self.started {
            return Err(EnvError::NotReset { env: Self::ID.to_owned() });
        }
        if self.over {
            return Err(EnvError::EpisodeOver { env: Self::ID.to_owned() });
        }
        self.position = match action {
            Action::Discrete(0) => self.position.saturating_sub(1),
            Action::Discrete(1) => self.position + 1,
            _ => return Err(EnvError::invalid_action(Self::ID, action, &self.action_space)),
        };
        let terminated = self.position == Self::CELLS - 1;
        self.over = terminated;
        let reward = if terminated { 1.0 } else { -0.1 };
        Ok(Step { obs: self.observation(), reward, terminated, truncated: false })
    }
}

/// The built-in environments plus yours; episodes of yours are truncated after 50 steps.
pub fn registry() -> Registry {
    Registry::builtin().with_entry(
        EnvEntry::new(GridReach::ID, GridReach::new)
            .max_episode_steps(50)
            .description("walk right along a line of 8 cells (the rlpg template)"),
    )
}

fn main() -> ExitCode {
    rlpg::cli::main_with(registry())
}
