//! `rlpg sweep`: a grid of settings times a list of seeds, as separate `rlpg train` runs.
//!
//! This module plans a sweep and writes it out for other schedulers; running it locally
//! (processes, progress, Ctrl-C) is the command line's (`src/cli/sweep.rs`). A plan is a list of
//! [`PlannedRun`]s, each one `train` command line: the config, the sweep's `--set`s, its grid
//! point's `--set`s, `--seed`, `--out` and `--label` (the grid point, so that a run directory
//! says which point and seed it is: `CartPole-v1__reinforce-learning_rate-0.001__3__<time>`).
//! The same plan is run locally, or emitted as one command per line (GNU parallel, any
//! scheduler) or as a Slurm job-array script.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Override;

/// One axis of the grid: a config key and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct GridAxis {
    /// The dotted config key, e.g. `reinforce.learning_rate`.
    pub key: String,
    /// Its values as written (TOML values, or bare strings as `--set` reads them).
    pub values: Vec<String>,
}

impl GridAxis {
    /// Parses `KEY=V1,V2,...`. Commas inside brackets or quotes belong to the value, so
    /// `reinforce.hidden=[64,64],[256,256]` is two values. `seed` is refused (seeds are
    /// `--seeds`); the key's existence and the values are checked by config validation.
    pub fn parse(arg: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--grid {arg}: {why}");
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(bad("expected KEY=V1,V2,..., e.g. reinforce.learning_rate=1e-3,3e-4"));
        };
        let key = key.trim();
        if key == "seed" {
            return Err(bad("seeds are given with --seeds, not --grid"));
        }
        let values = split_values(raw).map_err(|why| bad(&why))?;
        if values.iter().any(String::is_empty) {
            return Err(bad("an empty value (two commas in a row, or a trailing comma)"));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(bad(&format!("the value {v} is listed twice")));
            }
        }
        Ok(Self { key: key.to_owned(), values })
    }
}

/// `raw` split at the commas outside brackets, braces and quotes, each value trimmed.
fn split_values(raw: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in raw.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                values.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("a closing bracket without an opening one".to_owned());
        }
        current.push(c);
    }
    if depth != 0 || quote.is_some() {
        return Err("an unclosed bracket or quote".to_owned());
    }
    values.push(current.trim().to_owned());
    Ok(values)
}

/// Parses a seed list: comma-separated seeds and inclusive ranges, `0..9` (ten seeds, like
/// `seq 0 9`), `0..=9` (the same) or `1,3,10..12`. Duplicates and empty ranges are errors.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, String> {
    const MAX_SEEDS: u64 = 100_000;
    let bad = |why: String| format!("--seeds {spec}: {why}");
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| bad(format!("`{}` is not a seed (an integer >= 0)", s.trim())))
    };
    let mut seeds: Vec<u64> = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad("an empty item".to_owned()));
        }
        match item.split_once("..") {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to.strip_prefix('=').unwrap_or(to))?);
                if to < from {
                    return Err(bad(format!("the range {item} is empty (write it low..high)")));
                }
                if to - from >= MAX_SEEDS || seeds.len() as u64 + (to - from) >= MAX_SEEDS {
                    return Err(bad(format!("more than {MAX_SEEDS} seeds")));
                }
                seeds.extend(from..=to);
            }
            None => seeds.push(number(item)?),
        }
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("seed {} is listed twice", w[0])));
    }
    Ok(seeds)
}

/// One point of the grid: a value for each axis.
#[derive(Clone, Debug, PartialEq)]
pub struct GridPoint {
    /// `(key, value)` per axis, in the order the axes were given.
    pub settings: Vec<(String, String)>,
}

impl GridPoint {
    /// The point's `--set` arguments.
    pub fn overrides(&self) -> Result<Vec<Override>, String> {
        self.settings
            .iter()
            .map(|(k, v)| Override::parse(&format!("{k}={v}")).map_err(|e| e.to_string()))
            .collect()
    }

