//! The ONNX model of an export: the deterministic policy from raw observation to environment
//! action in one graph, for any ONNX runtime (Python, C++, C#, JavaScript, ...).
//!
//! The graph (opset [`OPSET`], IR version [`IR_VERSION`]) has one input, `obs`
//! (`float32 [batch, obs_dim]`), and one output, `action`: `int64 [batch]` for a discrete space,
//! `float32 [batch, action_dim]` for a box; `batch` is a dynamic dimension. Inside, in order:
//! the observation normalisation in `float64` (`Cast`, `Sub`, `Div`, `Cast`, `Clip`), the layers
//! (`Gemm` with `transB = 1` and the activation: `Tanh`, `Relu`, `Elu`, `LeakyRelu`, or
//! `Sigmoid`·`Mul` for SiLU), the head's mode (`ArgMax`; `Slice` of the means; `Tanh`; for
//! bounded Gumbel-softmax logits `ReduceMean`, `Sub`, `Div`, `Tanh`, `Mul`, then `LogSoftmax` and
//! `ArgMax`), and for a box the rescale (`Mul`, `Add`) and the clip into the bounds (`Max`,
//! `Min`). Each step is the one [`crate::manifest`] describes.
//!
//! The encoder writes the protobuf wire format directly: the few messages of `onnx.proto`
//! a model needs (`ModelProto`, `GraphProto`, `NodeProto`, `AttributeProto`, `TensorProto`,
//! `ValueInfoProto` and the type protos), with their field numbers. Weights are stored as
//! `raw_data` (little-endian).

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

/// ONNX `TensorProto.DataType` values.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
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

/// The ONNX model (`ModelProto` bytes) of `export`'s deterministic policy.
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
    let dim = manifest.action.space.dim();
    let slice_means = |g: &mut Graph, h: &str| -> String {
        if outputs == dim {
            return h.to_owned();
        }
        let starts = g.i64s("mean_start", &[0]);
        let ends = g.i64s("mean_end", &[dim as i64]);
        let axes = g.i64s("mean_axis", &[1]);
        g.node("Slice", &[h, &starts, &ends, &axes], &[])
    };
    let argmax =
        [Attr::Int("axis", 1), Attr::Int("keepdims", 0), Attr::Int("select_last_index", 0)];
    let action = match &manifest.head {
        Head::Categorical => g.node("ArgMax", &[&h], &argmax),
        Head::GumbelSoftmax { logit_bound, .. } => {
            let mut logits = h.clone();
            if *logit_bound > 0.0 {
                let bound = g.f32s("logit_bound", &[], &[*logit_bound]);
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
            let log_probs = g.node("LogSoftmax", &[&logits], &[Attr::Int("axis", 1)]);
            g.node("ArgMax", &[&log_probs], &argmax)
        }
        Head::Gaussian { .. } => slice_means(&mut g, &h),
        Head::SquashedGaussian | Head::DeterministicTanh { .. } => {
            let means = slice_means(&mut g, &h);
            g.node("Tanh", &[&means], &[])
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
    let output = match manifest.action.space {
        ActionSpace::Discrete { .. } => value_info(OUTPUT, INT64, &[]),
        ActionSpace::Box { .. } => value_info(OUTPUT, FLOAT, &[dim]),
        // No head acts in these spaces yet: `Manifest::validate` refuses them before this.
        ActionSpace::MultiDiscrete { .. } | ActionSpace::MultiBinary { .. } => {
            value_info(OUTPUT, INT64, &[dim])
        }
    };
    graph.message(12, &output);

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
