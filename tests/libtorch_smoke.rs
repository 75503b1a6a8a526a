//! Proves libtorch is linked and computing, not only compiled: a tensor, a tiny network, one
//! Adam step from tch itself, and a loss that goes down.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn one_adam_step_on_a_tiny_network_decreases_the_loss() {
    tch::manual_seed(0);
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([4, 1]);
    let y = &x * 2.0 + 1.0;
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "fc1", 1, 8, Default::default()))
        .add_fn(|t| t.tanh())
        .add(nn::linear(vs.root() / "out", 8, 1, Default::default()));
    let mut opt = nn::Adam::default().build(&vs, 1e-2).expect("build Adam");
    let loss = |net: &dyn Module| net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
    let before = loss(&net);
    opt.backward_step(&before);
    let after = loss(&net).double_value(&[]);
    let before = before.double_value(&[]);
    assert_eq!(x.kind(), Kind::Float);
    assert!(after < before, "loss did not decrease after one Adam step: {before} -> {after}");
}
