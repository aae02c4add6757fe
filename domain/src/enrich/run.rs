//! The provider lookups of the enrichment stage: every enrichable indicator × every configured
//! provider that supports its type, in parallel, each provider bounded by its concurrency limit
//! and rate limit across every worker (leases granted by PostgreSQL, [`call_limit`]). Fresh results in `enrichment_result` are reused (the cache every worker shares); new
//! outcomes, failures included, are stored with the provider's TTL (failures with a short one).
//!
//! Concurrent lookups of the same (indicator, provider) from several alerts or workers make
//! one call: the caller holding its claim in `enrichment_lookup` calls, the others wait for the
//! stored result (single flight across processes).
//!
//! A provider's failure is its own: it is recorded as a failed result and never fails the job
//! or delays another provider beyond its own timeout. A 429 is retried once after its
//! `Retry-After` (up to [`MAX_RETRY_AFTER`]), a transient error once after a short pause; a
//! timeout is not retried, since it has already used its whole budget. A 429 also pauses the
//! provider for every worker until its `Retry-After` has passed. Lookups that cannot get
//! a call within [`EnrichOptions::max_wait`] because the provider's limits are saturated are
//! recorded as failures (cached for the failure TTL) rather than holding the alert back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::alert::Malice;
use crate::batch::Batcher;
use crate::indicator::Indicator;
use crate::outbound::Outbound;
use crate::provider::registry::{self, StoredProvider};
use crate::provider::{AuthValues, Lookup, LookupError, extract, found_verdict, lookup, verdict};
use crate::secret::SecretKey;
use crate::store::call_limit::{self, CallRequest, Grant};
use crate::store::enrichment::{self as result_store, LookupClaim, NewResult};

/// The longest `Retry-After` worth waiting for inside a job; a longer one is recorded as a
/// failure and the next enrichment after the failure TTL tries again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Pause before the one retry of a transient failure.
const TRANSIENT_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Added to a lookup's longest duration to get how long its claim is held.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// How often a worker waiting for another's lookup checks for the result.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// How often a lookup held back by a full concurrency limit asks again.
const SLOT_POLL: Duration = Duration::from_millis(25);
/// The most requests one statement claims lookups, grants calls or releases leases for, and
/// how many such statements of a kind run at once.
const MAX_BATCH: usize = 128;
const PARALLEL_BATCHES: usize = 2;

/// A provider ready to call: enabled, with all its credentials.
#[derive(Debug)]
struct Configured {
    provider: StoredProvider,
    auth: AuthValues,
    /// This process's own calls, bounded by the concurrency limit: lookups queue here, in
    /// memory, and ask PostgreSQL only for slots it can usually grant (other workers' calls
    /// aside), instead of polling it.
    local: Arc<Semaphore>,
}

/// Tunables of the enrichment stage.
#[derive(Debug, Clone, Copy)]
pub struct EnrichOptions {
    /// How long a failed lookup is cached before it is tried again.
    pub failure_ttl: Duration,
    /// How long a lookup may wait for its provider's concurrency or rate limit to let it call.
    pub max_wait: Duration,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions { failure_ttl: Duration::from_secs(60), max_wait: Duration::from_secs(30) }
    }
}

/// What the enrichment stage needs besides the database, shared by every job of a worker.
#[derive(Debug)]
pub struct Enricher {
    client: Outbound,
    key: SecretKey,
    /// The process environment as read at start-up, for `<PROVIDER>_<FIELD>` credentials.
    env: BTreeMap<String, String>,
    options: EnrichOptions,
    providers: RwLock<Arc<Vec<Arc<Configured>>>>,
    /// The statements every concurrent enrichment of this process shares, on the pool given to
    /// [`Enricher::load`].
    batches: Batches,
}

/// Indicator upserts and links, lookup claims, and call grants with lease releases, each
/// gathered from every concurrent enrichment of the process into one statement ([`Batcher`]).
#[derive(Debug)]
struct Batches {
    links: Batcher<(Uuid, Vec<Indicator>), Linked>,
    claims: Batcher<Vec<ClaimRequest>, Vec<LookupClaim>>,
    calls: Batcher<CallOp, Option<Grant>>,
}

/// An alert's indicators with their ids.
type Linked = Vec<(Uuid, Indicator)>;

