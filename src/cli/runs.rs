//! `rlpg runs`: the runs in a folder and their state.

use std::path::PathBuf;

use super::Program;
use crate::run::RunError;

/// The arguments of `rlpg runs`.
#[derive(clap::Args)]
pub(super) struct RunsArgs {
    /// Folder holding the run directories.
    #[arg(long, default_value = "runs")]
    dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `rlpg runs`: a table (or JSON) of the runs in `--dir`.
pub(super) fn runs(args: RunsArgs, program: &Program) -> Result<(), RunError> {
    let RunsArgs { dir, json } = args;
    if !dir.is_dir() {
        return Err(RunError::Usage(format!(
            "{}: no such folder (`{} train` creates runs/; name another with --dir)",
            dir.display(),
            program.invoked_as
        )));
    }
    let runs = crate::runs::list_runs(&dir)
        .map_err(|e| RunError::File { path: dir.clone(), message: e.to_string() })?;
    if json {
        let out = serde_json::to_string_pretty(&runs)
            .map_err(|e| RunError::Output { what: "run list as JSON", message: e.to_string() })?;
        println!("{out}");
    } else if runs.is_empty() {
        println!("no runs in {}", dir.display());
    } else {
        print!("{}", crate::runs::to_table(&runs));
    }
    Ok(())
}
