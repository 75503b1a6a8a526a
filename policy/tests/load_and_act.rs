//! Exports written, read back and acted on without libtorch; the formulas of each head checked
//! on hand-computed numbers; every bad input an error naming the file or the expected length.

#[path = "../examples/common/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use fixtures::{Rng, cases, export, observations};
use rlpg_policy::manifest::{ActionSpace, Activation, Head, Layer, Normalization};
use rlpg_policy::{ActionBuf, ActionDistribution, Export, NamedTensor, Policy, PolicyError};

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
    std::fs::write(&manifest_path, original.replace("\"version\": 2", "\"version\": 3")).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("policy.json") && e.contains("version 3 is not supported"), "{e}");
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

/// The `F32`/`I64` tensors of a `check.safetensors` file, by name.
fn read_check(path: &Path) -> std::collections::HashMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read check file");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

#[test]
fn a_version_1_export_written_before_multi_part_actions_still_loads_and_acts_as_it_did() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1");
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).expect("tests/data/v1") {
        let dir = entry.expect("entry").path();
        let policy = Policy::load(&dir).expect("a version-1 export loads");
        assert_eq!(policy.manifest().version, 1, "{}", dir.display());
        assert_eq!(policy.manifest().action.mask, None);
        let check = read_check(&dir.join("check.safetensors"));
        let obs: Vec<f32> = check["obs"]
            .1
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let actions = policy.act_batch(&obs).expect("act");
        let (shape, bytes) = &check["action"];
        // The actions recorded by rlpg-policy when version 1 was current.
        for (row, action) in actions.iter().enumerate() {
            match action {
                ActionBuf::Discrete(a) => {
                    let b = &bytes[8 * row..8 * row + 8];
                    let want = i64::from_le_bytes(b.try_into().expect("8 bytes"));
                    assert_eq!(*a as i64, want, "{}: row {row}", dir.display());
                }
                ActionBuf::Continuous(x) => {
                    let d = shape[1];
                    for (j, v) in x.iter().enumerate() {
                        let k = 4 * (row * d + j);
                        let want = f32::from_le_bytes(bytes[k..k + 4].try_into().expect("4"));
                        assert!((v - want).abs() <= 1e-6, "{}: row {row}", dir.display());
                    }
                }
                other => panic!("{}: a version-1 policy gave {other}", dir.display()),
            }
        }
        // A version-1 manifest cannot use what version 2 added.
        let text = std::fs::read_to_string(dir.join("policy.json")).expect("manifest");
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        value["action"]["mask"] = serde_json::json!({"len": 3, "components": [3]});
        let e = rlpg_policy::parse_manifest(&value.to_string(), Path::new("policy.json"))
            .and_then(|m| {
                m.validate()
                    .map_err(|what| PolicyError::Manifest { path: "policy.json".into(), what })
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs manifest version 2"), "{}: {e}", dir.display());
        checked += 1;
    }
    assert_eq!(checked, 3, "the three version-1 exports in tests/data/v1");
}

/// A one-layer identity export (`outputs = obs`) of width `width` with `head` over `space`.
fn identity(width: usize, head: Head, space: ActionSpace) -> Policy {
    let weight = (0..width * width).map(|i| if i % (width + 1) == 0 { 1.0 } else { 0.0 }).collect();
    Policy::from_export(&linear(weight, vec![0.0; width], head, space)).expect("a checked export")
}

fn probs(d: ActionDistribution) -> Vec<f32> {
    match d {
        ActionDistribution::Categorical { probs, .. } | ActionDistribution::Bernoulli { probs } => {
            probs
        }
        other => panic!("a discrete distribution, not {other:?}"),
    }
}

#[test]
fn multi_discrete_and_multi_binary_heads_act_and_give_probabilities_under_masks() {
    // MultiDiscrete([2, 3]): logits [0.1, 0.2 | 3.0, -1.0, 0.5].
    let p = identity(
        5,
        Head::MultiCategorical { nvec: vec![2, 3] },
        ActionSpace::MultiDiscrete { nvec: vec![2, 3] },
    );
    let obs = [0.1f32, 0.2, 3.0, -1.0, 0.5];
    assert_eq!(p.mask_len(), 5);
    assert_eq!(p.act(&obs).unwrap(), ActionBuf::MultiDiscrete(vec![1, 0]));
    let mask = [true, true, false, true, true];
    assert_eq!(p.act_masked(&obs, Some(&mask)).unwrap(), ActionBuf::MultiDiscrete(vec![1, 2]));
    let free = probs(p.distribution(&obs).unwrap());
    let e = |x: f32| x.exp();
    let expected = [
        e(0.1) / (e(0.1) + e(0.2)),
        e(0.2) / (e(0.1) + e(0.2)),
        e(3.0) / (e(3.0) + e(-1.0) + e(0.5)),
        e(-1.0) / (e(3.0) + e(-1.0) + e(0.5)),
        e(0.5) / (e(3.0) + e(-1.0) + e(0.5)),
    ];
    for (a, b) in free.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{free:?} vs {expected:?}");
    }
    let masked = probs(p.distribution_masked(&obs, Some(&mask)).unwrap());
    assert_eq!(masked[2], 0.0, "a masked choice has probability exactly 0");
    assert!((masked[3] - e(-1.0) / (e(-1.0) + e(0.5))).abs() < 1e-6, "{masked:?}");
    assert_eq!(masked[..2], free[..2], "an unmasked component is unchanged");

    // MultiBinary(3) as Bernoullis: logits [0.5, -0.5, 0.0].
    let p = identity(3, Head::Bernoulli { n: 3 }, ActionSpace::MultiBinary { n: 3 });
    let obs = [0.5f32, -0.5, 0.0];
    assert_eq!(p.mask_len(), 6);
    assert_eq!(
        p.act(&obs).unwrap(),
        ActionBuf::MultiBinary(vec![true, false, false]),
        "1 where the logit is > 0; a tie at P = 0.5 gives 0"
    );
    let mask = [true, false, true, true, false, true]; // value 0 must be 0, value 2 must be 1
    assert_eq!(
        p.act_masked(&obs, Some(&mask)).unwrap(),
        ActionBuf::MultiBinary(vec![false, false, true])
    );
    let masked = probs(p.distribution_masked(&obs, Some(&mask)).unwrap());
    assert_eq!(masked[0], 0.0);
    assert_eq!(masked[2], 1.0);
    assert!((masked[1] - 1.0 / (1.0 + e(0.5))).abs() < 1e-6, "{masked:?}");

    // MultiBinary(2) as two categoricals over ("0", "1"): logits [1, 0 | -1, 2].
    let p =
        identity(4, Head::MultiCategorical { nvec: vec![2, 2] }, ActionSpace::MultiBinary { n: 2 });
    let obs = [1.0f32, 0.0, -1.0, 2.0];
    assert_eq!(p.act(&obs).unwrap(), ActionBuf::MultiBinary(vec![false, true]));
    let mask = [false, true, true, false];
    assert_eq!(p.act_masked(&obs, Some(&mask)).unwrap(), ActionBuf::MultiBinary(vec![true, false]));

    // Gumbel-softmax over MultiDiscrete([3, 2]), each component bounded on its own.
    let p = identity(
        5,
        Head::GumbelSoftmax { logit_bound: 1.0, temperature: 1.0 },
        ActionSpace::MultiDiscrete { nvec: vec![3, 2] },
    );
    let obs = [0.1f32, 0.3, 0.2, 5.0, 4.0];
    assert_eq!(p.act(&obs).unwrap(), ActionBuf::MultiDiscrete(vec![1, 0]));
    let mask = [true, false, true, true, true];
    assert_eq!(p.act_masked(&obs, Some(&mask)).unwrap(), ActionBuf::MultiDiscrete(vec![2, 0]));
    let d = probs(p.distribution(&obs).unwrap());
    // Component 1: logits 5 and 4 centred to ±0.5, bounded to ±tanh(0.5).
    let t = (0.5f32).tanh();
    assert!((d[3] - e(t) / (e(t) + e(-t))).abs() < 1e-6, "{d:?}");
}

