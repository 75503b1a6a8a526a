//! `rlpg eval --video FILE.gif` and `--frame FILE.png`: the evaluation episodes of a checkpoint,
//! rendered.
//!
//! Episode `i` is reset with `seed + i` and played with the deterministic policy, its
//! observations normalised with the checkpoint's frozen statistics: the very episodes `rlpg
//! eval` scores. All of them go into one GIF ([`VIDEO_OPTIONS`]: 30 fps, frames halved, e.g.
//! CartPole's 600 × 400 as 300 × 200; one frame per step plus the reset frame, at most
//! [`VIDEO_MAX_STEPS`] steps per episode). `--frame` writes the last frame of the first episode
//! at full size as a PNG.

use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::run::{
    EnvSource, Envs, RunError, build_agent_on, default_eval_checkpoint, resolve_checkpoint,
    seed_torch,
};
use crate::trainer::{VIDEO_MAX_STEPS, VIDEO_OPTIONS, record_agent_episode};
use crate::video::{GifEncoder, VideoError, write_png};

/// What `--video` / `--frame` asked for.
pub(super) struct VideoRequest<'a> {
    pub(super) run_dir: &'a Path,
    pub(super) checkpoint: Option<&'a str>,
    pub(super) episodes: usize,
    pub(super) seed: u64,
    pub(super) video: Option<PathBuf>,
    pub(super) frame: Option<PathBuf>,
}

/// Records the request's episodes and reports on stderr what was written (stdout stays the
/// evaluation's, so `--json` output remains JSON).
pub(super) fn record(request: &VideoRequest<'_>, envs: EnvSource<'_>) -> Result<(), RunError> {
    let path = match request.checkpoint {
        Some(which) => resolve_checkpoint(request.run_dir, which)?,
        None => default_eval_checkpoint(request.run_dir)?,
    };
    let checkpoint = Checkpoint::read(&path)?;
    let config = checkpoint.config(&path)?;
    let envs = Envs::resolve(envs, &config)?;
    let mut env = envs.make()?;
    seed_torch(&config);
    let mut agent =
        build_agent_on(&config, env.observation_space(), env.action_space(), tch::Device::Cpu)?;
    checkpoint.restore_agent(agent.as_mut(), &path)?;
    let rms = if config.normalize_obs { checkpoint.meta.envs.obs_rms().cloned() } else { None };
    if config.normalize_obs && rms.is_none() {
        return Err(RunError::Checkpoint(CheckpointError::Corrupt {
            path,
            what: "normalize_obs is on but it holds no observation statistics".to_owned(),
        }));
    }
    let out = request.video.as_deref().or(request.frame.as_deref()).unwrap_or(request.run_dir);
    let failed = |e: VideoError| match e {
        VideoError::Env(rlpg_envs::EnvError::RenderUnsupported { env }) => {
            RunError::Usage(format!("environment {env} cannot render, so it has no video or frame"))
        }
        other => RunError::File { path: out.to_owned(), message: other.to_string() },
    };
    let mut gif = GifEncoder::new(VIDEO_OPTIONS);
    let mut returns = Vec::with_capacity(request.episodes);
    for i in 0..request.episodes {
        let seed = request.seed.wrapping_add(i as u64);
        let episode = record_agent_episode(
            agent.as_mut(),
            env.as_mut(),
            rms.as_ref(),
            seed,
            VIDEO_MAX_STEPS,
            &mut gif,
        )
        .map_err(failed)?;
        returns.push(episode.episode_return);
        if i == 0 {
            if let Some(frame_path) = &request.frame {
                let frame = env.render().map_err(|e| failed(e.into()))?;
                write_png(&frame, frame_path).map_err(failed)?;
                eprintln!(
                    "wrote {}: the last frame of episode 1 (seed {seed}), {}x{}",
                    frame_path.display(),
                    frame.width(),
                    frame.height()
                );
            }
        }
        if request.video.is_none() {
            break;
        }
    }
    if let Some(video_path) = &request.video {
        let gif = gif.finish().map_err(failed)?;
        gif.write(video_path).map_err(failed)?;
        let returns: Vec<String> = returns.iter().map(|r| format!("{r:.1}")).collect();
        eprintln!(
            "wrote {}: {} episode(s) (returns {}), {} frames of {}x{}, {:.0} kB",
            video_path.display(),
            returns.len(),
            returns.join(", "),
            gif.frames,
            gif.width,
            gif.height,
            gif.bytes.len() as f64 / 1000.0
        );
    }
    Ok(())
}