    /// The label in its runs' directory names: `{last key segment}-{value}` per axis, joined by
    /// `_`, with brackets, quotes and spaces dropped, commas as `x` (`hidden-64x64`) and any
    /// other character outside `[A-Za-z0-9.-]` as `-`. Empty for the grid without axes.
    pub fn label(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|c| !matches!(c, '[' | ']' | '{' | '}' | '"' | '\'' | ' '))
                .map(|c| match c {
                    ',' => 'x',
                    c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') => c,
                    _ => '-',
                })
                .collect()
        };
        self.settings
            .iter()
            .map(|(k, v)| {
                let leaf = k.rsplit('.').next().unwrap_or(k);
                format!("{}-{}", leaf.replace("__", "_"), clean(v))
            })
            .collect::<Vec<_>>()
            .join("_")
    }

    /// `key=value, ...` for messages and tables (`-` for the grid without axes).
    pub fn describe(&self) -> String {
        if self.settings.is_empty() {
            return "-".to_owned();
        }
        self.settings.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
    }
}

/// Every point of the grid spanned by `axes` (their Cartesian product, the last axis varying
/// fastest); one point without settings when there are no axes. Two axes with one key are an
/// error.
pub fn grid_points(axes: &[GridAxis]) -> Result<Vec<GridPoint>, String> {
    for (i, axis) in axes.iter().enumerate() {
        if axes[..i].iter().any(|a| a.key == axis.key) {
            return Err(format!("--grid {}: the key is given twice", axis.key));
        }
    }
    let mut points = vec![GridPoint { settings: Vec::new() }];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut settings = p.settings.clone();
                    settings.push((axis.key.clone(), v.clone()));
                    GridPoint { settings }
                })
            })
            .collect();
    }
    Ok(points)
}

/// One run of a sweep.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// Index of its grid point.
    pub point: usize,
    /// The grid point's label (see [`GridPoint::label`]).
    pub label: String,
    /// Its seed.
    pub seed: u64,
    /// The arguments after the program: `train CONFIG --set ... --seed S --out OUT ...`.
    pub args: Vec<String>,
}

impl PlannedRun {
    /// A file-name stem for its logs: `{label}__seed{seed}` (`run__seed{seed}` without a grid).
    pub fn log_stem(&self) -> String {
        let label = if self.label.is_empty() { "run" } else { &self.label };
        format!("{label}__seed{}", self.seed)
    }
}

/// What every run of a sweep shares.
pub struct SweepSpec<'a> {
    /// The config file.
    pub config: &'a Path,
    /// `--set` arguments for every run, before the grid point's.
    pub sets: &'a [String],
    /// Where the run directories go.
    pub out: &'a Path,
    /// `--target-recent` / `--target-eval` and its value, passed on to each run.
    pub target: Option<(&'static str, f64)>,
}

/// The runs of the sweep: each grid point with each seed, grid point by grid point.
pub fn plan(spec: &SweepSpec<'_>, points: &[GridPoint], seeds: &[u64]) -> Vec<PlannedRun> {
    let mut runs = Vec::with_capacity(points.len() * seeds.len());
    for (i, point) in points.iter().enumerate() {
        let label = point.label();
        for &seed in seeds {
            let mut args = vec!["train".to_owned(), spec.config.display().to_string()];
            for set in spec
                .sets
                .iter()
                .cloned()
                .chain(point.settings.iter().map(|(k, v)| format!("{k}={v}")))
            {
                args.push("--set".to_owned());
                args.push(set);
            }
            args.extend(["--seed".to_owned(), seed.to_string()]);
            args.extend(["--out".to_owned(), spec.out.display().to_string()]);
            if !label.is_empty() {
                args.extend(["--label".to_owned(), label.clone()]);
            }
            if let Some((flag, value)) = spec.target {
                args.extend([flag.to_owned(), value.to_string()]);
            }
            args.extend(["--quiet".to_owned(), "--json".to_owned()]);
            runs.push(PlannedRun { point: i, label: label.clone(), seed, args });
        }
    }
    runs
}

