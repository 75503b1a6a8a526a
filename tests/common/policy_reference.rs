//! An exported policy computed with libtorch, written from the manifest's documentation
//! (`rlpg_policy::manifest`) with tch's own operators: the reference that `rlpg_policy::Policy`
//! (plain Rust, `rlpg-kernel`) and the ONNX graph are held to. It shares no arithmetic with
//! rlpg-policy: matrix products, activations, `softmax`, `sigmoid`, `argmax` and masking are
//! libtorch's.

use rlpg::deploy::manifest::{ActionSpace, Activation, Head};
use rlpg::deploy::{ActionDistribution, Export};
use rlpg::envs::ActionBuf;
use tch::{Kind, Tensor};

/// An export's tensor as a libtorch tensor of its shape.
fn export_tensor(export: &Export, name: &str) -> Tensor {
    let t = export.tensor(name).expect("tensor named in the manifest");
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.values).view(shape.as_slice())
}

/// An export's normalisation and network as libtorch tensors, loaded once.
pub struct TorchNet {
    obs_dim: i64,
    /// `(mean, std, clip)` of the frozen normalisation.
    normalization: Option<(Tensor, Tensor, f64)>,
    layers: Vec<(Tensor, Tensor, Option<Activation>)>,
}

impl TorchNet {
    /// The network of `export`.
    pub fn new(export: &Export) -> Self {
        let m = &export.manifest;
        let normalization = m.observation.normalization.as_ref().map(|n| {
            let std = (Tensor::from_slice(&n.var) + n.epsilon).sqrt();
            (Tensor::from_slice(&n.mean), std, f64::from(n.clip))
        });
        let layers = m
            .layers
            .iter()
            .map(|l| {
                let w = export_tensor(export, &l.weight).tr().contiguous();
                (w, export_tensor(export, &l.bias), l.activation)
            })
            .collect();
        Self { obs_dim: m.observation.dim as i64, normalization, layers }
    }

    /// The network's outputs `[rows, out]` for raw observations (normalised first).
    pub fn outputs(&self, obs: &[f32]) -> Tensor {
        let rows = obs.len() as i64 / self.obs_dim;
        let mut h = Tensor::from_slice(obs).view([rows, self.obs_dim]);
        if let Some((mean, std, clip)) = &self.normalization {
            let z = ((h.to_kind(Kind::Double) - mean) / std).to_kind(Kind::Float);
            h = z.clamp(-clip, *clip);
        }
        for (w, b, activation) in &self.layers {
            h = h.matmul(w) + b;
            h = match activation {
                None => h,
                Some(Activation::Tanh) => h.tanh(),
                Some(Activation::Relu) => h.relu(),
                Some(Activation::Elu) => h.elu(),
                Some(Activation::LeakyRelu) => h.leaky_relu(),
                Some(Activation::Silu) => h.silu(),
            };
        }
        h
    }
}

