//! The ONNX model of an export: the policy from raw observation to environment action in one
//! graph, with its distribution's parameters beside the action, for any ONNX runtime (Python,
//! C++, C#, JavaScript, ...).
//!
//! The graph (opset [`OPSET`], IR version [`IR_VERSION`]) has the input `obs`
//! (`float32 [batch, obs_dim]`) and, when the manifest declares an action mask, [`MASK`]
//! (`bool [batch, mask_len]`, `true` = allowed, in the layout of [`crate::manifest`]); `batch`
//! is a dynamic dimension. Outputs: `action`, `int64 [batch]` for `Discrete`,
//! `int64 [batch, dim]` for `MultiDiscrete` and `MultiBinary` (0/1), `float32 [batch, dim]` for
//! a box; and the distribution: [`PROBS`] for discrete heads (`float32 [batch, mask_len]`, the
//! probabilities of every choice of every component; `[batch, n]` of `P(1)` for Bernoulli),
//! [`MEAN`] and [`LOG_STD`] for Gaussian heads (`float32 [batch, dim]`, before the squash for a
//! squashed Gaussian), nothing more for the deterministic TD3 head. Inside, in order: the
//! observation normalisation in `float64` (`Cast`, `Sub`, `Div`, `Cast`, `Clip`), the layers
//! (`Gemm` with `transB = 1` and the activation: `Tanh`, `Relu`, `Elu`, `LeakyRelu`, or
//! `Sigmoid`·`Mul` for SiLU), the head: per component a `Slice` of the logits, for bounded
//! Gumbel-softmax logits `ReduceMean`, `Sub`, `Div`, `Tanh`, `Mul`, under a mask `Where(mask,
//! logits, −∞)`, then `Softmax` and `ArgMax` (after `LogSoftmax` for Gumbel-softmax), joined by
//! `Concat`; for Bernoulli `Sigmoid` and `Greater(logit, 0)` with the mask's pairs applied by
//! `Reshape`, `Gather`, `Where`, `And`, `Or`, `Not`; for a box the mean `Slice`, `Tanh`, the
//! rescale (`Mul`, `Add`) and the clip into the bounds (`Max`, `Min`). Each step is the one
//! [`crate::manifest`] describes. A mask that allows nothing in a component gives NaN
//! probabilities there (an ONNX graph cannot raise an error; `rlpg_policy::Policy` does).
//!
//! The encoder writes the protobuf wire format directly: the few messages of `onnx.proto`
//! a model needs (`ModelProto`, `GraphProto`, `NodeProto`, `AttributeProto`, `TensorProto`,
//! `ValueInfoProto` and the type protos), with their field numbers. Weights are stored as
//! `raw_data` (little-endian).

use rlpg_envs::Space;
use rlpg_kernel::heads::{LOG_STD_MAX, LOG_STD_MIN};

use crate::export::Export;
use crate::manifest::{ActionSpace, Activation, Head};

/// The ONNX operator set the graph uses.
pub const OPSET: i64 = 17;
/// The ONNX IR version written (IR 8 is the one that goes with opset 17).
pub const IR_VERSION: i64 = 8;
/// Name of the graph's input.
pub const INPUT: &str = "obs";
/// Name of the graph's output.
pub const OUTPUT: &str = "action";
/// Name of the dynamic batch dimension.
pub const BATCH_DIM: &str = "batch";

/// Name of the graph's action-mask input (`bool [batch, mask_len]`), present when the
/// manifest has `action.mask`.
pub const MASK: &str = "mask";
/// Name of the probabilities output of a discrete head (`float32 [batch, mask_len]`, or
/// `[batch, n]` of `P(1)` for a Bernoulli head).
pub const PROBS: &str = "probs";
/// Name of the mean output of a Gaussian head (`float32 [batch, action_dim]`, before the squash
/// for a squashed Gaussian).
pub const MEAN: &str = "mean";
/// Name of the log-std output of a Gaussian head (`float32 [batch, action_dim]`, clamped as
/// training clamps it).
pub const LOG_STD: &str = "log_std";

