//! `rlpg export`: a checkpoint's acting policy as an export directory that needs no libtorch
//! (`policy.json`, `policy.safetensors`, `policy.onnx`; the format is rlpg-policy's
//! [`Manifest`]).
//!
//! What goes in: the acting network only (REINFORCE's `policy/…` or the pathwise agent's
//! `actor/…` tensors, renamed without the prefix), the state-independent log-std of a REINFORCE
//! Gaussian, the frozen observation statistics when the run normalised observations, the
//! head that gives the agent's deterministic action and the environment's action space with the
//! post-processing training applied before stepping it (the pathwise agent's rescale from
//! `[−1, 1]` to the bounds; the trainer's clip into the bounds), and the action mask when the
//! environment masked its actions in training. Critics, optimizer state and buffers stay behind.
//!
//! The checkpoint is checked as `rlpg eval` checks it (checksum, then the agent its config
//! builds must accept its tensors), so a damaged or mismatched checkpoint is a
//! [`CheckpointError`] naming the file.

use std::path::{Path, PathBuf};

use rlpg_agents::Estimator;
use rlpg_envs::{DEFAULT_NORM_EPSILON, Space};
use rlpg_policy::manifest::{
    ActionSpace, ActionSpec, FORMAT, Head, Layer, Manifest, MaskSpec, Normalization,
    ObservationSpec, Rescale, Source, VERSION,
};
use rlpg_policy::{Export, NamedTensor};
use tch::Kind;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::config::AgentKind;
use crate::run::{
    EnvSource, Envs, RunError, build_agent_on, default_eval_checkpoint, resolve_checkpoint,
};
use crate::trainer::OBS_CLIP;

/// What [`export_run`] wrote.
#[derive(Debug, Clone)]
pub struct ExportedRun {
    /// The checkpoint the policy was taken from.
    pub checkpoint: PathBuf,
    /// The files written (`policy.json`, `policy.safetensors`, `policy.onnx`).
    pub files: Vec<PathBuf>,
    /// The export's manifest.
    pub manifest: Manifest,
}

/// Exports the policy of a run: the checkpoint `checkpoint` names (`best`, `latest` or a file,
/// as `rlpg eval --checkpoint` takes them; `None` is the best checkpoint, or the newest when
/// the run has none) into the directory `out` (created if missing; existing export files in it
/// are replaced). The spaces come from the checkpoint; a checkpoint written before they were
/// recorded takes them from the run's environment, found through `envs`.
pub fn export_run(
    run_dir: &Path,
    checkpoint: Option<&str>,
    out: &Path,
    envs: EnvSource<'_>,
) -> Result<ExportedRun, RunError> {
    let path = match checkpoint {
        None => default_eval_checkpoint(run_dir)?,
        Some(which) => resolve_checkpoint(run_dir, which)?,
    };
    let export = export_checkpoint(&path, envs)?;
    let files = export
        .write(out)
        .map_err(|e| RunError::File { path: out.to_owned(), message: e.to_string() })?;
    Ok(ExportedRun { checkpoint: path, files, manifest: export.manifest })
}

