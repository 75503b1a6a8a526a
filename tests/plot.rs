//! `rlpg::plot`: runs written with rlpg's own event-file writer, grouped, averaged and banded,
//! checked against hand computations; bad input is one clear line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rlpg::TbLogger;
use rlpg::plot::{PlotOptions, XAxis, aggregate, plot};

mod common;
use common::Scratch;

/// A run directory with a config naming `env`, `agent`, `seed` (and `extra` TOML) and the
/// `(step, value)` points of `tag`, plus an SPS point.
fn write_run(
    dir: &Path,
    env: &str,
    agent: &str,
    seed: u64,
    extra: &str,
    tag: &str,
    points: &[(u64, f64)],
) -> PathBuf {
    let run = dir.join(format!("{env}__{agent}__{seed}__1"));
    std::fs::create_dir_all(&run).expect("run dir");
    let config = format!("env = \"{env}\"\nagent = \"{agent}\"\nseed = {seed}\n{extra}");
    std::fs::write(run.join("config.toml"), config).expect("config");
    let mut log = TbLogger::create(&run).expect("event file");
    for &(step, value) in points {
        log.scalar(tag, value, step).expect("scalar");
    }
    log.scalar("charts/SPS", 1000.0, 1).expect("scalar");
    log.flush().expect("flush");
    run
}

const RET: &str = "charts/episodic_return";

#[test]
fn two_seeds_give_their_mean_and_a_band_from_one_to_the_other() {
    let dir = Scratch::new("plot-mean");
    write_run(&dir, "Pendulum-v1", "reinforce", 1, "", RET, &[(0, 0.0), (100, 10.0), (200, 20.0)]);
    write_run(&dir, "Pendulum-v1", "reinforce", 2, "", RET, &[(0, 10.0), (100, 20.0), (200, 30.0)]);
    // Logged at other steps: interpolated onto the grid 0, 100, 200 (40 at 50 and 200 -> 60 at 100).
    write_run(
        &dir,
        "Pendulum-v1",
        "pathwise",
        1,
        "",
        RET,
        &[(0, -100.0), (50, 40.0), (200, 100.0)],
    );
    let out = dir.join("chart.png");
    let csv = dir.join("series.csv");
    let options = PlotOptions { csv: Some(csv.clone()), points: 3, ..PlotOptions::new(&out) };
    let summary = plot(&[&dir], &options).expect("plot");
    let text = std::fs::read_to_string(&csv).expect("csv written");
    // Bootstrap means of two seeds a < b are a, (a+b)/2 or b with chances 1/4, 1/2, 1/4: of 1000
    // resamples far more than 25 are a and b, so the 2.5% and 97.5% quantiles are a and b.
    assert_eq!(
        text,
        "group,seeds,step,mean,ci_low,ci_high\n\
         Pendulum-v1 / pathwise,1,0,-100,-100,-100\n\
         Pendulum-v1 / pathwise,1,100,60,60,60\n\
         Pendulum-v1 / pathwise,1,200,100,100,100\n\
         Pendulum-v1 / reinforce,2,0,5,0,10\n\
         Pendulum-v1 / reinforce,2,100,15,10,20\n\
         Pendulum-v1 / reinforce,2,200,25,20,30\n"
    );
    assert_eq!(summary.groups.len(), 2);
    assert_eq!(summary.groups[1].runs.len(), 2);
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).expect("png")));
    let info = decoder.read_info().expect("a PNG").info().clone();
    assert_eq!((info.width, info.height), rlpg::plot::PLOT_SIZE);
    // Deterministic: the same input gives the same bytes.
    let again = aggregate(&[&dir], &options).expect("again");
    assert_eq!(again, summary);
}

#[test]
fn the_band_of_five_seeds_lies_inside_their_range_and_around_the_mean() {
    let dir = Scratch::new("plot-five");
    for (seed, v) in [1.0, 2.0, 4.0, 8.0, 16.0].into_iter().enumerate() {
        write_run(&dir, "CartPole-v1", "pathwise", seed as u64, "", RET, &[(0, v), (10, v)]);
    }
    let summary = aggregate(&[&dir], &PlotOptions { points: 2, ..PlotOptions::new("unused.png") })
        .expect("aggregate");
    let g = &summary.groups[0];
    assert_eq!(g.mean, vec![6.2, 6.2]);
    // The mean of 5 draws from {1, 2, 4, 8, 16} ranges over [1, 16]; its 95% interval is well
    // inside, around 6.2 (sd of the mean = 5.38 / sqrt(5) = 2.4).
    for (low, high) in g.low.iter().zip(&g.high) {
        assert!((1.5..4.5).contains(low) && (8.5..13.0).contains(high), "band [{low}, {high}]");
    }
}

