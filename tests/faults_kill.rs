//! Crash safety: `kill -9` at seeded random moments of `rlpg train` and `rlpg train --resume`
//! always leaves at least one complete, loadable checkpoint and readable event files, loses at
//! most one checkpoint interval of work, and the run, resumed after every kill, ends exactly as a
//! run never killed (REINFORCE on CartPole, one libtorch thread).
//!
//! The kills are paced by what the run writes, not by the wall clock: most wait for a new
//! checkpoint and then strike a seeded few milliseconds later (often while the next one is being
//! written); every third strikes a seeded few milliseconds after the process starts (while it
//! loads its checkpoint and resumes). So the number of kills before the run ends is the same on
//! a fast and a slow machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::text;

use rlpg::checkpoint::{Checkpoint, checkpoints_newest_first, latest_loadable, step_checkpoints};
use rlpg::runs::{RunStatus, inspect_run};

const INTERVAL: u64 = 4_000;
const KILLS: usize = 12;
/// Seed of the kill delays (fixed, so that a failure replays).
const DELAY_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn temp_root(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("kill-{name}"))
}

fn train_args(out: &Path) -> Vec<String> {
    common::train_args(
        9,
        &[
            "total_timesteps=1000000".to_owned(),
            format!("checkpoint_every={INTERVAL}"),
            "eval_every=25000".to_owned(),
        ],
        out,
    )
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rlpg")
}

/// A small deterministic generator for the kill delays (xorshift64*).
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        low + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (high - low)
    }
}

/// The step of the newest interval checkpoint on disk, if any.
fn newest_step(run_dir: &Path) -> Option<u64> {
    step_checkpoints(run_dir).expect("list checkpoints").last().map(|(step, _)| *step)
}

/// The largest step of any record in the run's event files (what was on disk at the kill).
fn last_logged_step(run_dir: &Path) -> u64 {
    let mut last = 0;
    for file in rlpg::event_files(run_dir).expect("event files") {
        let log = rlpg::read_scalars(&file)
            .unwrap_or_else(|e| panic!("event file unreadable after kill -9: {e}"));
        last = last.max(log.scalars.iter().map(|s| s.step).max().unwrap_or(0));
    }
    last
}

/// Every event file's scalar steps must lie strictly after the previous file's: no step is
/// logged twice across resumptions.
fn assert_no_overlapping_steps(run_dir: &Path) {
    let mut ranges: Vec<(u64, u64, PathBuf)> = Vec::new();
    for file in rlpg::event_files(run_dir).expect("event files") {
        let log = rlpg::read_scalars(&file).expect("readable");
        let steps: Vec<u64> = log.scalars.iter().map(|s| s.step).collect();
        if let (Some(lo), Some(hi)) = (steps.iter().min(), steps.iter().max()) {
            assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{}: steps go back", file.display());
            ranges.push((*lo, *hi, file));
        }
    }
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 < w[1].0,
            "{} (steps {}..={}) overlaps {} (steps {}..={})",
            w[0].2.display(),
            w[0].0,
            w[0].1,
            w[1].2.display(),
            w[1].0,
            w[1].1
        );
    }
}

#[test]
fn random_kill_9s_always_leave_a_loadable_checkpoint_and_the_resumed_run_ends_exactly() {
    let root = temp_root("random");
    let out = root.join("runs");
    let mut delays = Delays(DELAY_SEED);

    let mut child = spawn(&train_args(&out));
    let start = Instant::now();
    // The run directory, once its first checkpoint exists.
    let run_dir = loop {
        let dir = std::fs::read_dir(&out).ok().and_then(|mut e| e.next()).and_then(Result::ok);
        if let Some(dir) = dir.map(|e| e.path()) {
            if !step_checkpoints(&dir).expect("list").is_empty() {
                break dir;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no first checkpoint in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    let resume_args: Vec<String> =
        ["train", "--resume", run_dir.to_str().expect("utf-8"), "--quiet"]
            .map(str::to_owned)
            .into();

    let mut progress = Vec::new();
    for kill in 0..KILLS {
        if kill % 3 == 2 {
            // During start-up: loading the checkpoint, restoring the envs, the first updates.
            std::thread::sleep(Duration::from_millis(delays.next_ms(1, 60)));
        } else {
            // After the process has written one more checkpoint than there was at its start.
            let before = newest_step(&run_dir);
            let waited = Instant::now();
            while newest_step(&run_dir) <= before && child.try_wait().expect("poll").is_none() {
                assert!(
                    waited.elapsed() < Duration::from_secs(120),
                    "kill {kill}: no new checkpoint after step {before:?} in 120 s"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(delays.next_ms(0, 25)));
        }
        let finished = child.try_wait().expect("poll").is_some();
        let _ = child.kill(); // SIGKILL
        child.wait().expect("reap");

        // Every checkpoint on disk is whole (atomic writes); the newest one loads.
        for path in checkpoints_newest_first(&run_dir).expect("list") {
            Checkpoint::read(&path).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        }
        let (_, newest, skipped) = latest_loadable(&run_dir)
            .expect("checkpoints readable")
            .unwrap_or_else(|| panic!("kill {kill}: no loadable checkpoint"));
        assert!(skipped.is_empty(), "kill {kill}: damaged checkpoints {skipped:?}");
        let saved = newest.meta.step;
        let logged = last_logged_step(&run_dir);
        assert!(
            logged <= saved + INTERVAL,
            "kill {kill}: logged up to step {logged} but the newest checkpoint is at {saved}: \
             more than one interval ({INTERVAL}) of work lost"
        );
        let status = inspect_run(&run_dir).status;
        assert!(!matches!(status, RunStatus::Broken(_)), "kill {kill}: run is {status}");
        progress.push(saved);
        if finished || newest.meta.loop_state.finished || kill + 1 == KILLS {
            break;
        }
        child = spawn(&resume_args);
    }
    eprintln!("checkpoint step after each kill: {progress:?}");
    assert_eq!(progress.len(), KILLS, "the run finished after {} kills", progress.len());
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress went back: {progress:?}");

    if inspect_run(&run_dir).status != RunStatus::Complete {
        let done =
            Command::new(env!("CARGO_BIN_EXE_rlpg")).args(&resume_args).output().expect("run");
        assert!(done.status.success(), "final resume: {}", text(&done.stderr));
    }
    assert_eq!(inspect_run(&run_dir).status, RunStatus::Complete);
    assert_no_overlapping_steps(&run_dir);

    let full = Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args(train_args(&root.join("full")))
        .output()
        .expect("run");
    assert!(full.status.success(), "uninterrupted run: {}", text(&full.stderr));
    let full_dir = PathBuf::from(text(&full.stdout).lines().last().expect("dir"));
    let final_of = |dir: &Path| {
        let (_, path) = step_checkpoints(dir).expect("list").pop().expect("final");
        Checkpoint::read(&path).expect("final checkpoint")
    };
    let (a, b) = (final_of(&full_dir), final_of(&run_dir));
    assert_eq!(a.agent.len(), b.agent.len());
    for ((name, x), (_, y)) in
        a.agent.iter().zip(&b.agent).chain(a.training.iter().zip(&b.training))
    {
        assert!(
            x.equal(y),
            "'{name}' differs after {} kills from the run never killed",
            progress.len()
        );
    }
}
