//! Checkpoints: everything a run needs to continue exactly, in one safetensors file.
//!
//! A checkpoint is a safetensors file (plain tensors plus a string map; reading one parses JSON
//! and copies bytes, it never runs code) under `{run_dir}/checkpoints/`:
//!
//! * `agent/…` tensors: the agent's [`rlpg_agents::Agent::named_tensors`]
//!   (networks, optimizer moments and step counts);
//! * `training/…` tensors: its [`rlpg_agents::Agent::training_state`]
//!   (rollout or replay buffer, update counters);
//! * the metadata entry `rlpg`: a JSON [`CheckpointMeta`] with the resolved config, the loop's
//!   [`LoopState`], the environments' [`VecEnvSnapshot`] (each env's state and random
//!   generator, observation statistics) and a checksum of every tensor's name, type, shape and
//!   bytes, so that a damaged file is an error rather than a silently different agent.
//!
//! Files: `step-{step:012}.safetensors` at the start, every `checkpoint_every` steps, at the end,
//! on a stop request and after an environment fault, of which the newest `keep_checkpoints` are
//! kept; and `best.safetensors`, the state at the best evaluation so far. Each is written with
//! [`atomic_write`], so a reader (or a crash) sees a whole file or none.
//!
//! libtorch's global random generator is not in the file: tch cannot read it. The training
//! loop re-seeds it at every step from `(seed, step)` instead (see [`crate::trainer`]), which
//! [`CheckpointMeta::torch_rng`] records.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use rlpg_agents::Agent;
use rlpg_envs::{Space, VecEnvSnapshot};
use rlpg_policy::manifest::ActionSpace as SpaceSpec;
use safetensors::SafeTensorError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::config::Config;
use crate::rundir::atomic_write;
use crate::trainer::{CheckpointSaver, LoopState, SavePoint, SaveReason};

/// Folder of the checkpoints inside a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoints";
/// File name of the checkpoint at the best evaluation so far.
pub const BEST_CHECKPOINT: &str = "best.safetensors";
/// The format written in [`CheckpointMeta::format`]; files with another are refused.
pub const CHECKPOINT_FORMAT: &str = "rlpg-checkpoint-1";
/// How libtorch's random stream is made resumable, as recorded in every checkpoint.
pub const TORCH_RNG_SCHEME: &str =
    "libtorch's global generator is re-seeded at every env step from (seed, global_step)";

const STEP_PREFIX: &str = "step-";
const EXTENSION: &str = ".safetensors";
/// The safetensors metadata key holding the JSON [`CheckpointMeta`].
const META_KEY: &str = "rlpg";
const AGENT_PREFIX: &str = "agent/";
const TRAINING_PREFIX: &str = "training/";

/// Everything in a checkpoint besides the agent's tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Global env step of the checkpoint.
    pub step: u64,
    /// Why it was written.
    pub reason: SaveReason,
    /// Environment id.
    pub env: String,
    /// Agent name.
    pub agent: String,
    /// The run's seed.
    pub seed: u64,
    /// The run's `total_timesteps`.
    pub total_timesteps: u64,
    /// Mean return of the evaluation done at this step, if one was.
    pub eval_return: Option<f64>,
    /// Whether the replay buffer (if the agent has one) is included.
    pub replay_buffer: bool,
    /// The resolved config, as the run directory's `config.toml` holds it.
    pub config: String,
    /// The training loop's state.
    pub loop_state: LoopState,
    /// The environments.
    pub envs: VecEnvSnapshot,
    /// The environment's spaces, so that the checkpoint's policy loads and exports without the
    /// environment (`None` in checkpoints written before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaces: Option<EnvSpaces>,
    /// How libtorch's random numbers continue ([`TORCH_RNG_SCHEME`]).
    pub torch_rng: String,
    /// The backend the agent ran on when it was written (`libtorch` or `kernel`; `None` in
    /// checkpoints written before it was recorded). Informational: either backend resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// FNV-1a 64 (hex) of every tensor's name, dtype, shape and bytes, in name order.
    pub checksum: String,
}

