//! `rlpg sweep`: runs a grid of settings times a list of seeds as separate `rlpg train`
//! processes, `--jobs` at a time, or writes the runs out for another scheduler (`--emit`).
//!
//! Every grid point is validated (with each seed) as `train` would validate it before anything
//! is created. Each run is this executable's `train`, in a process group of its own with its
//! stdout and stderr in `OUT/sweep-logs/`, so that a Ctrl-C in the terminal reaches only the
//! sweep, which then forwards one SIGINT (or the SIGTERM it got) to each running child: every
//! child checkpoints and exits, nothing new starts, and the sweep exits with 130 / 143. A second
//! signal exits the sweep at once (the children were already told to stop).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rlpg_envs::Registry;

use super::Program;
use super::signals::StopSignals;
use crate::bench::{SeedResult, median, to_markdown_grouped};
use crate::config::{Config, Override};
use crate::run::RunError;
use crate::sweep::{GridAxis, GridPoint, PlannedRun, SweepSpec, grid_points, parse_seeds, plan};
use crate::sweep::{to_commands, to_slurm};
use crate::trainer::Target;

/// Folder inside a sweep's output folder with each run's stdout (`.out`) and stderr (`.err`).
pub(super) const LOG_DIR: &str = "sweep-logs";
/// The sweep's record in its output folder: every run's grid point, seed, status and results.
pub(super) const RECORD_FILE: &str = "sweep.json";

/// What `--emit` writes instead of running.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum Emit {
    /// One `rlpg train` command per line (for GNU parallel, xargs or any scheduler).
    Commands,
    /// A Slurm job-array script (submit with sbatch).
    Slurm,
}

/// The arguments of `rlpg sweep`.
#[derive(clap::Args, Debug)]
pub(super) struct SweepArgs {
    /// The config file every run starts from.
    config: PathBuf,
    /// Seeds: a list and inclusive ranges, e.g. `0..9` (ten seeds) or `1,3,10..12`.
    #[arg(long, default_value = "0..4")]
    seeds: String,
    /// One grid axis: a config key and its values, e.g. `--grid reinforce.learning_rate=1e-3,3e-4`
    /// (commas inside brackets belong to the value: `reinforce.hidden=[64,64],[256,256]`).
    /// Repeatable; the runs are every combination, each with every seed.
    #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
    grid: Vec<String>,
    /// Override a config key for every run (as for `train`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Runs at once [default: the number of CPU cores]. Each run uses `torch_threads` threads.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    jobs: Option<u64>,
    /// Folder that receives the run directories [default: runs/sweep-<unix time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also record when each run's mean return of the last 100 training episodes first reaches
    /// this (runs still train their whole budget).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "target_eval")]
    target_recent: Option<f64>,
    /// Also record when each run's deterministic evaluation first reaches this.
    #[arg(long, allow_hyphen_values = true)]
    target_eval: Option<f64>,
    /// Print the runs for another scheduler instead of running them: `commands` (one command
    /// per line) or `slurm` (a job-array script). Nothing is created.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// Print the sweep's record (sweep.json) instead of the table.
    #[arg(long)]
    json: bool,
}

/// How one run ended.
enum Status {
    Finished { run_dir: PathBuf, result: SeedResult },
    Stopped { run_dir: Option<PathBuf> },
    Failed { code: Option<i32> },
    NotStarted,
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Finished { .. } => "finished",
            Status::Stopped { .. } => "stopped",
            Status::Failed { .. } => "failed",
            Status::NotStarted => "not started",
        }
    }
}

