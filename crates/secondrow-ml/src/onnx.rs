//! ONNX export through a small hand-written protobuf encoder (no protobuf dependency): the ONNX
//! messages used here are few and stable.
//!
//! Every exported graph reads the model's raw input columns (`input_layout`): numeric ones as one float
//! tensor `input` [N, F], and those a one-hot or ordinal step encodes as one string tensor `text_input`
//! [N, T] (an empty string is a missing value), so the fitted transforms are part of the graph:
//! imputation is `IsNaN` + `Where` (for trees: the branch a missing value takes) or, for text, the
//! category a missing value maps to; `standardize`/`min_max` are folded into the first linear layer or
//! into the tree thresholds; one-hot and ordinal steps are `ai.onnx.ml` CategoryMapper followed by
//! `Equal` + `Cast` or `Cast`. Outputs follow skl2onnx: `variable` [N, 1] for regressors; `label` [N]
//! (int64 class index into the model's `classes`) and `probabilities` [N, K] for classifiers; `label`
//! (cluster) for k-means.
//!
//! Covered: linear/ridge/logistic regression, MLP (MatMul/Add/Relu/Softmax), k-means (a linear score
//! per centre, then ArgMin), decision trees, random forests and gradient boosting (`ai.onnx.ml`
//! TreeEnsembleClassifier/TreeEnsembleRegressor), SVM classifiers (linear or RBF kernel matrices by
//! MatMul/Exp, one-vs-one votes by Greater/Cast/MatMul) and k-NN classifiers and regressors
//! (MatMul distances, TopK, Gather; distance weights from the gathered rows), the last two in the
//! default domain only. Labels break ties as natively: the first of equal classes, the lower training
//! row among equally distant neighbours. Not covered: a column encoded twice or scaled before it is
//! encoded (an error naming the column).

use crate::error::{Error, Result};
use crate::estimator::forest::Forest;
use crate::estimator::gbt::{Gbt, GbtLoss};
use crate::estimator::knn::Knn;
use crate::estimator::mlp::MlpOutput;
use crate::estimator::svm::{Kernel, Svm};
use crate::estimator::tree::Tree;
use crate::estimator::Estimator;
use crate::model::Model;
use crate::table::Matrix;
use crate::transform::{Fill, FittedStep};

mod proto;

use proto::*;

/// Operator set version of exported graphs (default domain).
pub const OPSET: i64 = 13;
/// Operator set version of the `ai.onnx.ml` domain, used by tree ensembles.
pub const ML_OPSET: i64 = 1;
const ML: &str = "ai.onnx.ml";

/// The model kinds `export` covers.
pub const EXPORTABLE: &[&str] = &[
    "linear_regression",
    "ridge",
    "logistic_regression",
    "decision_tree",
    "random_forest",
    "gradient_boosting",
    "mlp",
    "kmeans",
    "svm",
    "knn",
];

/// How each estimator feature derives from the raw input: `feature = scale * column + offset`, where
/// `column` is a column of the graph's feature tensor — the numeric inputs (after missing ones are
/// filled) followed by the encoded categorical inputs.
struct Inputs {
    /// Columns of the feature tensor: the numeric input columns (the `input` tensor), then one column per
    /// one-hot category (`name=category`) or ordinal code (`name`) of the categorical inputs.
    names: Vec<String>,
    /// How many of `names` are numeric inputs.
    n_numeric: usize,
    /// The categorical input columns (the `text_input` tensor), in the order the steps encode them (which
    /// is also the order of their blocks in `names`), and how each is encoded.
    encodings: Vec<Encoding>,
    /// Per numeric input column: the fill for a missing value, in raw units.
    fills: Vec<Option<f64>>,
    /// Per estimator feature: (feature tensor column, scale, offset).
    features: Vec<(usize, f64, f64)>,
    /// Per estimator feature: the imputed value as the estimator sees it, computed as the transformer does.
    feature_fills: Vec<Option<f64>>,
}

/// A categorical input column read as text and encoded by a one-hot or ordinal step.
struct Encoding {
    name: String,
    categories: Vec<String>,
    /// The category a missing value (an empty string) becomes through imputation, if any.
    missing: Option<usize>,
    one_hot: bool,
}

fn unsupported(model: &Model, why: &str) -> Error {
    Error::WrongModelKind { path: Default::default(), found: model.kind.clone(), expected: why.to_string() }
}

/// The graph's input columns of `model`: numeric ones (the float tensor `input`) and categorical ones
/// (the string tensor `text_input`, present only when the transformer has one-hot or ordinal steps).
pub fn input_layout(model: &Model) -> Result<(Vec<String>, Vec<String>)> {
    let inputs = inputs(model)?;
    Ok((inputs.names[..inputs.n_numeric].to_vec(), inputs.encodings.into_iter().map(|e| e.name).collect()))
}