/// The observation and action spaces of a run's environment, as its checkpoints record them.
/// Each is spelled as in rlpg-policy's manifest ([`SpaceSpec`]: bounds are JSON numbers, or
/// `"inf"` / `"-inf"`, which plain JSON cannot hold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSpaces {
    /// The observation space.
    pub observation: SpaceSpec,
    /// The action space.
    pub action: SpaceSpec,
    /// Whether the environment masks its actions (`Env::masks_actions`): the policy was trained
    /// under masks, so its export declares the mask input. Absent (false) in checkpoints written
    /// before masks existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masks: bool,
}

impl EnvSpaces {
    /// The record of these spaces (of an environment without action masks).
    pub fn new(observation: &Space, action: &Space) -> Self {
        Self {
            observation: SpaceSpec::from(observation),
            action: SpaceSpec::from(action),
            masks: false,
        }
    }

    /// The record, saying whether the environment masks its actions.
    pub fn masked(self, masks: bool) -> Self {
        Self { masks, ..self }
    }

    /// The observation space.
    pub fn observation_space(&self) -> Space {
        self.observation.to_space()
    }

    /// The action space.
    pub fn action_space(&self) -> Space {
        self.action.to_space()
    }
}

/// A whole checkpoint in memory.
#[derive(Debug)]
pub struct Checkpoint {
    /// Everything but the tensors.
    pub meta: CheckpointMeta,
    /// The agent's [`rlpg_agents::Agent::named_tensors`].
    pub agent: Vec<(String, Tensor)>,
    /// The agent's [`rlpg_agents::Agent::training_state`].
    pub training: Vec<(String, Tensor)>,
}

/// Why a checkpoint could not be found, read or written. Messages are one line and name the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The run directory holds no checkpoint.
    #[error("no checkpoint in {}: the run has not saved one (yet)", dir.display())]
    NotFound {
        /// The checkpoint folder looked in.
        dir: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file ends early (it was cut short, e.g. copied while being written).
    #[error("checkpoint {} is incomplete: {what}", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The file is damaged or is not an rlpg checkpoint.
    #[error("checkpoint {} is corrupt: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file is a sound checkpoint, but its tensors do not fit the agent that its own config
    /// builds (e.g. one written before a default changed, such as `pathwise.discrete_critic`).
    #[error(
        "checkpoint {} does not fit the agent its config builds ({what}); was it written by \
         another version of rlpg?",
        path.display()
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        what: String,
    },
    /// The checkpoint could not be written.
    #[error("cannot write checkpoint {}: {message}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Checkpoint {
    /// Serialises the checkpoint, filling in [`CheckpointMeta::checksum`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut named: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (prefix, tensors) in [(AGENT_PREFIX, &self.agent), (TRAINING_PREFIX, &self.training)] {
            for (name, t) in tensors {
                let full = format!("{prefix}{name}");
                let (dtype, shape, bytes) = tensor_bytes(t).map_err(|e| format!("{full}: {e}"))?;
                named.push((full, dtype, shape, bytes));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("two tensors are named '{}'", w[0].0));
        }
        let mut meta = self.meta.clone();
        meta.checksum = checksum(named.iter().map(|(n, d, s, b)| (n.as_str(), *d, &s[..], &b[..])));
        let json = serde_json::to_string(&meta).map_err(|e| format!("metadata: {e}"))?;
        let views = named
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{e:?}"))?;
        let info = Some(HashMap::from([(META_KEY.to_owned(), json)]));
        safetensors::tensor::serialize(views, &info).map_err(|e| format!("{e:?}"))
    }

    /// Parses a checkpoint read from `path` (named in errors), verifying its checksum.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let (meta, tensors) = parse(bytes, path)?;
        let corrupt = |what: String| CheckpointError::Corrupt { path: path.to_owned(), what };
        let (mut agent, mut training) = (Vec::new(), Vec::new());
        for (name, view) in tensors.tensors() {
            let tensor =
                view_to_tensor(&view).map_err(|e| corrupt(format!("tensor '{name}': {e}")))?;
            if let Some(rest) = name.strip_prefix(AGENT_PREFIX) {
                agent.push((rest.to_owned(), tensor));
            } else if let Some(rest) = name.strip_prefix(TRAINING_PREFIX) {
                training.push((rest.to_owned(), tensor));
            } else {
                return Err(corrupt(format!("unexpected tensor '{name}'")));
            }
        }
        agent.sort_by(|a, b| a.0.cmp(&b.0));
        training.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Checkpoint { meta, agent, training })
    }

    /// Reads and checks the checkpoint at `path`.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path)
            .map_err(|source| CheckpointError::Read { path: path.to_owned(), source })?;
        Checkpoint::from_bytes(&bytes, path)
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let write_err = |message: String| CheckpointError::Write { path: path.to_owned(), message };
        let bytes = self.to_bytes().map_err(write_err)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
        }
        atomic_write(path, &bytes).map_err(|e| write_err(e.to_string()))
    }

    /// The resolved config the checkpoint was written with. Its environment is not looked up:
    /// the checkpoint of a user's environment reads anywhere.
    pub fn config(&self, path: &Path) -> Result<Config, CheckpointError> {
        Config::from_run_toml_str(&self.meta.config, path).map_err(|e| CheckpointError::Corrupt {
            path: path.to_owned(),
            what: format!("its config: {e}"),
        })
    }

    /// Loads the agent's tensors into `agent`, which its [`config`](Self::config) built. A
    /// checkpoint read from `path` (named in errors) whose tensors do not fit is a
    /// [`CheckpointError::Mismatch`], and leaves `agent` unchanged.
    pub fn restore_agent(&self, agent: &mut dyn Agent, path: &Path) -> Result<(), CheckpointError> {
        agent
            .load_named_tensors(&self.agent)
            .map_err(|e| CheckpointError::Mismatch { path: path.to_owned(), what: e.to_string() })
    }
}