/// `rlpg sweep`.
pub(super) fn sweep(
    args: SweepArgs,
    registry: &Registry,
    program: &Program,
) -> Result<u8, RunError> {
    let usage = RunError::Usage;
    let seeds = parse_seeds(&args.seeds).map_err(usage)?;
    let axes: Vec<GridAxis> =
        args.grid.iter().map(|g| GridAxis::parse(g)).collect::<Result<_, _>>().map_err(usage)?;
    let points = grid_points(&axes).map_err(usage)?;
    // Validate every run exactly as its `train` will, before anything exists.
    let mut threads = 1;
    for point in &points {
        let point_sets = point.overrides().map_err(usage)?;
        for &seed in &seeds {
            let mut set = args.set.clone();
            set.extend(point_sets.iter().cloned());
            set.push(Override::parse(&format!("seed={seed}"))?);
            let config = Config::load_checked(&args.config, &set, registry).map_err(|e| {
                if point.settings.is_empty() {
                    RunError::Config(e)
                } else {
                    usage(format!("grid point {}: {e}", point.describe()))
                }
            })?;
            threads = threads.max(config.torch_threads);
        }
    }
    let target = match (args.target_recent, args.target_eval) {
        (Some(t), _) => Some(("--target-recent", t, Target::RecentMean(t))),
        (None, Some(t)) => Some(("--target-eval", t, Target::Eval(t))),
        (None, None) => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/sweep-{now}")));
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .map_err(|e| RunError::File { path: p.to_owned(), message: e.to_string() })
    };
    let config_path = absolute(&args.config)?;
    let out = absolute(&out)?;
    let sets: Vec<String> = args.set.iter().map(ToString::to_string).collect();
    let spec = SweepSpec {
        config: &config_path,
        sets: &sets,
        out: &out,
        target: target.map(|(flag, value, _)| (flag, value)),
    };
    let runs = plan(&spec, &points, &seeds);
    let jobs = args.jobs.map(|j| j as usize);
    if let Some(emit) = args.emit {
        let name = emitted_program(program)?;
        let text = match emit {
            Emit::Commands => to_commands(&name, &runs),
            Emit::Slurm => {
                let workdir = std::env::current_dir()
                    .map_err(|e| RunError::Usage(format!("the current folder: {e}")))?;
                to_slurm(&name, &runs, jobs, threads, &workdir)
            }
        };
        print!("{text}");
        return Ok(0);
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Usage(format!("cannot find this program's executable: {e}")))?;
    let logs = out.join(LOG_DIR);
    std::fs::create_dir_all(&logs)
        .map_err(|e| RunError::File { path: logs.clone(), message: e.to_string() })?;
    eprintln!(
        "{}: sweep of {} grid point(s) x {} seed(s) = {} runs, {} at a time ({} torch thread(s) \
         each), into {}",
        program.name,
        points.len(),
        seeds.len(),
        runs.len(),
        jobs.min(runs.len()),
        threads,
        out.display()
    );
    let signals = StopSignals::install()?;
    let started = Instant::now();
    let statuses = run_all(&exe, &runs, &points, jobs, &logs, &signals, program)?;
    let wall = started.elapsed().as_secs_f64();
    let record = record(&runs, &points, &statuses, &logs, wall);
    let record_path = out.join(RECORD_FILE);
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| RunError::Output { what: "sweep record", message: e.to_string() })?;
    crate::atomic_write(&record_path, text.as_bytes())
        .map_err(|e| RunError::File { path: record_path.clone(), message: e.to_string() })?;
    if args.json {
        println!("{text}");
    } else {
        print!("{}", table(&runs, &points, &statuses, target.map(|(_, _, t)| t), wall));
        println!("{}", out.display());
    }
    let stopped = signals.stop.load(Ordering::SeqCst);
    if stopped {
        eprintln!(
            "{}: sweep stopped; stopped runs continue with `{} train --resume RUN_DIR`",
            program.name, program.invoked_as
        );
        return Ok(signals.exit_code());
    }
    let failed = statuses.iter().filter(|s| matches!(s, Status::Failed { .. })).count();
    if failed > 0 {
        eprintln!(
            "{}: {failed} of {} runs failed; their stderr is in {}",
            program.name,
            runs.len(),
            logs.display()
        );
        return Ok(1);
    }
    Ok(0)
}

/// The program name emitted commands start with: as invoked when it was found on the PATH (a
/// bare name), else its absolute path.
fn emitted_program(program: &Program) -> Result<String, RunError> {
    if !program.invoked_as.contains('/') {
        return Ok(program.invoked_as.clone());
    }
    std::path::absolute(&program.invoked_as)
        .map(|p| p.display().to_string())
        .map_err(|e| RunError::Usage(format!("{}: {e}", program.invoked_as)))
}

