//! Limited-memory BFGS minimisation with a backtracking (Armijo) line search, used by logistic regression.

/// Outcome of [`minimize`].
pub struct LbfgsResult {
    pub x: Vec<f64>,
    pub n_iter: usize,
}

/// Minimises `f` from `x0`; `f(x, grad)` returns the value and writes the gradient.
/// Stops when the largest gradient component is below `tol` or after `max_iter` iterations.
pub fn minimize(mut f: impl FnMut(&[f64], &mut [f64]) -> f64, x0: Vec<f64>, max_iter: usize, tol: f64) -> LbfgsResult {
    let m = 10;
    let d = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; d];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut x_new = vec![0.0; d];
    let mut g_new = vec![0.0; d];
    let mut n_iter = 0;
    while n_iter < max_iter {
        if g.iter().fold(0.0f64, |a, v| a.max(v.abs())) <= tol {
            break;
        }
        n_iter += 1;
        // Two-loop recursion for the search direction.
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &q);
            axpy(-alpha[i], &y_hist[i], &mut q);
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12)
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..k {
            let beta = rho_hist[i] * dot(&y_hist[i], &q);
            axpy(alpha[i] - beta, &s_hist[i], &mut q);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            dir = g.iter().map(|v| -v).collect();
            slope = dot(&g, &dir);
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
        }
        let mut step = 1.0;
        let mut f_new;
        let mut accepted = false;
        for _ in 0..40 {
            for j in 0..d {
                x_new[j] = x[j] + step * dir[j];
            }
            f_new = f(&x_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * step * slope {
                let s: Vec<f64> = (0..d).map(|j| x_new[j] - x[j]).collect();
                let y: Vec<f64> = (0..d).map(|j| g_new[j] - g[j]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 {
                    if s_hist.len() == m {
                        s_hist.remove(0);
                        y_hist.remove(0);
                        rho_hist.remove(0);
                    }
                    s_hist.push(s);
                    y_hist.push(y);
                    rho_hist.push(1.0 / sy);
                }
                let converged = (fx - f_new).abs() <= 1e-12 * fx.abs().max(1.0);
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                fx = f_new;
                accepted = !converged;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    LbfgsResult { x, n_iter }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yv, xv)| *yv += a * xv);
}
