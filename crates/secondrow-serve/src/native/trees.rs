//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor`: every tree flattened into one node array, every
//! branch mode, missing-value tracks, aggregate functions and base values of the operator specs.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node of the flattened ensemble. For a leaf, `next[0]` is its leaf number.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) threshold: f64,
    pub(super) feature: u32,
    /// Node index taken when the test is true, and when it is false.
    pub(super) next: [u32; 2],
    pub(super) mode: Mode,
    pub(super) missing_true: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The trees of an ensemble, flattened: one node array for every tree, and per leaf a range of
/// (target, weight) pairs.
pub(super) struct Trees {
    pub(super) nodes: Vec<Node>,
    pub(super) roots: Vec<u32>,
    pub(super) leaf_start: Vec<u32>,
    pub(super) leaf_target: Vec<u32>,
    pub(super) leaf_weight: Vec<f64>,
    pub(super) n_targets: usize,
    pub(super) n_features: usize,
    pub(super) base_values: Vec<f64>,
    pub(super) aggregate: Aggregate,
}

impl Trees {
    /// Reads the `nodes_*` attributes and the leaf weights under `prefix` (`class` or `target`).
    pub(super) fn load(
        attrs: &Attrs,
        prefix: &str,
        n_targets: usize,
        n_features: usize,
        aggregate: Aggregate,
    ) -> Result<Trees, String> {
        let ints = |name: &str| attrs.ints(name).ok_or_else(|| format!("missing {name}"));
        let tree_ids = ints("nodes_treeids")?;
        let node_ids = ints("nodes_nodeids")?;
        let features = ints("nodes_featureids")?;
        let trues = ints("nodes_truenodeids")?;
        let falses = ints("nodes_falsenodeids")?;
        let modes = attrs.strings("nodes_modes").ok_or("missing nodes_modes")?;
        let values = attrs.floats("nodes_values").unwrap_or_default();
        let missing = attrs.ints("nodes_missing_value_tracks_true").unwrap_or(&[]);
        let n = tree_ids.len();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
            ("nodes_modes", modes.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, nodes_treeids {n}"));
            }
        }
        if values.len() != n && !(values.is_empty() && modes.iter().all(|m| m == b"LEAF")) {
            return Err(format!("nodes_values has {} entries for {n} nodes", values.len()));
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(format!("nodes_missing_value_tracks_true has {} entries for {n} nodes", missing.len()));
        }
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        for (i, (&t, &id)) in tree_ids.iter().zip(node_ids).enumerate() {
            if index.insert((t, id), i as u32).is_some() {
                return Err(format!("node {id} of tree {t} is defined twice"));
            }
        }
        let mut roots: Vec<(i64, u32)> = Vec::new();
        for (i, &t) in tree_ids.iter().enumerate() {
            match roots.iter_mut().find(|(tree, _)| *tree == t) {
                Some(_) => {}
                None => roots.push((t, i as u32)),
            }
        }
        roots.sort_by_key(|(t, _)| *t);
        let mut nodes = Vec::with_capacity(n);
        let mut n_leaves = 0u32;
        let mut leaf_of = vec![u32::MAX; n];
        for i in 0..n {
            let mode = match modes[i].as_slice() {
                b"BRANCH_LEQ" => Mode::Leq,
                b"BRANCH_LT" => Mode::Lt,
                b"BRANCH_GTE" => Mode::Gte,
                b"BRANCH_GT" => Mode::Gt,
                b"BRANCH_EQ" => Mode::Eq,
                b"BRANCH_NEQ" => Mode::Neq,
                b"LEAF" => Mode::Leaf,
                other => return Err(format!("unknown node mode `{}`", String::from_utf8_lossy(other))),
            };
            let node = if mode == Mode::Leaf {
                leaf_of[i] = n_leaves;
                n_leaves += 1;
                Node { threshold: 0.0, feature: 0, next: [leaf_of[i]; 2], mode, missing_true: false }
            } else {
                let child = |id: i64| {
                    index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                        format!("node {} of tree {} points to missing node {id}", node_ids[i], tree_ids[i])
                    })
                };
                let feature = usize::try_from(features[i]).ok().filter(|&f| f < n_features).ok_or_else(|| {
                    format!(
                        "node {} of tree {} tests feature {} of {n_features}",
                        node_ids[i], tree_ids[i], features[i]
                    )
                })?;
                Node {
                    threshold: values[i],
                    feature: feature as u32,
                    next: [child(trues[i])?, child(falses[i])?],
                    mode,
                    missing_true: missing.get(i).is_some_and(|&m| m != 0),
                }
            };
            nodes.push(node);
        }
        check_acyclic(&nodes, roots.iter().map(|(_, r)| *r))?;

        let w_trees = ints(&format!("{prefix}_treeids"))?;
        let w_nodes = ints(&format!("{prefix}_nodeids"))?;
        let w_ids = ints(&format!("{prefix}_ids"))?;
        let w_values = attrs.floats(&format!("{prefix}_weights")).ok_or_else(|| format!("missing {prefix}_weights"))?;
        if [w_nodes.len(), w_ids.len(), w_values.len()].iter().any(|&l| l != w_trees.len()) {
            return Err(format!("{prefix}_treeids, _nodeids, _ids and _weights differ in length"));
        }
        let mut per_leaf: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n_leaves as usize];
        for k in 0..w_trees.len() {
            let node = *index
                .get(&(w_trees[k], w_nodes[k]))
                .ok_or_else(|| format!("weight {k} names missing node {} of tree {}", w_nodes[k], w_trees[k]))?;
            let target = usize::try_from(w_ids[k])
                .ok()
                .filter(|&t| t < n_targets)
                .ok_or_else(|| format!("weight {k}: id {} is not below {n_targets}", w_ids[k]))?;
            // Weights on inner nodes are never reached.
            if let Some(leaf) = per_leaf.get_mut(leaf_of[node as usize] as usize) {
                leaf.push((target as u32, w_values[k]));
            }
        }
        let mut leaf_start = Vec::with_capacity(per_leaf.len() + 1);
        let mut leaf_target = Vec::with_capacity(w_trees.len());
        let mut leaf_weight = Vec::with_capacity(w_trees.len());
        leaf_start.push(0);
        for leaf in per_leaf {
            for (t, w) in leaf {
                leaf_target.push(t);
                leaf_weight.push(w);
            }
            leaf_start.push(leaf_target.len() as u32);
        }
        let base_values = match attrs.floats("base_values") {
            None => Vec::new(),
            Some(b) if b.is_empty() => Vec::new(),
            Some(b) if b.len() == n_targets => b,
            Some(b) if b.len() == 1 => vec![b[0]; n_targets],
            Some(b) => return Err(format!("{} base_values for {n_targets} outputs", b.len())),
        };
        Ok(Trees {
            nodes,
            roots: roots.into_iter().map(|(_, r)| r).collect(),
            leaf_start,
            leaf_target,
            leaf_weight,
            n_targets,
            n_features,
            base_values,
            aggregate,
        })
    }

    /// The leaf number reached in the tree rooted at `root`.
    #[inline]
    pub(super) fn leaf(&self, root: u32, row: &[f64]) -> u32 {
        let mut node = self.nodes[root as usize];
        while node.mode != Mode::Leaf {
            let x = row[node.feature as usize];
            let go_true = if x.is_nan() {
                node.missing_true
            } else {
                match node.mode {
                    Mode::Leq => x <= node.threshold,
                    Mode::Lt => x < node.threshold,
                    Mode::Gte => x >= node.threshold,
                    Mode::Gt => x > node.threshold,
                    Mode::Eq => x == node.threshold,
                    Mode::Neq => x != node.threshold,
                    Mode::Leaf => true,
                }
            };
            node = self.nodes[node.next[usize::from(!go_true)] as usize];
        }
        node.next[0]
    }

    /// Aggregated scores of one row (`out` has `n_targets` entries), base values added first
    /// (classifier) or last (regressor), as the reference does. Sums are f32, as in the reference
    /// and onnxruntime: in f64, five weights of 0.1 make more than 0.5 and break a 0.5/0.5 tie the
    /// other way.
    pub(super) fn scores(&self, row: &[f64], out: &mut [f32], base_first: bool) {
        let init = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => 0.0,
            Aggregate::Min => f32::MAX,
            Aggregate::Max => f32::MIN,
        };
        out.iter_mut().for_each(|v| *v = init);
        if base_first {
            for (v, b) in out.iter_mut().zip(&self.base_values) {
                *v += *b as f32;
            }
        }
        for &root in &self.roots {
            let leaf = self.leaf(root, row) as usize;
            let range = self.leaf_start[leaf] as usize..self.leaf_start[leaf + 1] as usize;
            for (&t, &w) in self.leaf_target[range.clone()].iter().zip(&self.leaf_weight[range]) {
                let slot = &mut out[t as usize];
                let w = w as f32;
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *slot += w,
                    Aggregate::Min => *slot = slot.min(w),
                    Aggregate::Max => *slot = slot.max(w),
                }
            }
        }
        if self.aggregate == Aggregate::Average && !self.roots.is_empty() {
            let n = self.roots.len() as f32;
            out.iter_mut().for_each(|v| *v /= n);
        }
        if !base_first {
            for (v, b) in out.iter_mut().zip(&self.base_values) {
                *v += *b as f32;
            }
        }
    }
}

