//! Ctrl-C and SIGTERM on a running `rlpg train`: the current update finishes, a checkpoint is
//! written, logs are flushed, the exit code is 130 / 143; a second signal exits at once and
//! leaves a resumable run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::text;

use rlpg::checkpoint::{Checkpoint, checkpoint_dir, step_checkpoints, step_file_name};
use rlpg::runs::{RunStatus, inspect_run};
use rlpg::trainer::SaveReason;
use tch::Tensor;

fn temp_root(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("signals-{name}"))
}

fn train_args(out: &Path) -> Vec<String> {
    common::train_args(
        3,
        &["total_timesteps=120000", "checkpoint_every=10000", "eval_every=30000"]
            .map(str::to_owned),
        out,
    )
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rlpg"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rlpg")
}

fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlpg")).args(args).output().expect("run rlpg")
}

/// The only run directory under `out`, once its first checkpoint exists (training has begun).
fn wait_for_training(out: &Path, child: &mut Child) -> PathBuf {
    let start = Instant::now();
    loop {
        let first = std::fs::read_dir(out)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|e| e.path())
            .filter(|dir| checkpoint_dir(dir).join(step_file_name(0)).is_file());
        if let Some(dir) = first {
            return dir;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("rlpg train exited ({status}) before its first checkpoint");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no first checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the run in `run_dir` has written a step checkpoint after its first (step 0):
/// training is under way, whatever the machine's load. Returns that checkpoint's step.
fn wait_for_progress(run_dir: &Path, child: &mut Child) -> u64 {
    let start = Instant::now();
    loop {
        let newest = step_checkpoints(run_dir).ok().and_then(|c| c.last().map(|(step, _)| *step));
        if let Some(step) = newest.filter(|&step| step > 0) {
            return step;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("rlpg train exited ({status}) before its second checkpoint");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no second checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

fn send_sigint(pid: libc::pid_t) {
    // SAFETY: kill(2) on our own child's pid with a valid signal number has no memory effects.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "kill(2) failed");
}

/// Whether a SIGINT sent to `pid` is still waiting to be delivered (bit 2 of the pending
/// masks in /proc/PID/status; the process is ours and alive, so the file exists).
fn sigint_pending(pid: libc::pid_t) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter_map(|l| l.strip_prefix("ShdPnd:").or_else(|| l.strip_prefix("SigPnd:")))
        .any(|mask| {
            u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & (1 << (libc::SIGINT - 1)) != 0)
        })
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for rlpg")
}

fn newest_checkpoint(run_dir: &Path) -> Checkpoint {
    let (_, path) = step_checkpoints(run_dir).expect("list").pop().expect("a checkpoint");
    Checkpoint::read(&path).expect("newest checkpoint loads")
}

fn assert_same(what: &str, a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len(), "{what}: tensor counts differ");
    for ((name, x), (other, y)) in a.iter().zip(b) {
        assert_eq!(name, other, "{what}: tensor names differ");
        assert!(x.equal(y), "{what}: '{name}' differs from the uninterrupted run");
    }
}

/// Stops a run with `signal_name` while it trains; checks the exit code, the message and the
/// checkpoint written on stopping, and returns the scratch directory and the run directory in it.
fn stop_with(name: &str, signal_name: &str, code: i32) -> (common::Scratch, PathBuf) {
    let root = temp_root(name);
    let out = root.join("runs");
    let mut child = spawn(&train_args(&out));
    let run_dir = wait_for_training(&out, &mut child);
    let progressed = wait_for_progress(&run_dir, &mut child);
    signal(&child, signal_name);
    let output = finish(child);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "exit code after SIG{signal_name}: {err}");
    assert!(err.contains("stopped at step") && err.contains("--resume"), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    let stopped = newest_checkpoint(&run_dir);
    assert_eq!(stopped.meta.reason, SaveReason::Interrupted, "the newest checkpoint is the stop's");
    assert!(err.contains(&format!("stopped at step {}", stopped.meta.step)), "stderr: {err}");
    assert!(
        stopped.meta.step >= progressed && stopped.meta.step < 120_000,
        "stopped at step {}, signalled after the checkpoint of step {progressed}",
        stopped.meta.step
    );
    for file in rlpg::event_files(&run_dir).expect("event files") {
        let log = rlpg::read_scalars(&file).expect("event file readable after the stop");
        assert_eq!(log.truncated_at, None, "logs must be flushed whole on a stop");
    }
    assert_eq!(inspect_run(&run_dir).status, RunStatus::Resumable);
    (root, run_dir)
}

#[test]
fn sigterm_checkpoints_exits_143_and_the_resumed_run_ends_as_an_uninterrupted_one() {
    let (root, run_dir) = stop_with("term", "TERM", 143);
    let resumed =
        run(&["train", "--resume", run_dir.to_str().expect("utf-8"), "--quiet"].map(str::to_owned));
    assert!(resumed.status.success(), "resume: {}", text(&resumed.stderr));
    let last = text(&resumed.stdout).lines().last().map(str::to_owned);
    assert_eq!(last.as_deref(), run_dir.to_str(), "resume prints the same run directory");

    let full_out = root.join("full");
    let full = run(&train_args(&full_out));
    assert!(full.status.success(), "uninterrupted run: {}", text(&full.stderr));
    let full_dir = PathBuf::from(text(&full.stdout).lines().last().expect("dir"));
    let (a, b) = (newest_checkpoint(&full_dir), newest_checkpoint(&run_dir));
    assert_eq!(b.meta.reason, SaveReason::Final);
    assert_same("agent", &a.agent, &b.agent);
    assert_same("training state", &a.training, &b.training);
    assert_eq!(a.meta.loop_state.evals, b.meta.loop_state.evals, "evaluations differ");
}

#[test]
fn ctrl_c_checkpoints_and_exits_130() {
    stop_with("int", "INT", 130);
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_leaves_a_resumable_run() {
    let root = temp_root("twice");
    let out = root.join("runs");
    // Networks large enough that a normal stop takes a while (measured: about 0.6 s from the
    // signal to the exit, most of it writing 25 MB of checkpoint), so that a stop that completed
    // cannot pass for an immediate exit even when this test is slow to send the second signal.
    let args = common::train_args(
        3,
        &[
            "total_timesteps=8000",
            "checkpoint_every=4000",
            "eval_every=0",
            "reinforce.hidden=[1024, 1024]",
        ]
        .map(str::to_owned),
        &out,
    );
    let mut child = spawn(&args);
    // Signalled as soon as the first checkpoint shows that training has begun (the handlers are
    // installed before it is written): the first update is running or about to.
    let run_dir = wait_for_training(&out, &mut child);
    let checkpoints_before = step_checkpoints(&run_dir).expect("list").len();
    // The first SIGINT asks for a stop (finish the update, checkpoint, message); the second,
    // sent the moment the first has been delivered (two pending SIGINTs would merge into one),
    // must end the process before any of that happens.
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    send_sigint(pid);
    let waited = Instant::now();
    while sigint_pending(pid) {
        assert!(waited.elapsed() < Duration::from_secs(30), "the first SIGINT stayed pending");
        std::hint::spin_loop();
    }
    send_sigint(pid);
    let output = finish(child);
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "exit code after two SIGINTs: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    // What a normal stop does, and an immediate exit does not: the "stopped at step" message
    // and an `Interrupted` checkpoint.
    assert!(!err.contains("stopped at step"), "the second SIGINT did not exit at once: {err}");
    let newest = newest_checkpoint(&run_dir);
    assert_ne!(
        newest.meta.reason,
        SaveReason::Interrupted,
        "a stop checkpoint was written after the second SIGINT (step {})",
        newest.meta.step
    );
    assert!(
        step_checkpoints(&run_dir).expect("list").len() <= checkpoints_before + 1,
        "checkpoints kept being written after two SIGINTs"
    );
    // Whatever the second signal cut short, the newest checkpoint on disk loads and resumes.
    assert_eq!(inspect_run(&run_dir).status, RunStatus::Resumable, "run after two Ctrl-C");
    for file in rlpg::event_files(&run_dir).expect("event files") {
        rlpg::read_scalars(&file).expect("event files stay readable");
    }
    let resumed =
        run(&["train", "--resume", run_dir.to_str().expect("utf-8"), "--quiet"].map(str::to_owned));
    assert!(resumed.status.success(), "resume: {}", text(&resumed.stderr));
    assert_eq!(inspect_run(&run_dir).status, RunStatus::Complete);
}
