//! `VecEnv` with action masks and step infos: the masks of the states to act on (after
//! autoresets too), actions outside a mask refused before anything steps, infos added up per
//! episode and kept across snapshots, and bad masks named by env, step and value.

use rand::SeedableRng;
use rlpg_envs::{
    Action, ActionBuf, Env, EnvError, InfoReduce, Observation, Space, Step, TimeLimit, VecActions,
    VecEnv, make,
};

fn restocks(n: usize) -> VecEnv {
    VecEnv::new((0..n).map(|_| make("Restock-v0").expect("registered")).collect())
        .expect("same spaces")
}

/// Each env's order drawn within its mask, from `rng`.
fn allowed_orders(vec: &VecEnv, rng: &mut rand_pcg::Pcg64) -> Vec<usize> {
    let (n, m) = (vec.num_envs(), vec.mask_len());
    let masks = vec.action_masks().expect("Restock masks actions");
    (0..n)
        .flat_map(|i| match vec.action_space().sample(rng, Some(&masks[i * m..(i + 1) * m])) {
            Ok(ActionBuf::MultiDiscrete(order)) => order,
            other => panic!("a multi-discrete order, not {other:?}"),
        })
        .collect()
}

#[test]
fn masks_are_those_of_the_states_to_act_on_and_infos_add_up_per_episode() {
    let n = 3;
    let mut vec = restocks(n);
    assert_eq!(vec.mask_len(), 15);
    let names: Vec<&str> = vec.info_keys().iter().map(|k| k.name.as_ref()).collect();
    assert_eq!(names, ["lost_sales", "deliveries", "stock", "over_capacity"]);
    vec.reset(Some(4)).expect("reset");
    // The same envs stepped one by one, as references.
    let mut singles: Vec<_> = (0..n).map(|_| make("Restock-v0").expect("registered")).collect();
    for (i, env) in singles.iter_mut().enumerate() {
        env.reset(Some(4 + i as u64)).expect("reset");
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut sums = vec![[0.0f64; 4]; n];
    let mut counts = vec![0usize; n];
    let mut episodes = 0;
    for t in 0..80 {
        let orders = allowed_orders(&vec, &mut rng);
        let step = vec.step(VecActions::MultiDiscrete(&orders)).expect("allowed orders").clone();
        for (i, env) in singles.iter_mut().enumerate() {
            let single = env.step(Action::MultiDiscrete(&orders[3 * i..3 * i + 3])).expect("step");
            let mut infos = [0.0; 4];
            env.step_infos(&mut infos);
            assert_eq!(&step.infos[4 * i..4 * i + 4], &infos, "step {t}: infos of env {i}");
            for (s, v) in sums[i].iter_mut().zip(infos) {
                *s += v;
            }
            counts[i] += 1;
            if single.done() {
                env.reset(None).expect("reset");
            }
            let mut mask = [false; 15];
            env.action_mask(&mut mask).expect("mask");
            assert_eq!(&step.action_masks[15 * i..15 * i + 15], &mask, "step {t}: mask of env {i}");
        }
        for (e, episode) in step.episodes.iter().enumerate() {
            let (i, totals) = (episode.env, &step.episode_infos[4 * e..4 * e + 4]);
            assert_eq!(totals[0].value(InfoReduce::Sum), Some(sums[i][0]), "lost sales");
            let mean_stock = sums[i][2] / counts[i] as f64;
            assert!((totals[2].value(InfoReduce::Mean).expect("stock") - mean_stock).abs() < 1e-12);
            assert_eq!(totals[1].steps as usize, counts[i], "one value a step");
            (sums[i], counts[i]) = ([0.0; 4], 0);
            episodes += 1;
        }
    }
    assert!(episodes >= 6, "80 steps of 28-day episodes end 2 per env: {episodes}");
}

#[test]
fn an_order_outside_the_mask_is_refused_before_any_env_steps() {
    let mut vec = restocks(2);
    vec.reset(Some(0)).expect("reset");
    // Fill env 1's first shelf by ordering until its mask rules out 4 units.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
    let before = loop {
        let masks = vec.action_masks().expect("masks").to_vec();
        if !masks[15 + 4] {
            break vec.snapshot();
        }
        let orders = allowed_orders(&vec, &mut rng);
        vec.step(VecActions::MultiDiscrete(&orders)).expect("allowed");
    };
    let err = vec.step(VecActions::MultiDiscrete(&[0, 0, 0, 4, 0, 0])).expect_err("masked out");
    let message = err.to_string();
    for needle in
        ["vector env slot 1", "Restock-v0", "[4, 0, 0]", "not allowed by the env's action mask"]
    {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    assert!(matches!(err, EnvError::InVecEnv { index: 1, .. }), "{err:?}");
    // Nothing stepped: the vector env is where it was, and steps on.
    assert_eq!(vec.snapshot(), before, "a refused batch must change nothing");
    let orders = allowed_orders(&vec, &mut rng);
    vec.step(VecActions::MultiDiscrete(&orders)).expect("allowed orders still step");
}

#[test]
fn infos_of_an_episode_in_progress_survive_a_snapshot() {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    let mut vec = restocks(2);
    vec.reset(Some(7)).expect("reset");
    for _ in 0..10 {
        let orders = allowed_orders(&vec, &mut rng);
        vec.step(VecActions::MultiDiscrete(&orders)).expect("step");
    }
    let json = serde_json::to_string(&vec.snapshot()).expect("serialise");
    let mut copy = restocks(2);
    copy.restore(&serde_json::from_str(&json).expect("parse")).expect("restore");
    assert_eq!(copy.action_masks(), vec.action_masks(), "masks of the restored states");
    for t in 0..30 {
        let orders = allowed_orders(&vec, &mut rng);
        let a = vec.step(VecActions::MultiDiscrete(&orders)).expect("step").clone();
        let b = copy.step(VecActions::MultiDiscrete(&orders)).expect("step").clone();
        assert_eq!(a, b, "step {t} after the restore");
    }
}

/// A Discrete(3) env whose mask allows nothing on its `empty_at`-th step, or that reports an
/// infinite info there.
struct Picky {
    t: usize,
    empty_at: usize,
    infinite: bool,
    obs: Space,
    act: Space,
}

impl Env for Picky {
    fn id(&self) -> &str {
        "Picky-v0"
    }
    fn observation_space(&self) -> &Space {
        &self.obs
    }
    fn action_space(&self) -> &Space {
        &self.act
    }
    fn masks_actions(&self) -> bool {
        true
    }
    fn action_mask(&self, mask: &mut [bool]) -> Result<(), EnvError> {
        mask.fill(self.t != self.empty_at || self.infinite);
        Ok(())
    }
    fn info_keys(&self) -> &[rlpg_envs::InfoKey] {
        const KEYS: &[rlpg_envs::InfoKey] = &[rlpg_envs::InfoKey::last("score")];
        KEYS
    }
    fn step_infos(&self, values: &mut [f64]) {
        values[0] = if self.infinite && self.t == self.empty_at { f64::INFINITY } else { 1.0 };
    }
    fn reset(&mut self, _: Option<u64>) -> Result<Observation, EnvError> {
        self.t = 0;
        Ok(Observation::from_slice(&[0.0]))
    }
    fn step(&mut self, _: Action<'_>) -> Result<Step, EnvError> {
        self.t += 1;
        Ok(Step {
            obs: Observation::from_slice(&[0.0]),
            reward: 0.0,
            terminated: false,
            truncated: false,
        })
    }
}

fn picky(empty_at: usize, infinite: bool) -> Box<dyn Env> {
    let act = Space::Discrete(3);
    let obs = Space::Box(rlpg_envs::BoxSpace::uniform(1, -1.0, 1.0));
    Box::new(TimeLimit::new(Picky { t: 0, empty_at, infinite, obs, act }, 50))
}

#[test]
fn a_mask_that_allows_nothing_and_an_infinite_info_are_errors_naming_env_step_and_value() {
    let mut vec = VecEnv::new(vec![picky(99, false), picky(3, false)]).expect("vec");
    vec.reset(Some(0)).expect("reset");
    vec.step(VecActions::Discrete(&[0, 1])).expect("step 1");
    vec.step(VecActions::Discrete(&[0, 1])).expect("step 2");
    let message = vec.step(VecActions::Discrete(&[0, 1])).expect_err("empty mask").to_string();
    for needle in
        ["vector env slot 1", "Picky-v0", "step 3 of the episode", "allows no action", "[0, 0, 0]"]
    {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    let mut vec = VecEnv::new(vec![picky(2, true), picky(99, true)]).expect("vec");
    vec.reset(Some(0)).expect("reset");
    vec.step(VecActions::Discrete(&[0, 1])).expect("step 1");
    let message = vec.step(VecActions::Discrete(&[0, 1])).expect_err("inf").to_string();
    for needle in ["vector env slot 0", "step 2 of the episode", "score = inf"] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
}

#[test]
fn envs_that_disagree_on_masks_are_refused_together() {
    /// Picky without its masks.
    struct NoMasks(Box<dyn Env>);
    impl Env for NoMasks {
        fn id(&self) -> &str {
            "NoMasks-v0"
        }
        fn observation_space(&self) -> &Space {
            self.0.observation_space()
        }
        fn action_space(&self) -> &Space {
            self.0.action_space()
        }
        fn info_keys(&self) -> &[rlpg_envs::InfoKey] {
            self.0.info_keys()
        }
        fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
            self.0.reset(seed)
        }
        fn step(&mut self, a: Action<'_>) -> Result<Step, EnvError> {
            self.0.step(a)
        }
    }
    let err = VecEnv::new(vec![picky(99, false), Box::new(NoMasks(picky(99, false)))])
        .expect_err("one masks actions, the other not");
    assert!(err.to_string().contains("env 1 (NoMasks-v0) declares no action masks"), "{err}");
}