/// Fails when following children from a root can come back to a node on the current path.
pub(super) fn check_acyclic(nodes: &[Node], roots: impl Iterator<Item = u32>) -> Result<(), String> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; nodes.len()];
    for root in roots {
        let mut stack: Vec<(u32, bool)> = vec![(root, false)];
        while let Some((i, leaving)) = stack.pop() {
            let i_us = i as usize;
            if leaving {
                state[i_us] = 2;
                continue;
            }
            match state[i_us] {
                1 => return Err("the trees contain a cycle".into()),
                2 => continue,
                _ => {}
            }
            state[i_us] = 1;
            stack.push((i, true));
            let node = nodes[i_us];
            if node.mode != Mode::Leaf {
                for child in node.next {
                    if state[child as usize] == 1 {
                        return Err("the trees contain a cycle".into());
                    }
                    stack.push((child, false));
                }
            }
        }
    }
    Ok(())
}

/// `TreeEnsembleClassifier`: summed class weights, the binary convention of the reference
/// (one class id: scores [1 - s, s] or [-s, s]), post transform, label by argmax.
pub(super) struct TreeClassifier {
    pub(super) trees: Trees,
    pub(super) labels: Labels,
    /// The one class id when every weight names the same class.
    pub(super) binary: Option<usize>,
    pub(super) post: Post,
}