/// The export of the checkpoint file at `path`, in memory. The spaces come from the checkpoint;
/// a checkpoint written before they were recorded takes them from its config's environment,
/// found through `envs`.
pub fn export_checkpoint(path: &Path, envs: EnvSource<'_>) -> Result<Export, RunError> {
    let checkpoint = Checkpoint::read(path)?;
    let config = checkpoint.config(path)?;
    let (observation_space, action_space, masks) = match &checkpoint.meta.spaces {
        Some(spaces) => (spaces.observation_space(), spaces.action_space(), spaces.masks),
        None => {
            let probe = Envs::resolve(envs, &config)?.make()?;
            let masks = probe.masks_actions();
            (probe.observation_space().clone(), probe.action_space().clone(), masks)
        }
    };
    // The agent this config builds must accept the checkpoint, exactly as for `rlpg eval`:
    // this is what makes a checkpoint of another shape a `Mismatch` rather than a bad export.
    let mut agent = build_agent_on(&config, &observation_space, &action_space, tch::Device::Cpu)?;
    checkpoint.restore_agent(agent.as_mut(), path)?;
    drop(agent);
    let mismatch = |what: String| CheckpointError::Mismatch { path: path.to_owned(), what };
    let corrupt = |what: String| CheckpointError::Corrupt { path: path.to_owned(), what };

    let obs_dim = observation_space.flat_dim();
    let normalization = if config.normalize_obs {
        let rms = checkpoint.meta.envs.obs_rms().ok_or_else(|| {
            corrupt("normalize_obs is on but it holds no observation statistics".into())
        })?;
        if rms.dim() != obs_dim {
            return Err(mismatch(format!(
                "its observation statistics have {} dimensions, the environment's observations {obs_dim}",
                rms.dim()
            ))
            .into());
        }
        Some(Normalization {
            mean: rms.mean().to_vec(),
            var: rms.var().to_vec(),
            epsilon: DEFAULT_NORM_EPSILON,
            clip: OBS_CLIP,
        })
    } else {
        None
    };

    let (prefix, hidden, activation) = match config.agent {
        AgentKind::Reinforce => ("policy/", &config.reinforce.hidden, config.reinforce.activation),
        AgentKind::Pathwise => {
            ("actor/", &config.pathwise.actor_hidden, config.pathwise.activation)
        }
    };

    let (head, rescale) = match (config.agent, &action_space) {
        (AgentKind::Reinforce, Space::Discrete(_)) => (Head::Categorical, None),
        (AgentKind::Reinforce, Space::Box(_)) => {
            let log_std = (!config.reinforce.state_dependent_std).then(|| "log_std".to_owned());
            (Head::Gaussian { log_std }, None)
        }
        // The pathwise agent's relaxed categoricals: `actor/out` gives the logits of every
        // component in turn (`n`, `sum(nvec)`, or "0" then "1" for each value of a MultiBinary),
        // each component's bounded on its own before the mask.
        (
            AgentKind::Pathwise,
            Space::Discrete(_) | Space::MultiDiscrete(_) | Space::MultiBinary(_),
        ) => (
            Head::GumbelSoftmax {
                logit_bound: config.pathwise.logit_bound as f32,
                temperature: config.pathwise.gumbel_temperature,
            },
            None,
        ),
        (AgentKind::Pathwise, Space::Box(b)) => {
            let head = match config.pathwise.estimator {
                Estimator::Sac => Head::SquashedGaussian,
                Estimator::Td3 => {
                    Head::DeterministicTanh { exploration_noise: config.pathwise.exploration_noise }
                }
            };
            (head, Some(Rescale::of(b)))
        }
        // REINFORCE's multi-part heads: `policy/out` gives the logits of every component in
        // turn (`sum(nvec)`), or one logit of "1" per value of a MultiBinary.
        (AgentKind::Reinforce, Space::MultiDiscrete(nvec)) => {
            (Head::MultiCategorical { nvec: nvec.clone() }, None)
        }
        (AgentKind::Reinforce, Space::MultiBinary(n)) => (Head::Bernoulli { n: *n }, None),
    };

    let find = |name: &str| -> Result<NamedTensor, CheckpointError> {
        let full = format!("{prefix}{name}");
        let tensor = checkpoint
            .agent
            .iter()
            .find(|(n, _)| *n == full)
            .map(|(_, t)| t)
            .ok_or_else(|| mismatch(format!("it has no tensor '{full}'")))?;
        if tensor.kind() != Kind::Float {
            return Err(mismatch(format!(
                "tensor '{full}' is {:?}, expected Float",
                tensor.kind()
            )));
        }
        let shape = tensor.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f32>::try_from(&tensor.flatten(0, -1).contiguous())
            .map_err(|e| corrupt(format!("tensor '{full}': {e}")))?;
        Ok(NamedTensor { name: name.to_owned(), shape, values })
    };
    let mut layers = Vec::new();
    let mut tensors = Vec::new();
    let names: Vec<String> =
        (0..hidden.len()).map(|i| format!("fc{i}")).chain(["out".to_owned()]).collect();
    let mut inputs = obs_dim;
    for (i, name) in names.iter().enumerate() {
        let weight = find(&format!("{name}.weight"))?;
        let bias = find(&format!("{name}.bias"))?;
        let outputs = weight.shape.first().copied().unwrap_or(0);
        layers.push(Layer {
            weight: weight.name.clone(),
            bias: bias.name.clone(),
            inputs,
            outputs,
            activation: (i < hidden.len()).then_some(activation),
        });
        inputs = outputs;
        tensors.extend([weight, bias]);
    }
    if let Head::Gaussian { log_std: Some(name) } = &head {
        tensors.push(find(name)?);
    }

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        source: Some(Source {
            env: config.env.clone(),
            agent: config.agent.name().to_owned(),
            estimator: (config.agent == AgentKind::Pathwise).then(|| {
                match config.pathwise.estimator {
                    Estimator::Sac => "sac",
                    Estimator::Td3 => "td3",
                }
                .to_owned()
            }),
            step: checkpoint.meta.step,
            eval_return: checkpoint.meta.eval_return,
            checkpoint: path.file_name().map_or(String::new(), |n| n.to_string_lossy().into()),
        }),
        observation: ObservationSpec { dim: obs_dim, normalization },
        layers,
        head,
        // A policy trained under the env's masks declares the mask (its ONNX graph takes it).
        action: ActionSpec {
            space: ActionSpace::from(&action_space),
            rescale,
            mask: if masks { MaskSpec::of(&action_space) } else { None },
        },
    };
    Export::new(manifest, tensors, path).map_err(|e| mismatch(e.to_string()).into())
}
