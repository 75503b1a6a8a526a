//! The whole `rlpg` command line for a user's own environment, in a few lines: register it in a
//! [`Registry`] and hand that to [`rlpg::cli::main_with`]. TOML configs, `--set`, `train`,
//! `eval`, `train --resume`, `runs`, `bench` and `envs` then work for it as for the built-ins.
//!
//! ```text
//! cargo run --release --example grid_reach_cli -- envs
//! cargo run --release --example grid_reach_cli -- train my_grid.toml --set total_timesteps=20000
//! ```
//!
//! with `my_grid.toml` holding `env = "GridReach-v0"` and `agent = "reinforce"`.

use std::process::ExitCode;

use rand::RngExt;
use rlpg::envs::{
    Action, BoxSpace, Env, EnvEntry, EnvError, EnvRng, Observation, Registry, Space, Step,
};

/// A walk on a line of [`GridReach::CELLS`] cells: step left or right, reach the right end.
///
/// * Observation `f32([position / (CELLS - 1)])`, in `Box([0], [1])`.
/// * Actions `Discrete(2)`: 0 moves left (not past the left end), 1 moves right.
/// * Reward -0.1 per step, +1 on reaching the last cell, which terminates the episode.
/// * Episodes start in a random cell of the left half, drawn from an [`EnvRng`].
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
    /// Its registry id.
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

/// The built-in environments plus GridReach-v0, truncated after 50 steps.
pub fn registry() -> Registry {
    Registry::builtin().with_entry(
        EnvEntry::new(GridReach::ID, GridReach::new)
            .max_episode_steps(50)
            .description("walk right along a line of 8 cells (an rlpg example)"),
    )
}

fn main() -> ExitCode {
    rlpg::cli::main_with(registry())
}