fn inputs(model: &Model) -> Result<Inputs> {
    use std::collections::{HashMap, HashSet};
    let raw = model.input_columns();
    let steps = model.transformer.as_ref().map_or(&[][..], |t| &t.steps[..]);
    // Raw columns a one-hot or ordinal step encodes are read as text; the others as numbers.
    let mut categorical: HashSet<&str> = HashSet::new();
    for step in steps {
        if let FittedStep::OneHot { columns } | FittedStep::Ordinal { columns } = step {
            for (name, _) in columns {
                if !raw.contains(name) {
                    return Err(unsupported(
                        model,
                        &format!("ONNX export encodes input columns only; `{name}` is derived"),
                    ));
                }
                categorical.insert(name.as_str());
            }
        }
    }
    let mut names: Vec<String> = raw.iter().filter(|n| !categorical.contains(n.as_str())).cloned().collect();
    let n_numeric = names.len();
    // Current column name → feature tensor column, and that column's affine map and fill.
    let mut slot: HashMap<String, usize> = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
    let mut affine: Vec<(f64, f64)> = vec![(1.0, 0.0); n_numeric];
    let mut fills: Vec<Option<f64>> = vec![None; n_numeric];
    let mut fill_now: HashMap<usize, f64> = HashMap::new();
    let mut text_fill: HashMap<&str, String> = HashMap::new();
    let mut encodings: Vec<Encoding> = Vec::new();
    for step in steps {
        match step {
            FittedStep::Standardize { columns } | FittedStep::MinMax { columns } => {
                let min_max = matches!(step, FittedStep::MinMax { .. });
                for (name, a, b) in columns {
                    if categorical.contains(name.as_str()) && !slot.contains_key(name) {
                        return Err(unsupported(
                            model,
                            &format!("ONNX export needs `{name}` encoded before it is scaled"),
                        ));
                    }
                    let Some(&j) = slot.get(name) else { continue };
                    // standardize: (v - mean) / std; min_max: (v - min) / (max - min), 0 when max == min.
                    let (shift, div) = if min_max { (*a, b - a) } else { (*a, *b) };
                    if let Some(v) = fill_now.get_mut(&j) {
                        // The same arithmetic as `Transformer::apply`, so that ties with thresholds agree.
                        *v = if !min_max {
                            (*v - a) / b
                        } else if b > a {
                            (*v - a) / (b - a)
                        } else {
                            0.0
                        };
                    }
                    let (s, o) = &mut affine[j];
                    if div > 0.0 {
                        *s /= div;
                        *o = (*o - shift) / div;
                    } else {
                        (*s, *o) = (0.0, 0.0);
                    }
                }
            }
            FittedStep::Impute { fills: step_fills } => {
                for (name, value) in step_fills {
                    if categorical.contains(name.as_str()) && !slot.contains_key(name) {
                        let text = match value {
                            Fill::Text(t) => t.clone(),
                            Fill::Number(v) => crate::table::format_number(*v),
                        };
                        text_fill.entry(name.as_str()).or_insert(text);
                        continue;
                    }
                    // Encoded columns have no missing values; numeric inputs are filled once, by the first fill.
                    let Some(&j) = slot.get(name).filter(|&&j| j < n_numeric && fills[j].is_none()) else { continue };
                    let Fill::Number(v) = value else {
                        return Err(unsupported(
                            model,
                            &format!("ONNX export reads `{name}` as a number, but it is imputed with text"),
                        ));
                    };
                    let (s, o) = affine[j];
                    // A later step's fill, mapped back to raw units (any value when the column is constant).
                    fills[j] = Some(if s != 0.0 { (v - o) / s } else { 0.0 });
                    fill_now.insert(j, *v);
                }
            }
            FittedStep::OneHot { columns } | FittedStep::Ordinal { columns } => {
                let one_hot = matches!(step, FittedStep::OneHot { .. });
                for (name, categories) in columns {
                    if encodings.iter().any(|e| &e.name == name) {
                        return Err(unsupported(model, &format!("ONNX export encodes `{name}` once only")));
                    }
                    let missing = text_fill.get(name.as_str()).and_then(|f| categories.iter().position(|c| c == f));
                    let derived: Vec<String> = if one_hot {
                        categories.iter().map(|c| format!("{name}={c}")).collect()
                    } else {
                        vec![name.clone()]
                    };
                    for d in derived {
                        slot.insert(d.clone(), names.len());
                        names.push(d);
                        affine.push((1.0, 0.0));
                    }
                    encodings.push(Encoding { name: name.clone(), categories: categories.clone(), missing, one_hot });
                }
            }
            FittedStep::Drop { .. } | FittedStep::Select { .. } => {}
        }
    }
    let mut features = Vec::with_capacity(model.feature_names.len());
    let mut feature_fills = Vec::with_capacity(model.feature_names.len());
    for f in &model.feature_names {
        let Some(&j) = slot.get(f) else {
            return Err(unsupported(
                model,
                &format!("ONNX export needs every feature to come from an input column; `{f}` does not"),
            ));
        };
        features.push((j, affine[j].0, affine[j].1));
        feature_fills.push(fill_now.get(&j).copied());
    }
    Ok(Inputs { names, n_numeric, encodings, fills, features, feature_fills })
}