/// What a lookup asks of its provider's call limits.
#[derive(Debug)]
enum CallOp {
    Acquire(CallRequest),
    Release(Uuid),
    /// The provider answered 429: no worker calls it for this long.
    Pause(Uuid, Duration),
}

impl Batches {
    fn spawn(db: &PgPool) -> Batches {
        let links = Batcher::spawn(PARALLEL_BATCHES, MAX_BATCH, {
            let db = db.clone();
            move |alerts| link_batch(db.clone(), alerts)
        });
        let claims = Batcher::spawn(PARALLEL_BATCHES, MAX_BATCH, {
            let db = db.clone();
            move |requests| claim_batch(db.clone(), requests)
        });
        let calls = Batcher::spawn(PARALLEL_BATCHES, MAX_BATCH, {
            let db = db.clone();
            move |ops| call_batch(db.clone(), ops)
        });
        Batches { links, claims, calls }
    }
}

/// Upserts and links the indicators of several alerts in one statement.
async fn link_batch(
    db: PgPool,
    alerts: Vec<(Uuid, Vec<Indicator>)>,
) -> Result<Vec<Linked>, sqlx::Error> {
    let given: Vec<(Uuid, &[Indicator])> =
        alerts.iter().map(|(id, indicators)| (*id, indicators.as_slice())).collect();
    crate::store::indicator::upsert_and_link_many(&db, &given).await
}

/// Releases and grants calls for several lookups in one statement, releases first: a slot
/// given back is free for the requests of the same batch.
async fn call_batch(db: PgPool, ops: Vec<CallOp>) -> Result<Vec<Option<Grant>>, sqlx::Error> {
    let mut released = Vec::new();
    let mut requests = Vec::new();
    let mut pauses = Vec::new();
    for op in &ops {
        match op {
            CallOp::Acquire(request) => requests.push(*request),
            CallOp::Release(lease_id) => released.push(*lease_id),
            CallOp::Pause(provider, pause) => pauses.push((*provider, *pause)),
        }
    }
    // Before the grants, so that none of this batch goes to a provider that just asked to wait.
    if !pauses.is_empty()
        && let Err(error) = call_limit::pause(&db, &pauses).await
    {
        tracing::warn!(error = %error, "recording a provider's 429 pause failed; other workers may call it meanwhile");
    }
    let exchanged = call_limit::exchange(&db, &released, &requests).await;
    if let Err(error) = &exchanged {
        tracing::warn!(error = %error, leases = released.len(), "releasing call leases failed; they expire by themselves");
    }
    let mut grants = exchanged?.into_iter();
    Ok(ops
        .iter()
        .map(|op| match op {
            CallOp::Acquire(_) => grants.next(),
            CallOp::Release(_) | CallOp::Pause(..) => None,
        })
        .collect())
}

/// One (indicator, provider) lookup an enrichment wants: how long to hold its claim, and since
/// when a stored result must have been written to count as fresh (a forced re-enrichment).
type ClaimRequest = (Uuid, Uuid, Duration, Option<DateTime<Utc>>);

/// Claims the lookups of several enrichments in one statement. A pair asked for twice goes to
/// its first asker; the others wait for its result as they would for another worker's. A pair
/// asked for with different freshness takes the strictest: what is fresh for it is for all.
async fn claim_batch(
    db: PgPool,
    requests: Vec<Vec<ClaimRequest>>,
) -> Result<Vec<Vec<LookupClaim>>, sqlx::Error> {
    let mut index: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    let (mut keys, mut holds, mut fresh_after) = (Vec::new(), Vec::new(), Vec::new());
    for &(indicator, provider, hold, after) in requests.iter().flatten() {
        let at = *index.entry((indicator, provider)).or_insert_with(|| {
            keys.push((indicator, provider));
            holds.push(hold);
            fresh_after.push(after);
            keys.len() - 1
        });
        fresh_after[at] = fresh_after[at].max(after);
    }
    let claims = result_store::claim_lookups(&db, &keys, &holds, &fresh_after).await?;
    let mut handed_out = vec![false; keys.len()];
    Ok(requests
        .iter()
        .map(|request| {
            request
                .iter()
                .map(|&(indicator, provider, ..)| {
                    let at = index[&(indicator, provider)];
                    match claims[at] {
                        LookupClaim::Claimed if handed_out[at] => LookupClaim::HeldElsewhere,
                        LookupClaim::Claimed => {
                            handed_out[at] = true;
                            LookupClaim::Claimed
                        }
                        other => other,
                    }
                })
                .collect()
        })
        .collect())
}

