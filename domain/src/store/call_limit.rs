//! Provider call limits shared by every worker: leases on a provider's concurrency limit and
//! tokens from its per-minute bucket, granted by `acquire_provider_calls` under a row lock.

use std::time::Duration;

use sqlx::PgExecutor;
use sqlx::postgres::types::PgInterval;
use uuid::Uuid;

/// The answer to a request for calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `calls` may go now; release the lease when they are done.
    Granted { lease_id: Uuid, calls: u32 },
    /// None may go now. `retry_after` is when the rate limit frees the next call; `None` means
    /// the concurrency limit is full and only another worker's release can free a slot.
    Wait { retry_after: Option<Duration> },
}

/// Asks for up to `wanted` calls to a provider, each of which may run for `hold` at most (after
/// that, a lease whose worker died frees its slots by itself).
pub async fn acquire(
    db: impl PgExecutor<'_>,
    provider_id: Uuid,
    wanted: u32,
    concurrency_limit: u32,
    rate_limit_per_minute: Option<u32>,
    hold: Duration,
) -> Result<Grant, sqlx::Error> {
    let hold = PgInterval { months: 0, days: 0, microseconds: hold.as_micros() as i64 };
    let row = sqlx::query!(
        r#"select lease_id, granted as "granted!", retry_after_ms
           from acquire_provider_calls($1, $2, $3, $4, $5)"#,
        provider_id,
        wanted as i32,
        concurrency_limit as i32,
        rate_limit_per_minute.map(|limit| limit as i32),
        hold,
    )
    .fetch_one(db)
    .await?;
    Ok(match row.lease_id {
        Some(lease_id) if row.granted > 0 => Grant::Granted { lease_id, calls: row.granted as u32 },
        _ => Grant::Wait {
            retry_after: row.retry_after_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        },
    })
}

/// Gives a lease's slots back. Its tokens stay spent: the rate limit counts calls made.
pub async fn release(db: impl PgExecutor<'_>, lease_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from provider_call_lease where lease_id = $1", lease_id)
        .execute(db)
        .await?;
    Ok(())
}