/// A graph under construction.
struct Graph {
    nodes: Vec<Pb>,
    initializers: Vec<Pb>,
    outputs: Vec<Pb>,
    uses_ml: bool,
}

impl Graph {
    fn add(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) {
        self.nodes.push(node(op, "", inputs, outputs, attrs));
    }

    fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        self.initializers.push(tensor(name, dims, values));
    }

    fn constant_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) {
        self.initializers.push(tensor_i64(name, dims, values));
    }

    /// The estimator features minus `center` ([N, d]): one `MatMul`/`Add` with the transforms folded
    /// in. Centring on the stored rows keeps the f32 expansions `|a|² - 2 a·b + |b|²` accurate.
    fn centered_features(&mut self, x: &str, inputs: &Inputs, center: &[f64], out: &str) {
        let d = inputs.features.len();
        let identity: Vec<Vec<f64>> = (0..d).map(|c| (0..d).map(|i| (i == c) as u8 as f64).collect()).collect();
        let bias: Vec<f64> = center.iter().map(|v| -v).collect();
        self.linear(x, inputs, &identity, &bias, out);
    }

    /// Fills missing inputs; returns the name of the filled tensor.
    fn impute(&mut self, inputs: &Inputs) -> &'static str {
        if inputs.n_numeric == 0 || inputs.fills.iter().all(Option::is_none) {
            return "input";
        }
        // NaN where nothing is imputed: Where then keeps the input's NaN.
        let fills: Vec<f32> = inputs.fills.iter().map(|f| f.map_or(f32::NAN, |v| v as f32)).collect();
        self.constant("fill", &[fills.len() as i64], &fills);
        self.add("IsNaN", &["input"], &["input_missing"], &[]);
        self.add("Where", &["input_missing", "fill", "input"], &["filled"], &[]);
        "filled"
    }

    /// The feature tensor: the numeric inputs `x` followed by the encoded categorical inputs, each text
    /// column mapped to its category index (`CategoryMapper`; an empty string is a missing value, which
    /// takes the imputed category, and an unknown one is -1) and then compared with every index
    /// (one-hot) or cast to float (ordinal). Returns `x` itself when nothing is categorical.
    fn encode(&mut self, inputs: &Inputs, x: &'static str) -> String {
        if inputs.encodings.is_empty() {
            return x.to_string();
        }
        let mut blocks: Vec<String> = Vec::new();
        if inputs.n_numeric > 0 {
            blocks.push(x.to_string());
        }
        for (t, e) in inputs.encodings.iter().enumerate() {
            let (index, text, code) = (format!("text_col{t}"), format!("text{t}"), format!("code{t}"));
            self.constant_i64(&index, &[1], &[t as i64]);
            self.add("Gather", &["text_input", &index], &[&text], &[("axis", Attr::Int(1))]);
            let mut keys: Vec<&str> = e.categories.iter().map(String::as_str).collect();
            let mut codes: Vec<i64> = (0..keys.len() as i64).collect();
            if let Some(m) = e.missing.filter(|_| !keys.contains(&"")) {
                keys.push("");
                codes.push(m as i64);
            }
            let attrs = [
                ("cats_strings", Attr::Strs(keys)),
                ("cats_int64s", Attr::Ints(codes)),
                ("default_int64", Attr::Int(-1)),
            ];
            self.nodes.push(node("CategoryMapper", ML, &[&text], &[&code], &attrs));
            self.uses_ml = true;
            let block = format!("encoded{t}");
            if e.one_hot {
                let (range, hits) = (format!("categories{t}"), format!("hits{t}"));
                let indices: Vec<i64> = (0..e.categories.len() as i64).collect();
                self.constant_i64(&range, &[indices.len() as i64], &indices);
                self.add("Equal", &[&code, &range], &[&hits], &[]);
                self.add("Cast", &[&hits], &[&block], &[("to", Attr::Int(1))]);
            } else {
                self.add("Cast", &[&code], &[&block], &[("to", Attr::Int(1))]);
            }
            blocks.push(block);
        }
        let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
        self.add("Concat", &refs, &["inputs_encoded"], &[("axis", Attr::Int(1))]);
        "inputs_encoded".to_string()
    }

    /// `x · W + B` over the raw columns, for `columns[c]` = weights of output `c` over the estimator
    /// features; the feature transforms are folded into W and B.
    fn linear(&mut self, x: &str, inputs: &Inputs, columns: &[Vec<f64>], bias: &[f64], out: &str) {
        let (d, k) = (inputs.names.len(), columns.len());
        let mut w = vec![0f32; d * k];
        let mut b = vec![0f32; k];
        for (c, (coef, b0)) in columns.iter().zip(bias).enumerate() {
            let mut bc = *b0;
            for (&(raw, s, o), cf) in inputs.features.iter().zip(coef) {
                w[raw * k + c] += (cf * s) as f32;
                bc += cf * o;
            }
            b[c] = bc as f32;
        }
        self.constant(&format!("{out}_W"), &[d as i64, k as i64], &w);
        self.constant(&format!("{out}_B"), &[k as i64], &b);
        self.add("MatMul", &[x, &format!("{out}_W")], &[&format!("{out}_xw")], &[]);
        self.add("Add", &[&format!("{out}_xw"), &format!("{out}_B")], &[out], &[]);
    }

    fn classifier_outputs(&mut self, k: usize) {
        self.outputs.push(value_info("label", 7, &[None]));
        self.outputs.push(value_info("probabilities", 1, &[None, Some(k as i64)]));
    }
}

