//! Many callers, one statement. A [`Batcher`] hands each caller's small request to a task that
//! takes whatever requests are waiting (up to a maximum) and answers them all with one round
//! trip to PostgreSQL. While a batch runs the next one gathers, so batches grow with the load
//! and a request that comes alone goes at once: under load, a statement per request, with its
//! parse, plan, round trip and commit, would be most of the database's work.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

type Reply<R> = oneshot::Sender<Result<R, sqlx::Error>>;

/// A handle on batching tasks, which end when every handle is dropped.
#[derive(Debug)]
pub(crate) struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<(T, Reply<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Batcher { queue: self.queue.clone() }
    }
}

/// The batching task stopped, because its runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the batching task has stopped")]
struct Stopped;

/// Sends each request its answer, or the batch's error.
fn answer<R>(answers: Result<Vec<R>, sqlx::Error>, replies: Vec<Reply<R>>) {
    match answers {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(sqlx::Error::Io(std::io::Error::other(message.clone()))));
            }
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts `parallel` tasks taking batches from one queue (more than one lets a batch
    /// gather, or run, while another waits on PostgreSQL). `run` answers a batch with one
    /// answer per request, in order; when it fails, every request of the batch fails with its
    /// message.
    pub(crate) fn spawn<F, Fut>(parallel: usize, max_batch: usize, run: F) -> Batcher<T, R>
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, sqlx::Error>> + Send,
    {
        let (queue, waiting) = mpsc::unbounded_channel::<(T, Reply<R>)>();
        let waiting = Arc::new(Mutex::new(waiting));
        let run = Arc::new(run);
        for _ in 0..parallel.max(1) {
            let (waiting, run) = (waiting.clone(), run.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(max_batch);
                loop {
                    // The next task waits here while this one runs its batch.
                    let taken = waiting.lock().await.recv_many(&mut batch, max_batch).await;
                    if taken == 0 {
                        return;
                    }
                    let (requests, replies): (Vec<T>, Vec<Reply<R>>) = batch.drain(..).unzip();
                    answer(run(requests).await, replies);
                }
            });
        }
        Batcher { queue }
    }

    /// Hands `request` to the task and waits for its answer.
    pub(crate) async fn ask(&self, request: T) -> Result<R, sqlx::Error> {
        let stopped = || sqlx::Error::Io(std::io::Error::other(Stopped));
        let (reply, answered) = oneshot::channel();
        self.queue.send((request, reply)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Hands `request` to the task without waiting for it to be done.
    pub(crate) fn tell(&self, request: T) {
        let (reply, _) = oneshot::channel();
        let _ = self.queue.send((request, reply));
    }
}