#[test]
fn samples_under_a_mask_are_never_masked_and_follow_the_masked_probabilities() {
    let mut rng = Rng::new(11);
    for case in cases().into_iter().filter(|c| c.masked) {
        let export = export(&case, &mut rng);
        let policy = Policy::from_export(&export).expect("a checked export");
        let obs = observations(&mut rng, 1, case.obs_dim);
        let mask = fixtures::masks(&mut rng, 1, &case.space);
        let space = case.space.to_space();
        let expected = probs(policy.distribution_masked(&obs, Some(&mask)).unwrap());
        let mut counts = vec![0usize; expected.len()];
        let draws = 4000;
        for seed in 0..draws {
            let a = policy.sample_masked(&obs, Some(&mask), seed).unwrap();
            assert!(space.mask_allows(&mask, a.as_action()), "{}: {a} is masked", case.name);
            match (&a, &policy.manifest().head) {
                (ActionBuf::MultiBinary(v), Head::Bernoulli { .. }) => {
                    v.iter().enumerate().filter(|(_, x)| **x).for_each(|(i, _)| counts[i] += 1);
                }
                _ => {
                    let mut start = 0;
                    let values: Vec<usize> = match &a {
                        ActionBuf::Discrete(i) => vec![*i],
                        ActionBuf::MultiDiscrete(v) => v.clone(),
                        ActionBuf::MultiBinary(v) => v.iter().map(|&b| usize::from(b)).collect(),
                        ActionBuf::Continuous(_) => panic!("{}: a box action", case.name),
                    };
                    for (v, k) in values.iter().zip(space.mask_components()) {
                        counts[start + v] += 1;
                        start += k;
                    }
                }
            }
        }
        for (i, (&c, &p)) in counts.iter().zip(&expected).enumerate() {
            let f = c as f64 / draws as f64;
            assert!(
                (f - f64::from(p)).abs() < 0.03,
                "{}: choice {i} drawn with frequency {f}, probability {p}",
                case.name
            );
        }
        let batch = policy.sample_batch_masked(&obs, Some(&mask), 5).unwrap();
        assert_eq!(batch, policy.sample_batch_masked(&obs, Some(&mask), 5).unwrap(), "seeded");
    }
}