/// Reads only the metadata of the checkpoint at `path`, after checking every tensor against the
/// checksum (so a listing never calls a damaged file good). Builds no tensors.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let bytes = std::fs::read(path)
        .map_err(|source| CheckpointError::Read { path: path.to_owned(), source })?;
    parse(&bytes, path).map(|(meta, _)| meta)
}

/// Parses the header and verifies the checksum.
fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(CheckpointMeta, SafeTensors<'a>), CheckpointError> {
    let corrupt = |what: String| CheckpointError::Corrupt { path: path.to_owned(), what };
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength
        | SafeTensorError::MetadataIncompleteBuffer => CheckpointError::Incomplete {
            path: path.to_owned(),
            what: format!(
                "{} bytes, shorter than its header says (was it cut short while being copied?)",
                bytes.len()
            ),
        },
        other => corrupt(format!("not a valid safetensors file ({other:?})")),
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupt(format!("not a valid safetensors file ({e:?})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| corrupt("no rlpg metadata: not an rlpg checkpoint".to_owned()))?;
    let meta: CheckpointMeta =
        serde_json::from_str(json).map_err(|e| corrupt(format!("metadata: {e}")))?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(corrupt(format!(
            "format '{}', this rlpg reads '{CHECKPOINT_FORMAT}'",
            meta.format
        )));
    }
    let mut views = tensors.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let sum = checksum(views.iter().map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())));
    if sum != meta.checksum {
        return Err(corrupt(format!(
            "checksum mismatch (stored {}, computed {sum}): the tensor data was altered",
            meta.checksum
        )));
    }
    Ok((meta, tensors))
}

/// FNV-1a 64 over every tensor's name, dtype, shape and bytes, as 16 hex digits.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    for (name, dtype, shape, data) in tensors {
        feed(name.as_bytes());
        feed(&[0]);
        feed(format!("{dtype:?}").as_bytes());
        for &d in shape {
            feed(&(d as u64).to_le_bytes());
        }
        feed(&(data.len() as u64).to_le_bytes());
        feed(data);
    }
    format!("{hash:016x}")
}

