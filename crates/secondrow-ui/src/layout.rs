//! Layered DAG layout (Sugiyama-style, simplified): layers by longest path from the sources, an edge that
//! skips layers gets one dummy node per layer it passes (a narrow lane of its own), order within a layer by
//! barycentre sweeps over real and dummy nodes, fixed-size boxes on a grid. Each edge comes back as a route:
//! from the bottom of its source, down every dummy lane, to the top of its target, so no edge passes behind
//! a node it does not connect. Pure and deterministic: the same graph always gets the same coordinates, so a
//! live update never makes the picture jump.

/// Box size and gaps, in SVG units.
pub const NODE_W: f64 = 190.0;
pub const NODE_H: f64 = 44.0;
/// Width of the lane a layer-skipping edge takes in each layer it passes.
const LANE_W: f64 = 12.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 56.0;
const MARGIN: f64 = 16.0;

/// Where each node sits (top-left corner), each edge's route and the size of the whole drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub positions: Vec<(f64, f64)>,
    pub layers: Vec<usize>,
    /// Per input edge (same index): its points, from the source's bottom centre through one lane per skipped
    /// layer (entering and leaving the layer's band, straight down inside it) to the target's top centre.
    /// Between two points the route only crosses the gap between two layers, where no box is. Empty for the
    /// edges layering ignores (unknown nodes, self loops).
    pub routes: Vec<Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `n` nodes (numbered in a stable order, e.g. by name) with `edges` from upstream to downstream.
/// Edges naming unknown nodes or looping back are ignored for layering.
pub fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    if n == 0 {
        return Layout {
            positions: Vec::new(),
            layers: Vec::new(),
            routes: vec![Vec::new(); edges.len()],
            width: 2.0 * MARGIN,
            height: 2.0 * MARGIN,
        };
    }
    let valid = |&(a, b): &(usize, usize)| a < n && b < n && a != b;
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.iter().filter(|e| valid(e)) {
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
    // The ordering graph: real nodes, then one dummy per skipped layer of each downward edge, chained.
    let mut ord_layer = layer.clone();
    let mut up: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (i, &(a, b)) in edges.iter().enumerate() {
        if !valid(&(a, b)) || layer[b] <= layer[a] {
            continue;
        }
        let mut prev = a;
        for l in layer[a] + 1..layer[b] {
            let d = ord_layer.len();
            ord_layer.push(l);
            up.push(vec![prev]);
            down.push(Vec::new());
            down[prev].push(d);
            chains[i].push(d);
            prev = d;
        }
        down[prev].push(b);
        up[b].push(prev);
    }
    let total = ord_layer.len();
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..total {
        rows[ord_layer[v]].push(v);
    }
    // Barycentre sweeps: down (by predecessors), then up (by successors), a few times.
    let mut pos = vec![0.0f64; total];
    for row in &rows {
        for (i, &v) in row.iter().enumerate() {
            pos[v] = i as f64;
        }
    }
    for _ in 0..4 {
        for row in rows.iter_mut().skip(1) {
            reorder(row, &up, &mut pos);
        }
        for row in rows.iter_mut().rev().skip(1) {
            reorder(row, &down, &mut pos);
        }
    }
    let width_of = |v: usize| if v < n { NODE_W } else { LANE_W };
    let row_w =
        |row: &Vec<usize>| row.iter().map(|&v| width_of(v)).sum::<f64>() + row.len().saturating_sub(1) as f64 * GAP_X;
    let total_w = rows.iter().map(row_w).fold(0.0, f64::max);
    let mut xy = vec![(0.0, 0.0); total];
    for (l, row) in rows.iter().enumerate() {
        let mut x = MARGIN + (total_w - row_w(row)) / 2.0;
        for &v in row {
            xy[v] = (x, MARGIN + l as f64 * (NODE_H + GAP_Y));
            x += width_of(v) + GAP_X;
        }
    }
    let routes = edges
        .iter()
        .zip(&chains)
        .map(|(&(a, b), chain)| {
            if !valid(&(a, b)) {
                return Vec::new();
            }
            let mut pts = vec![(xy[a].0 + NODE_W / 2.0, xy[a].1 + NODE_H)];
            for &d in chain {
                let cx = xy[d].0 + LANE_W / 2.0;
                pts.push((cx, xy[d].1));
                pts.push((cx, xy[d].1 + NODE_H));
            }
            pts.push((xy[b].0 + NODE_W / 2.0, xy[b].1));
            pts
        })
        .collect();
    xy.truncate(n);
    Layout {
        positions: xy,
        layers: layer,
        routes,
        width: total_w + 2.0 * MARGIN,
        height: depth as f64 * NODE_H + (depth as f64 - 1.0) * GAP_Y + 2.0 * MARGIN,
    }
}

