//! Provider call limits shared by every worker: leases on a provider's concurrency limit and
//! tokens from its per-minute bucket, granted by `acquire_provider_calls_batch` under a row lock
//! per provider.

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
    /// None may go for `retry_after`: the provider answered 429 and asked every caller to wait
    /// ([`pause`]).
    Paused { retry_after: Duration },
}

/// A request for up to `wanted` calls to a provider, each of which may run for `hold` at most
/// (after that, a lease whose worker died frees its slots by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRequest {
    pub provider_id: Uuid,
    pub wanted: u32,
    pub concurrency_limit: u32,
    pub rate_limit_per_minute: Option<u32>,
    pub hold: Duration,
}

/// Gives `released` leases' slots back, then answers `requests`, in one statement: one grant per
/// request, in the order given (each provider's slots and tokens go to its requests in that
/// order). Released leases' tokens stay spent: the rate limit counts calls made.
pub async fn exchange(
    db: impl PgExecutor<'_>,
    released: &[Uuid],
    requests: &[CallRequest],
) -> Result<Vec<Grant>, sqlx::Error> {
    let providers: Vec<Uuid> = requests.iter().map(|r| r.provider_id).collect();
    let wanted: Vec<i32> = requests.iter().map(|r| r.wanted as i32).collect();
    let concurrency: Vec<i32> = requests.iter().map(|r| r.concurrency_limit as i32).collect();
    let per_minute: Vec<Option<i32>> =
        requests.iter().map(|r| r.rate_limit_per_minute.map(|limit| limit as i32)).collect();
    let holds: Vec<PgInterval> = requests.iter().map(|r| interval(r.hold)).collect();
    let rows = sqlx::query!(
        r#"select ordinal as "ordinal!", lease_id, granted as "granted!", retry_after_ms,
                  paused as "paused!"
           from acquire_provider_calls_batch($1, $2, $3, $4, $5, $6)
           order by ordinal"#,
        released,
        &providers,
        &wanted,
        &concurrency,
        &per_minute as &[Option<i32>],
        &holds,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| match row.lease_id {
            Some(lease_id) if row.granted > 0 => {
                Grant::Granted { lease_id, calls: row.granted as u32 }
            }
            _ if row.paused => Grant::Paused {
                retry_after: Duration::from_millis(row.retry_after_ms.unwrap_or(0).max(0) as u64),
            },
            _ => Grant::Wait {
                retry_after: row.retry_after_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
            },
        })
        .collect())
}

/// Pauses each provider given for its duration from now, for every worker: no call is granted
/// to it until then (unless it is paused longer already). Recorded when a provider answers 429.
pub async fn pause(
    db: impl PgExecutor<'_>,
    pauses: &[(Uuid, Duration)],
) -> Result<(), sqlx::Error> {
    let providers: Vec<Uuid> = pauses.iter().map(|(provider, _)| *provider).collect();
    let intervals: Vec<PgInterval> = pauses.iter().map(|(_, pause)| interval(*pause)).collect();
    sqlx::query!("select pause_provider_calls($1, $2)", &providers, &intervals).execute(db).await?;
    Ok(())
}

fn interval(duration: Duration) -> PgInterval {
    PgInterval { months: 0, days: 0, microseconds: duration.as_micros() as i64 }
}