/// Greedy actions and distributions (flattened per row as [`flatten`] does) of `export` for raw
/// observations `obs` (`rows × obs_dim`), under `masks` (`rows × mask_len`) if given.
pub fn reference(
    export: &Export,
    obs: &[f32],
    masks: Option<&[bool]>,
) -> (Vec<ActionBuf>, Vec<Vec<f32>>) {
    let m = &export.manifest;
    let tensor = |name: &str| export_tensor(export, name);
    let rows = (obs.len() / m.observation.dim) as i64;
    let h = TorchNet::new(export).outputs(obs);
    let space = m.action.space.to_space();
    let mask_len = space.mask_len() as i64;
    let mask = masks.map(|flags| {
        let bytes: Vec<u8> = flags.iter().map(|&f| u8::from(f)).collect();
        Tensor::from_slice(&bytes).view([rows, mask_len]).to_kind(Kind::Bool)
    });
    let to_f32 = |t: &Tensor| Vec::<f32>::try_from(t.contiguous().view(-1)).expect("f32");
    let to_i64 = |t: &Tensor| Vec::<i64>::try_from(t.contiguous().view(-1)).expect("i64");
    let per_row = |t: &Tensor| -> Vec<Vec<f32>> {
        let width = t.size()[1] as usize;
        to_f32(t).chunks_exact(width.max(1)).map(<[f32]>::to_vec).collect()
    };
    let join = |parts: Vec<Vec<Vec<f32>>>| -> Vec<Vec<f32>> {
        (0..rows as usize).map(|r| parts.iter().flat_map(|p| p[r].clone()).collect()).collect()
    };
    let d = space.flat_dim() as i64;
    match &m.head {
        Head::Categorical | Head::GumbelSoftmax { .. } | Head::MultiCategorical { .. } => {
            let (mut choices, mut probs) = (Vec::new(), Vec::new());
            let mut start = 0;
            for k in space.mask_components() {
                let k = k as i64;
                let mut logits = h.narrow(1, start, k);
                if let Head::GumbelSoftmax { logit_bound, .. } = m.head {
                    if logit_bound > 0.0 {
                        let b = f64::from(logit_bound);
                        let centred =
                            &logits - logits.mean_dim([1i64].as_slice(), true, Kind::Float);
                        logits = (centred / b).tanh() * b;
                    }
                }
                if let Some(mask) = &mask {
                    let allowed = mask.narrow(1, start, k);
                    logits = logits.masked_fill(&allowed.logical_not(), f64::NEG_INFINITY);
                }
                probs.push(per_row(&logits.softmax(1, Kind::Float)));
                if matches!(m.head, Head::GumbelSoftmax { .. }) {
                    logits = logits.log_softmax(1, Kind::Float);
                }
                choices.push(to_i64(&logits.argmax(1, false)));
                start += k;
            }
            let actions = (0..rows as usize)
                .map(|r| {
                    let values: Vec<usize> = choices.iter().map(|c| c[r] as usize).collect();
                    match space {
                        rlpg::envs::Space::Discrete(_) => ActionBuf::Discrete(values[0]),
                        rlpg::envs::Space::MultiBinary(_) => {
                            ActionBuf::MultiBinary(values.iter().map(|&v| v == 1).collect())
                        }
                        _ => ActionBuf::MultiDiscrete(values),
                    }
                })
                .collect();
            (actions, join(probs))
        }
        Head::Bernoulli { n } => {
            let n = *n as i64;
            let mut p = h.sigmoid();
            let mut ones = h.gt(0.0);
            if let Some(mask) = &mask {
                let pairs = mask.view([rows, n, 2]);
                let (may0, may1) = (pairs.select(2, 0), pairs.select(2, 1));
                p = p.where_self(&may1, &p.zeros_like());
                p = p.where_self(&may0, &p.ones_like());
                ones = ones.logical_and(&may1).logical_or(&may0.logical_not());
            }
            let flags = to_i64(&ones.to_kind(Kind::Int64));
            let actions = flags
                .chunks_exact(n as usize)
                .map(|r| ActionBuf::MultiBinary(r.iter().map(|&v| v == 1).collect()))
                .collect();
            (actions, per_row(&p))
        }
        head => {
            let mean = h.narrow(1, 0, d);
            let ActionSpace::Box { low, high } = &m.action.space else {
                panic!("a box head over {}", m.action.space)
            };
            let (low, high) = (Tensor::from_slice(low), Tensor::from_slice(high));
            let into_box = |y: Tensor| -> Tensor {
                let y = match &m.action.rescale {
                    Some(r) => y * Tensor::from_slice(&r.scale) + Tensor::from_slice(&r.loc),
                    None => y,
                };
                y.maximum(&low).minimum(&high)
            };
            let clamped_std = || {
                h.narrow(1, d, d).clamp(f64::from(rlpg::deploy::manifest::LOG_STD_MIN), 2.0).exp()
            };
            let (action, parts) = match head {
                Head::Gaussian { log_std } => {
                    let std = match log_std {
                        Some(name) => tensor(name).exp().expand_as(&mean),
                        None => clamped_std(),
                    };
                    (into_box(mean.shallow_clone()), vec![per_row(&mean), per_row(&std)])
                }
                Head::SquashedGaussian => {
                    let mode = into_box(mean.tanh());
                    let parts = vec![per_row(&mean), per_row(&clamped_std()), per_row(&mode)];
                    (mode, parts)
                }
                Head::DeterministicTanh { exploration_noise } => {
                    let action = into_box(mean.tanh());
                    let noise = vec![vec![*exploration_noise as f32]; rows as usize];
                    (action.shallow_clone(), vec![per_row(&action), noise])
                }
                _ => unreachable!("discrete heads are handled above"),
            };
            let actions = per_row(&action).into_iter().map(ActionBuf::Continuous).collect();
            (actions, join(parts))
        }
    }
}