impl TreeClassifier {
    pub(super) fn load(attrs: &Attrs, n_features: usize) -> Result<TreeClassifier, String> {
        let labels = Labels::parse(attrs, "classlabels_int64s", "classlabels_strings");
        if labels.len() == 0 {
            return Err("missing classlabels_int64s or classlabels_strings".into());
        }
        let trees = Trees::load(attrs, "class", labels.len(), n_features, Aggregate::Sum)?;
        let ids = attrs.ints("class_ids").unwrap_or(&[]);
        let binary = match ids.first() {
            Some(&first) if ids.iter().all(|&i| i == first) => Some(first as usize),
            _ => None,
        };
        if labels.len() == 1 && !matches!(&labels, Labels::Int(l) if l[0] == 1) {
            return Err("a single class label must be the integer 1".into());
        }
        Ok(TreeClassifier { trees, labels, binary, post: Post::parse(attrs)? })
    }

    pub(super) fn score_cols(&self) -> usize {
        self.labels.len().max(2)
    }

    pub(super) fn eval(&self, rows: usize, x: &[f64]) -> Vec<Value> {
        let cols = self.score_cols();
        let n_targets = self.trees.n_targets;
        let mut scores = vec![0.0; rows * cols];
        let mut labels = self.labels.output(rows);
        let mut sums = vec![0.0f32; cols];
        for (row, out) in x.chunks_exact(self.trees.n_features).zip(scores.chunks_exact_mut(cols)) {
            self.trees.scores(row, &mut sums[..n_targets], true);
            if let Some(id) = self.binary {
                let s = sums[id.min(n_targets - 1)];
                sums[1] = s;
                sums[0] = if matches!(self.post, Post::None | Post::Probit) { 1.0 - s } else { -s };
            }
            out.iter_mut().zip(&sums).for_each(|(o, s)| *o = f64::from(*s));
            self.post.apply(out);
            // The label comes from the scores as they leave (f32), like the reference's argmax.
            out.iter_mut().for_each(|v| *v = f64::from(*v as f32));
            let best = argmax(out);
            if self.labels.len() == 1 {
                // The reference's one-label case: label 1 for the second score, else 0.
                if let LabelOut::Int(v) = &mut labels {
                    v.push(if best == 1 { 1 } else { 0 });
                }
            } else {
                labels.push(&self.labels, best);
            }
        }
        vec![labels.into_value(rows), Value::floats(rows, cols, scores)]
    }
}

/// `TreeEnsembleRegressor`: aggregated target weights plus base values, post transform.
pub(super) struct TreeRegressor {
    pub(super) trees: Trees,
    pub(super) post: Post,
}

impl TreeRegressor {
    pub(super) fn load(attrs: &Attrs, n_features: usize) -> Result<TreeRegressor, String> {
        let n_targets = attrs.int("n_targets").unwrap_or(1);
        let n_targets = usize::try_from(n_targets)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("n_targets must be positive, got {n_targets}"))?;
        let aggregate = match attrs.string("aggregate_function").as_deref() {
            None | Some("SUM") => Aggregate::Sum,
            Some("AVERAGE") => Aggregate::Average,
            Some("MIN") => Aggregate::Min,
            Some("MAX") => Aggregate::Max,
            Some(other) => return Err(format!("unknown aggregate_function `{other}`")),
        };
        let trees = Trees::load(attrs, "target", n_targets, n_features, aggregate)?;
        Ok(TreeRegressor { trees, post: Post::parse(attrs)? })
    }

    pub(super) fn eval(&self, rows: usize, x: &[f64]) -> Value {
        let n = self.trees.n_targets;
        let mut out = vec![0.0; rows * n];
        let mut sums = vec![0.0f32; n];
        for (row, o) in x.chunks_exact(self.trees.n_features).zip(out.chunks_exact_mut(n)) {
            self.trees.scores(row, &mut sums, false);
            o.iter_mut().zip(&sums).for_each(|(o, s)| *o = f64::from(*s));
            self.post.apply(o);
        }
        Value::floats(rows, n, out)
    }
}
