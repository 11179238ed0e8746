//! Layered DAG layout (Sugiyama-style, simplified): layers by longest path from the sources, order within a
//! layer by barycentre sweeps, fixed-size boxes on a grid. Pure and deterministic: the same graph always
//! gets the same coordinates, so a live update never makes the picture jump.

/// Box size and gaps, in SVG units.
pub const NODE_W: f64 = 190.0;
pub const NODE_H: f64 = 44.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 56.0;
const MARGIN: f64 = 16.0;

/// Where each node sits (top-left corner) and the size of the whole drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub positions: Vec<(f64, f64)>,
    pub layers: Vec<usize>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `n` nodes (numbered in a stable order, e.g. by name) with `edges` from upstream to downstream.
/// Edges naming unknown nodes or looping back are ignored for layering.
pub fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    if n == 0 {
        return Layout { positions: Vec::new(), layers: Vec::new(), width: 2.0 * MARGIN, height: 2.0 * MARGIN };
    }
    let edges: Vec<(usize, usize)> = edges.iter().copied().filter(|&(a, b)| a < n && b < n && a != b).collect();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &edges {
        preds[b].push(a);
        succs[a].push(b);
    }
    // Longest-path layering over a topological order (Kahn); nodes left on a cycle go after the rest.
    let mut indeg: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let v = order[head];
        head += 1;
        for &w in &succs[v] {
            indeg[w] -= 1;
            if indeg[w] == 0 {
                order.push(w);
            }
        }
    }
    let mut placed = vec![false; n];
    for &v in &order {
        placed[v] = true;
    }
    order.extend((0..n).filter(|&v| !placed[v]));
    let mut layer = vec![0usize; n];
    let mut done = vec![false; n];
    for &v in &order {
        layer[v] = preds[v].iter().filter(|&&p| done[p]).map(|&p| layer[p] + 1).max().unwrap_or(0);
        done[v] = true;
    }
    let depth = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..n {
        rows[layer[v]].push(v);
    }
    // Barycentre sweeps: down (by predecessors), then up (by successors), a few times.
    let mut pos = vec![0.0f64; n];
    let set_pos = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    set_pos(&rows, &mut pos);
    for _ in 0..4 {
        for row in rows.iter_mut().skip(1) {
            reorder(row, &preds, &mut pos);
        }
        for row in rows.iter_mut().rev().skip(1) {
            reorder(row, &succs, &mut pos);
        }
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let total_w = widest * NODE_W + (widest - 1.0) * GAP_X;
    let mut positions = vec![(0.0, 0.0); n];
    for (l, row) in rows.iter().enumerate() {
        let k = row.len() as f64;
        let row_w = k * NODE_W + (k - 1.0) * GAP_X;
        let x0 = MARGIN + (total_w - row_w) / 2.0;
        for (i, &v) in row.iter().enumerate() {
            positions[v] = (x0 + i as f64 * (NODE_W + GAP_X), MARGIN + l as f64 * (NODE_H + GAP_Y));
        }
    }
    Layout {
        positions,
        layers: layer,
        width: total_w + 2.0 * MARGIN,
        height: depth as f64 * NODE_H + (depth as f64 - 1.0) * GAP_Y + 2.0 * MARGIN,
    }
}

/// Sorts one layer by the mean position of each node's neighbours in `adj` (stable: ties keep their order,
/// nodes without neighbours keep their slot's position).
fn reorder(row: &mut [usize], adj: &[Vec<usize>], pos: &mut [f64]) {
    let mut keyed: Vec<(f64, usize, usize)> = row
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ns = &adj[v];
            let key = if ns.is_empty() { i as f64 } else { ns.iter().map(|&w| pos[w]).sum::<f64>() / ns.len() as f64 };
            (key, i, v)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (i, (_, _, v)) in keyed.into_iter().enumerate() {
        row[i] = v;
        pos[v] = i as f64;
    }
}

/// How many pairs of edges between adjacent layers cross (edges spanning several layers are not counted).
pub fn crossings(l: &Layout, edges: &[(usize, usize)]) -> usize {
    let adjacent: Vec<&(usize, usize)> = edges.iter().filter(|(a, b)| l.layers[*b] == l.layers[*a] + 1).collect();
    let mut count = 0;
    for (i, e) in adjacent.iter().enumerate() {
        for f in &adjacent[i + 1..] {
            if l.layers[e.0] != l.layers[f.0] {
                continue;
            }
            let (ea, eb) = (l.positions[e.0].0, l.positions[e.1].0);
            let (fa, fb) = (l.positions[f.0].0, l.positions[f.1].0);
            if (ea - fa) * (eb - fb) < 0.0 {
                count += 1;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(l: &Layout) -> bool {
        let p = &l.positions;
        (0..p.len())
            .any(|i| (i + 1..p.len()).any(|j| (p[i].0 - p[j].0).abs() < NODE_W && (p[i].1 - p[j].1).abs() < NODE_H))
    }

    /// A pseudo-random DAG (edges only from lower to higher numbers), reproducible.
    fn random_dag(n: usize, seed: u64) -> Vec<(usize, usize)> {
        let mut x = seed;
        let mut edges = Vec::new();
        for b in 1..n {
            for _ in 0..2 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let a = (x >> 33) as usize % b;
                edges.push((a, b));
            }
        }
        edges
    }

    #[test]
    fn no_overlapping_nodes_and_edges_point_down() {
        for (n, seed) in [(1, 1), (7, 2), (50, 3), (200, 4)] {
            let edges = random_dag(n, seed);
            let l = layout(n, &edges);
            assert!(!overlaps(&l), "n={n}");
            for &(a, b) in &edges {
                assert!(l.layers[b] > l.layers[a] && l.positions[b].1 > l.positions[a].1);
            }
            for &(x, y) in &l.positions {
                assert!(x >= 0.0 && y >= 0.0 && x + NODE_W <= l.width && y + NODE_H <= l.height);
            }
        }
    }

    #[test]
    fn coordinates_are_stable() {
        let edges = random_dag(60, 9);
        assert_eq!(layout(60, &edges), layout(60, &edges));
        // The quickstart's shape: a chain, a fork into two trainers, each with its evaluator.
        let edges = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6), (5, 7), (6, 8)];
        let l = layout(9, &edges);
        assert_eq!(l.positions[0], (MARGIN + (NODE_W + GAP_X) / 2.0, MARGIN));
        assert_eq!(l.positions[5].1, l.positions[6].1);
        assert!(l.positions[5].0 < l.positions[6].0 && l.positions[7].0 < l.positions[8].0);
        assert_eq!(crossings(&l, &edges), 0);
    }

    #[test]
    fn planar_samples_have_no_crossings() {
        // Two crossing-prone bipartite layers given in a bad initial order: a0→b1, a1→b0.
        let edges = [(0, 3), (1, 2), (3, 4), (2, 5)];
        let l = layout(6, &edges);
        assert_eq!(crossings(&l, &edges), 0);
        // A diamond of diamonds.
        let edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (3, 5), (4, 6), (5, 6)];
        assert_eq!(crossings(&layout(7, &edges), &edges), 0);
    }
}
