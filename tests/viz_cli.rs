//! Issue 17 end to end through the `rlpg` binary: evaluation videos while training
//! (`capture_video_every`), the smoothed return, `rlpg eval --video/--frame` replaying the
//! episodes eval scores, `rlpg plot`, and the early error for an env that cannot render.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, rlpg, text, train_args};
use rlpg::{event_files, read_scalars};

fn train(out: &Path, sets: &[&str]) -> PathBuf {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    let o = rlpg(&train_args(1, &sets, out));
    assert!(o.status.success(), "train failed: {}", text(&o.stderr));
    PathBuf::from(text(&o.stdout).lines().last().expect("run dir line"))
}

#[test]
fn training_records_videos_and_the_smoothed_return_and_eval_replays_its_episodes() {
    let root = Scratch::new("viz-train");
    let run = train(
        &root,
        &["total_timesteps=6000", "eval_every=3000", "log_every=1000", "capture_video_every=3000"],
    );

    // One video per multiple of capture_video_every before the end, and one at the end.
    let mut videos: Vec<String> = std::fs::read_dir(run.join("videos"))
        .expect("videos folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    videos.sort();
    assert_eq!(videos, ["step-000003000.gif", "step-000006000.gif"]);
    for name in &videos {
        let bytes = std::fs::read(run.join("videos").join(name)).expect("gif");
        assert_eq!(&bytes[..6], b"GIF89a", "{name}");
        // Width and height (little-endian u16) of the logical screen: CartPole halved.
        assert_eq!(&bytes[6..10], &[44, 1, 200, 0], "{name} is not 300x200");
    }
    let events = event_files(&run).expect("event files");
    let raw = std::fs::read(&events[0]).expect("event file");
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"videos/eval") && contains(b"GIF89a"), "no GIF image in the event file");
    assert!(contains(b"_hparams_/session_start_info"), "no HParams session start");
    assert!(contains(b"_hparams_/session_end_info"), "no HParams session end");
    assert!(contains(b"| env | CartPole-v1 |"), "no config table");

    // charts/episodic_return_mean100: once per log interval, the mean of the last 100 returns.
    let log = read_scalars(&events[0]).expect("read");
    let mean100 = log.series("charts/episodic_return_mean100");
    assert!(mean100.len() >= 5, "{mean100:?}");
    let returns = log.series("charts/episodic_return");
    for &(step, value) in &mean100 {
        let upto: Vec<f64> =
            returns.iter().filter(|(s, _)| *s <= step).map(|(_, v)| f64::from(*v)).collect();
        let recent = &upto[upto.len().saturating_sub(100)..];
        let mean = recent.iter().sum::<f64>() / recent.len() as f64;
        assert!((f64::from(value) - mean).abs() < 1e-3 * mean.abs().max(1.0), "{step}: {value}");
    }

    // eval --video records the very episodes eval scores.
    let gif = root.join("eval.gif");
    let png = root.join("frame.png");
    let run_s = run.to_str().expect("utf-8").to_owned();
    let o = rlpg(&[
        "eval",
        &run_s,
        "--episodes",
        "2",
        "--json",
        "--video",
        gif.to_str().expect("utf-8"),
        "--frame",
        png.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout stays JSON");
    let stderr = text(&o.stderr);
    let returns_line = stderr.lines().find(|l| l.contains("returns")).expect("video line");
    let inside = returns_line.split("(returns ").nth(1).and_then(|r| r.split(')').next());
    let recorded: Vec<f64> =
        inside.expect("returns list").split(", ").map(|r| r.parse().expect("a return")).collect();
    let mean = recorded.iter().sum::<f64>() / recorded.len() as f64;
    let want = json["mean_return"].as_f64().expect("mean_return");
    assert!((mean - want).abs() < 0.051, "video returns {recorded:?} vs eval mean {want}");
    assert_eq!(&std::fs::read(&gif).expect("gif")[..6], b"GIF89a");
    let png_bytes = std::fs::read(&png).expect("png");
    assert_eq!(&png_bytes[1..4], b"PNG");
    assert_eq!(&png_bytes[16..24], &[0, 0, 2, 88, 0, 0, 1, 144], "a 600x400 frame");

    // rlpg plot over the run; bad input is one line and exit code 2.
    let chart = root.join("chart.png");
    let csv = root.join("chart.csv");
    let o = rlpg(&[
        "plot",
        &run_s,
        "--out",
        chart.to_str().expect("utf-8"),
        "--metric",
        "charts/episodic_return_mean100",
        "--csv",
        csv.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("CartPole-v1 / reinforce: 1 seed,"), "{}", text(&o.stdout));
    assert!(std::fs::read_to_string(&csv).expect("csv").starts_with("group,seeds,step,"));
    let o = rlpg(&["plot", &run_s, "--out", "x.png", "--metric", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no run has the tag 'nope'"), "{err}");
}

/// CartPole without a picture: `render` is the trait's default.
struct Blind(rlpg::envs::TimeLimit<rlpg::envs::CartPole>);

impl rlpg::envs::Env for Blind {
    fn id(&self) -> &str {
        "Blind-v0"
    }
    fn observation_space(&self) -> &rlpg::envs::Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &rlpg::envs::Space {
        self.0.action_space()
    }
    fn reset(
        &mut self,
        seed: Option<u64>,
    ) -> Result<rlpg::envs::Observation, rlpg::envs::EnvError> {
        self.0.reset(seed)
    }
    fn step(
        &mut self,
        action: rlpg::envs::Action<'_>,
    ) -> Result<rlpg::envs::Step, rlpg::envs::EnvError> {
        self.0.step(action)
    }
}

#[test]
fn videos_of_an_env_that_cannot_render_are_a_usage_error_before_the_run_exists() {
    use rlpg::envs::Env as _;
    let root = Scratch::new("viz-blind");
    let mut config = rlpg::Config::new("Blind-v0", rlpg::AgentKind::Reinforce);
    config.total_timesteps = 2000;
    config.capture_video_every = 1000;
    let make = || -> Result<Box<dyn rlpg::envs::Env>, rlpg::envs::EnvError> {
        Ok(Box::new(Blind(rlpg::envs::TimeLimit::new(rlpg::envs::CartPole::new(), 500))))
    };
    let err = rlpg::run::train(&config, &root, Some(&make), false).expect_err("cannot render");
    assert!(err.is_usage_error(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("capture_video_every = 1000 needs an environment that renders"));
    assert!(message.contains("Blind-v0"), "{message}");
    assert_eq!(std::fs::read_dir(&root).expect("root").count(), 0, "a run directory was left");
    // Without videos the same env trains.
    config.capture_video_every = 0;
    let probe = make().expect("env");
    assert!(probe.render().is_err());
    rlpg::run::train(&config, &root, Some(&make), false).expect("trains without videos");
}