/// A child process of the sweep.
struct Running {
    run: usize,
    child: Child,
    started: Instant,
}

/// Runs `runs` with at most `jobs` at once, printing a line on stderr as each ends. On a stop
/// signal: forwards it once to every running child, starts nothing more, waits for them.
fn run_all(
    exe: &Path,
    runs: &[PlannedRun],
    points: &[GridPoint],
    jobs: usize,
    logs: &Path,
    signals: &StopSignals,
    program: &Program,
) -> Result<Vec<Status>, RunError> {
    let mut statuses: Vec<Status> = runs.iter().map(|_| Status::NotStarted).collect();
    let mut running: Vec<Running> = Vec::new();
    let mut next = 0;
    let mut done = 0;
    let mut forwarded = false;
    loop {
        let stopping = signals.stop.load(Ordering::SeqCst);
        if stopping && !forwarded {
            forwarded = true;
            let signal = signals.which.load(Ordering::SeqCst);
            for r in &running {
                forward(&r.child, signal);
            }
        }
        while !stopping && next < runs.len() && running.len() < jobs {
            let child = spawn(exe, &runs[next], logs)?;
            running.push(Running { run: next, child, started: Instant::now() });
            next += 1;
        }
        let mut i = 0;
        while i < running.len() {
            let exited = running[i].child.try_wait().map_err(|e| RunError::File {
                path: exe.to_owned(),
                message: format!("waiting for a run: {e}"),
            })?;
            let Some(exit) = exited else {
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            let run = &runs[r.run];
            let status = status_of(exit.code(), &logs.join(format!("{}.out", run.log_stem())), run);
            done += 1;
            let what = match &status {
                Status::Finished { result, .. } => format!(
                    "{:.0} steps/s, final eval {:.1}{}",
                    result.steps_per_second,
                    result.final_eval,
                    result
                        .seconds_to_target
                        .map_or_else(String::new, |s| format!(", target after {s:.2} s"))
                ),
                Status::Stopped { .. } => "stopped (checkpointed)".to_owned(),
                Status::Failed { code } => format!(
                    "FAILED (exit {}; see {})",
                    code.map_or_else(|| "by signal".to_owned(), |c| c.to_string()),
                    logs.join(format!("{}.err", run.log_stem())).display()
                ),
                Status::NotStarted => String::new(),
            };
            eprintln!(
                "{}: [{done}/{}] {} seed {}: {what} in {:.1} s ({} running, {} waiting)",
                program.name,
                runs.len(),
                points[run.point].describe(),
                run.seed,
                r.started.elapsed().as_secs_f64(),
                running.len(),
                if stopping { 0 } else { runs.len() - next },
            );
            statuses[r.run] = status;
        }
        if running.is_empty() && (stopping || next == runs.len()) {
            return Ok(statuses);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `run` as a child in its own process group, stdout and stderr into `logs`.
fn spawn(exe: &Path, run: &PlannedRun, logs: &Path) -> Result<Child, RunError> {
    let file = |ext: &str| {
        let path = logs.join(format!("{}.{ext}", run.log_stem()));
        File::create(&path).map_err(|e| RunError::File { path, message: e.to_string() })
    };
    let mut command = Command::new(exe);
    command.args(&run.args).stdin(Stdio::null()).stdout(file("out")?).stderr(file("err")?);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a terminal's Ctrl-C reaches the sweep only, which forwards
        // exactly one signal (two would make the child exit without its checkpoint).
        command.process_group(0);
    }
    command.spawn().map_err(|e| RunError::File {
        path: exe.to_owned(),
        message: format!("cannot start a run: {e}"),
    })
}

/// Sends `signal` (SIGINT or SIGTERM, as the sweep received it) to a child.
fn forward(child: &Child, signal: usize) {
    #[cfg(unix)]
    {
        let signal = i32::try_from(signal).unwrap_or(libc::SIGTERM);
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) only sends a signal to the child, which we have not reaped yet,
            // so its pid cannot have been reused.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (child, signal);
}

/// How a run ended, from its exit code and the JSON line `train --json` printed last.
fn status_of(code: Option<i32>, stdout: &Path, run: &PlannedRun) -> Status {
    let json = std::fs::read_to_string(stdout).ok().and_then(|text| {
        text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    });
    let run_dir = json.as_ref().and_then(|j| j["run_dir"].as_str()).map(PathBuf::from);
    match (code, json, run_dir) {
        (Some(0), Some(j), Some(run_dir)) => Status::Finished {
            run_dir,
            result: SeedResult {
                seed: run.seed,
                steps: j["steps"].as_u64().unwrap_or(0),
                steps_to_target: j["steps_to_target"].as_u64(),
                seconds_to_target: j["seconds_to_target"].as_f64(),
                steps_per_second: j["steps_per_second"].as_f64().unwrap_or(f64::NAN),
                final_eval: j["final_eval_mean_return"].as_f64().unwrap_or(f64::NAN),
                recent_mean_return: j["recent_mean_return"].as_f64(),
                env_threads: j["env_threads"].as_u64().unwrap_or(1) as usize,
                phase_seconds: serde_json::from_value(j["phase_seconds"].clone())
                    .unwrap_or_default(),
            },
        },
        (Some(130 | 143), _, run_dir) => Status::Stopped { run_dir },
        (code, _, _) => Status::Failed { code },
    }
}

/// The sweep's record: one object per run.
fn record(
    runs: &[PlannedRun],
    points: &[GridPoint],
    statuses: &[Status],
    logs: &Path,
    wall: f64,
) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .zip(statuses)
        .map(|(run, status)| {
            let grid: serde_json::Map<String, serde_json::Value> = points[run.point]
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let (run_dir, result, code) = match status {
                Status::Finished { run_dir, result } => {
                    (Some(run_dir.clone()), serde_json::to_value(result).ok(), Some(0))
                }
                Status::Stopped { run_dir } => (run_dir.clone(), None, None),
                Status::Failed { code } => (None, None, *code),
                Status::NotStarted => (None, None, None),
            };
            serde_json::json!({
                "label": run.label,
                "grid": grid,
                "seed": run.seed,
                "status": status.name(),
                "exit_code": code,
                "run_dir": run_dir,
                "result": result,
                "stderr": logs.join(format!("{}.err", run.log_stem())),
            })
        })
        .collect();
    serde_json::json!({ "wall_seconds": wall, "runs": runs })
}

/// The final table: a row per finished run, a summary line per grid point, the runs that did
/// not finish, and the sweep's wall time and total throughput.
fn table(
    runs: &[PlannedRun],
    points: &[GridPoint],
    statuses: &[Status],
    target: Option<Target>,
    wall: f64,
) -> String {
    let described: Vec<String> = points.iter().map(GridPoint::describe).collect();
    let rows: Vec<(&str, &SeedResult)> = runs
        .iter()
        .zip(statuses)
        .filter_map(|(run, status)| match status {
            Status::Finished { result, .. } => Some((described[run.point].as_str(), result)),
            _ => None,
        })
        .collect();
    let mut out = to_markdown_grouped(&rows, target, "grid point");
    for (run, status) in runs.iter().zip(statuses) {
        if !matches!(status, Status::Finished { .. }) {
            out.push_str(&format!(
                "{} seed {}: {}\n",
                described[run.point],
                run.seed,
                status.name()
            ));
        }
    }
    let steps: u64 = rows.iter().map(|(_, r)| r.steps).sum();
    let sps: Vec<f64> = rows.iter().map(|(_, r)| r.steps_per_second).collect();
    out.push_str(&format!(
        "{} of {} runs finished in {wall:.1} s of wall time: {:.0} env steps/s in total (median \
         {:.0} per run)\n",
        rows.len(),
        runs.len(),
        steps as f64 / wall.max(1e-9),
        median(&sps).unwrap_or(0.0),
    ));
    out
}
