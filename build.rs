//! Bakes the libtorch library folder into this package's binaries, tests, examples and benches as
//! an rpath, so they run without LD_LIBRARY_PATH. torch-sys (`links = "tch"`) publishes the folder
//! to direct dependents as `DEP_TCH_LIBTORCH_LIB`. When that folder holds `libtorch_cuda.so` (the
//! `scripts/setup.sh --cuda` variant), it is linked with `--no-as-needed`: otherwise the linker
//! drops it, as nothing references it by symbol, and CUDA silently reports unavailable.

//!
//! With the `gymnasium` feature it also bakes in an rpath to the folder of the libpython that
//! pyo3 links.

fn main() {
    libpython_rpath();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}

/// With `gymnasium`, an rpath to libpython's folder. (`rlpg-gradlab` shares this file and has no
/// such feature, hence the `allow`.)
#[allow(unexpected_cfgs)]
fn libpython_rpath() {
    #[cfg(feature = "gymnasium")]
    pyo3_build_config::add_libpython_rpath_link_args();
}
