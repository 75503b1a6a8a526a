//! Deterministic evaluation and evaluation videos: the agent acting outside training, on fresh
//! environments seeded apart from the training ones.

use rlpg_agents::{ActMode, Actions, Agent, AgentError};
use rlpg_envs::{ActionBuf, DEFAULT_NORM_EPSILON, Env, EnvThreads, RunningMeanStd, Stepping};

use super::{
    ActionAdapter, EnvFactory, EvalResult, LoopSettings, OBS_CLIP, ScalarSink, TrainError, env_err,
    io_err, make_vec_env,
};
use crate::video::{GifEncoder, GifOptions, RecordedEpisode, VideoError, record_episode};

/// Runs `episodes` deterministic episodes of `agent` on fresh environments from `factory`, one
/// episode per environment, env `i` reset with `seed + i`. `obs_rms`, when given, normalises the
/// observations with frozen training statistics.
pub fn evaluate(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    episodes: usize,
    seed: u64,
    obs_rms: Option<(&RunningMeanStd, f32)>,
) -> Result<EvalResult, TrainError> {
    evaluate_on(agent, factory, episodes, seed, obs_rms, EnvThreads::default())
}

/// [`evaluate`] with the envs stepped on `threads` threads.
fn evaluate_on(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    episodes: usize,
    seed: u64,
    obs_rms: Option<(&RunningMeanStd, f32)>,
    threads: EnvThreads,
) -> Result<EvalResult, TrainError> {
    // In this process: the results are the same, and a short evaluation would spend more time
    // starting worker processes than stepping.
    let stepping = Stepping { threads, ..Stepping::default() };
    let mut vec = make_vec_env(factory, episodes, &stepping).map_err(env_err(0))?;
    if let Some((rms, clip)) = obs_rms {
        vec.enable_obs_normalization(clip);
        vec.set_obs_rms(rms.clone()).map_err(env_err(0))?;
        vec.set_obs_normalization_training(false);
    }
    let mut adapter = ActionAdapter::new(vec.action_space());
    let mut obs = vec.reset(Some(seed)).map_err(env_err(0))?.to_vec();
    let mut returns: Vec<Option<f64>> = vec![None; episodes];
    let keys = vec.info_keys().to_vec();
    // Each info's value in each env's (first) episode.
    let mut infos: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    let mut steps = 0u64;
    let mut actions = Actions::default();
    let agent_err = |step: u64| move |source| TrainError::Agent { step, source };
    // The masks of the states acted on (greedy actions within them), when the envs have masks.
    let mut masks: Option<Vec<bool>> = vec.action_masks().map(<[bool]>::to_vec);
    while returns.iter().any(Option::is_none) {
        agent
            .act_masked(&obs, masks.as_deref(), ActMode::Deterministic, &mut actions)
            .map_err(agent_err(steps))?;
        let env_actions = adapter.convert(&actions).map_err(agent_err(steps))?;
        let step = vec.step(env_actions).map_err(env_err(steps))?;
        steps += episodes as u64;
        for (e, ep) in step.episodes.iter().enumerate() {
            if returns[ep.env].is_none() {
                returns[ep.env] = Some(ep.ret);
                for (j, key) in keys.iter().enumerate() {
                    let totals = step.episode_infos.get(e * keys.len() + j);
                    infos[j].extend(totals.and_then(|t| t.value(key.reduce)));
                }
            }
        }
        obs.copy_from_slice(&step.obs);
        if let Some(m) = &mut masks {
            m.copy_from_slice(&step.action_masks);
        }
    }
    let returns: Vec<f64> = returns.into_iter().flatten().collect();
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / returns.len() as f64;
    let infos = keys
        .iter()
        .zip(&infos)
        .filter(|(_, values)| !values.is_empty())
        .map(|(key, values)| {
            (key.name.to_string(), values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect();
    Ok(EvalResult { mean_return: mean, std_return: var.sqrt(), returns, infos })
}

/// Tag of the evaluation videos (TensorBoard's Images dashboard).
pub const VIDEO_TAG: &str = "videos/eval";

/// How evaluation videos are encoded: 30 frames per second, frames halved (CartPole's and
/// MountainCar's 600 × 400 become 300 × 200, Pendulum's and Acrobot's 500 × 500 become
/// 250 × 250).
pub const VIDEO_OPTIONS: GifOptions = GifOptions { fps: 30, downscale: 2 };

/// Longest evaluation video, in steps (the built-in envs' time limits are at most 1000 steps).
pub const VIDEO_MAX_STEPS: usize = 1000;

/// [`evaluate`] for the training loop: `settings.eval_episodes` episodes, seeded apart from the
/// training envs, normalised with the training envs' current statistics `rms`, stepped on
/// `threads` threads.
pub(super) fn run_eval(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    rms: Option<&RunningMeanStd>,
    threads: EnvThreads,
) -> Result<EvalResult, TrainError> {
    let rms = rms.map(|r| (r, OBS_CLIP));
    let (seed, episodes) = (eval_seed(settings), settings.eval_episodes);
    evaluate_on(agent, factory, episodes, seed, rms, threads)
}

/// The seed of the first evaluation episode (and of the video's episode): apart from the
/// training envs' seeds, so that evaluation never replays a training episode start.
fn eval_seed(settings: &LoopSettings) -> u64 {
    settings.seed.wrapping_add(1_000_000)
}

/// Plays one deterministic evaluation episode (seeded as the first evaluation episode) on a
/// fresh env, renders it into a GIF ([`VIDEO_OPTIONS`]) and hands it to the sink at `step`.
pub(super) fn record_video(
    agent: &mut dyn Agent,
    factory: EnvFactory<'_>,
    settings: &LoopSettings,
    rms: Option<&RunningMeanStd>,
    step: u64,
    sink: &mut dyn ScalarSink,
) -> Result<(), TrainError> {
    let mut env = factory.make().map_err(env_err(step))?;
    let mut gif = GifEncoder::new(VIDEO_OPTIONS);
    record_agent_episode(agent, env.as_mut(), rms, eval_seed(settings), VIDEO_MAX_STEPS, &mut gif)
        .map_err(|source| TrainError::Video { step, source })?;
    let gif = gif.finish().map_err(|source| TrainError::Video { step, source })?;
    sink.video(VIDEO_TAG, &gif, step).map_err(io_err("writing the video"))
}

/// Plays one episode of `agent`'s deterministic actions on `env`, reset with `seed`, rendering
/// every frame into `video` (see [`record_episode`]). `obs_rms`, when given, normalises the
/// observations with frozen training statistics, as [`evaluate`] does, so the episode is the
/// one [`evaluate`] plays for the same seed.
pub fn record_agent_episode(
    agent: &mut dyn Agent,
    env: &mut dyn Env,
    obs_rms: Option<&RunningMeanStd>,
    seed: u64,
    max_steps: usize,
    video: &mut GifEncoder,
) -> Result<RecordedEpisode, VideoError> {
    let obs_dim = env.observation_space().flat_dim();
    let mut adapter = ActionAdapter::new(env.action_space());
    let mut normalized = vec![0.0f32; obs_dim];
    let mut actions = Actions::default();
    let act = |obs: &[f32], masks: Option<&[bool]>| -> Result<ActionBuf, AgentError> {
        let input = match obs_rms {
            Some(rms) => {
                rms.normalize(obs, &mut normalized, DEFAULT_NORM_EPSILON, OBS_CLIP);
                &normalized[..]
            }
            None => obs,
        };
        agent.act_masked(input, masks, ActMode::Deterministic, &mut actions)?;
        let width = adapter.width();
        adapter.convert(&actions)?.get(0, width).map(ActionBuf::from).ok_or_else(|| {
            AgentError::Invalid(format!("the agent gave no action of {width} values"))
        })
    };
    record_episode(env, Some(seed), max_steps, act, video)
}