/// Tree nodes in `ai.onnx.ml` layout; a split `feature <= t` becomes `input[raw] <= (t - offset) / scale`,
/// and imputation becomes the branch a missing value takes (where the fill value would go).
#[derive(Default)]
struct TreeNodes {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    values: Vec<f32>,
    modes: Vec<&'static str>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<i64>,
    /// Leaf outputs: (tree, node, class or target, weight).
    leaves: Vec<(i64, i64, i64, f32)>,
}

impl TreeNodes {
    /// Adds `tree`; `leaf(values)` gives the (class/target, weight) pairs of a leaf.
    fn push(&mut self, id: usize, tree: &Tree, inputs: &Inputs, leaf: impl Fn(&[f64]) -> Vec<(i64, f64)>) {
        for node in 0..tree.n_nodes() {
            self.tree_ids.push(id as i64);
            self.node_ids.push(node as i64);
            if tree.feature[node] < 0 {
                self.feature_ids.push(0);
                self.values.push(0.0);
                self.modes.push("LEAF");
                self.true_ids.push(0);
                self.false_ids.push(0);
                self.missing_true.push(0);
                let value = &tree.value[node * tree.n_outputs..(node + 1) * tree.n_outputs];
                for (target, weight) in leaf(value) {
                    self.leaves.push((id as i64, node as i64, target, weight as f32));
                }
            } else {
                let (raw, s, o) = inputs.features[tree.feature[node] as usize];
                let t = tree.threshold[node];
                // Scales are positive (std, max - min) or 0 for a constant column, whose branch is fixed.
                let threshold = if s > 0.0 {
                    ((t - o) / s) as f32
                } else if o <= t {
                    f32::INFINITY
                } else {
                    f32::NEG_INFINITY
                };
                self.feature_ids.push(raw as i64);
                self.values.push(threshold);
                self.modes.push("BRANCH_LEQ");
                self.true_ids.push(tree.left[node] as i64);
                self.false_ids.push(tree.right[node] as i64);
                // Without a fill, NaN <= t is false: the right branch, as in native prediction.
                let fill_goes_left = inputs.feature_fills[tree.feature[node] as usize].is_some_and(|v| v <= t);
                self.missing_true.push(fill_goes_left as i64);
            }
        }
    }

    /// The ensemble node: classifier (`prefix` "class") or regressor (`prefix` "target").
    fn node(self, x: &str, classes: Option<usize>, base: &[f64], post: &str) -> Pb {
        let prefix = if classes.is_some() { "class" } else { "target" };
        let names = ["treeids", "nodeids", "ids", "weights"].map(|n| format!("{prefix}_{n}"));
        let mut attrs = vec![
            ("nodes_treeids", Attr::Ints(self.tree_ids)),
            ("nodes_nodeids", Attr::Ints(self.node_ids)),
            ("nodes_featureids", Attr::Ints(self.feature_ids)),
            ("nodes_values", Attr::Floats(self.values)),
            ("nodes_modes", Attr::Strs(self.modes)),
            ("nodes_truenodeids", Attr::Ints(self.true_ids)),
            ("nodes_falsenodeids", Attr::Ints(self.false_ids)),
            ("nodes_missing_value_tracks_true", Attr::Ints(self.missing_true)),
            ("post_transform", Attr::Str(post)),
            ("base_values", Attr::Floats(base.iter().map(|&v| v as f32).collect())),
        ];
        attrs.push((names[0].as_str(), Attr::Ints(self.leaves.iter().map(|l| l.0).collect())));
        attrs.push((names[1].as_str(), Attr::Ints(self.leaves.iter().map(|l| l.1).collect())));
        attrs.push((names[2].as_str(), Attr::Ints(self.leaves.iter().map(|l| l.2).collect())));
        attrs.push((names[3].as_str(), Attr::Floats(self.leaves.iter().map(|l| l.3).collect())));
        match classes {
            Some(k) => {
                attrs.push(("classlabels_int64s", Attr::Ints((0..k as i64).collect())));
                node("TreeEnsembleClassifier", ML, &[x], &["label", "probabilities"], &attrs)
            }
            None => {
                attrs.push(("n_targets", Attr::Int(1)));
                attrs.push(("aggregate_function", Attr::Str("SUM")));
                node("TreeEnsembleRegressor", ML, &[x], &["variable"], &attrs)
            }
        }
    }
}

