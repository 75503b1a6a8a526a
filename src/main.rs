//! The `rlpg` binary: the command line of [`rlpg::cli`] with the built-in environments.

fn main() -> std::process::ExitCode {
    rlpg::cli::main()
}