/// What an enrichment run did, for the alert's status and activity log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
    /// Lookups answered from the cache.
    pub cached: usize,
}

impl Enricher {
    /// Loads the configured providers and keeps them current: the returned task reloads them
    /// whenever any process changes a provider (NOTIFY), and ends when the pool closes.
    pub async fn start(
        db: &PgPool,
        client: Outbound,
        key: SecretKey,
        env: BTreeMap<String, String>,
        options: EnrichOptions,
    ) -> Result<(Arc<Enricher>, tokio::task::JoinHandle<()>), sqlx::Error> {
        let mut listener = PgListener::connect_with(db).await?;
        listener.listen(crate::notify::CONFIG_CHANGED).await?;
        let enricher = Enricher::load(db, client, key, env, options).await;
        let reloading = tokio::spawn({
            let (db, enricher) = (db.clone(), enricher.clone());
            async move {
                loop {
                    match listener.recv().await {
                        Ok(_) => enricher.reload(&db).await,
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            tracing::warn!(error = %error, "provider listener lost its connection");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            enricher.reload(&db).await;
                        }
                    }
                }
            }
        });
        Ok((enricher, reloading))
    }

    /// Loads the configured providers without listening for changes: the caller must call
    /// [`reload`](Self::reload) whenever [`crate::notify::CONFIG_CHANGED`] is heard (a server
    /// does, from the one LISTEN connection it already has).
    pub async fn load(
        db: &PgPool,
        client: Outbound,
        key: SecretKey,
        env: BTreeMap<String, String>,
        options: EnrichOptions,
    ) -> Arc<Enricher> {
        let batches = Batches::spawn(db);
        let enricher =
            Arc::new(Enricher { client, key, env, options, providers: RwLock::default(), batches });
        enricher.reload(db).await;
        enricher
    }

    /// Replaces the provider snapshot; on failure the previous one stays in force.
    pub async fn reload(&self, db: &PgPool) {
        let stored = match registry::load(db).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(error = %error, "loading providers failed; keeping the previous set");
                return;
            }
        };
        let configured: Vec<Arc<Configured>> = stored
            .into_iter()
            .filter(|provider| provider.is_active)
            .filter_map(|provider| {
                let name = provider.spec.provider_name.clone();
                match provider.credentials(&self.key, |var| self.env.get(var).cloned()) {
                    Ok(Some(auth)) => {
                        let local =
                            Arc::new(Semaphore::new(provider.spec.concurrency_limit() as usize));
                        Some(Arc::new(Configured { provider, auth, local }))
                    }
                    Ok(None) => None,
                    Err(error) => {
                        tracing::warn!(provider = %name, error = %error, "cannot read stored credentials");
                        None
                    }
                }
            })
            .collect();
        *self.providers.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(configured);
    }

    /// The definition in force for a configured provider (people's edits applied); `None` when
    /// the provider is disabled or lacks credentials.
    pub fn configured(&self, name: &str) -> Option<crate::provider::ProviderSpec> {
        let providers = self.snapshot();
        providers
            .iter()
            .find(|c| c.provider.spec.provider_name == name)
            .map(|c| c.provider.spec.clone())
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Configured>>> {
        self.providers.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Upserts an alert's indicators and links them to it (with other enrichments' in one
    /// statement), returning each with its id.
    pub async fn link(
        &self,
        alert_id: Uuid,
        indicators: &[Indicator],
    ) -> Result<Vec<(Uuid, Indicator)>, sqlx::Error> {
        if indicators.is_empty() {
            return Ok(Vec::new());
        }
        self.batches.links.ask((alert_id, indicators.to_vec())).await
    }

    /// Looks up every (indicator, provider) pair that has no fresh result and stores the
    /// outcomes with the indicators' new verdicts. With `fresh_after`, a stored result is fresh
    /// only when it was also written at or after that time.
    pub async fn enrich(
        &self,
        db: &PgPool,
        indicators: &[(Uuid, Indicator)],
        fresh_after: Option<DateTime<Utc>>,
    ) -> Result<RunSummary, sqlx::Error> {
        let providers = self.snapshot();
        let targets: Vec<&(Uuid, Indicator)> =
            indicators.iter().filter(|(_, indicator)| super::is_enrichable(indicator)).collect();
        let mut pairs: Vec<(&(Uuid, Indicator), &Arc<Configured>)> = Vec::new();
        for target in &targets {
            for configured in providers.iter() {
                if configured.provider.spec.supports(target.1.kind) {
                    pairs.push((target, configured));
                }
            }
        }
        let mut summary = RunSummary::default();
        let metrics = crate::metrics::global();
        let mut pending: Vec<(Uuid, &Indicator, &Arc<Configured>)> = pairs
            .into_iter()
            .map(|((indicator_id, indicator), configured)| (*indicator_id, indicator, configured))
            .collect();
        // Single flight: in one statement, skip what has a fresh result and claim what nobody is
        // looking up; look that up and store it in one statement, then wait for the pairs other
        // workers hold; take over any whose claim expired without a result.
        while !pending.is_empty() {
            let wanted: Vec<ClaimRequest> = pending
                .iter()
                .map(|(id, indicator, c)| {
                    let hold = call_budget(&c.provider.spec, indicator)
                        + self.options.max_wait
                        + CLAIM_MARGIN;
                    (*id, c.provider.enrichment_provider_id, hold, fresh_after)
                })
                .collect();
            let claims = self.batches.claims.ask(wanted).await?;
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            for (entry, claim) in pending.into_iter().zip(claims) {
                match claim {
                    LookupClaim::Fresh => {
                        summary.cached += 1;
                        summary.succeeded.push(entry.2.provider.spec.provider_name.clone());
                        metrics.lookup(&entry.2.provider.spec.provider_name, true);
                    }
                    LookupClaim::Claimed => {
                        metrics.lookup(&entry.2.provider.spec.provider_name, false);
                        mine.push(entry)
                    }
                    LookupClaim::HeldElsewhere => theirs.push(entry),
                }
            }

            let results = self.look_up_all(&mine).await?;
            result_store::save(db, &results).await?;
            for ((_, _, configured), result) in mine.iter().zip(&results) {
                let name = configured.provider.spec.provider_name.clone();
                if result.success {
                    summary.succeeded.push(name)
                } else {
                    summary.failed.push(name)
                }
            }
            pending = self.wait_for_others(db, theirs, fresh_after, &mut summary).await?;
        }
        summary.succeeded.sort();
        summary.succeeded.dedup();
        summary.failed.sort();
        summary.failed.dedup();
        summary.failed.retain(|name| !summary.succeeded.contains(name));
        Ok(summary)
    }

    /// Waits until every pair another worker is looking up has a fresh result, and returns
    /// those whose claim lapsed without one, for the caller to take over.
    async fn wait_for_others<'a>(
        &self,
        db: &PgPool,
        mut theirs: Vec<(Uuid, &'a Indicator, &'a Arc<Configured>)>,
        fresh_after: Option<DateTime<Utc>>,
        summary: &mut RunSummary,
    ) -> Result<Vec<(Uuid, &'a Indicator, &'a Arc<Configured>)>, sqlx::Error> {
        while !theirs.is_empty() {
            tokio::time::sleep(WAIT_POLL).await;
            let keys: Vec<(Uuid, Uuid)> =
                theirs.iter().map(|(id, _, c)| (*id, c.provider.enrichment_provider_id)).collect();
            let states = result_store::lookup_states(db, &keys, fresh_after).await?;
            let answered: HashSet<(Uuid, Uuid)> =
                states.iter().filter(|(_, fresh, _)| *fresh).map(|(key, ..)| *key).collect();
            let lapsed: HashSet<(Uuid, Uuid)> = states
                .iter()
                .filter(|(_, fresh, claimed)| !fresh && !claimed)
                .map(|(key, ..)| *key)
                .collect();
            let mut still_waiting = Vec::new();
            let mut take_over = Vec::new();
            for entry in theirs {
                let key = (entry.0, entry.2.provider.enrichment_provider_id);
                if answered.contains(&key) {
                    summary.cached += 1;
                    summary.succeeded.push(entry.2.provider.spec.provider_name.clone());
                    crate::metrics::global().lookup(&entry.2.provider.spec.provider_name, true);
                } else if lapsed.contains(&key) {
                    take_over.push(entry);
                } else {
                    still_waiting.push(entry);
                }
            }
            if !take_over.is_empty() {
                take_over.extend(still_waiting);
                return Ok(take_over);
            }
            theirs = still_waiting;
        }
        Ok(Vec::new())
    }

    /// Runs the given lookups, each provider's as fast as its limits across every worker let
    /// them, and returns their results in the order given.
    async fn look_up_all(
        &self,
        lookups: &[(Uuid, &Indicator, &Arc<Configured>)],
    ) -> Result<Vec<NewResult>, sqlx::Error> {
        let mut by_provider: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
        for (position, (_, _, configured)) in lookups.iter().enumerate() {
            by_provider
                .entry(configured.provider.enrichment_provider_id)
                .or_default()
                .push(position);
        }
        let runs = by_provider.into_values().map(|positions| async move {
            let configured = lookups[positions[0]].2;
            let spec = &configured.provider.spec;
            let hold = positions
                .iter()
                .map(|&position| call_budget(spec, lookups[position].1))
                .max()
                .unwrap_or_default();
            let give_up_at = Instant::now() + self.options.max_wait;
            let mut done = Vec::with_capacity(positions.len());
            let mut queue = positions.as_slice();
            let fail_rest =
                |queue: &[usize], done: &mut Vec<(usize, NewResult)>, reason: String| {
                    done.extend(queue.iter().map(|&position| {
                        let (indicator_id, indicator, _) = lookups[position];
                        (position, self.failure(configured, indicator_id, indicator, &reason))
                    }));
                };
            let no_slot = || {
                format!(
                    "no call slot free within {} s (concurrency limit {})",
                    self.options.max_wait.as_secs(),
                    spec.concurrency_limit()
                )
            };
            while !queue.is_empty() {
                let want = queue.len().min(spec.concurrency_limit() as usize).max(1);
                let waiting = configured.local.clone().acquire_many_owned(want as u32);
                let Ok(Ok(local)) = tokio::time::timeout_at(give_up_at.into(), waiting).await
                else {
                    fail_rest(queue, &mut done, no_slot());
                    break;
                };
                let request = CallRequest {
                    provider_id: configured.provider.enrichment_provider_id,
                    wanted: want as u32,
                    concurrency_limit: spec.concurrency_limit(),
                    rate_limit_per_minute: spec.rate_limit_per_minute,
                    hold,
                };
                let grant = self.batches.calls.ask(CallOp::Acquire(request)).await?;
                // The batch answers every request it was given.
                let grant = grant.unwrap_or(Grant::Wait { retry_after: None });
                match grant {
                    Grant::Granted { lease_id, calls } => {
                        let (now, later) = queue.split_at((calls as usize).min(queue.len()));
                        let results = futures::future::join_all(now.iter().map(|&position| {
                            let (indicator_id, indicator, _) = lookups[position];
                            self.look_up(configured, indicator_id, indicator)
                        }))
                        .await;
                        drop(local);
                        // Not waited for: a release that fails leaves a lease that expires.
                        self.batches.calls.tell(CallOp::Release(lease_id));
                        done.extend(now.iter().copied().zip(results));
                        queue = later;
                    }
                    held_back => {
                        drop(local);
                        let pause = match held_back {
                            Grant::Paused { retry_after }
                            | Grant::Wait { retry_after: Some(retry_after) } => retry_after,
                            _ => SLOT_POLL,
                        };
                        if Instant::now() + pause > give_up_at {
                            let reason = match held_back {
                                Grant::Paused { .. } => format!(
                                    "the provider answered 429 and asked to wait {} s more",
                                    pause.as_secs_f64().ceil()
                                ),
                                Grant::Wait { retry_after: Some(_) } => format!(
                                    "rate limit of {} calls a minute reached",
                                    spec.rate_limit_per_minute.unwrap_or_default()
                                ),
                                _ => no_slot(),
                            };
                            fail_rest(queue, &mut done, reason);
                            break;
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
            }
            Ok::<_, sqlx::Error>(done)
        });
        let mut results: Vec<(usize, NewResult)> =
            futures::future::try_join_all(runs).await?.into_iter().flatten().collect();
        results.sort_by_key(|(position, _)| *position);
        Ok(results.into_iter().map(|(_, result)| result).collect())
    }

    /// A lookup that did not happen, recorded as failed for the failure TTL.
    fn failure(
        &self,
        configured: &Configured,
        indicator_id: Uuid,
        indicator: &Indicator,
        reason: &str,
    ) -> NewResult {
        tracing::info!(provider = %configured.provider.spec.provider_name, indicator = %indicator.value, reason, "lookup skipped");
        NewResult {
            indicator_id,
            enrichment_provider_id: configured.provider.enrichment_provider_id,
            success: false,
            extracted: json!({}),
            raw: None,
            error: Some(reason.to_owned()),
            malice: Malice::Pending,
            ttl: self.options.failure_ttl,
        }
    }

    /// One lookup, retried once where that can help, turned into a result to store.
    async fn look_up(
        &self,
        configured: &Configured,
        indicator_id: Uuid,
        indicator: &Indicator,
    ) -> NewResult {
        let spec = &configured.provider.spec;
        let started = Instant::now();
        let first = lookup(&self.client, spec, &configured.auth, indicator).await;
        if let Err(LookupError::RateLimited { retry_after, .. }) = &first {
            // Every worker holds off the provider as long as it asked (1 s when it did not say),
            // this one's next grant included: recorded before this lookup gives its call back.
            let pause = retry_after.unwrap_or(Duration::from_secs(1));
            let provider = configured.provider.enrichment_provider_id;
            if let Err(error) = self.batches.calls.ask(CallOp::Pause(provider, pause)).await {
                tracing::warn!(error = %error, "recording a provider's 429 pause failed");
            }
        }
        let outcome = match retry_pause(&first) {
            Some(pause) => {
                tokio::time::sleep(pause).await;
                lookup(&self.client, spec, &configured.auth, indicator).await
            }
            None => first,
        };
        crate::metrics::global().provider_call(
            &spec.provider_name,
            outcome.is_ok(),
            started.elapsed(),
        );
        let base = NewResult {
            indicator_id,
            enrichment_provider_id: configured.provider.enrichment_provider_id,
            success: true,
            extracted: json!({}),
            raw: None,
            error: None,
            malice: Malice::Pending,
            ttl: spec.cache_ttl(indicator.kind),
        };
        match outcome {
            Ok(Lookup::Found(found)) => {
                let malice = found_verdict(&spec.malice_rules, &found);
                let extracted = extract(&configured.provider.extractions, indicator.kind, &found);
                // The bodies move into `raw`: they can be large, and are not needed again.
                let raw: serde_json::Map<String, Value> = found
                    .responses
                    .into_iter()
                    .map(|response| (response.step, response.body))
                    .collect();
                NewResult {
                    extracted: Value::Object(extracted),
                    raw: Some(Value::Object(raw)),
                    malice,
                    ..base
                }
            }
            Ok(Lookup::NotFound) => {
                NewResult { malice: verdict(&spec.malice_rules, &Lookup::NotFound), ..base }
            }
            Err(error) => {
                tracing::info!(provider = %spec.provider_name, error = %error, "lookup failed");
                NewResult {
                    success: false,
                    error: Some(error.to_string()),
                    ttl: self.options.failure_ttl,
                    ..base
                }
            }
        }
    }
}

/// The longest one lookup can take once it may call: its steps' and token's timeouts, twice
/// (it may be retried), and one wait for `Retry-After`. A call lease is held this long; a
/// lookup's claim this plus the wait for a call and a margin, so a worker that dies mid-lookup
/// delays the others by at most that.
fn call_budget(spec: &crate::provider::ProviderSpec, indicator: &Indicator) -> Duration {
    let steps: u64 = spec.steps_for(indicator.kind).map(|(_, step)| step.timeout_seconds).sum();
    let token = spec.token.as_ref().map_or(0, |token| token.timeout_seconds);
    Duration::from_secs(2 * (steps + token)) + MAX_RETRY_AFTER
}

/// How long to wait before the one retry, if this outcome deserves one.
fn retry_pause(outcome: &Result<Lookup, LookupError>) -> Option<Duration> {
    match outcome {
        Err(LookupError::RateLimited { retry_after: Some(after), .. })
            if *after <= MAX_RETRY_AFTER =>
        {
            Some(*after)
        }
        Err(LookupError::RateLimited { retry_after: None, .. }) => Some(Duration::from_secs(1)),
        Err(LookupError::Transient { .. }) => Some(TRANSIENT_RETRY_PAUSE),
        _ => None,
    }
}
