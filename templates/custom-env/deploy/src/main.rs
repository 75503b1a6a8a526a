//! Acting with an exported policy through `rlpg-policy` alone: no libtorch, no rlpg. This is
//! all a program that deploys the policy needs (its release binary is about a megabyte).
//!
//! ```text
//! cargo run --release -- export runs/<the run> --out exports/grid_reach
//! cargo run --release -p deploy -- exports/grid_reach
//! ```
//!
//! It prints the policy's action in every cell of GridReach and exits with 1 unless the policy
//! walks right (action 1) everywhere, which is what a trained policy does.

use std::process::ExitCode;

use rlpg_policy::{ActionBuf, Policy};

/// Cells on GridReach's line (as in src/main.rs).
const CELLS: usize = 8;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: deploy EXPORT_DIR (written by `cargo run --release -- export`)");
        return ExitCode::from(2);
    };
    let policy = match Policy::load(&dir) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("deploy: error: {dir}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut walks_right = true;
    for cell in 0..CELLS - 1 {
        // The observation exactly as the environment gives it: the position scaled to [0, 1].
        let obs = [cell as f32 / (CELLS - 1) as f32];
        match policy.act(&obs) {
            Ok(action) => {
                println!("cell {cell}: action {action}");
                walks_right &= action == ActionBuf::Discrete(1);
            }
            Err(e) => {
                eprintln!("deploy: error: acting on {obs:?}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if walks_right {
        println!("deploy: the policy walks right in every cell");
        ExitCode::SUCCESS
    } else {
        eprintln!("deploy: the policy does not walk right in every cell");
        ExitCode::FAILURE
    }
}
