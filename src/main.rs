//! The `rlpg` command line: parses arguments and dispatches to the library.

use clap::{Parser, Subcommand};

/// Policy-gradient reinforcement learning on libtorch: score-function (REINFORCE) and pathwise
/// (reparameterization) agents.
#[derive(Parser)]
#[command(name = "rlpg", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that libtorch is linked and working: prints its version, threads and devices.
    Doctor,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => {
            let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
            let sum = t.sum(tch::Kind::Float).double_value(&[]);
            println!("libtorch: ok (sum of [1, 2, 3] = {sum})");
            println!("torch threads: {}", tch::get_num_threads());
            println!("cuda available: {}", tch::Cuda::is_available());
        }
    }
}
