//! Writes the inputs of the Python/onnxruntime check (`scripts/check_policy_export.py`): for
//! every head type an export with random weights, and for each export directory given on the
//! command line a copy of it; each with `check.safetensors` holding random raw observations
//! (`obs`, `F32 [rows, obs_dim]`) and the actions rlpg-policy takes for them (`action`,
//! `I64 [rows]` or `F32 [rows, action_dim]`).
//!
//! ```sh
//! cargo run --release -p rlpg-policy --example write_check_fixtures -- OUT_DIR [--rows N] [EXPORT_DIR...]
//! ```

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fixtures::{Rng, cases, export, observations};
use rlpg_policy::{ActionBuf, Export, Policy};
use safetensors::tensor::{Dtype, TensorView};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next().ok_or("usage: write_check_fixtures OUT_DIR [--rows N] [EXPORT_DIR...]")?,
    );
    let mut rows = 10_000;
    let mut extra = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--rows" {
            let n = args.next().ok_or("--rows needs a number")?;
            rows = n.parse().map_err(|e| format!("--rows {n}: {e}"))?;
        } else {
            extra.push(PathBuf::from(arg));
        }
    }
    let mut rng = Rng::new(2024);
    for case in cases() {
        let export = export(&case, &mut rng);
        let dir = out.join(case.name);
        export.write(&dir).map_err(|e| e.to_string())?;
        let obs = observations(&mut rng, rows, case.obs_dim);
        write_check(&dir, &export, &obs)?;
    }
    for (i, source) in extra.iter().enumerate() {
        let export = Export::read(source).map_err(|e| e.to_string())?;
        let name = source.file_name().map_or("export".into(), |n| n.to_string_lossy().into_owned());
        let dir = out.join(format!("export-{i}-{name}"));
        export.write(&dir).map_err(|e| e.to_string())?;
        // Observations spread around the training statistics when there are some.
        let dim = export.manifest.observation.dim;
        let mut obs = observations(&mut rng, rows, dim);
        if let Some(n) = &export.manifest.observation.normalization {
            for (j, x) in obs.iter_mut().enumerate() {
                let d = j % dim;
                *x = (n.mean[d] + n.var[d].sqrt() * f64::from(*x) / 3.0 * 2.0) as f32;
            }
        }
        write_check(&dir, &export, &obs)?;
    }
    println!("{}", out.display());
    Ok(())
}

/// `dir/check.safetensors`: the observations and rlpg-policy's actions for them.
fn write_check(dir: &Path, export: &Export, obs: &[f32]) -> Result<(), String> {
    let policy = Policy::from_export(export).expect("a checked export");
    let actions = policy.act_batch(obs).map_err(|e| e.to_string())?;
    let rows = actions.len();
    let (dtype, shape, bytes): (Dtype, Vec<usize>, Vec<u8>) = match actions.first() {
        Some(ActionBuf::Continuous(first)) => {
            let values: Vec<u8> = actions
                .iter()
                .flat_map(|a| match a {
                    ActionBuf::Continuous(x) => x.clone(),
                    _ => Vec::new(),
                })
                .flat_map(f32::to_le_bytes)
                .collect();
            (Dtype::F32, vec![rows, first.len()], values)
        }
        _ => {
            let values = actions
                .iter()
                .map(|a| match a {
                    ActionBuf::Discrete(i) => *i as i64,
                    _ => -1,
                })
                .flat_map(i64::to_le_bytes)
                .collect();
            (Dtype::I64, vec![rows], values)
        }
    };
    let obs_bytes: Vec<u8> = obs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        ("action", TensorView::new(dtype, shape, &bytes).map_err(|e| format!("{e:?}"))?),
        (
            "obs",
            TensorView::new(Dtype::F32, vec![rows, policy.obs_dim()], &obs_bytes)
                .map_err(|e| format!("{e:?}"))?,
        ),
    ];
    let file = safetensors::tensor::serialize(views, &None).map_err(|e| format!("{e:?}"))?;
    let path = dir.join("check.safetensors");
    std::fs::write(&path, file).map_err(|e| format!("{}: {e}", path.display()))
}
