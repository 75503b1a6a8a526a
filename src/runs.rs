//! `rlpg runs`: what the run directories under a folder hold, and whether each is complete,
//! resumable, failed or broken.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{CheckpointMeta, checkpoints_newest_first, read_meta};
use crate::config::Config;
use crate::rundir::CONFIG_FILE;

/// The state of one run directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum RunStatus {
    /// Training ran to the end: its final checkpoint loads.
    Complete,
    /// Training stopped early (stopped, killed, failed) and `rlpg train --resume` can continue
    /// it: its newest loadable checkpoint is not the final one, or it saved none yet.
    Resumable,
    /// Training stopped on an error that resuming as it is would meet again (an environment's
    /// or the agent's, see [`crate::trainer::TrainError::resuming_can_work`]); the error is
    /// given. Once its cause is fixed, `rlpg train --resume` continues it.
    Failed(String),
    /// Neither: no readable config, or checkpoints that all fail to load. The reason says why.
    Broken(String),
}

/// The file in a run directory that marks the run failed: `{"error": "..."}`, written when
/// training stops on an error that resuming would meet again, removed when a resume starts.
pub const FAILURE_FILE: &str = "failure.json";

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStatus::Complete => f.write_str("complete"),
            RunStatus::Resumable => f.write_str("resumable"),
            RunStatus::Failed(error) => write!(f, "failed: {error}"),
            RunStatus::Broken(reason) => write!(f, "broken: {reason}"),
        }
    }
}

/// One run directory as `rlpg runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The directory.
    pub dir: PathBuf,
    /// Environment id (from its config), if readable.
    pub env: Option<String>,
    /// Agent name, if readable.
    pub agent: Option<String>,
    /// Seed, if readable.
    pub seed: Option<u64>,
    /// Env steps of its newest loadable checkpoint (0 when it has none).
    pub steps: u64,
    /// The run's `total_timesteps`, if readable.
    pub total_timesteps: Option<u64>,
    /// The best evaluation return recorded in its newest loadable checkpoint.
    pub best_eval: Option<f64>,
    /// The backend its agent ran on (`libtorch` or `kernel`), from its newest loadable
    /// checkpoint.
    pub backend: Option<String>,
    /// Complete, resumable, failed or broken.
    #[serde(flatten)]
    pub status: RunStatus,
}

/// Every run directory directly under `root` (directories holding a `config.toml` or a
/// `checkpoints` folder), sorted by name.
pub fn list_runs(root: &Path) -> std::io::Result<Vec<RunInfo>> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", root.display())))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let looks_like_run = path.join(CONFIG_FILE).exists()
            || path.join(crate::checkpoint::CHECKPOINT_DIR).is_dir();
        if entry.file_type()?.is_dir() && looks_like_run {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs.iter().map(|d| inspect_run(d)).collect())
}

/// What `dir` holds. Never fails: what cannot be read makes the run broken.
pub fn inspect_run(dir: &Path) -> RunInfo {
    let mut info = RunInfo {
        dir: dir.to_owned(),
        env: None,
        agent: None,
        seed: None,
        steps: 0,
        total_timesteps: None,
        best_eval: None,
        backend: None,
        status: RunStatus::Resumable,
    };
    let config_path = dir.join(CONFIG_FILE);
    match Config::load_run_file(&config_path) {
        Ok(config) => {
            info.env = Some(config.env.clone());
            info.agent = Some(config.agent.name().to_owned());
            info.seed = Some(config.seed);
            info.total_timesteps = Some(config.total_timesteps);
        }
        Err(e) => {
            info.status = RunStatus::Broken(if config_path.exists() {
                format!("unreadable {CONFIG_FILE}: {e}")
            } else {
                format!("no {CONFIG_FILE}")
            });
            return info;
        }
    }
    let files = match checkpoints_newest_first(dir) {
        Ok(files) => files,
        Err(e) => {
            info.status = RunStatus::Broken(format!("cannot list checkpoints: {e}"));
            return info;
        }
    };
    let mut first_error = None;
    let newest: Option<CheckpointMeta> = files.iter().find_map(|path| match read_meta(path) {
        Ok(meta) => Some(meta),
        Err(e) => {
            first_error.get_or_insert(e.to_string());
            None
        }
    });
    match newest {
        Some(meta) => {
            info.steps = meta.step;
            info.best_eval = meta.loop_state.best_eval.map(|(_, r)| r);
            info.backend = meta.backend.clone();
            info.status =
                if meta.loop_state.finished { RunStatus::Complete } else { RunStatus::Resumable };
        }
        None => {
            if let Some(error) = first_error {
                info.status = RunStatus::Broken(format!("no loadable checkpoint ({error})"));
            }
            // No checkpoint at all: a run killed before its first one; `--resume` restarts it.
        }
    }
    if info.status == RunStatus::Resumable {
        if let Some(error) = recorded_failure(dir) {
            info.status = RunStatus::Failed(error);
        }
    }
    info
}

/// The error a failed run recorded ([`FAILURE_FILE`]), if it did; an unreadable record still
/// marks the run failed, saying so.
fn recorded_failure(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(FAILURE_FILE)).ok()?;
    let error = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    Some(error.unwrap_or_else(|| format!("(unreadable {FAILURE_FILE})")))
}

/// The runs as an aligned text table, one run per line after a header.
pub fn to_table(runs: &[RunInfo]) -> String {
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            let name = r
                .dir
                .file_name()
                .map_or_else(|| r.dir.display().to_string(), |n| n.to_string_lossy().into_owned());
            let steps = match r.total_timesteps {
                Some(total) => format!("{}/{total}", r.steps),
                None => r.steps.to_string(),
            };
            [
                name,
                or_dash(r.env.clone()),
                or_dash(r.agent.clone()),
                or_dash(r.seed.map(|s| s.to_string())),
                steps,
                or_dash(r.best_eval.map(|b| format!("{b:.2}"))),
                or_dash(r.backend.clone()),
                r.status.to_string(),
            ]
        })
        .collect();
    let header = ["run", "env", "agent", "seed", "steps", "best_eval", "backend", "status"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 7 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut text = line(header);
    for row in &rows {
        text.push_str(&line(row.each_ref().map(String::as_str)));
    }
    text
}
