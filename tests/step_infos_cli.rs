//! An env's own numbers through a run: `info_keywords` names step infos, and each episode's
//! value reaches TensorBoard (`infos/<name>`, so `rlpg plot` too), `train --json`, summary.json
//! and `rlpg eval`; a name the env does not report, and a masked env given to an agent that
//! cannot sample within masks, are configuration errors naming the key.

mod common;
use common::{Scratch, path, rlpg, text};

#[test]
fn named_infos_reach_tensorboard_json_the_summary_and_eval() {
    let dir = Scratch::new("infos-cli");
    let out = rlpg(&[
        "train",
        "--set",
        "env=RestockFlat-v0",
        "--set",
        "agent=reinforce",
        "--set",
        "total_timesteps=1200",
        "--set",
        "num_envs=2",
        "--set",
        "eval_episodes=3",
        "--set",
        r#"info_keywords=["lost_sales", "stock:mean"]"#,
        "--quiet",
        "--json",
        "--out",
        path(&dir),
    ]);
    assert!(out.status.success(), "train: {}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().last().expect("a line")).expect("JSON");
    let recent = &summary["recent_infos"];
    assert!(recent["lost_sales"].as_f64().is_some_and(|v| v >= 0.0), "{summary}");
    assert!(recent["stock"].as_f64().is_some_and(|v| (0.0..=24.0).contains(&v)), "{summary}");
    assert!(recent.get("deliveries").is_none(), "only the named infos are logged: {summary}");
    // The final evaluation reports every info the env declares.
    let eval = &summary["final_eval_infos"];
    for name in ["lost_sales", "deliveries", "stock", "over_capacity"] {
        assert!(eval[name].as_f64().is_some(), "final_eval_infos lacks {name}: {summary}");
    }
    let run = std::path::PathBuf::from(summary["run_dir"].as_str().expect("run_dir"));
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    assert_eq!(written["recent_infos"], summary["recent_infos"]);

    // One point per finished episode: 1200 steps of 28-day episodes on 2 envs end 42.
    let plotted = rlpg(&[
        "plot",
        path(&run),
        "--metric",
        "infos/lost_sales",
        "--out",
        path(&dir.join("lost.png")),
    ]);
    assert!(plotted.status.success(), "plot: {}", text(&plotted.stderr));
    let scalars: Vec<_> = rlpg::event_files(&run)
        .expect("events")
        .iter()
        .flat_map(|f| rlpg::read_scalars(f).expect("read").scalars)
        .filter(|s| s.tag == "infos/stock")
        .collect();
    assert_eq!(scalars.len(), 42, "one infos/stock point per episode");

    let evaluated = rlpg(&["eval", path(&run), "--episodes", "2"]);
    assert!(evaluated.status.success(), "eval: {}", text(&evaluated.stderr));
    assert!(text(&evaluated.stdout).contains(", lost_sales "), "{}", text(&evaluated.stdout));
}

#[test]
fn an_info_the_env_does_not_report_and_masks_an_agent_cannot_use_are_config_errors() {
    let dir = Scratch::new("infos-bad");
    let train = |sets: &[&str]| {
        let mut args = vec!["train", "--quiet", "--out", path(&dir)];
        for s in sets {
            args.extend(["--set", s]);
        }
        rlpg(&args)
    };
    let out = train(&["env=RestockFlat-v0", "agent=reinforce", r#"info_keywords=["lost_sale"]"#]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for needle in ["info_keywords[0]", "no info `lost_sale`", "did you mean `lost_sales`"] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    let out = train(&["env=RestockFlat-v0", "agent=reinforce", r#"info_keywords=["stock:sum"]"#]);
    assert!(
        text(&out.stderr).contains("declares `stock` as its episode mean"),
        "{}",
        text(&out.stderr)
    );
    let out = train(&["env=Restock-v0", "agent=pathwise", "act_beside_learning=true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    for needle in ["act_beside_learning", "declares action masks"] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert!(std::fs::read_dir(&dir).map_or(0, |d| d.count()) == 0, "no run directory is made");
}
