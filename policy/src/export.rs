//! An export in memory ([`Export`]: the manifest and its tensors) and its three files.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::PolicyError;
use crate::manifest::{Head, Manifest};

/// File name of the manifest in an export directory.
pub const MANIFEST_FILE: &str = "policy.json";
/// File name of the tensors in an export directory.
pub const TENSORS_FILE: &str = "policy.safetensors";
/// File name of the ONNX model in an export directory.
pub const ONNX_FILE: &str = "policy.onnx";

/// One named `f32` tensor of an export, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Its name in `policy.safetensors`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A policy export: the manifest and every tensor it names. [`Export::write`] writes it as an
/// export directory (`policy.json`, `policy.safetensors`, `policy.onnx`), [`Export::read`] reads
/// the first two back.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    /// The manifest.
    pub manifest: Manifest,
    /// The tensors, each named once.
    pub tensors: Vec<NamedTensor>,
}

impl Export {
    /// An export of `manifest` and `tensors` (kept sorted by name), checked: the manifest must
    /// be valid and every tensor it names present with the shape it says, and finite. `file`
    /// names the source in errors.
    pub fn new(
        manifest: Manifest,
        mut tensors: Vec<NamedTensor>,
        file: &Path,
    ) -> Result<Self, PolicyError> {
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let export = Self { manifest, tensors };
        export.check(file)?;
        Ok(export)
    }

    /// The tensor named `name`, if there is one.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    fn check(&self, file: &Path) -> Result<(), PolicyError> {
        self.manifest
            .validate()
            .map_err(|what| PolicyError::Manifest { path: file.into(), what })?;
        let mut expected: Vec<(&str, Vec<usize>)> = Vec::new();
        for layer in &self.manifest.layers {
            expected.push((&layer.weight, vec![layer.outputs, layer.inputs]));
            expected.push((&layer.bias, vec![layer.outputs]));
        }
        if let Head::Gaussian { log_std: Some(name) } = &self.manifest.head {
            let dim = self.manifest.action.space.dim();
            expected.push((name, vec![dim]));
        }
        for (name, shape) in expected {
            let tensor = self.tensor(name).ok_or_else(|| PolicyError::Tensors {
                path: file.into(),
                what: format!("tensor '{name}' named in the manifest is missing"),
            })?;
            let numel: usize = tensor.shape.iter().product();
            if tensor.shape != shape || tensor.values.len() != numel {
                return Err(PolicyError::Tensors {
                    path: file.into(),
                    what: format!(
                        "tensor '{name}' has shape {:?} ({} values), the manifest needs {shape:?}",
                        tensor.shape,
                        tensor.values.len()
                    ),
                });
            }
            if let Some(i) = tensor.values.iter().position(|v| !v.is_finite()) {
                return Err(PolicyError::Tensors {
                    path: file.into(),
                    what: format!("tensor '{name}' holds a non-finite value at index {i}"),
                });
            }
        }
        Ok(())
    }

    /// Reads the export in `dir` (`policy.json` and `policy.safetensors`). Errors name the file
    /// and what is wrong with it; a manifest of another format or version is refused.
    pub fn read(dir: &Path) -> Result<Self, PolicyError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|source| PolicyError::Io { path: manifest_path.clone(), source })?;
        let manifest = parse_manifest(&text, &manifest_path)?;
        let tensors_path = dir.join(TENSORS_FILE);
        let bytes = std::fs::read(&tensors_path)
            .map_err(|source| PolicyError::Io { path: tensors_path.clone(), source })?;
        let tensors = tensors_from_bytes(&bytes, &tensors_path)?;
        // Shapes are the tensors file's business; the manifest is checked on its own first.
        manifest.validate().map_err(|what| PolicyError::Manifest { path: manifest_path, what })?;
        Self::new(manifest, tensors, &tensors_path)
    }

    /// The manifest as `policy.json` text (pretty-printed).
    pub fn manifest_json(&self) -> Result<String, PolicyError> {
        serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| PolicyError::Manifest { path: MANIFEST_FILE.into(), what: e.to_string() })
    }

    /// The tensors as `policy.safetensors` bytes (`F32`, names sorted).
    pub fn tensors_bytes(&self) -> Result<Vec<u8>, PolicyError> {
        let mut tensors: Vec<&NamedTensor> = self.tensors.iter().collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let error = |what: String| PolicyError::Tensors { path: TENSORS_FILE.into(), what };
        let views = tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                TensorView::new(Dtype::F32, t.shape.clone(), b)
                    .map(|v| (t.name.clone(), v))
                    .map_err(|e| error(format!("tensor '{}': {e:?}", t.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::tensor::serialize(views, &None).map_err(|e| error(format!("{e:?}")))
    }

    /// Writes `policy.json`, `policy.safetensors` and `policy.onnx` into `dir` (created if
    /// missing), each file atomically (a temporary file renamed into place). Returns the paths
    /// written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
        self.check(Path::new(MANIFEST_FILE))?;
        std::fs::create_dir_all(dir)
            .map_err(|source| PolicyError::Io { path: dir.to_owned(), source })?;
        let files = [
            (MANIFEST_FILE, self.manifest_json()?.into_bytes()),
            (TENSORS_FILE, self.tensors_bytes()?),
            (ONNX_FILE, crate::onnx::model_bytes(self)),
        ];
        let mut written = Vec::new();
        for (name, bytes) in files {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|source| PolicyError::Io { path: path.clone(), source })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Parses `policy.json` text read from `path` (any version from
/// [`crate::manifest::OLDEST_VERSION`] to [`crate::manifest::VERSION`]): the format and version
/// are checked before the rest, so that a manifest of a newer version is reported as such rather than as a field
/// this version does not know.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest, PolicyError> {
    let manifest_error = |what: String| PolicyError::Manifest { path: path.into(), what };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| manifest_error(format!("not JSON: {e}")))?;
    let format = value.get("format").and_then(|f| f.as_str());
    if format != Some(crate::manifest::FORMAT) {
        return Err(manifest_error(format!(
            "format is {}, expected \"{}\": not an rlpg policy manifest",
            value.get("format").map_or("missing".to_owned(), |f| f.to_string()),
            crate::manifest::FORMAT
        )));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v)
            if (u64::from(crate::manifest::OLDEST_VERSION)
                ..=u64::from(crate::manifest::VERSION))
                .contains(&v) => {}
        found => {
            return Err(PolicyError::Version {
                path: path.into(),
                found: value.get("version").map_or("missing".to_owned(), |v| v.to_string()),
                newer: found.is_some_and(|v| v > u64::from(crate::manifest::VERSION)),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| manifest_error(e.to_string()))
}

/// The `F32` tensors of a safetensors file read from `path`.
fn tensors_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<NamedTensor>, PolicyError> {
    let error = |what: String| PolicyError::Tensors { path: path.into(), what };
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| error(format!("not a valid safetensors file ({e:?})")))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(error(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push(NamedTensor { name, shape: view.shape().to_vec(), values });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}
