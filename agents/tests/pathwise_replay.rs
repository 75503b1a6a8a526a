//! The replay buffer keeps the most recent transitions in a ring and samples them uniformly.

use rlpg_agents::replay::ReplayBuffer;
use std::sync::{Mutex, MutexGuard};

use tch::Tensor;

/// Pushes transition `i` as: obs `[i, -i]`, action `[i / 10]`, reward `i`, terminated when `i`
/// is a multiple of 3, next obs `[i + 0.5, -i - 0.5]`, `n` transitions per push (one per env).
fn push_range(buffer: &mut ReplayBuffer, from: usize, n: usize) {
    let ids: Vec<f32> = (from..from + n).map(|i| i as f32).collect();
    let obs: Vec<f32> = ids.iter().flat_map(|&i| [i, -i]).collect();
    let actions: Vec<f32> = ids.iter().map(|&i| i / 10.0).collect();
    let rewards: Vec<f64> = ids.iter().map(|&i| f64::from(i)).collect();
    let terminated: Vec<bool> = (from..from + n).map(|i| i % 3 == 0).collect();
    let next: Vec<f32> = ids.iter().flat_map(|&i| [i + 0.5, -i - 0.5]).collect();
    buffer.push(&obs, &actions, &rewards, &terminated, &next).unwrap();
}

fn column(t: &Tensor) -> Vec<f32> {
    Vec::try_from(&t.contiguous().flatten(0, -1)).unwrap()
}

/// libtorch's generator is global and tests run in parallel threads: tests that seed it or draw
/// from it hold this lock so that another test's draws cannot interleave with theirs.
static RNG: Mutex<()> = Mutex::new(());

fn rng() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn the_ring_overwrites_the_oldest_transitions_once_full() {
    let mut buffer = ReplayBuffer::new(5, 2, 1).unwrap();
    assert!(buffer.is_empty());
    push_range(&mut buffer, 0, 3);
    assert_eq!((buffer.len(), buffer.oldest_row()), (3, 0));
    // Two envs per push: the second push wraps around the end of the ring.
    push_range(&mut buffer, 3, 2);
    push_range(&mut buffer, 5, 2);
    assert_eq!(buffer.len(), 5, "a full ring holds its capacity");
    let all = buffer.get(&Tensor::arange(5, (tch::Kind::Int64, tch::Device::Cpu))).unwrap();
    // Transitions 5 and 6 replaced 0 and 1 in rows 0 and 1.
    assert_eq!(column(&all.rewards), [5.0, 6.0, 2.0, 3.0, 4.0], "rewards by row");
    assert_eq!(buffer.oldest_row(), 2, "transition 2 is now the oldest");
    assert_eq!(column(&all.obs), [5.0, -5.0, 6.0, -6.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]);
    assert_eq!(column(&all.actions), [0.5, 0.6, 0.2, 0.3, 0.4]);
    assert_eq!(column(&all.terminated), [0.0, 1.0, 0.0, 1.0, 0.0]);
    assert_eq!(column(&all.next_obs)[..4], [5.5, -5.5, 6.5, -6.5]);
    assert_eq!(column(&all.obs_actions)[..3], [5.0, -5.0, 0.5], "obs then action");
}

#[test]
fn samples_are_whole_stored_transitions_drawn_uniformly() {
    let _rng = rng();
    tch::manual_seed(0);
    let mut buffer = ReplayBuffer::new(100, 2, 1).unwrap();
    for start in (0..140).step_by(4) {
        push_range(&mut buffer, start, 4);
    }
    let batch = buffer.sample(20_000).unwrap();
    let (rewards, obs, next) =
        (column(&batch.rewards), column(&batch.obs), column(&batch.next_obs));
    let (actions, terminated) = (column(&batch.actions), column(&batch.terminated));
    let mut counts = [0usize; 140];
    for (k, &r) in rewards.iter().enumerate() {
        let i = r as usize;
        assert!((40..140).contains(&i), "sampled transition {i} was overwritten or never stored");
        assert_eq!((obs[2 * k], obs[2 * k + 1]), (r, -r), "obs of transition {i}");
        assert_eq!((next[2 * k], next[2 * k + 1]), (r + 0.5, -r - 0.5), "next obs of {i}");
        assert_eq!(actions[k], r / 10.0, "action of {i}");
        assert_eq!(terminated[k], if i % 3 == 0 { 1.0 } else { 0.0 }, "flag of {i}");
        counts[i] += 1;
    }
    // 20000 draws over 100 transitions: 200 each, binomial std ≈ 14.
    let (lo, hi) = (counts[40..].iter().min().unwrap(), counts[40..].iter().max().unwrap());
    assert!(*lo > 130 && *hi < 270, "counts per transition range over [{lo}, {hi}], not ≈ 200");
}

#[test]
fn sampling_is_reproducible_under_a_fixed_seed() {
    let mut buffer = ReplayBuffer::new(50, 2, 1).unwrap();
    push_range(&mut buffer, 0, 30);
    let _rng = rng();
    tch::manual_seed(42);
    let a = column(&buffer.sample(64).unwrap().rewards);
    tch::manual_seed(42);
    let b = column(&buffer.sample(64).unwrap().rewards);
    assert_eq!(a, b, "same seed, different minibatches");
}

#[test]
fn bad_pushes_and_empty_samples_are_errors() {
    let mut buffer = ReplayBuffer::new(3, 2, 1).unwrap();
    assert!(buffer.sample(4).unwrap_err().to_string().contains("holding 0"));
    let err = buffer.push(&[0.0; 2], &[0.0; 2], &[0.0], &[false], &[0.0; 2]).unwrap_err();
    assert!(err.to_string().contains("actions has 2 values, expected 1"), "{err}");
    let err = buffer.push(&[0.0; 8], &[0.0; 4], &[0.0; 4], &[false; 4], &[0.0; 8]).unwrap_err();
    assert!(err.to_string().contains("exceeds the capacity"), "{err}");
    assert!(ReplayBuffer::new(0, 2, 1).is_err(), "a zero capacity must be refused");
}
