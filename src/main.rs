//! The `rlpg` binary: the command line of [`rlpg::cli`] with the built-in environments, ending
//! the process with `_exit` so that libtorch's static destructors do not run
//! ([`rlpg::cli::exit_now`] says why).

fn main() {
    rlpg::cli::main_with_and_exit(rlpg::envs::Registry::builtin())
}