#[test]
fn a_bad_mask_is_an_error_naming_the_component_or_the_row_never_a_panic() {
    let p = identity(
        5,
        Head::MultiCategorical { nvec: vec![2, 3] },
        ActionSpace::MultiDiscrete { nvec: vec![2, 3] },
    );
    let obs = [0.0f32; 5];
    let e = p.act_masked(&obs, Some(&[true; 4])).unwrap_err();
    assert!(matches!(e, PolicyError::Mask { row: None, .. }), "{e:?}");
    assert!(
        e.to_string().contains("a mask of 4 flags") && e.to_string().contains("needs 5"),
        "{e}"
    );
    let none_in_1 = [true, false, false, false, false];
    for e in [
        p.act_masked(&obs, Some(&none_in_1)).unwrap_err(),
        p.sample_masked(&obs, Some(&none_in_1), 1).unwrap_err(),
        p.distribution_masked(&obs, Some(&none_in_1)).unwrap_err(),
    ] {
        assert!(e.to_string().contains("allows no value of component 1"), "{e}");
    }
    let mut masks = vec![true; 4 * 5];
    masks[3 * 5] = false;
    masks[3 * 5 + 1] = false;
    let obs4 = [0.0f32; 20];
    let e = p.act_batch_masked(&obs4, Some(&masks)).unwrap_err().to_string();
    assert!(e.starts_with("mask of row 3: ") && e.contains("component 0"), "{e}");
    let e = p.act_batch_masked(&obs4, Some(&masks[..19])).unwrap_err().to_string();
    assert!(e.contains("19 mask flags for 4 observations, expected 4 × 5"), "{e}");

    let b = identity(2, Head::Bernoulli { n: 2 }, ActionSpace::MultiBinary { n: 2 });
    let e = b.act_masked(&[0.0, 0.0], Some(&[true, true, false, false])).unwrap_err();
    assert!(e.to_string().contains("allows neither 0 nor 1 for value 1"), "{e}");

    let g = identity(
        2,
        Head::Gaussian { log_std: Some("log_std".into()) },
        ActionSpace::Box { low: vec![-1.0; 2], high: vec![1.0; 2] },
    );
    let e = g.act_masked(&[0.0, 0.0], Some(&[])).unwrap_err();
    assert!(e.to_string().contains("has no masks"), "{e}");
    assert_eq!(g.mask_len(), 0);
}

