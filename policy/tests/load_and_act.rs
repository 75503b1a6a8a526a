//! Exports written, read back and acted on without libtorch; the formulas of each head checked
//! on hand-computed numbers; every bad input an error naming the file or the expected length.

#[path = "../examples/common/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use fixtures::{Rng, cases, export, observations};
use rlpg_policy::manifest::{ActionSpace, Activation, Head, Layer, Normalization};
use rlpg_policy::{ActionBuf, Export, NamedTensor, Policy, PolicyError};

/// A fresh, empty directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlpg-policy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[test]
fn every_head_type_round_trips_through_its_files_and_acts_the_same_after_loading() {
    let mut rng = Rng::new(7);
    for case in cases() {
        let export = export(&case, &mut rng);
        let dir = scratch_dir(case.name);
        let written = export.write(&dir).expect("write export");
        let names: Vec<_> = written.iter().filter_map(|p| p.file_name()).collect();
        assert_eq!(names, ["policy.json", "policy.safetensors", "policy.onnx"], "{}", case.name);
        let back = Export::read(&dir).expect("read export");
        assert_eq!(back, export, "{}: the export read back differs", case.name);

        let loaded = Policy::load(&dir).expect("load");
        let direct = Policy::from_export(&export).expect("a checked export");
        let obs = observations(&mut rng, 500, case.obs_dim);
        let batch = loaded.act_batch(&obs).expect("act_batch");
        assert_eq!(batch.len(), 500);
        assert_eq!(batch, direct.act_batch(&obs).expect("act_batch"), "{}", case.name);
        let space = case.space.to_space();
        for (row, action) in obs.chunks_exact(case.obs_dim).zip(&batch) {
            // A batch runs as one matrix product per layer, a single row as dot products: the
            // same arithmetic summed in another order, so equal up to float rounding.
            let single = loaded.act(row).expect("act");
            match (&single, action) {
                (ActionBuf::Continuous(a), ActionBuf::Continuous(b)) => {
                    let close =
                        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()));
                    assert!(close, "{}: single {a:?} != batch {b:?}", case.name);
                }
                _ => assert_eq!(&single, action, "{}: single != batch", case.name),
            }
            assert!(action.is_in(&space), "{}: {action} is outside {space}", case.name);
        }
        if let ActionSpace::Discrete { n } = case.space {
            let mut seen = vec![false; n];
            for a in &batch {
                if let ActionBuf::Discrete(i) = a {
                    seen[*i] = true;
                }
            }
            assert!(
                seen.iter().all(|s| *s),
                "{}: some action is never chosen: {seen:?}",
                case.name
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A one-layer export `y = W x + b` with the given head and space.
fn linear(weight: Vec<f32>, bias: Vec<f32>, head: Head, space: ActionSpace) -> Export {
    let outputs = bias.len();
    let inputs = weight.len() / outputs;
    let mut manifest = export(&cases()[0], &mut Rng::new(0)).manifest;
    manifest.observation.dim = inputs;
    manifest.observation.normalization = None;
    manifest.layers =
        vec![Layer { weight: "w".into(), bias: "b".into(), inputs, outputs, activation: None }];
    manifest.action.rescale = match (&space, &head) {
        (
            ActionSpace::Box { low, high },
            Head::SquashedGaussian | Head::DeterministicTanh { .. },
        ) => Some(rlpg_policy::manifest::Rescale::of(&rlpg_envs::BoxSpace {
            low: low.clone(),
            high: high.clone(),
        })),
        _ => None,
    };
    manifest.head = head;
    manifest.action.space = space;
    let mut tensors = vec![
        NamedTensor { name: "w".into(), shape: vec![outputs, inputs], values: weight },
        NamedTensor { name: "b".into(), shape: vec![outputs], values: bias },
    ];
    if let Head::Gaussian { log_std: Some(name) } = &manifest.head {
        let dim = manifest.action.space.dim();
        tensors.push(NamedTensor { name: name.clone(), shape: vec![dim], values: vec![0.0; dim] });
    }
    Export::new(manifest, tensors, Path::new("linear")).expect("valid")
}

#[test]
fn each_head_computes_the_documented_action_on_hand_checked_numbers() {
    let identity2 = vec![1.0, 0.0, 0.0, 1.0];
    let boxed = |lo: f32, hi: f32| ActionSpace::Box { low: vec![lo, lo], high: vec![hi, hi] };

    // Categorical: first index of the largest logit (ties go to the first).
    let p = Policy::from_export(&linear(
        vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
        vec![0.0; 3],
        Head::Categorical,
        ActionSpace::Discrete { n: 3 },
    ))
    .expect("a checked export");
    assert_eq!(p.act(&[0.5, 2.0]).unwrap(), ActionBuf::Discrete(1));
    assert_eq!(p.act(&[3.0, 2.0]).unwrap(), ActionBuf::Discrete(0), "a tie goes to the first");

    // Gaussian with a log-std parameter: the mean, clipped into the box.
    let p = Policy::from_export(&linear(
        identity2.clone(),
        vec![0.0, 0.0],
        Head::Gaussian { log_std: Some("log_std".into()) },
        boxed(-1.0, 1.0),
    ))
    .expect("a checked export");
    assert_eq!(p.act(&[0.25, -3.0]).unwrap(), ActionBuf::Continuous(vec![0.25, -1.0]));

    // State-dependent Gaussian: the first half of the outputs is the mean.
    let p = Policy::from_export(&linear(
        vec![1.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0],
        vec![0.0; 4],
        Head::Gaussian { log_std: None },
        boxed(-10.0, 10.0),
    ))
    .expect("a checked export");
    assert_eq!(p.act(&[0.5, 1.5]).unwrap(), ActionBuf::Continuous(vec![0.5, 1.5]));

    // Squashed Gaussian: tanh of the mean, rescaled onto [0, 4]: 2 + 2 tanh(u).
    let p = Policy::from_export(&linear(
        vec![1.0, 0.0, 0.0, 1.0, 9.0, 9.0, 9.0, 9.0],
        vec![0.0; 4],
        Head::SquashedGaussian,
        boxed(0.0, 4.0),
    ))
    .expect("a checked export");
    let ActionBuf::Continuous(a) = p.act(&[0.3, -40.0]).unwrap() else { panic!("box action") };
    // black_box: a tanh folded at compile time may be rounded differently from the runtime one.
    assert_eq!(a, [std::hint::black_box(0.3f32).tanh() * 2.0 + 2.0, 0.0]);

    // Deterministic tanh onto [-2, 2].
    let p = Policy::from_export(&linear(
        identity2.clone(),
        vec![0.0; 2],
        Head::DeterministicTanh { exploration_noise: 0.1 },
        boxed(-2.0, 2.0),
    ))
    .expect("a checked export");
    let ActionBuf::Continuous(a) = p.act(&[0.7, 100.0]).unwrap() else { panic!("box action") };
    assert_eq!(a, [std::hint::black_box(0.7f32).tanh() * 2.0, 2.0]);

    // Bounded Gumbel-softmax logits: centring and L·tanh(·/L) keep the order, so the argmax of
    // distinct logits is unchanged; logits far apart saturate at ±L, which makes a tie that
    // goes to the first.
    let p = Policy::from_export(&linear(
        vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        vec![0.0; 3],
        Head::GumbelSoftmax { logit_bound: 1.0, temperature: 1.0 },
        ActionSpace::Discrete { n: 3 },
    ))
    .expect("a checked export");
    assert_eq!(p.act(&[0.1, 0.2]).unwrap(), ActionBuf::Discrete(1));
    assert_eq!(p.act(&[-1.0, -2.0]).unwrap(), ActionBuf::Discrete(2));
    assert_eq!(
        p.act(&[1e4, 1.1e4]).unwrap(),
        ActionBuf::Discrete(0),
        "both saturate at tanh = 1: a tie, which goes to the first"
    );
}

#[test]
fn normalisation_is_applied_in_f64_and_clamped_as_rlpg_envs_does() {
    let mut export = linear(
        vec![1.0, 0.0, 0.0, 1.0],
        vec![0.0; 2],
        Head::Gaussian { log_std: Some("log_std".into()) },
        ActionSpace::Box { low: vec![-100.0; 2], high: vec![100.0; 2] },
    );
    let stats =
        Normalization { mean: vec![1.0, -2.0], var: vec![4.0, 0.25], epsilon: 1e-8, clip: 3.0 };
    export.manifest.observation.normalization = Some(stats.clone());
    let policy = Policy::from_export(&export).expect("a checked export");
    let obs = [2.5f32, 10.0];
    let mut expected = [0.0f32; 2];
    let rms: rlpg_envs::RunningMeanStd = serde_json::from_value(serde_json::json!({
        "mean": stats.mean, "var": stats.var, "count": 10.0
    }))
    .unwrap();
    rms.normalize(&obs, &mut expected, stats.epsilon, stats.clip);
    assert_eq!(expected[1], 3.0, "the second value is clamped");
    assert_eq!(policy.act(&obs).unwrap(), ActionBuf::Continuous(expected.to_vec()));
}

#[test]
fn a_wrong_observation_length_is_an_error_naming_the_expected_length() {
    let policy =
        Policy::from_export(&export(&cases()[0], &mut Rng::new(1))).expect("a checked export");
    let e = policy.act(&[0.0; 3]).unwrap_err();
    assert!(matches!(e, PolicyError::ObservationLength { expected: 4, got: 3, .. }), "{e:?}");
    assert_eq!(e.to_string(), "observation has 3 values, the policy expects 4");
    let e = policy.act_batch(&[0.0; 6]).unwrap_err();
    assert!(e.to_string().contains("not a whole number of observations of 4"), "{e}");
    assert_eq!(policy.act_batch(&[]).unwrap(), [], "an empty batch has no actions");
}

#[test]
fn damaged_or_mismatched_exports_are_errors_naming_the_file() {
    let case = &cases()[3];
    let good = export(case, &mut Rng::new(2));
    let dir = scratch_dir("damaged");
    good.write(&dir).unwrap();
    let manifest_path = dir.join("policy.json");
    let tensors_path = dir.join("policy.safetensors");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let error_of = |dir: &Path| Policy::load(dir).unwrap_err().to_string();

    // A manifest of an unknown (newer) version.
    std::fs::write(&manifest_path, original.replace("\"version\": 1", "\"version\": 2")).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("policy.json") && e.contains("version 2 is not supported"), "{e}");
    assert!(e.contains("update rlpg-policy"), "{e}");
    // Not a manifest at all.
    std::fs::write(&manifest_path, original.replace("rlpg-policy", "something-else")).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("policy.json") && e.contains("not an rlpg policy manifest"), "{e}");
    // Truncated JSON.
    std::fs::write(&manifest_path, &original[..original.len() / 2]).unwrap();
    assert!(error_of(&dir).contains("not JSON"), "{}", error_of(&dir));
    // A layer whose width does not chain.
    let bad_layers = original.replacen("\"inputs\": 3", "\"inputs\": 4", 1);
    std::fs::write(&manifest_path, bad_layers).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("layers[0] takes 4 inputs but receives 3"), "{e}");
    std::fs::write(&manifest_path, &original).unwrap();

    // A truncated tensors file.
    let bytes = std::fs::read(&tensors_path).unwrap();
    std::fs::write(&tensors_path, &bytes[..bytes.len() - 10]).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("policy.safetensors") && e.contains("not a valid safetensors"), "{e}");
    // Tensors of another policy (mismatched shapes).
    let other = export(&cases()[0], &mut Rng::new(3));
    std::fs::write(&tensors_path, other.tensors_bytes().unwrap()).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("policy.safetensors") && e.contains("has shape [16, 4]"), "{e}");
    // A missing file.
    std::fs::remove_file(&tensors_path).unwrap();
    assert!(error_of(&dir).contains("policy.safetensors"), "{}", error_of(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_manifest_that_contradicts_itself_is_refused_before_writing() {
    let dir = scratch_dir("contradiction");
    let nothing_written = |dir: &Path| {
        let left = std::fs::read_dir(dir).expect("read scratch dir").count();
        assert_eq!(left, 0, "a refused export left {left} files behind");
    };
    let mut bad = export(&cases()[4], &mut Rng::new(4));
    bad.manifest.action.rescale = None;
    let e = bad.write(&dir).unwrap_err().to_string();
    nothing_written(&dir);
    assert!(e.contains("needs action.rescale"), "{e}");
    let mut bad = export(&cases()[0], &mut Rng::new(4));
    bad.manifest.layers[1].activation = None;
    let e = bad.write(&dir).unwrap_err().to_string();
    nothing_written(&dir);
    assert!(e.contains("layers[1]"), "{e}");
    let mut bad = export(&cases()[0], &mut Rng::new(4));
    bad.manifest.layers[0].activation = Some(Activation::Relu);
    bad.tensors[0].values[0] = f32::NAN;
    let e = bad.write(&dir).unwrap_err().to_string();
    nothing_written(&dir);
    assert!(e.contains("non-finite value"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
