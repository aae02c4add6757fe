//! The `job` table: enqueue, claim, lease renewal, completion, retry, rescue and pruning.
//!
//! Claims take row locks only for the duration of the claiming statement (`for update skip
//! locked` inside one `update`), never across a job's run: a running job is protected by its
//! lease and its fencing token (`lease_token`), not by a lock, so a worker that dies holds
//! nothing and its job is rescued once `lease_until` passes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, postgres::types::PgInterval};
use uuid::Uuid;

use crate::job::ClaimedJob;

/// A completion or failure was refused because the caller no longer holds the job's lease:
/// the lease expired and the job was rescued (and possibly claimed again) in the meantime.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("job {job_id} is no longer held under this lease token")]
    Fenced { job_id: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn interval(duration: Duration) -> PgInterval {
    PgInterval { months: 0, days: 0, microseconds: duration.as_micros() as i64 }
}

/// Inserts one job. Workers are woken by the `job_notify` trigger when the caller's transaction
/// commits.
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    kind: &str,
    payload: &serde_json::Value,
    delay: Duration,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into job (kind, payload, run_at) values ($1, $2, now() + $3) returning job_id",
        kind,
        payload,
        interval(delay),
    )
    .fetch_one(db)
    .await
}

/// Claims up to `limit` due jobs for `worker`, oldest first within a priority.
///
/// Each claimed row gets a fresh `lease_token` and `lease_until = now() + lease`. The row locks
/// taken by `skip locked` last only for this statement; concurrent claimers skip each other's
/// rows instead of waiting, so N workers never claim the same job twice.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limit: i64,
    lease: Duration,
    worker: &str,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedJob,
        r#"
        with next as (
            select job_id from job
            where state = 'queued' and run_at <= now()
            order by priority desc, run_at, job_id
            limit $1
            for update skip locked
        )
        update job
        set state = 'running', attempt = job.attempt + 1, lease_token = gen_random_uuid(),
            lease_until = now() + $2, claimed_by = $3
        from next
        where job.job_id = next.job_id
        returning job.job_id, job.kind, job.payload, job.attempt, job.max_attempts,
                  job.lease_token as "lease_token!"
        "#,
        limit,
        interval(lease),
        worker,
    )
    .fetch_all(db)
    .await
}

/// Extends the leases of jobs a live worker still runs. Jobs whose token changed (rescued after
/// an expired lease) are left alone; their holder learns it when it tries to finish.
pub async fn renew_leases(
    db: impl PgExecutor<'_>,
    held: &[(i64, Uuid)],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    let (ids, tokens): (Vec<i64>, Vec<Uuid>) = held.iter().copied().unzip();
    let renewed = sqlx::query!(
        "update job set lease_until = now() + $3
         where job_id = any($1) and lease_token = any($2) and state = 'running'",
        &ids,
        &tokens,
        interval(lease),
    )
    .execute(db)
    .await?;
    Ok(renewed.rows_affected())
}

/// Marks a job succeeded, if `lease_token` is still its current token. Run it inside the
/// transaction that commits the job's effects, so that a fenced-out worker's effects roll back.
pub async fn complete(
    db: &mut PgConnection,
    job_id: i64,
    lease_token: Uuid,
) -> Result<(), FinishError> {
    let done = sqlx::query!(
        "update job set state = 'succeeded', finished_at = now(), lease_until = null
         where job_id = $1 and lease_token = $2 and state = 'running'",
        job_id,
        lease_token,
    )
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(FinishError::Fenced { job_id });
    }
    Ok(())
}

/// Marks many jobs succeeded in one statement (one commit for the whole batch), each only if
/// its token is still current. Returns the ids that were completed; the others were fenced.
pub async fn complete_many(
    db: impl PgExecutor<'_>,
    held: &[(i64, Uuid)],
) -> Result<Vec<i64>, sqlx::Error> {
    let (ids, tokens): (Vec<i64>, Vec<Uuid>) = held.iter().copied().unzip();
    sqlx::query_scalar!(
        "update job set state = 'succeeded', finished_at = now(), lease_until = null
         from unnest($1::bigint[], $2::uuid[]) as done(job_id, lease_token)
         where job.job_id = done.job_id and job.lease_token = done.lease_token
           and job.state = 'running'
         returning job.job_id",
        &ids,
        &tokens,
    )
    .fetch_all(db)
    .await
}

/// What to do with a job whose run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again after `delay`, unless the job has used all of its attempts.
    Retry { delay: Duration },
    /// Never try again: the failure is permanent.
    GiveUp,
}

/// Records a failed run: back to `queued` after the delay, or `dead` when the failure is
/// permanent or attempts are exhausted. Fenced like [`complete`].
pub async fn fail(
    db: impl PgExecutor<'_>,
    job: &ClaimedJob,
    failure: Failure,
    error: &str,
) -> Result<JobState, FinishError> {
    let (give_up, delay) = match failure {
        Failure::Retry { delay } => (job.attempt >= job.max_attempts, delay),
        Failure::GiveUp => (true, Duration::ZERO),
    };
    let state = sqlx::query_scalar!(
        "update job
         set state = case when $3 then 'dead' else 'queued' end,
             run_at = now() + $4, last_error = $5, lease_until = null,
             finished_at = case when $3 then now() end
         where job_id = $1 and lease_token = $2 and state = 'running'
         returning state",
        job.job_id,
        job.lease_token,
        give_up,
        interval(delay),
        error,
    )
    .fetch_optional(db)
    .await?;
    let Some(state) = state else {
        return Err(FinishError::Fenced { job_id: job.job_id });
    };
    Ok(if state == "dead" { JobState::Dead } else { JobState::Queued })
}

