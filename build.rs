//! Bakes the libtorch library folder into this package's binaries, tests, examples and benches as
//! an rpath, so they run without LD_LIBRARY_PATH. torch-sys (`links = "tch"`) publishes the folder
//! to direct dependents as `DEP_TCH_LIBTORCH_LIB`. When that folder holds `libtorch_cuda.so` (the
//! `scripts/setup.sh --cuda` variant), it is linked with `--no-as-needed`: otherwise the linker
//! drops it, as nothing references it by symbol, and CUDA silently reports unavailable.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