/// The safetensors dtype of a tch kind, for the kinds agents keep.
fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// The dtype, shape and little-endian bytes of a CPU copy of `t`.
fn tensor_bytes(t: &Tensor) -> Result<(Dtype, Vec<usize>, Vec<u8>), String> {
    let kind = t.f_kind().map_err(|e| e.to_string())?;
    let dtype = dtype_of(kind).ok_or_else(|| format!("tensors of kind {kind:?} are not saved"))?;
    let t = t
        .f_to_device(tch::Device::Cpu)
        .and_then(|t| t.f_contiguous())
        .map_err(|e| e.to_string())?;
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
    if numel > 0 {
        t.f_copy_data_u8(&mut bytes, numel).map_err(|e| e.to_string())?;
    }
    Ok((dtype, shape, bytes))
}

fn view_to_tensor(view: &TensorView<'_>) -> Result<Tensor, String> {
    let kind = kind_of(view.dtype())
        .ok_or_else(|| format!("dtype {:?} is not one rlpg writes", view.dtype()))?;
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    let numel: usize = view.shape().iter().product();
    // libtorch copies `numel` elements from the pointer: check the length ourselves first.
    if view.data().len() != numel * kind.elt_size_in_bytes() {
        return Err(format!("{} bytes for shape {shape:?}", view.data().len()));
    }
    Tensor::f_from_data_size(view.data(), &shape, kind).map_err(|e| e.to_string())
}

/// The checkpoint folder of `run_dir`.
pub fn checkpoint_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_DIR)
}

/// The file name of the step checkpoint at `step`.
pub fn step_file_name(step: u64) -> String {
    format!("{STEP_PREFIX}{step:012}{EXTENSION}")
}

