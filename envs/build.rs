//! With the `gymnasium` feature, bakes the folder of the libpython that pyo3 links into this
//! crate's tests, examples and benches as an rpath, so they run without LD_LIBRARY_PATH (the
//! `rlpg` package's build script does the same for its binary). Without it, does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "gymnasium")]
    pyo3_build_config::add_libpython_rpath_link_args();
}
