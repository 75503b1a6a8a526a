//! The smallest program that uses an exported policy: load it, read observations from stdin
//! (one per line, whitespace-separated floats, optionally followed by `|` and an action mask
//! of 0/1 flags), print one action per line (with `--distribution`, the distribution after it).
//!
//! ```sh
//! echo "0.01 -0.02 0.03 0.04" | cargo run --release -p rlpg-policy --example act -- EXPORT_DIR
//! echo "0.01 -0.02 0.03 0.04 | 0 1" | cargo run --release -p rlpg-policy --example act -- EXPORT_DIR --distribution
//! ```
//!
//! Its stripped release binary is what the README quotes as the size of an act-only
//! application (no libtorch): `cargo build --release -p rlpg-policy --example act` and
//! `strip target/release/examples/act`.

use std::io::BufRead;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: act EXPORT_DIR [--distribution] < observations");
        return ExitCode::from(2);
    };
    let distribution = std::env::args().nth(2).is_some_and(|a| a == "--distribution");
    let policy = match rlpg_policy::Policy::load(&dir) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("error: stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let (obs, mask) = line.split_once('|').map_or((line.as_str(), None), |(o, m)| (o, Some(m)));
        let at = |e: String| format!("line {}: {e}", number + 1);
        let obs: Result<Vec<f32>, _> = obs.split_whitespace().map(str::parse).collect();
        let mask: Result<Option<Vec<bool>>, String> = mask
            .map(|m| {
                m.split_whitespace()
                    .map(|f| match f {
                        "0" => Ok(false),
                        "1" => Ok(true),
                        other => Err(format!("mask flag \"{other}\" is neither 0 nor 1")),
                    })
                    .collect()
            })
            .transpose();
        let action = obs.map_err(|e| at(e.to_string())).and_then(|obs| {
            let mask = mask.map_err(at)?;
            let action = policy.act_masked(&obs, mask.as_deref()).map_err(|e| at(e.to_string()))?;
            if !distribution {
                return Ok(action.to_string());
            }
            let d =
                policy.distribution_masked(&obs, mask.as_deref()).map_err(|e| at(e.to_string()))?;
            Ok(format!("{action} {d:?}"))
        });
        match action {
            Ok(action) => println!("{action}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
