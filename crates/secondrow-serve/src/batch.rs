//! Dynamic batching: requests to one model version queue up; a worker task takes them until the batch
//! holds `max_batch_size` rows or `max_queue_delay` has passed since the first, concatenates compatible
//! requests along the first dimension, predicts once on the blocking pool and splits the outputs back.
//! Requests whose inputs differ in datatype or trailing dimensions are predicted separately.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::ModelError;
use crate::runtime::Runtime;
use crate::tensor::{Tensor, TensorData};

type Reply = oneshot::Sender<Result<Vec<Tensor>, ModelError>>;

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    reply: Reply,
}

/// The sending side of a version's batching queue; the worker ends when the last handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the worker on the current tokio runtime.
    pub fn start(runtime: Arc<dyn Runtime>, max_batch_size: usize, max_queue_delay: Duration) -> Batcher {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(worker(runtime, rx, max_batch_size.max(1), max_queue_delay));
        Batcher { tx }
    }

    /// Queues one request and waits for its share of the batch's outputs.
    pub async fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
        let rows = inputs.first().map(Tensor::rows).unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { inputs, rows, reply })
            .await
            .map_err(|_| ModelError::from("the batching queue is closed"))?;
        rx.await.map_err(|_| ModelError::from("the batching worker stopped"))?
    }
}

async fn worker(
    runtime: Arc<dyn Runtime>,
    mut rx: mpsc::Receiver<Job>,
    max_batch_size: usize,
    max_queue_delay: Duration,
) {
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + max_queue_delay;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < max_batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    rows += job.rows;
                    jobs.push(job);
                }
                _ => break,
            }
        }
        let runtime = runtime.clone();
        // One batch at a time per version: the next batch fills while this one runs.
        let _ = tokio::task::spawn_blocking(move || run_groups(runtime.as_ref(), jobs)).await;
    }
}

/// Shape signature of a request: per input, datatype and dimensions after the first.
fn signature(inputs: &[Tensor]) -> Vec<(crate::tensor::Datatype, Vec<usize>)> {
    inputs.iter().map(|t| (t.datatype(), t.shape.iter().skip(1).copied().collect())).collect()
}

fn run_groups(runtime: &dyn Runtime, mut jobs: Vec<Job>) {
    while !jobs.is_empty() {
        let key = signature(&jobs[0].inputs);
        let (group, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| signature(&j.inputs) == key);
        jobs = rest;
        run_group(runtime, group);
    }
}

fn run_group(runtime: &dyn Runtime, group: Vec<Job>) {
    if group.len() == 1 {
        let mut group = group;
        if let Some(job) = group.pop() {
            let _ = job.reply.send(runtime.predict(job.inputs));
        }
        return;
    }
    let total_rows: usize = group.iter().map(|j| j.rows).sum();
    let mut merged: Vec<Tensor> = group[0]
        .inputs
        .iter()
        .map(|t| {
            let mut shape = t.shape.clone();
            if let Some(d) = shape.first_mut() {
                *d = total_rows;
            }
            Tensor { name: t.name.clone(), shape, data: TensorData::empty(t.datatype()) }
        })
        .collect();
    for job in &group {
        for (m, t) in merged.iter_mut().zip(&job.inputs) {
            m.data.extend_from(&t.data);
        }
    }
    match runtime.predict(merged) {
        Err(message) => group.into_iter().for_each(|job| {
            let _ = job.reply.send(Err(message.clone()));
        }),
        Ok(outputs) => {
            let mut offset = 0;
            for job in group {
                let part = outputs
                    .iter()
                    .map(|out| {
                        if out.shape.first() != Some(&total_rows) {
                            return Err(ModelError(format!(
                                "output `{}` has no batch dimension; cannot split a batch",
                                out.name
                            )));
                        }
                        let per_row: usize = out.shape.iter().skip(1).product();
                        let mut shape = out.shape.clone();
                        shape[0] = job.rows;
                        Ok(Tensor {
                            name: out.name.clone(),
                            shape,
                            data: out.data.slice(offset * per_row, (offset + job.rows) * per_row),
                        })
                    })
                    .collect();
                offset += job.rows;
                let _ = job.reply.send(part);
            }
        }
    }
}