fn forest(g: &mut Graph, x: &str, m: &Forest, inputs: &Inputs, classes: Option<usize>) {
    let scale = 1.0 / m.trees.len().max(1) as f64;
    let mut nodes = TreeNodes::default();
    for (id, tree) in m.trees.iter().enumerate() {
        // Every class gets a weight, zeros included, so that readers never take the binary shortcut.
        nodes.push(id, tree, inputs, |v| v.iter().enumerate().map(|(c, p)| (c as i64, p * scale)).collect());
    }
    let base = vec![0.0; classes.unwrap_or(1)];
    g.nodes.push(nodes.node(x, classes, &base, "NONE"));
    g.uses_ml = true;
}

fn gbt(g: &mut Graph, x: &str, m: &Gbt, inputs: &Inputs) {
    let k = m.n_outputs;
    let mut nodes = TreeNodes::default();
    let (classes, base, post) = match m.loss {
        GbtLoss::SquaredError => {
            for (id, tree) in m.trees.iter().enumerate() {
                nodes.push(id, tree, inputs, |v| vec![(0, v[0])]);
            }
            (None, m.baseline.clone(), "NONE")
        }
        GbtLoss::BinaryLogLoss => {
            // softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)], and the label is the larger.
            for (id, tree) in m.trees.iter().enumerate() {
                nodes.push(id, tree, inputs, |v| vec![(0, -v[0] / 2.0), (1, v[0] / 2.0)]);
            }
            (Some(2), vec![-m.baseline[0] / 2.0, m.baseline[0] / 2.0], "SOFTMAX")
        }
        GbtLoss::MultinomialLogLoss => {
            for (id, tree) in m.trees.iter().enumerate() {
                nodes.push(id, tree, inputs, |v| vec![((id % k) as i64, v[0])]);
            }
            (Some(k), m.baseline.clone(), "SOFTMAX")
        }
    };
    g.nodes.push(nodes.node(x, classes, &base, post));
    g.uses_ml = true;
}

/// Column means of the rows of `m`: the centre for [`Graph::centered_features`].
fn column_means(m: &Matrix) -> Vec<f64> {
    let mut mean = vec![0.0; m.n_cols];
    for r in 0..m.n_rows {
        mean.iter_mut().zip(m.row(r)).for_each(|(s, v)| *s += v);
    }
    let n = m.n_rows.max(1) as f64;
    mean.iter_mut().for_each(|s| *s /= n);
    mean
}

