//! alertgraph's worker: claims jobs from PostgreSQL and runs pipeline stages.
//!
//! [`queue`] owns the mechanics (claiming, leases, retries, shutdown) and knows no job kinds;
//! [`jobs`] maps each kind to a domain stage and holds no business rules of its own.

pub mod jobs;
pub mod queue;

pub use jobs::pipeline;
pub use queue::{Handlers, JobContext, JobError, WorkerConfig, run, run_until_idle};
