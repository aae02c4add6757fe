//! The `enrichment_result` table: the latest lookup of each (indicator, provider), shared by
//! every worker as the cache, and the indicator verdicts computed from it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::postgres::types::PgInterval;
use uuid::Uuid;

use crate::alert::Malice;

/// What [`claim_lookups`] found for one (indicator, provider) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupClaim {
    /// A fresh result is stored: nothing to look up.
    Fresh,
    /// The caller now holds the lookup and must make it.
    Claimed,
    /// Another live claim holds the lookup: wait for its result.
    HeldElsewhere,
}

/// For each given (indicator, provider) pair without a fresh result, claims its lookup for its
/// `hold` unless another live claim holds it; returns what became of each pair, in the order
/// given. One statement: the cache check and the claim are one round trip. `fresh_after`, per
/// pair: a stored result counts as fresh only when it is unexpired and was written at or after
/// that time (none: any unexpired result).
pub async fn claim_lookups(
    db: impl PgExecutor<'_>,
    pairs: &[(Uuid, Uuid)],
    holds: &[Duration],
    fresh_after: &[Option<DateTime<Utc>>],
) -> Result<Vec<LookupClaim>, sqlx::Error> {
    let indicators: Vec<Uuid> = pairs.iter().map(|pair| pair.0).collect();
    let providers: Vec<Uuid> = pairs.iter().map(|pair| pair.1).collect();
    let holds: Vec<PgInterval> = holds
        .iter()
        .map(|hold| PgInterval { months: 0, days: 0, microseconds: hold.as_micros() as i64 })
        .collect();
    let rows = sqlx::query!(
        r#"with given as (
               select * from unnest($1::uuid[], $2::uuid[], $3::interval[], $4::timestamptz[])
                   as given(indicator_id, provider_id, hold, fresh_after)
           ),
           -- One primary-key probe per pair (`lateral`), whatever the table's size and however
           -- stale its statistics: `= any` on each column let the planner AND a bitmap of the
           -- provider's every result.
           fresh as (
               select g.indicator_id, g.provider_id
               from given g
               join lateral (select 1 from enrichment_result r
                             where r.indicator_id = g.indicator_id
                               and r.enrichment_provider_id = g.provider_id
                               and r.expires_at > now()
                               and r.enriched_at >= coalesce(g.fresh_after, '-infinity')) r
                 on true
           ),
           claimed as (
               insert into enrichment_lookup (indicator_id, enrichment_provider_id, claimed_until)
               select indicator_id, provider_id, now() + hold
               from given
               where (indicator_id, provider_id) not in (select indicator_id, provider_id from fresh)
               -- Lock in key order, so two workers claiming overlapping sets cannot deadlock.
               order by indicator_id, provider_id
               on conflict on constraint enrichment_lookup_pkey
               do update set claimed_until = excluded.claimed_until
               where enrichment_lookup.claimed_until < now()
               returning indicator_id, enrichment_provider_id as provider_id
           )
           select (g.indicator_id, g.provider_id) in (select indicator_id, provider_id from fresh)
                      as "fresh!",
                  (g.indicator_id, g.provider_id) in (select indicator_id, provider_id from claimed)
                      as "claimed!"
           from unnest($1::uuid[], $2::uuid[]) with ordinality as g(indicator_id, provider_id, position)
           order by g.position"#,
        &indicators,
        &providers,
        &holds,
        fresh_after as &[Option<DateTime<Utc>>],
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| match (row.fresh, row.claimed) {
            (true, _) => LookupClaim::Fresh,
            (false, true) => LookupClaim::Claimed,
            (false, false) => LookupClaim::HeldElsewhere,
        })
        .collect())
}

/// For each pair: whether it has a fresh result (written at or after `fresh_after`, when
/// given), and whether a live claim on its lookup remains.
pub async fn lookup_states(
    db: impl PgExecutor<'_>,
    pairs: &[(Uuid, Uuid)],
    fresh_after: Option<DateTime<Utc>>,
) -> Result<Vec<((Uuid, Uuid), bool, bool)>, sqlx::Error> {
    let indicators: Vec<Uuid> = pairs.iter().map(|pair| pair.0).collect();
    let providers: Vec<Uuid> = pairs.iter().map(|pair| pair.1).collect();
    let rows = sqlx::query!(
        r#"select given.indicator_id as "indicator_id!", given.provider_id as "provider_id!",
                  exists (select 1 from enrichment_result r
                          where r.indicator_id = given.indicator_id
                            and r.enrichment_provider_id = given.provider_id
                            and r.expires_at > now()
                            and r.enriched_at >= coalesce($3::timestamptz, '-infinity'))
                      as "fresh!",
                  exists (select 1 from enrichment_lookup l
                          where l.indicator_id = given.indicator_id
                            and l.enrichment_provider_id = given.provider_id
                            and l.claimed_until > now()) as "claimed!"
           from unnest($1::uuid[], $2::uuid[]) as given(indicator_id, provider_id)"#,
        &indicators,
        &providers,
        fresh_after,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.indicator_id, row.provider_id), row.fresh, row.claimed))
        .collect())
}

/// One lookup's outcome, to be cached for `ttl`.
#[derive(Debug, Clone)]
pub struct NewResult {
    pub indicator_id: Uuid,
    pub enrichment_provider_id: Uuid,
    pub success: bool,
    pub extracted: serde_json::Value,
    pub raw: Option<serde_json::Value>,
    pub error: Option<String>,
    pub malice: Malice,
    pub ttl: Duration,
}

