//! The heuristics to beat on a Restock shop: order-up-to levels over the same episodes `rlpg eval`
//! plays (episode `i` reset with seed `SEED + i`), mean and standard deviation of the return.
//!
//! ```sh
//! cargo run --release -p rlpg-envs --example restock_heuristic -- [EPISODES] [SEED] [ENV_ID]
//! ```
//!
//! `SEED` defaults to 1,000,000, the first evaluation seed of a run with seed 0 (`rlpg eval`
//! plays a run's evaluation episodes from `seed + 1,000,000`); `EPISODES` to 1,000; `ENV_ID` to
//! Restock-v0 (Restock6-v0: the six-product shop; or one of `RESTOCK_DIAGNOSTIC_VARIANTS`).

use rlpg_envs::{
    Action, Env, RESTOCK_DIAGNOSTIC_VARIANTS, RESTOCK_EPISODE_DAYS, RESTOCK_HEURISTIC_LEVEL,
    Restock, TimeLimit, make,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let episodes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let id = args.next().unwrap_or_else(|| "Restock-v0".to_owned());
    let mut env: Box<dyn Env> = match RESTOCK_DIAGNOSTIC_VARIANTS.iter().find(|(v, _)| *v == id) {
        Some(&(v, options)) => {
            Box::new(TimeLimit::new(Restock::with_options(v, options)?, RESTOCK_EPISODE_DAYS))
        }
        None => make(&id)?,
    };
    println!(
        "{id}, order-up-to level: mean return ± std over {episodes} episodes (seeds {seed}..)"
    );
    for level in 2..=8 {
        let played = play(env.as_mut(), seed, episodes, |obs| Restock::order_up_to(obs, level))?;
        let mark = if level == RESTOCK_HEURISTIC_LEVEL { "  <- the heuristic" } else { "" };
        println!(
            "  {level}: {:7.2} ± {:5.2}  (lost sales {:.1} per episode){mark}",
            played.mean, played.std, played.lost_sales
        );
    }
    // A stronger reference that batches deliveries (not the heuristic to beat): order every
    // product up to `top` only on days when some shelf holds `reorder` units or fewer.
    let mut best = (f64::MIN, 0.0, 0, 0);
    for reorder in 0..=4 {
        for top in 4..=8 {
            let played = play(env.as_mut(), seed, episodes, |obs| {
                let shelves = &obs[..obs.len() - 7];
                let low = shelves.iter().any(|&f| (f * 8.0).round() as usize <= reorder);
                if low { Restock::order_up_to(obs, top) } else { Ok(vec![0; shelves.len()]) }
            })?;
            if played.mean > best.0 {
                best = (played.mean, played.std, reorder, top);
            }
        }
    }
    let (mean, std, reorder, top) = best;
    println!(
        "best joint reorder point (order all up to {top} when a shelf holds <= {reorder}): \
         {mean:7.2} ± {std:5.2}"
    );
    Ok(())
}

/// Returns of the episodes a policy played: their mean and standard deviation, and the lost
/// sales per episode (the env's first step info).
struct Played {
    mean: f64,
    std: f64,
    lost_sales: f64,
}

/// Plays `episodes` episodes (episode `i` reset with seed `seed + i`), ordering what `policy`
/// gives for each observation.
fn play(
    env: &mut dyn Env,
    seed: u64,
    episodes: u64,
    mut policy: impl FnMut(&[f32]) -> Result<Vec<usize>, rlpg_envs::EnvError>,
) -> Result<Played, Box<dyn std::error::Error>> {
    let mut returns = Vec::new();
    let mut lost = 0.0;
    for i in 0..episodes {
        let mut obs = env.reset(Some(seed + i))?;
        let mut ret = 0.0;
        loop {
            let order = policy(&obs)?;
            let step = env.step(Action::MultiDiscrete(&order))?;
            let mut infos = [0.0; 4];
            env.step_infos(&mut infos);
            lost += infos[0];
            ret += step.reward;
            if step.done() {
                break;
            }
            obs = step.obs;
        }
        returns.push(ret);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    Ok(Played { mean, std, lost_sales: lost / n })
}