/// An edge's route as an SVG path: a smooth curve across each gap between layers (it stays inside the gap's
/// band, between its two end points' x) and a straight line down each lane.
pub fn route_path(points: &[(f64, f64)]) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    let Some(&(x0, y0)) = points.first() else { return d };
    let _ = write!(d, "M{x0},{y0}");
    for w in points.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        if x1 == x2 {
            let _ = write!(d, " L{x2},{y2}");
        } else {
            let my = (y1 + y2) / 2.0;
            let _ = write!(d, " C{x1},{my} {x2},{my} {x2},{y2}");
        }
    }
    d
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

    /// Whether the segment from `p` to `q` passes through the inside of the box at `(x, y)` (Liang–Barsky
    /// clipping against the box shrunk by a hair, so touching a border does not count).
    fn segment_hits_box(p: (f64, f64), q: (f64, f64), (x, y): (f64, f64)) -> bool {
        let e = 0.5;
        let (xmin, xmax, ymin, ymax) = (x + e, x + NODE_W - e, y + e, y + NODE_H - e);
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (pk, qk) in [(-dx, p.0 - xmin), (dx, xmax - p.0), (-dy, p.1 - ymin), (dy, ymax - p.1)] {
            if pk == 0.0 {
                if qk < 0.0 {
                    return false;
                }
            } else {
                let r = qk / pk;
                if pk < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        t0 < t1
    }

    fn edge_through_node(l: &Layout, edges: &[(usize, usize)]) -> Option<(usize, usize, usize)> {
        for (i, &(a, b)) in edges.iter().enumerate() {
            for w in l.routes[i].windows(2) {
                for (v, &p) in l.positions.iter().enumerate() {
                    if v != a && v != b && segment_hits_box(w[0], w[1], p) {
                        return Some((a, b, v));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn layer_skipping_edges_never_pass_behind_a_node() {
        // A chain with a shortcut over it, the quickstart with a skip from the data step to the evaluators,
        // and random DAGs whose edges skip many layers.
        let samples: Vec<(usize, Vec<(usize, usize)>)> = vec![
            (3, vec![(0, 1), (1, 2), (0, 2)]),
            (5, vec![(0, 1), (1, 2), (2, 3), (3, 4), (0, 4), (1, 3)]),
            (9, vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6), (5, 7), (6, 8), (1, 7), (1, 8)]),
            (40, random_dag(40, 5)),
            (200, random_dag(200, 4)),
        ];
        for (n, edges) in samples {
            let l = layout(n, &edges);
            assert!(edges.iter().any(|&(a, b)| l.layers[b] > l.layers[a] + 1), "n={n} has a skipping edge");
            assert_eq!(edge_through_node(&l, &edges), None, "n={n}");
            for (i, &(a, b)) in edges.iter().enumerate() {
                let r = &l.routes[i];
                assert_eq!(r.len(), 2 * (l.layers[b] - l.layers[a] - 1) + 2);
                assert_eq!(r[0], (l.positions[a].0 + NODE_W / 2.0, l.positions[a].1 + NODE_H));
                assert_eq!(r[r.len() - 1], (l.positions[b].0 + NODE_W / 2.0, l.positions[b].1));
                assert!(r.windows(2).all(|w| w[1].1 > w[0].1), "routes go down");
                assert!(r.iter().all(|&(x, y)| x >= 0.0 && x <= l.width && y >= 0.0 && y <= l.height));
            }
        }
        // The check itself sees a line through a box, and not one along its border.
        let l = layout(3, &[(0, 1), (1, 2), (0, 2)]);
        let (x, y) = l.positions[1];
        assert!(segment_hits_box((x + 1.0, 0.0), (x + 1.0, l.height), (x, y)));
        assert!(!segment_hits_box((x, 0.0), (x, l.height), (x, y)));
        assert!(!segment_hits_box((0.0, y - 1.0), (l.width, y - 1.0), (x, y)));
    }

    #[test]
    fn route_paths_are_svg_paths() {
        assert_eq!(route_path(&[]), "");
        assert_eq!(route_path(&[(0.0, 0.0), (0.0, 10.0)]), "M0,0 L0,10");
        assert_eq!(route_path(&[(0.0, 0.0), (4.0, 10.0)]), "M0,0 C0,5 4,5 4,10");
    }

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
