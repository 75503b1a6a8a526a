//! Writes the inputs of the Python/onnxruntime check (`scripts/check_policy_export.py`): for
//! every head type an export with random weights, and for each export directory given on the
//! command line a copy of it; each with `check.safetensors` holding random raw observations
//! (`obs`, `F32 [rows, obs_dim]`), the actions rlpg-policy takes for them (`action`,
//! `I64 [rows]` for `Discrete`, `I64 [rows, dim]` for `MultiDiscrete`/`MultiBinary`,
//! `F32 [rows, action_dim]` for a box) and its distribution (`probs`, or `mean` and `std`;
//! none for a deterministic head). When the policy declares a mask, also random valid masks
//! (`mask`, `U8 [rows, mask_len]`) and the actions and probabilities under them
//! (`action_masked`, `probs_masked`).
//!
//! ```sh
//! cargo run --release -p rlpg-policy --example write_check_fixtures -- OUT_DIR [--rows N] [EXPORT_DIR...]
//! ```

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fixtures::{Rng, cases, export, masks, observations};
use rlpg_policy::{ActionBuf, ActionDistribution, Export, Policy};
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
        let masks = masks(&mut rng, rows, &case.space);
        write_check(&dir, &export, &obs, &masks)?;
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
        let masks = masks(&mut rng, rows, &export.manifest.action.space);
        write_check(&dir, &export, &obs, &masks)?;
    }
    println!("{}", out.display());
    Ok(())
}

/// One tensor of `check.safetensors`.
struct Entry {
    name: &'static str,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32s(name: &'static str, shape: Vec<usize>, values: impl Iterator<Item = f32>) -> Entry {
    Entry { name, dtype: Dtype::F32, shape, bytes: values.flat_map(f32::to_le_bytes).collect() }
}

/// Actions as a tensor: `I64 [rows]` (discrete), `I64 [rows, dim]` (multi-discrete and
/// multi-binary) or `F32 [rows, dim]` (box).
fn action_entry(name: &'static str, actions: &[ActionBuf]) -> Entry {
    let rows = actions.len();
    let ints = |values: Vec<i64>, shape| Entry {
        name,
        dtype: Dtype::I64,
        shape,
        bytes: values.into_iter().flat_map(i64::to_le_bytes).collect(),
    };
    match actions.first() {
        Some(ActionBuf::Continuous(first)) => f32s(
            name,
            vec![rows, first.len()],
            actions.iter().flat_map(|a| match a {
                ActionBuf::Continuous(x) => x.clone(),
                _ => Vec::new(),
            }),
        ),
        Some(ActionBuf::MultiDiscrete(first)) => {
            let values = actions
                .iter()
                .flat_map(|a| match a {
                    ActionBuf::MultiDiscrete(x) => x.iter().map(|&v| v as i64).collect(),
                    _ => Vec::new(),
                })
                .collect();
            ints(values, vec![rows, first.len()])
        }
        Some(ActionBuf::MultiBinary(first)) => {
            let values = actions
                .iter()
                .flat_map(|a| match a {
                    ActionBuf::MultiBinary(x) => x.iter().map(|&v| i64::from(v)).collect(),
                    _ => Vec::new(),
                })
                .collect();
            ints(values, vec![rows, first.len()])
        }
        _ => ints(
            actions
                .iter()
                .map(|a| match a {
                    ActionBuf::Discrete(i) => *i as i64,
                    _ => -1,
                })
                .collect(),
            vec![rows],
        ),
    }
}

/// The distributions as tensors: `probs` (or `{probs_name}`), or `mean` and `std`.
fn distribution_entries(probs_name: &'static str, all: &[ActionDistribution]) -> Vec<Entry> {
    let rows = all.len();
    let width = |v: &[f32]| v.len();
    match all.first() {
        Some(
            ActionDistribution::Categorical { probs, .. } | ActionDistribution::Bernoulli { probs },
        ) => vec![f32s(
            probs_name,
            vec![rows, width(probs)],
            all.iter().flat_map(|d| match d {
                ActionDistribution::Categorical { probs, .. }
                | ActionDistribution::Bernoulli { probs } => probs.clone(),
                _ => Vec::new(),
            }),
        )],
        Some(
            ActionDistribution::Gaussian { mean, .. }
            | ActionDistribution::SquashedGaussian { mean, .. },
        ) => {
            let parts = |pick: fn(&ActionDistribution) -> Vec<f32>| {
                all.iter().flat_map(pick).collect::<Vec<f32>>().into_iter()
            };
            let d = width(mean);
            vec![
                f32s(
                    "mean",
                    vec![rows, d],
                    parts(|x| match x {
                        ActionDistribution::Gaussian { mean, .. }
                        | ActionDistribution::SquashedGaussian { mean, .. } => mean.clone(),
                        _ => Vec::new(),
                    }),
                ),
                f32s(
                    "std",
                    vec![rows, d],
                    parts(|x| match x {
                        ActionDistribution::Gaussian { std, .. }
                        | ActionDistribution::SquashedGaussian { std, .. } => std.clone(),
                        _ => Vec::new(),
                    }),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

/// `dir/check.safetensors`: the observations and rlpg-policy's actions and distributions for
/// them, and with a declared mask the same under `masks`.
fn write_check(dir: &Path, export: &Export, obs: &[f32], masks: &[bool]) -> Result<(), String> {
    let policy = Policy::from_export(export).expect("a checked export");
    let e = |e: rlpg_policy::PolicyError| e.to_string();
    let actions = policy.act_batch(obs).map_err(e)?;
    let rows = actions.len();
    let mut entries = vec![
        f32s("obs", vec![rows, policy.obs_dim()], obs.iter().copied()),
        action_entry("action", &actions),
    ];
    entries.extend(distribution_entries("probs", &policy.distribution_batch(obs).map_err(e)?));
    if export.manifest.action.mask.is_some() {
        let masked = policy.act_batch_masked(obs, Some(masks)).map_err(e)?;
        entries.push(action_entry("action_masked", &masked));
        let dists = policy.distribution_batch_masked(obs, Some(masks)).map_err(e)?;
        entries.extend(distribution_entries("probs_masked", &dists));
        entries.push(Entry {
            name: "mask",
            dtype: Dtype::U8,
            shape: vec![rows, policy.mask_len()],
            bytes: masks.iter().map(|&m| u8::from(m)).collect(),
        });
    }
    let views = entries
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name, v))
                .map_err(|e| format!("{}: {e:?}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let file = safetensors::tensor::serialize(views, &None).map_err(|e| format!("{e:?}"))?;
    let path = dir.join("check.safetensors");
    std::fs::write(&path, file).map_err(|e| format!("{}: {e}", path.display()))
}
