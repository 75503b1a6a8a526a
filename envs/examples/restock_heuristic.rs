//! The heuristics to beat on Restock-v0: order-up-to levels over the same episodes `rlpg eval`
//! plays (episode `i` reset with seed `SEED + i`), mean and standard deviation of the return.
//!
//! ```sh
//! cargo run --release -p rlpg-envs --example restock_heuristic -- [EPISODES] [SEED]
//! ```
//!
//! `SEED` defaults to 1,000,000, the first evaluation seed of a run with seed 0 (`rlpg eval`
//! plays a run's evaluation episodes from `seed + 1,000,000`); `EPISODES` to 1,000.

use rlpg_envs::{Action, Env, RESTOCK_HEURISTIC_LEVEL, Restock, make};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let episodes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let mut env = make("Restock-v0")?;
    println!("order-up-to level: mean return ± std over {episodes} episodes (seeds {seed}..)");
    for level in 2..=8 {
        let mut returns = Vec::new();
        let mut lost = 0.0;
        for i in 0..episodes {
            let mut obs = env.reset(Some(seed + i))?;
            let mut ret = 0.0;
            loop {
                let order = Restock::order_up_to(&obs, level)?;
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
        let mark = if level == RESTOCK_HEURISTIC_LEVEL { "  <- the heuristic" } else { "" };
        println!(
            "  {level}: {mean:7.2} ± {std:5.2}  (lost sales {:.1} per episode){mark}",
            lost / n
        );
    }
    Ok(())
}