/// A distribution as one row of numbers, in the order [`reference`] gives them: the
/// probabilities; the mean then the std; the squashed Gaussian's mean, std and mode; the
/// deterministic action and its noise.
pub fn flatten(d: &ActionDistribution) -> Vec<f32> {
    match d {
        ActionDistribution::Categorical { probs, .. } | ActionDistribution::Bernoulli { probs } => {
            probs.clone()
        }
        ActionDistribution::Gaussian { mean, std } => [mean.as_slice(), std].concat(),
        ActionDistribution::SquashedGaussian { mean, std, mode } => {
            [mean.as_slice(), std, mode].concat()
        }
        ActionDistribution::Deterministic { action, noise_std } => {
            [action.as_slice(), &[*noise_std]].concat()
        }
        other => panic!("a distribution this reference does not know: {other:?}"),
    }
}

/// Checks `policy` against the libtorch reference on `obs` (with `masks` if given): greedy
/// actions identical (except a discrete choice whose two candidates the reference gives
/// probabilities within `1e-5` of each other, a tie within rounding; at most 0.1% of rows),
/// distributions within `1e-5` (relative beyond 1). Returns the largest difference.
pub fn assert_parity(
    what: &str,
    export: &Export,
    policy: &rlpg::deploy::Policy,
    obs: &[f32],
    masks: Option<&[bool]>,
) -> f64 {
    let (want_actions, want_dists) = reference(export, obs, masks);
    let got_actions = policy.act_batch_masked(obs, masks).expect("act");
    let got_dists = policy.distribution_batch_masked(obs, masks).expect("distribution");
    assert_eq!(got_actions.len(), want_actions.len(), "{what}: rows");
    let mut worst = 0.0f64;
    let mut ties = 0;
    for (row, (g, w)) in got_dists.iter().zip(&want_dists).enumerate() {
        let g = flatten(g);
        assert_eq!(g.len(), w.len(), "{what}: row {row}: distribution sizes");
        for (a, b) in g.iter().zip(w) {
            if a == b {
                continue; // also two equal infinities
            }
            let diff = f64::from(a - b).abs() / f64::from(b.abs()).max(1.0);
            assert!(diff <= 1e-5, "{what}: row {row}: distribution {g:?} vs libtorch {w:?}");
            worst = worst.max(diff);
        }
    }
    for (row, (g, w)) in got_actions.iter().zip(&want_actions).enumerate() {
        match (g, w) {
            (ActionBuf::Continuous(a), ActionBuf::Continuous(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let diff = f64::from(x - y).abs() / f64::from(y.abs()).max(1.0);
                    assert!(diff <= 1e-5, "{what}: row {row}: action {a:?} vs libtorch {b:?}");
                    worst = worst.max(diff);
                }
            }
            _ if g == w => {}
            _ => {
                // A different discrete choice is only acceptable at a tie within rounding: the
                // reference's probabilities of the two choices within 1e-5 of each other.
                let p = &want_dists[row];
                let close = match (positions(export, g), positions(export, w)) {
                    (Some(a), Some(b)) => {
                        a.iter().zip(&b).all(|(&i, &j)| i == j || (p[i] - p[j]).abs() < 1e-5)
                    }
                    // Bernoulli: values that differ have P(1) within 1e-5 of 1/2.
                    _ => match (g, w) {
                        (ActionBuf::MultiBinary(a), ActionBuf::MultiBinary(b)) => a
                            .iter()
                            .zip(b)
                            .zip(p)
                            .all(|((x, y), &q)| x == y || (q - 0.5).abs() < 1e-5),
                        _ => false,
                    },
                };
                assert!(close, "{what}: row {row}: action {g} vs libtorch {w} (probs {p:?})");
                ties += 1;
            }
        }
    }
    assert!(ties * 1000 <= got_actions.len(), "{what}: {ties} near-tie disagreements");
    worst
}

/// Where each part of a discrete action is in the probabilities of a categorical head
/// (component offset plus choice), or `None` for a Bernoulli head.
fn positions(export: &Export, action: &ActionBuf) -> Option<Vec<usize>> {
    if matches!(export.manifest.head, Head::Bernoulli { .. }) {
        return None;
    }
    let space = export.manifest.action.space.to_space();
    let values: Vec<usize> = match action {
        ActionBuf::Discrete(i) => vec![*i],
        ActionBuf::MultiDiscrete(v) => v.clone(),
        ActionBuf::MultiBinary(v) => v.iter().map(|&b| usize::from(b)).collect(),
        ActionBuf::Continuous(_) => return None,
    };
    let mut start = 0;
    Some(
        values
            .iter()
            .zip(space.mask_components())
            .map(|(&v, k)| {
                let at = start + v;
                start += k;
                at
            })
            .collect(),
    )
}
