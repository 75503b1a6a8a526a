//! The agent factory: libtorch's seed and threads, and the agent a config names.

use rlpg_agents::{Agent, AgentError, Reinforce};
use rlpg_envs::Space;

use crate::config::{AgentKind, Config};

/// Seeds libtorch and sets its thread count as `config` says. Call before building an agent:
/// network initialisation draws from libtorch's global generator.
///
/// That generator is global to the process: runs trained at the same time on several threads of
/// one process draw from it in an unspecified interleaving and are not reproducible. Train such
/// runs one after another, or in separate processes.
pub fn seed_torch(config: &Config) {
    tch::set_num_threads(config.torch_threads);
    // libtorch takes an i64 seed; reinterpreting the bits keeps every u64 seed distinct.
    tch::manual_seed(config.seed as i64);
}

/// Builds the agent `config.agent` for the given spaces, with `config.num_envs` environments,
/// on the device `config.device` means on this machine (`cuda` without a CUDA device is an
/// error; [`Config::validate_against`] refuses it first).
pub fn build_agent(
    config: &Config,
    observation_space: &Space,
    action_space: &Space,
) -> Result<Box<dyn Agent>, AgentError> {
    let device = config
        .device
        .resolve()
        .map_err(|message| AgentError::Invalid(format!("device: {message}")))?;
    build_agent_on(config, observation_space, action_space, device)
}

/// [`build_agent`] on `device` whatever `config.device` says: evaluation, videos and export
/// act on small batches and run on the CPU, so a run trained on a GPU evaluates anywhere.
pub fn build_agent_on(
    config: &Config,
    observation_space: &Space,
    action_space: &Space,
    device: tch::Device,
) -> Result<Box<dyn Agent>, AgentError> {
    Ok(match config.agent {
        AgentKind::Reinforce => Box::new(Reinforce::new_on(
            &config.reinforce,
            observation_space,
            action_space,
            config.agent_rows(),
            device,
        )?),
        AgentKind::Pathwise => Box::new(rlpg_agents::Pathwise::new_on(
            &config.pathwise,
            observation_space,
            action_space,
            config.agent_rows(),
            device,
        )?),
    })
}