#[test]
fn smoothing_is_a_trailing_moving_average_and_group_by_reads_any_config_key() {
    let dir = Scratch::new("plot-smooth");
    let sac = "[pathwise]\nestimator = \"sac\"\n";
    let td3 = "[pathwise]\nestimator = \"td3\"\n";
    write_run(
        &dir,
        "Pendulum-v1",
        "pathwise",
        1,
        sac,
        RET,
        &[(0, 0.0), (1, 10.0), (2, 20.0), (3, 50.0)],
    );
    write_run(&dir, "Pendulum-v1", "pathwise", 2, td3, RET, &[(0, 4.0), (3, 4.0)]);
    let options = PlotOptions {
        smooth: 2,
        points: 4,
        group_by: vec!["pathwise.estimator".to_owned()],
        ..PlotOptions::new("unused.png")
    };
    let summary = aggregate(&[&dir], &options).expect("aggregate");
    let labels: Vec<&str> = summary.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["pathwise.estimator = sac", "pathwise.estimator = td3"]);
    assert_eq!(summary.groups[0].mean, vec![0.0, 5.0, 15.0, 35.0], "window of 2 points");
    assert_eq!(summary.groups[1].mean, vec![4.0; 4]);
}

#[test]
fn runs_are_grouped_by_every_setting_that_differs_and_seeds_are_counted_as_seeds() {
    let dir = Scratch::new("plot-grid");
    // A sweep: four grid points (learning rate x n_steps) of one seed, and two seeds of one
    // point; checkpoint_every differs too but changes nothing a run learns.
    for (i, (lr, n)) in [(1e-3, 8), (1e-3, 16), (3e-4, 8), (3e-4, 16)].into_iter().enumerate() {
        let extra = format!(
            "checkpoint_every = {}\n[reinforce]\nlearning_rate = {lr}\nn_steps = {n}\n",
            100 * i
        );
        let sub = dir.join(format!("point{i}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        write_run(
            &sub,
            "CartPole-v1",
            "reinforce",
            7,
            &extra,
            RET,
            &[(0, i as f64), (10, i as f64)],
        );
    }
    let extra = "[reinforce]\nlearning_rate = 1e-3\nn_steps = 8\n";
    write_run(&dir, "CartPole-v1", "reinforce", 8, extra, RET, &[(0, 10.0), (10, 10.0)]);
    let summary = aggregate(&[&dir], &PlotOptions { points: 2, ..PlotOptions::new("x.png") })
        .expect("aggregate");
    let groups: Vec<(String, String)> =
        summary.groups.iter().map(|g| (g.label.clone(), g.size())).collect();
    let label = |lr: &str, n: u32| {
        format!("CartPole-v1 / reinforce, reinforce.learning_rate = {lr}, reinforce.n_steps = {n}")
    };
    assert_eq!(
        groups,
        [
            (label("0.0003", 16), "1 seed".to_owned()),
            (label("0.0003", 8), "1 seed".to_owned()),
            (label("0.001", 16), "1 seed".to_owned()),
            (label("0.001", 8), "2 seeds".to_owned()),
        ]
    );
    // Grouped by one key, the other is averaged over, and the seeds are still seeds: two runs
    // of seed 7 and one of seed 8 are 3 runs of 2 seeds.
    let options = PlotOptions {
        points: 2,
        group_by: vec!["reinforce.learning_rate".to_owned()],
        ..PlotOptions::new("x.png")
    };
    let summary = aggregate(&[&dir], &options).expect("aggregate");
    let sizes: Vec<String> = summary.groups.iter().map(|g| g.size()).collect();
    assert_eq!(sizes, ["2 runs of 1 seed", "3 runs of 2 seeds"]);
    assert!(
        rlpg::plot::to_csv(&summary, rlpg::plot::XAxis::Steps).contains(",2,0,"),
        "seeds column"
    );
}

#[test]
fn seconds_are_measured_from_each_runs_first_scalar() {
    let dir = Scratch::new("plot-seconds");
    write_run(&dir, "CartPole-v1", "reinforce", 1, "", RET, &[(0, 1.0), (50, 2.0)]);
    let options = PlotOptions { x: XAxis::Seconds, ..PlotOptions::new("unused.png") };
    let summary = aggregate(&[&dir], &options).expect("aggregate");
    let x = &summary.groups[0].x;
    assert!(x[0] >= 0.0 && x[x.len() - 1] < 5.0, "seconds since the run started: {x:?}");
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = Scratch::new("plot-errors");
    let one_line = |e: rlpg::plot::PlotError| {
        let s = e.to_string();
        assert!(!s.contains('\n'), "not one line: {s}");
        s
    };
    let empty = dir.join("empty");
    std::fs::create_dir_all(empty.join("sub")).expect("dirs");
    let err = one_line(
        aggregate(std::slice::from_ref(&empty), &PlotOptions::new("x.png")).expect_err("empty"),
    );
    assert_eq!(
        err,
        format!(
            "no TensorBoard event files (events.out.tfevents.*) in {} or any folder below it",
            empty.display()
        )
    );

    let missing = dir.join("missing");
    let err = one_line(
        aggregate(std::slice::from_ref(&missing), &PlotOptions::new("x.png")).expect_err("none"),
    );
    assert!(err.starts_with(&format!("cannot read {}: ", missing.display())), "{err}");

    let runs = dir.join("runs");
    let run = write_run(&runs, "CartPole-v1", "reinforce", 1, "", RET, &[(0, 1.0)]);
    let options =
        PlotOptions { metric: "charts/episodic_retrun".to_owned(), ..PlotOptions::new("x.png") };
    let err = one_line(aggregate(std::slice::from_ref(&runs), &options).expect_err("unknown tag"));
    assert_eq!(
        err,
        "no run has the tag 'charts/episodic_retrun'; tags found: charts/SPS, charts/episodic_return"
    );

    let options =
        PlotOptions { group_by: vec!["ppo.clip".to_owned()], ..PlotOptions::new("x.png") };
    let err = one_line(aggregate(std::slice::from_ref(&runs), &options).expect_err("no such key"));
    assert_eq!(
        err,
        format!("{}: has no key 'ppo.clip' to group by", run.join("config.toml").display())
    );

    std::fs::remove_file(run.join("config.toml")).expect("remove config");
    let err = one_line(
        aggregate(std::slice::from_ref(&runs), &PlotOptions::new("x.png")).expect_err("no config"),
    );
    assert!(err.contains("config.toml: cannot read the run's config"), "{err}");

    // Damage a record in the middle of the event file: a checksum no longer matches.
    let file = rlpg::event_files(&run).expect("list")[0].clone();
    let mut bytes = std::fs::read(&file).expect("read");
    let n = bytes.len();
    bytes[n - 20] ^= 0xff;
    std::fs::write(&file, bytes).expect("write");
    let err = one_line(aggregate(&[runs], &PlotOptions::new("x.png")).expect_err("corrupt"));
    assert!(err.starts_with(&format!("event file {} is corrupt at byte", file.display())), "{err}");
}

/// Ten runs of 20,000 steps as rlpg logs them (an episode return every 200 steps, SPS every
/// 1,000, four loss tags every 100): how long reading, aggregating and drawing takes.
#[test]
fn ten_runs_plot_quickly() {
    let dir = Scratch::new("plot-ten");
    for seed in 0..10u64 {
        let agent = if seed % 2 == 0 { "reinforce" } else { "pathwise" };
        let run = dir.join(format!("Pendulum-v1__{agent}__{seed}__1"));
        std::fs::create_dir_all(&run).expect("run dir");
        let config = format!("env = \"Pendulum-v1\"\nagent = \"{agent}\"\nseed = {seed}\n");
        std::fs::write(run.join("config.toml"), config).expect("config");
        let mut log = TbLogger::create(&run).expect("event file");
        for step in (100..=20_000u64).step_by(100) {
            for tag in ["losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/alpha"]
            {
                log.scalar(tag, 0.5, step).expect("scalar");
            }
            if step % 200 == 0 {
                let progress = step as f64 / 20_000.0;
                let ret = -1500.0 + 1300.0 * progress + 50.0 * ((step / 200 + seed) % 7) as f64;
                log.scalar(RET, ret, step).expect("scalar");
            }
            if step % 1000 == 0 {
                log.scalar("charts/SPS", 900.0, step).expect("scalar");
            }
        }
        log.flush().expect("flush");
    }
    let out = dir.join("ten.png");
    let start = Instant::now();
    let summary =
        plot(&[&dir], &PlotOptions { smooth: 5, ..PlotOptions::new(&out) }).expect("plot");
    let seconds = start.elapsed().as_secs_f64();
    println!("rlpg plot of 10 runs (2 groups, 9,100 scalars each): {seconds:.3} s");
    assert_eq!(summary.groups.iter().map(|g| g.runs.len()).collect::<Vec<_>>(), [5, 5]);
    assert!(seconds < 10.0, "{seconds} s");
    if let Ok(keep) = std::env::var("RLPG_PLOT_DIR") {
        std::fs::copy(&out, Path::new(&keep).join("ten.png")).expect("copy the chart");
    }
}