/// Stores lookups, replacing older results of the same pairs, releases their claims, and sets
/// each of their indicators' verdict to the worst of its successful results (SPEC §3), all in
/// one statement, so a result is never visible without its verdict. An analyst's override is a
/// separate column and is not touched. Each indicator's `results_version` goes up by one, which
/// tells servers keeping its results that they changed; anything else that writes results must
/// do the same (deletes do it by trigger).
pub async fn save(db: impl PgExecutor<'_>, results: &[NewResult]) -> Result<(), sqlx::Error> {
    if results.is_empty() {
        return Ok(());
    }
    let indicators: Vec<Uuid> = results.iter().map(|r| r.indicator_id).collect();
    let providers: Vec<Uuid> = results.iter().map(|r| r.enrichment_provider_id).collect();
    let successes: Vec<bool> = results.iter().map(|r| r.success).collect();
    let extracted: Vec<&serde_json::Value> = results.iter().map(|r| &r.extracted).collect();
    let raws: Vec<Option<&serde_json::Value>> = results.iter().map(|r| r.raw.as_ref()).collect();
    let errors: Vec<Option<&str>> = results.iter().map(|r| r.error.as_deref()).collect();
    let verdicts: Vec<&str> = results.iter().map(|r| r.malice.as_str()).collect();
    let ttls: Vec<PgInterval> = results
        .iter()
        .map(|r| PgInterval { months: 0, days: 0, microseconds: r.ttl.as_micros() as i64 })
        .collect();
    sqlx::query!(
        r#"with given as (
               select * from unnest($1::uuid[], $2::uuid[], $3::bool[], $4::jsonb[], $5::jsonb[],
                                    $6::text[], $7::text[], $8::interval[])
                   as given(indicator_id, provider_id, success, extracted, raw, error, verdict, ttl)
           ),
           -- Both lookups below are driven by the given keys through the primary keys, so a
           -- save costs the same however many results are stored.
           -- A claim is released by expiring it rather than deleting it: the next claim of the
           -- pair updates the row in place (a HOT update) instead of inserting and deleting
           -- index entries for every lookup.
           released as (
               update enrichment_lookup l set claimed_until = now()
               where l.indicator_id = any($1) and l.enrichment_provider_id = any($2)
                 and (l.indicator_id, l.enrichment_provider_id) in
                     (select indicator_id, provider_id from given)
           ),
           -- The statement's own inserts are invisible to it: other providers' stored results
           -- plus the given ones make up each indicator's results.
           verdicts as (
               select g.indicator_id, max(results.verdict) as verdict
               from (select distinct indicator_id from given) as g
               cross join lateral (
                   select r.malice as verdict
                   from enrichment_result r
                   where r.indicator_id = g.indicator_id
                     and r.success
                     and not exists (select 1 from given
                                     where given.indicator_id = r.indicator_id
                                       and given.provider_id = r.enrichment_provider_id)
                   union all
                   select given.verdict::malice from given
                   where given.indicator_id = g.indicator_id and given.success
               ) as results
               group by g.indicator_id
           ),
           judged as (
               update indicator i
               set malice = coalesce(v.verdict, 'Pending'),
                   results_version = i.results_version + 1
               from (select distinct indicator_id from given) as g
               left join verdicts v using (indicator_id)
               where i.indicator_id = g.indicator_id and i.indicator_id = any($1)
           )
           insert into enrichment_result (indicator_id, enrichment_provider_id, success, extracted,
                                          raw, error, malice, enriched_at, expires_at)
           select indicator_id, provider_id, success, extracted, raw, error,
                  verdict::malice, now(), now() + ttl
           from given
           on conflict on constraint enrichment_result_pkey
           do update set success = excluded.success, extracted = excluded.extracted,
                         raw = excluded.raw, error = excluded.error, malice = excluded.malice,
                         enriched_at = excluded.enriched_at, expires_at = excluded.expires_at"#,
        &indicators,
        &providers,
        &successes,
        &extracted as &[&serde_json::Value],
        &raws as &[Option<&serde_json::Value>],
        &errors as &[Option<&str>],
        &verdicts as &[&str],
        &ttls,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A stored result with its provider's name and its indicator.
#[derive(Debug, Clone)]
pub struct ResultRow {
    pub indicator_id: Uuid,
    pub provider: String,
    pub indicator_type: String,
    pub indicator_value: String,
    pub success: bool,
    pub extracted: serde_json::Value,
    /// The provider's whole answers, by step; `None` when none was stored.
    pub raw: Option<serde_json::Value>,
    pub error: Option<String>,
    pub malice: Malice,
    pub enriched_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The results of one indicator.
pub async fn for_indicator(
    db: impl PgExecutor<'_>,
    indicator_id: Uuid,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    sqlx::query_as!(
        ResultRow,
        r#"select i.indicator_id, p.name as provider, i.type::text as "indicator_type!", i.value as indicator_value,
                  r.success, r.extracted, r.raw, r.error, r.malice as "malice: Malice",
                  r.enriched_at, r.expires_at
           from indicator i
           join enrichment_result r using (indicator_id)
           join enrichment_provider p using (enrichment_provider_id)
           where i.indicator_id = $1
           order by p.name"#,
        indicator_id,
    )
    .fetch_all(db)
    .await
}

/// The results of every indicator of an alert.
pub async fn for_alert(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    sqlx::query_as!(
        ResultRow,
        r#"select i.indicator_id, p.name as provider, i.type::text as "indicator_type!", i.value as indicator_value,
                  r.success, r.extracted, r.raw, r.error, r.malice as "malice: Malice",
                  r.enriched_at, r.expires_at
           from alert_indicator ai
           join indicator i using (indicator_id)
           join enrichment_result r using (indicator_id)
           join enrichment_provider p using (enrichment_provider_id)
           where ai.alert_id = $1
           order by i.type, i.value, p.name"#,
        alert_id,
    )
    .fetch_all(db)
    .await
}