/// The step checkpoints of `run_dir` as `(step, path)`, oldest first. A missing folder is no
/// checkpoints; temporary files of interrupted writes are not checkpoints.
pub fn step_checkpoints(run_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = checkpoint_dir(run_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let step = name
            .strip_prefix(STEP_PREFIX)
            .and_then(|rest| rest.strip_suffix(EXTENSION))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(step) = step {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The best-evaluation checkpoint of `run_dir`, if there is one.
pub fn best_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    let path = checkpoint_dir(run_dir).join(BEST_CHECKPOINT);
    path.is_file().then_some(path)
}

/// Every checkpoint file of `run_dir`, newest step first (the best one placed by the step in
/// its header; one whose header cannot be read goes last).
pub fn checkpoints_newest_first(run_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut all: Vec<(Option<u64>, PathBuf)> =
        step_checkpoints(run_dir)?.into_iter().map(|(s, p)| (Some(s), p)).collect();
    if let Some(best) = best_checkpoint(run_dir) {
        all.push((peek_step(&best), best));
    }
    // Newest first; at equal steps the step file before the best file (it is written last).
    all.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(all.into_iter().map(|(_, p)| p).collect())
}

/// The step in a checkpoint's header, read without loading or checking the tensors.
fn peek_step(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?.min(100 << 20);
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let meta: serde_json::Value =
        serde_json::from_str(value["__metadata__"][META_KEY].as_str()?).ok()?;
    meta["step"].as_u64()
}

/// The newest checkpoint of `run_dir` that reads and checks, with the errors of the newer ones
/// that did not. `Ok(None)` when the run has no checkpoint at all.
pub fn latest_loadable(
    run_dir: &Path,
) -> Result<Option<(PathBuf, Checkpoint, Vec<CheckpointError>)>, CheckpointError> {
    let files = checkpoints_newest_first(run_dir)
        .map_err(|source| CheckpointError::Read { path: checkpoint_dir(run_dir), source })?;
    let mut skipped = Vec::new();
    for path in files {
        match Checkpoint::read(&path) {
            Ok(checkpoint) => return Ok(Some((path, checkpoint, skipped))),
            Err(e) => skipped.push(e),
        }
    }
    match skipped.into_iter().next() {
        // Every checkpoint is damaged: the newest one's error says why.
        Some(first) => Err(first),
        None => Ok(None),
    }
}

/// Deletes all but the newest `keep` step checkpoints of `run_dir` (never the best one).
pub fn prune(run_dir: &Path, keep: usize) -> io::Result<()> {
    let steps = step_checkpoints(run_dir)?;
    let excess = steps.len().saturating_sub(keep);
    for (_, path) in steps.into_iter().take(excess) {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Ok(())
}

/// Removes the temporary files that writes interrupted by a crash or a second Ctrl-C left in
/// the run directory and its checkpoint folder (`.{name}.tmp-…`, see [`atomic_write`]): a stale
/// copy of an event file would otherwise be read by TensorBoard, whose file pattern matches any
/// name containing `tfevents`. Returns how many were removed.
pub fn remove_stale_temp_files(run_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for dir in [run_dir.to_owned(), checkpoint_dir(run_dir)] {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The [`CheckpointSaver`] of a run directory: step checkpoints pruned to the newest
/// `keep`, and `best.safetensors`.
#[derive(Debug)]
pub struct RunCheckpoints {
    run_dir: PathBuf,
    config: Config,
    config_text: String,
    keep: usize,
    last_written: Option<PathBuf>,
    spaces: Option<EnvSpaces>,
}

impl RunCheckpoints {
    /// Checkpoints of `config`'s run in `run_dir`, keeping `config.keep_checkpoints`.
    pub fn new(run_dir: &Path, config: &Config) -> Result<Self, crate::ConfigError> {
        Ok(Self {
            run_dir: run_dir.to_owned(),
            config: config.clone(),
            config_text: config.to_toml_string()?,
            keep: config.keep_checkpoints.max(1),
            last_written: None,
            spaces: None,
        })
    }

    /// Records `spaces` (the run's environment's) in every checkpoint written from now on.
    pub fn with_spaces(mut self, spaces: EnvSpaces) -> Self {
        self.spaces = Some(spaces);
        self
    }

    /// The file written last, if any.
    pub fn last_written(&self) -> Option<&Path> {
        self.last_written.as_deref()
    }
}

impl CheckpointSaver for RunCheckpoints {
    fn save(&mut self, point: &SavePoint<'_>) -> Result<(), String> {
        let step = point.state.global_step;
        let dir = checkpoint_dir(&self.run_dir);
        let path = match point.reason {
            SaveReason::NewBest => dir.join(BEST_CHECKPOINT),
            _ => dir.join(step_file_name(step)),
        };
        let copy = |tensors: &[(String, Tensor)]| {
            tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<Vec<_>>()
        };
        let checkpoint = Checkpoint {
            meta: CheckpointMeta {
                format: CHECKPOINT_FORMAT.to_owned(),
                step,
                reason: point.reason,
                env: self.config.env.clone(),
                agent: self.config.agent.name().to_owned(),
                seed: self.config.seed,
                total_timesteps: self.config.total_timesteps,
                eval_return: point.eval_return,
                replay_buffer: self.config.checkpoint_replay_buffer,
                config: self.config_text.clone(),
                loop_state: point.state.clone(),
                envs: point.envs.clone(),
                spaces: self.spaces.clone(),
                torch_rng: TORCH_RNG_SCHEME.to_owned(),
                backend: Some(point.backend.name().to_owned()),
                checksum: String::new(),
            },
            agent: copy(point.agent_tensors),
            training: copy(point.training_tensors),
        };
        checkpoint.write(&path).map_err(|e| e.to_string())?;
        self.last_written = Some(path);
        if point.reason != SaveReason::NewBest {
            prune(&self.run_dir, self.keep)
                .map_err(|e| format!("cannot delete old checkpoints: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_file_names_sort_by_step_and_parse_back() {
        assert_eq!(step_file_name(42), "step-000000000042.safetensors");
        assert!(step_file_name(9) < step_file_name(10));
    }

    #[test]
    fn checksum_changes_with_any_byte_name_or_shape() {
        let base = checksum([("a", Dtype::F32, &[2usize][..], &[0u8; 8][..])].into_iter());
        let byte =
            checksum([("a", Dtype::F32, &[2usize][..], &[0, 0, 0, 0, 0, 0, 0, 1][..])].into_iter());
        let name = checksum([("b", Dtype::F32, &[2usize][..], &[0u8; 8][..])].into_iter());
        let shape = checksum([("a", Dtype::F32, &[1usize, 2][..], &[0u8; 8][..])].into_iter());
        assert_ne!(base, byte, "a changed byte must change the checksum");
        assert_ne!(base, name, "a renamed tensor must change the checksum");
        assert_ne!(base, shape, "a reshaped tensor must change the checksum");
    }
}
