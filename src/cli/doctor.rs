//! `rlpg doctor`: what this program runs on. Every value is read from the running process, not
//! from what the build expected: libtorch's folder from the library the process actually mapped
//! (`/proc/self/maps`), its version from the `build-version` file that libtorch's distribution
//! ships in that folder's parent, its build (CPU or CUDA) from whether that folder holds
//! `libtorch_cuda.so`, and CUDA's availability, devices and the thread count from libtorch.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::to_json;
use crate::run::RunError;

/// The arguments of `rlpg doctor`.
#[derive(clap::Args)]
pub(super) struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `rlpg doctor`: exit code 1 when libtorch does not work.
pub(super) fn doctor(args: DoctorArgs) -> Result<u8, RunError> {
    let report = Report::gather();
    if args.json {
        println!("{}", to_json(&report, "doctor's report as JSON")?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// The doctor's findings.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// This program's version.
    rlpg_version: &'static str,
    /// Whether a tensor computation gave the right answer.
    libtorch_ok: bool,
    /// libtorch's version, from its `build-version` file (`None`: the file is missing).
    libtorch_version: Option<String>,
    /// `"CPU"` or `"CUDA"`: whether the loaded libtorch folder holds the CUDA library.
    libtorch_build: &'static str,
    /// The folder of the loaded `libtorch_cpu.so` (`None`: not found in the process's maps).
    libtorch_path: Option<PathBuf>,
    /// Whether libtorch sees a usable CUDA device.
    cuda_available: bool,
    /// How many CUDA devices libtorch sees.
    cuda_devices: i64,
    /// cuDNN's version as libtorch reports it (only when CUDA is available).
    cudnn_version: Option<i64>,
    /// libtorch's intra-op thread count in this process.
    torch_threads: i32,
    /// The devices a config's `device` can name here: `cpu`, and `cuda:N` for each CUDA
    /// device.
    devices: Vec<String>,
    /// What `device = "auto"` means on this machine (`cpu` or `cuda:0`).
    auto_device: String,
    /// The `gymnasium` bridge's Python and Gymnasium, or why it cannot run (only with the
    /// feature).
    #[cfg(feature = "gymnasium")]
    gymnasium: String,
}

impl Report {
    /// Looks at the running process.
    pub(crate) fn gather() -> Report {
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let libtorch_ok = t.sum(tch::Kind::Float).double_value(&[]) == 6.0;
        let libtorch_path = loaded_library_dir("libtorch_cpu.so");
        let libtorch_version = libtorch_path.as_deref().and_then(build_version);
        let cuda_build =
            libtorch_path.as_deref().is_some_and(|d| d.join("libtorch_cuda.so").exists());
        let cuda_available = tch::Cuda::is_available();
        let cuda_devices = tch::Cuda::device_count();
        let mut devices = vec!["cpu".to_owned()];
        if cuda_available {
            devices.extend((0..cuda_devices).map(|i| format!("cuda:{i}")));
        }
        let auto_device = match crate::DeviceSetting::Auto.resolve() {
            Ok(tch::Device::Cuda(i)) => format!("cuda:{i}"),
            _ => "cpu".to_owned(),
        };
        Report {
            rlpg_version: env!("CARGO_PKG_VERSION"),
            libtorch_ok,
            libtorch_version,
            libtorch_build: if cuda_build { "CUDA" } else { "CPU" },
            libtorch_path,
            cuda_available,
            cuda_devices,
            cudnn_version: cuda_available.then(tch::utils::version_cudnn),
            torch_threads: tch::get_num_threads(),
            devices,
            auto_device,
            #[cfg(feature = "gymnasium")]
            gymnasium: rlpg_envs::gymnasium::status().unwrap_or_else(|e| format!("NOT READY: {e}")),
        }
    }

    /// Whether libtorch works (the exit code follows it).
    pub(crate) fn ok(&self) -> bool {
        self.libtorch_ok
    }

    /// One `name: value` line per finding.
    pub(crate) fn to_text(&self) -> String {
        let unknown = |what: &str| format!("unknown ({what})");
        let version = self
            .libtorch_version
            .clone()
            .unwrap_or_else(|| unknown("no build-version file beside the loaded library's folder"));
        let path = self.libtorch_path.as_ref().map_or_else(
            || unknown("libtorch_cpu.so is not in /proc/self/maps"),
            |p| p.display().to_string(),
        );
        let mut text = format!(
            "rlpg: {}\nlibtorch: {}\nlibtorch version: {version}\nlibtorch build: {}\n\
             libtorch path: {path}\ncuda available: {}\ncuda devices: {}\n",
            self.rlpg_version,
            if self.libtorch_ok {
                "ok (a tensor sum gave 6)"
            } else {
                "BROKEN (a tensor sum was wrong)"
            },
            self.libtorch_build,
            self.cuda_available,
            self.cuda_devices,
        );
        if let Some(cudnn) = self.cudnn_version {
            text.push_str(&format!("cudnn version: {cudnn}\n"));
        }
        text.push_str(&format!("torch threads: {}\n", self.torch_threads));
        text.push_str(&format!(
            "devices: {} (device = \"auto\" trains on {}{})\n",
            self.devices.join(", "),
            self.auto_device,
            if self.cuda_available { "" } else { "; device = \"cuda\" is refused here" }
        ));
        #[cfg(feature = "gymnasium")]
        text.push_str(&format!("gymnasium bridge: {}\n", self.gymnasium));
        text
    }
}

/// The folder of the mapped shared library whose file name is `name`, from `/proc/self/maps`.
fn loaded_library_dir(name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        // The path is the sixth field; it is the rest of the line (it may hold spaces).
        .filter_map(|line| line.splitn(6, ' ').nth(5).map(str::trim))
        .map(Path::new)
        .find(|path| path.file_name().is_some_and(|f| f == name))
        .and_then(Path::parent)
        .map(Path::to_owned)
}

/// The version in `build-version` of the libtorch distribution whose `lib/` folder is `lib_dir`.
fn build_version(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("build-version")).ok()?;
    let version = text.trim();
    (!version.is_empty()).then(|| version.to_owned())
}