#[test]
fn gaussian_distributions_are_the_mean_and_std_the_actions_come_from() {
    let mut rng = Rng::new(5);
    for case in cases().into_iter().filter(|c| matches!(c.space, ActionSpace::Box { .. })) {
        let policy = Policy::from_export(&export(&case, &mut rng)).expect("a checked export");
        let obs = observations(&mut rng, 64, case.obs_dim);
        let acts = policy.act_batch(&obs).unwrap();
        let dists = policy.distribution_batch(&obs).unwrap();
        for (row, (a, d)) in acts.iter().zip(&dists).enumerate() {
            let single = policy.distribution(&obs[row * case.obs_dim..][..case.obs_dim]).unwrap();
            let ActionBuf::Continuous(a) = a else { panic!("{}: box action", case.name) };
            let (mode, std) = match (d, &single) {
                (
                    ActionDistribution::Gaussian { mean, std },
                    ActionDistribution::Gaussian { .. },
                ) => {
                    let ActionSpace::Box { low, high } = &case.space else { unreachable!() };
                    let clipped: Vec<f32> = mean
                        .iter()
                        .zip(low.iter().zip(high))
                        .map(|(m, (l, h))| m.max(*l).min(*h))
                        .collect();
                    (clipped, std.clone())
                }
                (
                    ActionDistribution::SquashedGaussian { mode, std, .. },
                    ActionDistribution::SquashedGaussian { .. },
                ) => (mode.clone(), std.clone()),
                (
                    ActionDistribution::Deterministic { action, noise_std },
                    ActionDistribution::Deterministic { .. },
                ) => (action.clone(), vec![*noise_std]),
                other => panic!("{}: {other:?}", case.name),
            };
            assert_eq!(&mode, a, "{}: the greedy action is the distribution's mode", case.name);
            assert!(std.iter().all(|s| *s > 0.0 && s.is_finite()), "{}: {std:?}", case.name);
        }
        if let Head::Gaussian { log_std: Some(name) } = &case.head {
            let export = export(&case, &mut Rng::new(99));
            let log_std = &export.tensor(name).expect("log_std").values;
            let p = Policy::from_export(&export).expect("checked");
            let ActionDistribution::Gaussian { std, .. } =
                p.distribution(&obs[..case.obs_dim]).unwrap()
            else {
                panic!("gaussian")
            };
            let want: Vec<f32> = log_std.iter().map(|l| l.exp()).collect();
            assert_eq!(std, want, "std = exp(log_std)");
        }
    }
}

#[test]
fn new_heads_must_match_their_space_and_need_manifest_version_2() {
    let by_name = |name: &str| {
        let case = cases().into_iter().find(|c| c.name == name).expect("case");
        export(&case, &mut Rng::new(6))
    };
    let refused = |mut e: Export, change: &dyn Fn(&mut rlpg_policy::Manifest)| {
        change(&mut e.manifest);
        e.manifest.validate().unwrap_err()
    };
    let e = refused(by_name("multi_categorical"), &|m| {
        m.head = Head::MultiCategorical { nvec: vec![3, 4, 3] }
    });
    assert!(
        e.contains("nvec [3, 4, 3], the space MultiDiscrete([3, 4, 2]) needs [3, 4, 2]"),
        "{e}"
    );
    let e = refused(by_name("multi_categorical"), &|m| m.version = 1);
    assert!(
        e.contains("head multi_categorical over MultiDiscrete([3, 4, 2]) needs manifest version 2"),
        "{e}"
    );
    let e = refused(by_name("bernoulli"), &|m| m.head = Head::Bernoulli { n: 3 });
    assert!(e.contains("head bernoulli has n = 3, the space is MultiBinary(4)"), "{e}");
    let e = refused(by_name("bernoulli"), &|m| {
        m.action.mask = Some(rlpg_policy::manifest::MaskSpec { len: 4, components: vec![2, 2] })
    });
    assert!(
        e.contains("action.mask has len 4 and components [2, 2]") && e.contains("len 8"),
        "{e}"
    );
    let e = refused(by_name("gumbel_softmax_multi_binary"), &|m| m.layers[1].outputs = 3);
    assert!(e.contains("layers[1]") || e.contains("needs 4 outputs"), "{e}");
    let e = refused(by_name("squashed_gaussian"), &|m| {
        m.action.mask = Some(rlpg_policy::manifest::MaskSpec { len: 2, components: vec![2] })
    });
    assert!(e.contains("has no masks"), "{e}");
}