/// `word` quoted for a POSIX shell when it needs to be.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// One shell command per run, one per line: for GNU parallel (`parallel -j N < FILE`), xargs,
/// or any scheduler that takes command lines.
pub fn to_commands(program: &str, runs: &[PlannedRun]) -> String {
    let mut out = String::new();
    for run in runs {
        let words: Vec<String> = std::iter::once(program)
            .chain(run.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// A Slurm job-array script: task `i` runs the `i`th command with `exec`. `throttle` (the
/// sweep's `--jobs`) limits how many tasks run at once; `cpus` is each task's
/// `--cpus-per-task` (the runs' `torch_threads`); `workdir` is where the tasks start.
pub fn to_slurm(
    program: &str,
    runs: &[PlannedRun],
    throttle: Option<usize>,
    cpus: i32,
    workdir: &Path,
) -> String {
    let mut out = String::new();
    let last = runs.len().saturating_sub(1);
    let throttle = throttle.map_or_else(String::new, |n| format!("%{n}"));
    let _ = writeln!(out, "#!/bin/bash");
    let _ = writeln!(
        out,
        "# rlpg sweep: {} runs as a Slurm job array. Submit with `sbatch FILE`; each task is one\n\
         # `rlpg train` (a normal run directory); `rlpg runs --dir OUT` lists them as they finish.",
        runs.len()
    );
    let _ = writeln!(out, "#SBATCH --job-name=rlpg-sweep");
    let _ = writeln!(out, "#SBATCH --array=0-{last}{throttle}");
    let _ = writeln!(out, "#SBATCH --ntasks=1");
    let _ = writeln!(out, "#SBATCH --cpus-per-task={cpus}");
    let _ = writeln!(out, "#SBATCH --chdir={}", shell_quote(&workdir.display().to_string()));
    let _ = writeln!(out, "#SBATCH --output=rlpg-sweep-%A_%a.out");
    let _ = writeln!(out, "set -euo pipefail");
    let _ = writeln!(out, "case \"$SLURM_ARRAY_TASK_ID\" in");
    for (i, line) in to_commands(program, runs).lines().enumerate() {
        let _ = writeln!(out, "  {i}) exec {line} ;;");
    }
    let _ = writeln!(
        out,
        "  *) echo \"rlpg sweep: no run for task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;"
    );
    let _ = writeln!(out, "esac");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_lists_and_inclusive_ranges() {
        assert_eq!(parse_seeds("0..9"), Ok((0..=9).collect()));
        assert_eq!(parse_seeds("0..=2"), Ok(vec![0, 1, 2]));
        assert_eq!(parse_seeds("1,3,10..12"), Ok(vec![1, 3, 10, 11, 12]));
        for bad in ["", "1,,2", "3..1", "a", "1,1", "0..3,2", "-1"] {
            assert!(parse_seeds(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn grid_values_split_outside_brackets_and_quotes() {
        let axis = GridAxis::parse("reinforce.hidden=[64,64], [256,256]").expect("parses");
        assert_eq!(axis.values, ["[64,64]", "[256,256]"]);
        let axis = GridAxis::parse(r#"env="a,b",c"#).expect("parses");
        assert_eq!(axis.values, [r#""a,b""#, "c"]);
        for bad in ["novalue", "seed=1,2", "k=1,", "k=[1,2", "k=1,1", "k=]"] {
            assert!(GridAxis::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_grid_is_the_product_of_its_axes_with_readable_labels() {
        let axes = [
            GridAxis::parse("reinforce.learning_rate=1e-3,3e-4").expect("axis"),
            GridAxis::parse("reinforce.hidden=[64,64],[32]").expect("axis"),
        ];
        let points = grid_points(&axes).expect("grid");
        let labels: Vec<String> = points.iter().map(GridPoint::label).collect();
        assert_eq!(
            labels,
            [
                "learning_rate-1e-3_hidden-64x64",
                "learning_rate-1e-3_hidden-32",
                "learning_rate-3e-4_hidden-64x64",
                "learning_rate-3e-4_hidden-32"
            ]
        );
        assert_eq!(grid_points(&[]).expect("empty grid").len(), 1);
        assert!(grid_points(&[axes[0].clone(), axes[0].clone()]).is_err());
    }

    #[test]
    fn commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_quote("reinforce.hidden=[64, 64]"), "'reinforce.hidden=[64, 64]'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("seed=3"), "seed=3");
        let spec = SweepSpec {
            config: Path::new("/c/a b.toml"),
            sets: &["total_timesteps=100".to_owned()],
            out: Path::new("/o"),
            target: Some(("--target-recent", 475.0)),
        };
        let point = GridPoint { settings: vec![("reinforce.gamma".into(), "0.9".into())] };
        let runs = plan(&spec, &[point], &[4]);
        assert_eq!(
            to_commands("rlpg", &runs),
            "rlpg train '/c/a b.toml' --set total_timesteps=100 --set reinforce.gamma=0.9 --seed 4 \
             --out /o --label gamma-0.9 --target-recent 475 --quiet --json\n"
        );
        let script = to_slurm("rlpg", &runs, Some(2), 1, Path::new("/w"));
        assert!(script.contains("#SBATCH --array=0-0%2\n"), "{script}");
        assert!(script.contains("  0) exec rlpg train '/c/a b.toml'"), "{script}");
    }
}