/// Hands claimed jobs back without counting the attempt, for a worker that shuts down before
/// it could run them.
pub async fn release(db: impl PgExecutor<'_>, held: &[(i64, Uuid)]) -> Result<u64, sqlx::Error> {
    let (ids, tokens): (Vec<i64>, Vec<Uuid>) = held.iter().copied().unzip();
    let released = sqlx::query!(
        "update job
         set state = 'queued', attempt = greatest(attempt - 1, 0), lease_token = null,
             lease_until = null, run_at = now()
         where job_id = any($1) and lease_token = any($2) and state = 'running'",
        &ids,
        &tokens,
    )
    .execute(db)
    .await?;
    Ok(released.rows_affected())
}

/// Requeues running jobs whose lease expired, because their worker died or hung. The attempt
/// that was lost counts; a job out of attempts goes to `dead`. Clearing the token fences out
/// the old holder should it wake up.
pub async fn rescue_expired(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    let rescued = sqlx::query!(
        "update job
         set state = case when attempt >= max_attempts then 'dead' else 'queued' end,
             finished_at = case when attempt >= max_attempts then now() end,
             lease_token = null, lease_until = null, run_at = now(),
             last_error = 'lease expired: the worker holding this job stopped renewing it'
         where state = 'running' and lease_until < now()",
    )
    .execute(db)
    .await?;
    Ok(rescued.rows_affected())
}

/// Deletes succeeded jobs finished before `succeeded_before` ago and dead jobs finished before
/// `dead_before` ago. Dead jobs are kept longer so people can inspect and retry them.
pub async fn prune(
    db: impl PgExecutor<'_>,
    succeeded_before: Duration,
    dead_before: Duration,
) -> Result<u64, sqlx::Error> {
    let pruned = sqlx::query!(
        "delete from job
         where (state = 'succeeded' and finished_at < now() - $1::interval)
            or (state = 'dead' and finished_at < now() - $2::interval)",
        interval(succeeded_before),
        interval(dead_before),
    )
    .execute(db)
    .await?;
    Ok(pruned.rows_affected())
}

/// Puts a dead job back in the queue with a fresh set of attempts, and wakes the workers (the
/// `job_notify` trigger only fires on insert) when the caller's transaction commits.
pub async fn retry_dead(db: &mut PgConnection, job_id: i64) -> Result<bool, sqlx::Error> {
    let retried = sqlx::query!(
        "update job set state = 'queued', attempt = 0, run_at = now(), finished_at = null,
                        lease_token = null, lease_until = null, claimed_by = null
         where job_id = $1 and state = 'dead'",
        job_id,
    )
    .execute(&mut *db)
    .await?;
    if retried.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("select pg_notify($1, '')").bind(crate::notify::JOB_QUEUED).execute(db).await?;
    Ok(true)
}

/// A job as the API shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub job_id: i64,
    pub kind: String,
    /// `queued`, `running`, `succeeded` or `dead`.
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub payload: serde_json::Value,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Jobs, newest first: of one `state` and `kind` when given, older than job `before` when given.
pub async fn list(
    db: impl PgExecutor<'_>,
    state: Option<JobState>,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        "select job_id, kind, state, attempt, max_attempts, payload, last_error, run_at,
                created_at, finished_at
         from job
         where ($1::text is null or state = $1) and ($2::text is null or kind = $2)
           and ($3::int8 is null or job_id < $3)
         order by job_id desc
         limit $4",
        state.map(JobState::as_str),
        kind,
        before,
        limit,
    )
    .fetch_all(db)
    .await
}

/// One job.
pub async fn get(db: impl PgExecutor<'_>, job_id: i64) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        "select job_id, kind, state, attempt, max_attempts, payload, last_error, run_at,
                created_at, finished_at
         from job where job_id = $1",
        job_id,
    )
    .fetch_optional(db)
    .await
}

/// The states a job can be in; mirrors `job_state_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
        }
    }

    /// The state stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Dead]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// Queue depth and the age of the oldest due job, for `/ready` and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
    pub oldest_due_seconds: f64,
}

pub async fn stats(db: impl PgExecutor<'_>) -> Result<QueueStats, sqlx::Error> {
    // One subquery per state, so each reads its partial index instead of the whole table
    // (succeeded jobs wait there until they are pruned).
    let row = sqlx::query!(
        r#"select
             (select count(*) from job where state = 'queued') as "queued!",
             (select count(*) from job where state = 'running') as "running!",
             (select count(*) from job where state = 'dead') as "dead!",
             coalesce((select extract(epoch from now() - min(run_at))::float8 from job
                       where state = 'queued' and run_at <= now()), 0) as "oldest_due_seconds!""#,
    )
    .fetch_one(db)
    .await?;
    Ok(QueueStats {
        queued: row.queued,
        running: row.running,
        dead: row.dead,
        oldest_due_seconds: row.oldest_due_seconds,
    })
}
