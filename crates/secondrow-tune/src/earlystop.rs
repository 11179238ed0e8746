//! Katib's `medianstop` early stopping. Once `min_trials_required` trials have succeeded, each is
//! summarised by the mean of its first `start_step` objective values, and the threshold is the mean of
//! those (Katib's code averages although it is called a median). A new trial gets that rule; when its
//! `start_step`-th value arrives, its best value so far is compared with the threshold once.

use crate::error::{Result, TuneError};
use crate::experiment::{AlgorithmSpec, Direction};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianStop {
    pub min_trials_required: usize,
    pub start_step: usize,
}

/// The rule handed to one trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    pub threshold: f64,
    pub start_step: usize,
    pub direction: Direction,
}

impl MedianStop {
    pub fn from_spec(spec: &AlgorithmSpec) -> Result<MedianStop> {
        if spec.algorithm_name != "medianstop" {
            return Err(TuneError::invalid(
                "spec.earlyStopping.algorithmName",
                format!("{:?} is unknown: only medianstop exists", spec.algorithm_name),
            ));
        }
        let mut m = MedianStop { min_trials_required: 3, start_step: 4 };
        for (i, s) in spec.algorithm_settings.iter().enumerate() {
            let path = format!("spec.earlyStopping.algorithmSettings[{i}].value");
            let v = s.value.as_deref().unwrap_or("");
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| TuneError::invalid(path.clone(), format!("{} must be an integer, got {v:?}", s.name)))?;
            match s.name.as_str() {
                "min_trials_required" if n > 0 => m.min_trials_required = n as usize,
                "start_step" if n >= 1 => m.start_step = n as usize,
                "min_trials_required" => {
                    return Err(TuneError::invalid(path, "min_trials_required must be greater than 0"))
                }
                "start_step" => return Err(TuneError::invalid(path, "start_step must be at least 1")),
                other => {
                    return Err(TuneError::invalid(
                        format!("spec.earlyStopping.algorithmSettings[{i}].name"),
                        format!("unknown setting {other:?} for medianstop"),
                    ))
                }
            }
        }
        Ok(m)
    }

    /// The rule for a trial created now, from the objective series of the trials that succeeded so far;
    /// `None` until enough have succeeded.
    pub fn rule(&self, succeeded: &[Vec<f64>], direction: Direction) -> Option<StopRule> {
        let avgs: Vec<f64> = succeeded
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let head = &s[..s.len().min(self.start_step)];
                head.iter().sum::<f64>() / head.len() as f64
            })
            .collect();
        if avgs.len() < self.min_trials_required {
            return None;
        }
        Some(StopRule {
            threshold: avgs.iter().sum::<f64>() / avgs.len() as f64,
            start_step: self.start_step,
            direction,
        })
    }
}

impl StopRule {
    /// Called with the trial's objective values so far: true exactly when the `start_step`-th value
    /// has arrived and the best value so far is worse than the threshold.
    pub fn should_stop(&self, values: &[f64]) -> bool {
        if values.len() != self.start_step {
            return false;
        }
        match self.direction {
            Direction::Maximize => values.iter().copied().fold(f64::NEG_INFINITY, f64::max) < self.threshold,
            Direction::Minimize => values.iter().copied().fold(f64::INFINITY, f64::min) > self.threshold,
        }
    }
}
