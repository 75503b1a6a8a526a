//! `rlpg export RUN_DIR --out DIR`: a run's policy as an export directory (`policy.json`,
//! `policy.safetensors`, `policy.onnx`) that `rlpg_policy::Policy`, numpy or onnxruntime load
//! without libtorch. See [`crate::export`].

use std::path::PathBuf;

use clap::Args;

use crate::export::export_run;
use crate::run::{EnvSource, RunError};

/// The arguments of `rlpg export`.
#[derive(Args)]
pub(super) struct ExportArgs {
    /// The run directory printed by `rlpg train`.
    run_dir: PathBuf,
    /// Which checkpoint: `best`, `latest`, or a file (a path, or a name in
    /// RUN_DIR/checkpoints). Default: best if the run has one, else latest.
    #[arg(long, value_name = "WHICH")]
    checkpoint: Option<String>,
    /// The export directory (created if missing; export files already in it are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `rlpg export`: prints the files written, one per line, on stdout. A run, checkpoint or
/// output directory that cannot be used is one line on stderr and exit code 2.
pub(super) fn export(args: ExportArgs, envs: EnvSource<'_>, program: &str) -> u8 {
    let ExportArgs { run_dir, checkpoint, out } = args;
    match export_run(&run_dir, checkpoint.as_deref(), &out, envs) {
        Ok(exported) => {
            let m = &exported.manifest;
            let mask = m.action.mask.as_ref().map_or(String::new(), |mask| {
                format!(", action mask of {} flags (ONNX input `mask`)", mask.len)
            });
            eprintln!(
                "{program}: exported {} (step {}) to {}: head {} over {}{mask}",
                exported.checkpoint.display(),
                m.source.as_ref().map_or(0, |s| s.step),
                out.display(),
                m.head.kind(),
                m.action.space,
            );
            for file in &exported.files {
                println!("{}", file.display());
            }
            0
        }
        Err(e) => {
            eprintln!("{program}: error: {}", one_line(&e));
            2
        }
    }
}

/// The error on one line (a few messages quote multi-line text).
fn one_line(e: &RunError) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}