/// ONNX `TensorProto.DataType` values.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
const BOOL: i64 = 9;
const DOUBLE: i64 = 11;

/// A protobuf message under construction (wire format).
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// An `int32`/`int64`/enum field (negative values as 10-byte two's complement).
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A `float` field.
    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` or `string` field.
    fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    fn message(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// An attribute of a node.
enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    /// `AttributeProto`: name = 1, f = 2, i = 3, ints = 8, type = 20 (FLOAT 1, INT 2, INTS 7).
    fn encode(&self) -> Msg {
        let mut m = Msg::default();
        match self {
            Attr::Int(name, v) => {
                m.string(1, name).int(3, *v).int(20, 2);
            }
            Attr::Float(name, v) => {
                m.string(1, name).float(2, *v).int(20, 1);
            }
            Attr::Ints(name, vs) => {
                m.string(1, name);
                for v in vs {
                    m.int(8, *v);
                }
                m.int(20, 7);
            }
        }
        m
    }
}

/// A graph under construction: nodes in topological order and initializers.
#[derive(Default)]
struct Graph {
    nodes: Vec<Msg>,
    initializers: Vec<Msg>,
    names: usize,
}

impl Graph {
    fn fresh(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}_{}", self.names)
    }

    /// An `int64 [len]` initializer under a fresh name `{prefix}_{k}`.
    fn fresh_i64s(&mut self, prefix: &str, values: &[i64]) -> String {
        let name = self.fresh(prefix);
        self.i64s(&name, values)
    }

    /// Adds node `op` on `inputs`; returns the name of its one output.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.node_into(op, inputs, attrs, &output);
        output
    }

    /// `NodeProto`: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
    fn node_into(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], output: &str) {
        let mut m = Msg::default();
        for input in inputs {
            m.string(1, input);
        }
        m.string(2, output).string(3, &format!("{output}_node")).string(4, op);
        for attr in attrs {
            m.message(5, &attr.encode());
        }
        self.nodes.push(m);
    }

    /// `TensorProto`: dims = 1, data_type = 2, name = 8, raw_data = 9.
    fn initializer(&mut self, name: &str, data_type: i64, dims: &[usize], raw: Vec<u8>) -> String {
        let mut m = Msg::default();
        for &d in dims {
            m.int(1, d as i64);
        }
        m.int(2, data_type).string(8, name).bytes(9, &raw);
        self.initializers.push(m);
        name.to_owned()
    }

    fn f32s(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, FLOAT, dims, raw)
    }

    fn f64s(&mut self, name: &str, values: &[f64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, DOUBLE, &[values.len()], raw)
    }

    fn i64s(&mut self, name: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, INT64, &[values.len()], raw)
    }
}

/// `ValueInfoProto` (name = 1, type = 2) of a tensor whose first dimension is `batch`:
/// `TypeProto.tensor_type` = 1 → `elem_type` = 1, `shape` = 2 → `dim` = 1 →
/// `dim_value` = 1 | `dim_param` = 2.
fn value_info(name: &str, elem_type: i64, rest: &[usize]) -> Msg {
    let mut shape = Msg::default();
    shape.message(1, Msg::default().string(2, BATCH_DIM));
    for &d in rest {
        shape.message(1, Msg::default().int(1, d as i64));
    }
    let mut tensor = Msg::default();
    tensor.int(1, elem_type).message(2, &shape);
    let mut ty = Msg::default();
    ty.message(1, &tensor);
    let mut m = Msg::default();
    m.string(1, name).message(2, &ty);
    m
}

/// A state-dependent log-std clamped to `[LOG_STD_MIN, LOG_STD_MAX]`.
fn clamped_log_std(g: &mut Graph, raw: &str) -> String {
    let lo = g.f32s("log_std_min", &[], &[LOG_STD_MIN]);
    let hi = g.f32s("log_std_max", &[], &[LOG_STD_MAX]);
    g.node("Clip", &[raw, &lo, &hi], &[])
}

/// The ONNX model (`ModelProto` bytes) of `export`'s policy.
pub fn model_bytes(export: &Export) -> Vec<u8> {
    let manifest = &export.manifest;
    let mut g = Graph::default();
    let mut h = INPUT.to_owned();

    if let Some(n) = &manifest.observation.normalization {
        let std: Vec<f64> = n.var.iter().map(|v| (v + n.epsilon).sqrt()).collect();
        let mean = g.f64s("obs_mean", &n.mean);
        let std = g.f64s("obs_std", &std);
        let lo = g.f32s("obs_clip_low", &[], &[-n.clip]);
        let hi = g.f32s("obs_clip_high", &[], &[n.clip]);
        let x = g.node("Cast", &[&h], &[Attr::Int("to", DOUBLE)]);
        let x = g.node("Sub", &[&x, &mean], &[]);
        let x = g.node("Div", &[&x, &std], &[]);
        let x = g.node("Cast", &[&x], &[Attr::Int("to", FLOAT)]);
        h = g.node("Clip", &[&x, &lo, &hi], &[]);
    }

    for (i, layer) in manifest.layers.iter().enumerate() {
        let values = |name: &str| export.tensor(name).map(|t| t.values.as_slice()).unwrap_or(&[]);
        let w = g.f32s(
            &format!("layer{i}_weight"),
            &[layer.outputs, layer.inputs],
            values(&layer.weight),
        );
        let b = g.f32s(&format!("layer{i}_bias"), &[layer.outputs], values(&layer.bias));
        let y = g.node("Gemm", &[&h, &w, &b], &[Attr::Int("transB", 1)]);
        h = match layer.activation {
            None => y,
            Some(Activation::Tanh) => g.node("Tanh", &[&y], &[]),
            Some(Activation::Relu) => g.node("Relu", &[&y], &[]),
            Some(Activation::Elu) => g.node("Elu", &[&y], &[Attr::Float("alpha", 1.0)]),
            Some(Activation::LeakyRelu) => {
                g.node("LeakyRelu", &[&y], &[Attr::Float("alpha", 0.01)])
            }
            Some(Activation::Silu) => {
                let s = g.node("Sigmoid", &[&y], &[]);
                g.node("Mul", &[&y, &s], &[])
            }
        };
    }

    let outputs = manifest.layers.last().map_or(0, |l| l.outputs);
    let space = manifest.action.space.to_space();
    let dim = space.flat_dim();
    let mask = manifest.action.mask.as_ref().map(|_| MASK.to_owned());
    // Columns `start..end` of `x` (all of it when that is the whole width).
    let columns = |g: &mut Graph, x: &str, start: usize, end: usize, width: usize| -> String {
        if start == 0 && end == width {
            return x.to_owned();
        }
        let starts = g.fresh_i64s("start", &[start as i64]);
        let ends = g.fresh_i64s("end", &[end as i64]);
        let axes = g.fresh_i64s("axis", &[1]);
        g.node("Slice", &[x, &starts, &ends, &axes], &[])
    };
    let argmax = |keepdims: i64| {
        [Attr::Int("axis", 1), Attr::Int("keepdims", keepdims), Attr::Int("select_last_index", 0)]
    };
    // (action, [(name, distribution output)]) of the head.
    let (action, distribution): (String, Vec<(&str, String)>) = match &manifest.head {
        Head::Categorical | Head::GumbelSoftmax { .. } | Head::MultiCategorical { .. } => {
            let components = space.mask_components();
            let mask_len = space.mask_len();
            let single = matches!(space, Space::Discrete(_));
            let neg_inf = mask.as_ref().map(|_| g.f32s("masked_logit", &[], &[f32::NEG_INFINITY]));
            let (mut actions, mut probs) = (Vec::new(), Vec::new());
            let mut start = 0;
            for k in components {
                let mut logits = columns(&mut g, &h, start, start + k, outputs);
                if let Head::GumbelSoftmax { logit_bound, .. } = manifest.head {
                    if logit_bound > 0.0 {
                        let name = g.fresh("logit_bound");
                        let bound = g.f32s(&name, &[], &[logit_bound]);
                        let mean = g.node(
                            "ReduceMean",
                            &[&logits],
                            &[Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 1)],
                        );
                        let c = g.node("Sub", &[&logits, &mean], &[]);
                        let c = g.node("Div", &[&c, &bound], &[]);
                        let c = g.node("Tanh", &[&c], &[]);
                        logits = g.node("Mul", &[&c, &bound], &[]);
                    }
                }
                if let (Some(mask), Some(neg_inf)) = (&mask, &neg_inf) {
                    let allowed = columns(&mut g, mask, start, start + k, mask_len);
                    logits = g.node("Where", &[&allowed, &logits, neg_inf], &[]);
                }
                probs.push(g.node("Softmax", &[&logits], &[Attr::Int("axis", 1)]));
                if matches!(manifest.head, Head::GumbelSoftmax { .. }) {
                    logits = g.node("LogSoftmax", &[&logits], &[Attr::Int("axis", 1)]);
                }
                actions.push(g.node("ArgMax", &[&logits], &argmax(i64::from(!single))));
                start += k;
            }
            let concat = |g: &mut Graph, parts: Vec<String>| -> String {
                if parts.len() == 1 {
                    return parts.into_iter().next().unwrap_or_default();
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                g.node("Concat", &refs, &[Attr::Int("axis", 1)])
            };
            let action = concat(&mut g, actions);
            (action, vec![(PROBS, concat(&mut g, probs))])
        }
        Head::Bernoulli { n } => {
            let zero = g.f32s("zero", &[], &[0.0]);
            let mut p = g.node("Sigmoid", &[&h], &[]);
            let mut ones = g.node("Greater", &[&h, &zero], &[]);
            if let Some(mask) = &mask {
                // [batch, 2n] -> [batch, n, 2]: "may be 0" and "may be 1" of each value.
                let shape = g.i64s("mask_pairs", &[0, *n as i64, 2]);
                let pairs = g.node("Reshape", &[mask, &shape], &[]);
                let first = g.initializer("pair_0", INT64, &[], 0i64.to_le_bytes().to_vec());
                let second = g.initializer("pair_1", INT64, &[], 1i64.to_le_bytes().to_vec());
                let may_be_0 = g.node("Gather", &[&pairs, &first], &[Attr::Int("axis", 2)]);
                let may_be_1 = g.node("Gather", &[&pairs, &second], &[Attr::Int("axis", 2)]);
                let one = g.f32s("one", &[], &[1.0]);
                p = g.node("Where", &[&may_be_1, &p, &zero], &[]);
                p = g.node("Where", &[&may_be_0, &p, &one], &[]);
                let chosen = g.node("And", &[&ones, &may_be_1], &[]);
                let forced = g.node("Not", &[&may_be_0], &[]);
                ones = g.node("Or", &[&chosen, &forced], &[]);
            }
            let action = g.node("Cast", &[&ones], &[Attr::Int("to", INT64)]);
            (action, vec![(PROBS, p)])
        }
        Head::Gaussian { log_std } => {
            let mean = columns(&mut g, &h, 0, dim, outputs);
            let log_std = match log_std {
                Some(name) => {
                    let values = export.tensor(name).map(|t| t.values.as_slice()).unwrap_or(&[]);
                    let param = g.f32s("log_std_parameter", &[dim], values);
                    let shape = g.node("Shape", &[&mean], &[]);
                    g.node("Expand", &[&param, &shape], &[])
                }
                None => {
                    let raw = columns(&mut g, &h, dim, 2 * dim, outputs);
                    clamped_log_std(&mut g, &raw)
                }
            };
            (mean.clone(), vec![(MEAN, mean), (LOG_STD, log_std)])
        }
        Head::SquashedGaussian => {
            let mean = columns(&mut g, &h, 0, dim, outputs);
            let raw = columns(&mut g, &h, dim, 2 * dim, outputs);
            let log_std = clamped_log_std(&mut g, &raw);
            (g.node("Tanh", &[&mean], &[]), vec![(MEAN, mean), (LOG_STD, log_std)])
        }
        Head::DeterministicTanh { .. } => {
            let mean = columns(&mut g, &h, 0, dim, outputs);
            (g.node("Tanh", &[&mean], &[]), Vec::new())
        }
    };
    let mut action = action;
    if let Some(r) = &manifest.action.rescale {
        let scale = g.f32s("action_scale", &[dim], &r.scale);
        let loc = g.f32s("action_loc", &[dim], &r.loc);
        let scaled = g.node("Mul", &[&action, &scale], &[]);
        action = g.node("Add", &[&scaled, &loc], &[]);
    }
    if let ActionSpace::Box { low, high } = &manifest.action.space {
        let low = g.f32s("action_low", &[dim], low);
        let high = g.f32s("action_high", &[dim], high);
        let above = g.node("Max", &[&action, &low], &[]);
        action = g.node("Min", &[&above, &high], &[]);
    }
    g.node_into("Identity", &[&action], &[], OUTPUT);
    for (name, value) in &distribution {
        g.node_into("Identity", &[value], &[], name);
    }

    // GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12.
    let mut graph = Msg::default();
    for node in &g.nodes {
        graph.message(1, node);
    }
    graph.string(2, "rlpg_policy");
    for init in &g.initializers {
        graph.message(5, init);
    }
    graph.string(
        10,
        "Deterministic policy exported by rlpg: raw observation in, environment action out.",
    );
    graph.message(11, &value_info(INPUT, FLOAT, &[manifest.observation.dim]));
    if mask.is_some() {
        graph.message(11, &value_info(MASK, BOOL, &[space.mask_len()]));
    }
    let output = match space {
        Space::Discrete(_) => value_info(OUTPUT, INT64, &[]),
        Space::Box(_) => value_info(OUTPUT, FLOAT, &[dim]),
        Space::MultiDiscrete(_) | Space::MultiBinary(_) => value_info(OUTPUT, INT64, &[dim]),
    };
    graph.message(12, &output);
    for (name, _) in &distribution {
        let width = match *name {
            PROBS if matches!(manifest.head, Head::Bernoulli { .. }) => dim,
            PROBS => space.mask_len(),
            _ => dim,
        };
        graph.message(12, &value_info(name, FLOAT, &[width]));
    }

    // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
    // opset_import = 8 (OperatorSetIdProto: domain = 1, version = 2).
    let mut opset = Msg::default();
    opset.string(1, "").int(2, OPSET);
    let mut model = Msg::default();
    model
        .int(1, IR_VERSION)
        .string(2, "rlpg")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, &graph)
        .message(8, &opset);
    model.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_protobuf_wire_format() {
        let mut m = Msg::default();
        m.int(1, 300);
        assert_eq!(m.0, [0x08, 0xac, 0x02], "field 1 varint 300");
        let mut m = Msg::default();
        m.int(2, -1);
        assert_eq!(m.0.len(), 11, "a negative int64 is a 10-byte varint after its key");
        assert_eq!(m.0[10], 0x01);
        let mut m = Msg::default();
        m.string(4, "Tanh");
        assert_eq!(m.0, [0x22, 4, b'T', b'a', b'n', b'h']);
        let mut m = Msg::default();
        m.float(2, 1.0);
        assert_eq!(m.0, [0x15, 0x00, 0x00, 0x80, 0x3f]);
    }
}
