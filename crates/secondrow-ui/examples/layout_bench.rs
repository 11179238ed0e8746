//! Times the graph layout of a 200-node DAG (bench/ui/run.sh runs it in release mode): p50/p99 of 200 layouts.

use std::time::Instant;

fn main() {
    let n = 200;
    let mut x: u64 = 7;
    let mut edges = Vec::new();
    for b in 1..n {
        for _ in 0..2 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            edges.push(((x >> 33) as usize % b, b));
        }
    }
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(secondrow_ui::layout::layout(n, &edges));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{{\"layout_200_nodes\": {{\"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}}}", times[100], times[197]);
}