/// SVM classifier with default-domain ops only. Decisions `Σ coef·K(sv, x) - rho` per one-vs-one
/// machine ([N, M]): for the linear kernel one `MatMul` with `w = Σ coef·sv`; for RBF
/// `K = Exp(min(0, -γ|f|² + 2γ f·svᵀ - γ|sv|²))` on centred features, then `K · coef - rho`.
/// Two classes: `probabilities = Sigmoid([d, -d])` (= `[sigmoid(d), 1 - sigmoid(d)]`, class 0 being
/// the positive one) and `label = ArgMax([d, -d])`, 1 exactly where `d < 0`, as natively. More: a
/// vote for `positive` where `d > 0` and for `negative` otherwise (`Greater`, `Cast`, then a `MatMul`
/// with a ±1 vote matrix plus the constant count of `negative` roles), `probabilities = votes / M`,
/// and `label = ArgMax(votes)`, which like the native argmax takes the first of tied classes.
fn svm(g: &mut Graph, x: &str, m: &Svm, inputs: &Inputs) {
    let n_machines = m.machines.len();
    match m.kernel {
        Kernel::Linear => {
            let columns: Vec<Vec<f64>> = m
                .machines
                .iter()
                .map(|mach| {
                    let mut w = vec![0.0; m.support.n_cols];
                    for (&s, c) in mach.sv.iter().zip(&mach.coef) {
                        w.iter_mut().zip(m.support.row(s)).for_each(|(w, v)| *w += c * v);
                    }
                    w
                })
                .collect();
            let bias: Vec<f64> = m.machines.iter().map(|mach| -mach.rho).collect();
            g.linear(x, inputs, &columns, &bias, "decision");
        }
        Kernel::Rbf { gamma } => {
            let (n_sv, d) = (m.support.n_rows as i64, m.support.n_cols);
            let center = column_means(&m.support);
            g.centered_features(x, inputs, &center, "features");
            // 2γ svᵀ [d, S] and γ|sv|² [S], over the centred support vectors.
            let mut sv_t = vec![0f32; d * n_sv as usize];
            let mut sv_sq = vec![0f32; n_sv as usize];
            for s in 0..m.support.n_rows {
                let mut sq = 0.0;
                for (k, (v, c)) in m.support.row(s).iter().zip(&center).enumerate() {
                    let v = v - c;
                    sv_t[k * n_sv as usize + s] = (2.0 * gamma * v) as f32;
                    sq += v * v;
                }
                sv_sq[s] = (gamma * sq) as f32;
            }
            g.constant("sv_t", &[d as i64, n_sv], &sv_t);
            g.constant("sv_sq", &[n_sv], &sv_sq);
            g.constant("gamma_column", &[d as i64, 1], &vec![gamma as f32; d]);
            g.constant("zero", &[], &[0.0]);
            g.add("MatMul", &["features", "sv_t"], &["cross"], &[]);
            g.add("Mul", &["features", "features"], &["features_sq"], &[]);
            g.add("MatMul", &["features_sq", "gamma_column"], &["features_norm"], &[]);
            g.add("Sub", &["cross", "features_norm"], &["exponent_x"], &[]);
            g.add("Sub", &["exponent_x", "sv_sq"], &["exponent_raw"], &[]);
            // A squared distance is never negative; rounding may make it so.
            g.add("Min", &["exponent_raw", "zero"], &["exponent"], &[]);
            g.add("Exp", &["exponent"], &["kernel"], &[]);
            let mut coef = vec![0f32; n_sv as usize * n_machines];
            for (j, mach) in m.machines.iter().enumerate() {
                for (&s, c) in mach.sv.iter().zip(&mach.coef) {
                    coef[s * n_machines + j] += *c as f32;
                }
            }
            let rho: Vec<f32> = m.machines.iter().map(|mach| mach.rho as f32).collect();
            g.constant("coef", &[n_sv, n_machines as i64], &coef);
            g.constant("rho", &[n_machines as i64], &rho);
            g.add("MatMul", &["kernel", "coef"], &["decision_sum"], &[]);
            g.add("Sub", &["decision_sum", "rho"], &["decision"], &[]);
        }
    }
    let argmax = [("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))];
    if m.n_classes == 2 {
        g.add("Neg", &["decision"], &["decision_neg"], &[]);
        g.add("Concat", &["decision", "decision_neg"], &["margins"], &[("axis", Attr::Int(1))]);
        g.add("Sigmoid", &["margins"], &["probabilities"], &[]);
        g.add("ArgMax", &["margins"], &["label"], &argmax);
    } else {
        let k = m.n_classes;
        let mut votes = vec![0f32; n_machines * k];
        let mut negative = vec![0f32; k];
        for (j, mach) in m.machines.iter().enumerate() {
            votes[j * k + mach.positive] += 1.0;
            votes[j * k + mach.negative] -= 1.0;
            negative[mach.negative] += 1.0;
        }
        // `zero` may already exist (RBF); a separate name keeps initializer names unique.
        g.constant("vote_threshold", &[], &[0.0]);
        g.constant("vote_matrix", &[n_machines as i64, k as i64], &votes);
        g.constant("negative_votes", &[k as i64], &negative);
        g.constant("n_machines", &[], &[n_machines as f32]);
        g.add("Greater", &["decision", "vote_threshold"], &["positive"], &[]);
        g.add("Cast", &["positive"], &["positive_f"], &[("to", Attr::Int(1))]);
        g.add("MatMul", &["positive_f", "vote_matrix"], &["votes_signed"], &[]);
        g.add("Add", &["votes_signed", "negative_votes"], &["votes"], &[]);
        g.add("Div", &["votes", "n_machines"], &["probabilities"], &[]);
        g.add("ArgMax", &["votes"], &["label"], &argmax);
    }
}

/// k-NN with default-domain ops only. On centred features, `|t|² - 2 f·t` ranks the training rows as
/// the native search does; `TopK` (smallest, sorted, the lower index first among ties, as natively)
/// gives the k neighbours. Distance weights `1 / max(|f - t|, 1e-12)` use the exact differences of the
/// gathered neighbour rows. Classifiers gather one-hot class rows and sum them (weighted), then divide
/// by the total weight, and `label = ArgMax(probabilities)`; regressors average the gathered targets.
fn knn(g: &mut Graph, x: &str, m: &Knn, inputs: &Inputs) {
    let (n, d, k) = (m.x.n_rows, m.x.n_cols, m.k);
    let center = column_means(&m.x);
    g.centered_features(x, inputs, &center, "features");
    let mut train = vec![0f32; n * d];
    let mut train_t = vec![0f32; d * n];
    let mut train_sq = vec![0f32; n];
    for t in 0..n {
        let mut sq = 0.0;
        for (j, (v, c)) in m.x.row(t).iter().zip(&center).enumerate() {
            let v = v - c;
            train[t * d + j] = v as f32;
            train_t[j * n + t] = (-2.0 * v) as f32;
            sq += v * v;
        }
        train_sq[t] = sq as f32;
    }
    g.constant("train_t", &[d as i64, n as i64], &train_t);
    g.constant("train_sq", &[n as i64], &train_sq);
    g.constant_i64("k", &[1], &[k as i64]);
    g.constant_i64("axis_1", &[1], &[1]);
    g.add("MatMul", &["features", "train_t"], &["cross"], &[]);
    g.add("Add", &["cross", "train_sq"], &["scores"], &[]);
    g.add(
        "TopK",
        &["scores", "k"],
        &["neighbour_scores", "neighbours"],
        &[("axis", Attr::Int(1)), ("largest", Attr::Int(0)), ("sorted", Attr::Int(1))],
    );
    if m.distance_weights {
        g.constant("train", &[n as i64, d as i64], &train);
        g.constant_i64("axis_2", &[1], &[2]);
        g.constant("min_distance", &[], &[1e-12]);
        g.constant("one", &[], &[1.0]);
        g.add("Gather", &["train", "neighbours"], &["neighbour_rows"], &[("axis", Attr::Int(0))]);
        g.add("Unsqueeze", &["features", "axis_1"], &["features_3d"], &[]);
        g.add("Sub", &["neighbour_rows", "features_3d"], &["differences"], &[]);
        g.add("Mul", &["differences", "differences"], &["differences_sq"], &[]);
        g.add("ReduceSum", &["differences_sq", "axis_2"], &["distances_sq"], &[("keepdims", Attr::Int(0))]);
        g.add("Sqrt", &["distances_sq"], &["distances"], &[]);
        g.add("Max", &["distances", "min_distance"], &["distances_floor"], &[]);
        g.add("Div", &["one", "distances_floor"], &["weights"], &[]);
        g.add("ReduceSum", &["weights", "axis_1"], &["total_weight"], &[("keepdims", Attr::Int(1))]);
    } else {
        g.constant("total_weight", &[], &[k as f32]);
    }
    if m.classification {
        let classes = m.n_outputs;
        let mut one_hot = vec![0f32; n * classes];
        for (t, &y) in m.y.iter().enumerate() {
            // Class indices are whole numbers below `n_outputs` by construction.
            if let Some(cell) = one_hot.get_mut(t * classes + y as usize) {
                *cell = 1.0;
            }
        }
        g.constant("class_one_hot", &[n as i64, classes as i64], &one_hot);
        g.add("Gather", &["class_one_hot", "neighbours"], &["neighbour_classes"], &[("axis", Attr::Int(0))]);
        let votes = if m.distance_weights {
            g.add("Unsqueeze", &["weights", "axis_2"], &["weights_3d"], &[]);
            g.add("Mul", &["neighbour_classes", "weights_3d"], &["weighted_classes"], &[]);
            "weighted_classes"
        } else {
            "neighbour_classes"
        };
        g.add("ReduceSum", &[votes, "axis_1"], &["votes"], &[("keepdims", Attr::Int(0))]);
        g.add("Div", &["votes", "total_weight"], &["probabilities"], &[]);
        g.add("ArgMax", &["probabilities"], &["label"], &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
    } else {
        let targets: Vec<f32> = m.y.iter().map(|&v| v as f32).collect();
        g.constant("targets", &[n as i64], &targets);
        g.add("Gather", &["targets", "neighbours"], &["neighbour_targets"], &[("axis", Attr::Int(0))]);
        let values = if m.distance_weights {
            g.add("Mul", &["neighbour_targets", "weights"], &["weighted_targets"], &[]);
            "weighted_targets"
        } else {
            "neighbour_targets"
        };
        g.add("ReduceSum", &[values, "axis_1"], &["target_sum"], &[("keepdims", Attr::Int(1))]);
        g.add("Div", &["target_sum", "total_weight"], &["variable"], &[]);
    }
}

/// Serialises `model` as an ONNX ModelProto.
pub fn export(model: &Model) -> Result<Vec<u8>> {
    let inputs = inputs(model)?;
    let d = inputs.features.len();
    let n_numeric = inputs.n_numeric;
    let mut g = Graph { nodes: Vec::new(), initializers: Vec::new(), outputs: Vec::new(), uses_ml: false };
    // Trees take missing values in their branches; the other graphs fill them first.
    let trees = matches!(model.estimator, Estimator::Forest(_) | Estimator::Gbt(_));
    let x = if trees { "input" } else { g.impute(&inputs) };
    let x = &g.encode(&inputs, x);
    let n_classes = model.classes.len();
    match &model.estimator {
        Estimator::Linear(m) => {
            g.linear(x, &inputs, std::slice::from_ref(&m.coef), &[m.intercept], "variable");
            g.outputs.push(value_info("variable", 1, &[None, Some(1)]));
        }
        Estimator::Logistic(m) => {
            // Two classes: softmax([0, z]) is [1 - sigmoid(z), sigmoid(z)].
            let (columns, bias) = if m.coef.len() == 1 {
                (vec![vec![0.0; d], m.coef[0].clone()], vec![0.0, m.intercept[0]])
            } else {
                (m.coef.clone(), m.intercept.clone())
            };
            g.linear(x, &inputs, &columns, &bias, "logits");
            g.add("Softmax", &["logits"], &["probabilities"], &[("axis", Attr::Int(1))]);
            g.add("ArgMax", &["probabilities"], &["label"], &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
            g.classifier_outputs(columns.len());
        }
        Estimator::Mlp(m) => {
            let n_layers = m.weights.len();
            let mut current = String::new();
            for l in 0..n_layers {
                let (fan_in, fan_out) = (m.sizes[l], m.sizes[l + 1]);
                let last = l + 1 == n_layers;
                let mut columns: Vec<Vec<f64>> =
                    (0..fan_out).map(|o| (0..fan_in).map(|i| m.weights[l][i * fan_out + o]).collect()).collect();
                let mut bias = m.biases[l].clone();
                if last && m.output == MlpOutput::Sigmoid {
                    // softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)].
                    let half: Vec<f64> = columns[0].iter().map(|v| v / 2.0).collect();
                    columns = vec![half.iter().map(|v| -v).collect(), half];
                    bias = vec![-bias[0] / 2.0, bias[0] / 2.0];
                }
                let out =
                    if last && m.output == MlpOutput::Identity { "variable".to_string() } else { format!("layer{l}") };
                if l == 0 {
                    g.linear(x, &inputs, &columns, &bias, &out);
                } else {
                    let identity = Inputs {
                        names: vec![String::new(); fan_in],
                        n_numeric: fan_in,
                        encodings: Vec::new(),
                        fills: Vec::new(),
                        features: (0..fan_in).map(|i| (i, 1.0, 0.0)).collect(),
                        feature_fills: Vec::new(),
                    };
                    g.linear(&current, &identity, &columns, &bias, &out);
                }
                current = out;
                if !last {
                    let relu = format!("relu{l}");
                    g.add("Relu", &[&current], &[&relu], &[]);
                    current = relu;
                }
            }
            if m.output == MlpOutput::Identity {
                g.outputs.push(value_info("variable", 1, &[None, Some(1)]));
            } else {
                g.add("Softmax", &[&current], &["probabilities"], &[("axis", Attr::Int(1))]);
                g.add("ArgMax", &["probabilities"], &["label"], &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
                g.classifier_outputs(n_classes.max(2));
            }
        }
        Estimator::KMeans(m) => {
            // |f - c|² ranks as -2 f·c + |c|² (|f|² is the same for every centre).
            let columns: Vec<Vec<f64>> =
                (0..m.centers.n_rows).map(|c| m.centers.row(c).iter().map(|v| -2.0 * v).collect()).collect();
            let bias: Vec<f64> = (0..m.centers.n_rows).map(|c| m.centers.row(c).iter().map(|v| v * v).sum()).collect();
            g.linear(x, &inputs, &columns, &bias, "scores");
            g.add("ArgMin", &["scores"], &["label"], &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))]);
            g.outputs.push(value_info("label", 7, &[None]));
        }
        Estimator::Forest(m) => {
            let classes = (model.task == crate::estimator::Task::Classification).then_some(n_classes);
            forest(&mut g, x, m, &inputs, classes);
            match classes {
                Some(k) => g.classifier_outputs(k),
                None => g.outputs.push(value_info("variable", 1, &[None, Some(1)])),
            }
        }
        Estimator::Gbt(m) => {
            gbt(&mut g, x, m, &inputs);
            match m.loss {
                GbtLoss::SquaredError => g.outputs.push(value_info("variable", 1, &[None, Some(1)])),
                _ => g.classifier_outputs(n_classes),
            }
        }
        Estimator::Svm(m) => {
            svm(&mut g, x, m, &inputs);
            g.classifier_outputs(m.n_classes);
        }
        Estimator::Knn(m) => {
            knn(&mut g, x, m, &inputs);
            if m.classification {
                g.classifier_outputs(m.n_outputs);
            } else {
                g.outputs.push(value_info("variable", 1, &[None, Some(1)]));
            }
        }
    }
    let mut graph = Pb::default();
    for n in &g.nodes {
        graph.message(1, n);
    }
    graph.string(2, &format!("secondrow_{}", model.kind));
    for t in &g.initializers {
        graph.message(5, t);
    }
    if n_numeric > 0 {
        graph.message(11, &value_info("input", 1, &[None, Some(n_numeric as i64)]));
    }
    if !inputs.encodings.is_empty() {
        graph.message(11, &value_info("text_input", 8, &[None, Some(inputs.encodings.len() as i64)]));
    }
    for o in &g.outputs {
        graph.message(12, o);
    }
    let mut doc = format!("input columns: {}", inputs.names[..n_numeric].join(", "));
    if !inputs.encodings.is_empty() {
        let text: Vec<&str> = inputs.encodings.iter().map(|e| e.name.as_str()).collect();
        doc.push_str(&format!("; text_input columns (empty string = missing): {}", text.join(", ")));
    }
    if !model.classes.is_empty() {
        doc.push_str(&format!("; label is the index into classes: {}", model.classes.join(", ")));
    }
    let mut m = Pb::default();
    m.int(1, 7) // IR version 7 (opset 13)
        .string(2, "secondrow")
        .string(3, env!("CARGO_PKG_VERSION"))
        .string(6, &doc)
        .message(7, &graph);
    let mut opset = Pb::default();
    opset.string(1, "").int(2, OPSET);
    m.message(8, &opset);
    if g.uses_ml {
        let mut ml = Pb::default();
        ml.string(1, ML).int(2, ML_OPSET);
        m.message(8, &ml);
    }
    Ok(m.0)
}

#[cfg(test)]
mod tests;
