//! The smallest program that uses an exported policy: load it, read observations from stdin
//! (one per line, whitespace-separated floats), print one action per line.
//!
//! ```sh
//! echo "0.01 -0.02 0.03 0.04" | cargo run --release -p rlpg-policy --example act -- EXPORT_DIR
//! ```
//!
//! Its stripped release binary is what the README quotes as the size of an act-only
//! application (no libtorch): `cargo build --release -p rlpg-policy --example act` and
//! `strip target/release/examples/act`.

use std::io::BufRead;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: act EXPORT_DIR < observations");
        return ExitCode::from(2);
    };
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
        let obs: Result<Vec<f32>, _> = line.split_whitespace().map(str::parse).collect();
        let action = obs
            .map_err(|e| format!("line {}: {e}", number + 1))
            .and_then(|obs| policy.act(&obs).map_err(|e| format!("line {}: {e}", number + 1)));
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
