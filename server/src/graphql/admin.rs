//! Administration over GraphQL (scope `admin` unless noted): API keys, enrichment providers
//! (import, settings, credentials, field extractions, test runs), on-demand enrichment, and the
//! job queue (jobs listed, dead ones retried).

use std::collections::BTreeMap;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use domain::api_key::{KeyType, NewKey, Scope};
use domain::provider::registry::{self, ProviderUpdate, RegistryError};
use domain::store::mapping::NewMapping;

use super::types::{EnrichmentProvider, Indicator, IndicatorType};
use super::{bad_input, coded, internal, not_found, require, state};

/// An API key as listed; its secret is never shown after creation.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct ApiKey {
    pub(crate) id: ID,
    pub(crate) name: String,
    /// The first characters, for telling keys apart and revoking.
    pub(crate) prefix: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) key_type: String,
    pub(crate) allowed_sources: Option<Vec<String>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    /// Requests a minute this key may make, across every server together; unlimited when null.
    pub(crate) rate_limit_per_minute: Option<i32>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(InputObject, Debug)]
pub(crate) struct ApiKeyInput {
    pub(crate) name: String,
    /// `alerts:read`, `alerts:write`, `enrichments:read`, `agents:read`, `agents:write`, `admin`.
    pub(crate) scopes: Vec<String>,
    /// `human` (default) or `agent`.
    pub(crate) key_type: Option<String>,
    /// Sources this key may ingest into; all when omitted.
    pub(crate) allowed_sources: Option<Vec<String>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    /// Requests a minute this key may make, across every server together (at least 1); beyond
    /// it, requests are refused with `RATE_LIMITED` until the minute ends. Unlimited when
    /// omitted.
    pub(crate) rate_limit_per_minute: Option<i32>,
}

/// A new key: the secret is shown this once.
#[derive(SimpleObject, Debug)]
pub(crate) struct CreatedApiKey {
    pub(crate) key: String,
    pub(crate) api_key: ApiKey,
}

#[derive(InputObject, Debug, Default)]
pub(crate) struct ProviderSettingsInput {
    /// A whole new definition in the importable JSON format (user providers only).
    pub(crate) definition: Option<Json<serde_json::Value>>,
    pub(crate) base_url: Option<String>,
    /// Go back to the definition's own base URL.
    #[graphql(default)]
    pub(crate) reset_base_url: bool,
    pub(crate) concurrency_limit: Option<i32>,
    pub(crate) rate_limit_per_minute: Option<i32>,
    /// Remove the rate limit.
    #[graphql(default)]
    pub(crate) clear_rate_limit: bool,
    pub(crate) is_active: Option<bool>,
}

/// What a test lookup did, step by step, secrets masked.
#[derive(SimpleObject, Debug)]
pub(crate) struct ProviderTest {
    pub(crate) success: bool,
    /// `found`, `not_found` or the error.
    pub(crate) outcome: String,
    pub(crate) extracted: Option<Json<serde_json::Value>>,
    pub(crate) malice: Option<super::types::Malice>,
    pub(crate) steps: Vec<ProviderTestStep>,
}

#[derive(SimpleObject, Debug)]
pub(crate) struct ProviderTestStep {
    pub(crate) step: String,
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) request_headers: Json<serde_json::Value>,
    pub(crate) request_body: Option<String>,
    pub(crate) status: Option<i32>,
    pub(crate) response_body: Option<String>,
    pub(crate) elapsed_ms: i32,
    pub(crate) error: Option<String>,
}

fn registry_error(error: RegistryError) -> async_graphql::Error {
    match error {
        RegistryError::Invalid(invalid) => {
            let problems: Vec<serde_json::Value> = invalid
                .problems
                .iter()
                .map(|p| serde_json::json!({"field": p.field, "message": p.message}))
                .collect();
            super::invalid(&invalid.to_string(), problems)
        }
        error @ (RegistryError::Duplicate(_) | RegistryError::Builtin(..)) => {
            coded(&error.to_string(), "CONFLICT")
        }
        RegistryError::NotFound(_) => not_found("enrichment provider"),
        error @ RegistryError::UnknownCredential { .. } => {
            bad_input("credentials", &error.to_string())
        }
        RegistryError::Secret(error) => internal(error),
        RegistryError::Db(error) => internal(error),
    }
}

fn listed(row: domain::store::api_key::KeyListing) -> ApiKey {
    ApiKey {
        id: ID(row.api_key_id.to_string()),
        name: row.name,
        prefix: row.prefix,
        scopes: row.scopes,
        key_type: row.key_type,
        allowed_sources: row.allowed_sources,
        expires_at: row.expires_at,
        rate_limit_per_minute: row.rate_limit_per_minute,
        revoked_at: row.revoked_at,
        created_at: row.created_at,
    }
}

pub(crate) fn provider(provider: &registry::StoredProvider) -> EnrichmentProvider {
    let spec = &provider.spec;
    EnrichmentProvider {
        name: spec.provider_name.clone(),
        display_name: spec.display_name.clone(),
        description: Some(spec.description.clone()).filter(|d| !d.is_empty()),
        supported_indicator_types: spec
            .supported_indicator_types
            .iter()
            .map(|&t| t.into())
            .collect(),
        base_url: spec.base_url.clone(),
        auth_type: serde_json::to_value(spec.auth_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        concurrency_limit: spec.concurrency_limit() as i32,
        rate_limit_per_minute: spec.rate_limit_per_minute.map(|l| l as i32),
        is_builtin: provider.is_builtin,
        is_active: provider.is_active,
        has_stored_credentials: provider.has_stored_credentials(),
        definition: Json(serde_json::to_value(spec).unwrap_or_default()),
        field_extractions: Json(serde_json::to_value(&provider.extractions).unwrap_or_default()),
    }
}

/// A count under a label.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Count {
    pub(crate) label: String,
    pub(crate) count: i64,
}

/// Alert metrics over a window of ingest time.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Metrics {
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) alert_count: i64,
    pub(crate) by_severity: Vec<Count>,
    pub(crate) by_status: Vec<Count>,
    pub(crate) by_source: Vec<Count>,
    pub(crate) by_malice: Vec<Count>,
    /// Mean time to acknowledge, in seconds.
    pub(crate) mtta_seconds: Option<f64>,
    /// Mean time to close, in seconds.
    pub(crate) mttc_seconds: Option<f64>,
    /// Mean time from ingest to enriched, in seconds.
    pub(crate) mean_time_to_enrich_seconds: Option<f64>,
    /// Closed alerts classified false positive, over closed alerts (0 to 1).
    pub(crate) false_positive_rate: Option<f64>,
    /// Alerts with at least one successful provider result, over all alerts (0 to 1).
    pub(crate) enrichment_coverage: Option<f64>,
}

/// A field mapping that extracts indicators at ingest (pass 2: system, pass 3: yours).
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct IndicatorMapping {
    pub(crate) id: ID,
    /// `null`: every source.
    pub(crate) source_name: Option<String>,
    /// `raw` (the payload as sent) or `normalized` (the normalized alert).
    pub(crate) extract_from: String,
    pub(crate) field_path: String,
    pub(crate) indicator_type: IndicatorType,
    pub(crate) is_system: bool,
    pub(crate) is_active: bool,
    pub(crate) description: Option<String>,
}

#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum ExtractFrom {
    Raw,
    Normalized,
}

#[derive(InputObject, Debug)]
pub(crate) struct IndicatorMappingInput {
    /// `sentinel`, `elastic`, `splunk` or `generic`; every source when omitted.
    pub(crate) source_name: Option<String>,
    pub(crate) extract_from: ExtractFrom,
    /// A dot path such as `result.dest_host` or `Entities[].Url`.
    pub(crate) field_path: String,
    pub(crate) indicator_type: IndicatorType,
    pub(crate) description: Option<String>,
}

fn mapping(row: domain::store::mapping::MappingRow) -> IndicatorMapping {
    IndicatorMapping {
        id: ID(row.indicator_mapping_id.to_string()),
        source_name: row.source_name,
        extract_from: row.extract_from,
        field_path: row.field_path,
        indicator_type: row.indicator_type.into(),
        is_system: row.is_system,
        is_active: row.is_active,
        description: row.description,
    }
}

/// A mapping as the domain takes it.
fn new_mapping(input: &IndicatorMappingInput) -> Result<NewMapping<'_>> {
    let source = input
        .source_name
        .as_deref()
        .map(|s| {
            s.parse::<domain::alert::Source>()
                .map_err(|_| bad_input("sourceName", &format!("{s:?} is not a source")))
        })
        .transpose()?;
    let target = match input.extract_from {
        ExtractFrom::Raw => domain::normalize::MappingTarget::Raw,
        ExtractFrom::Normalized => domain::normalize::MappingTarget::Normalized,
    };
    Ok(NewMapping {
        source,
        target,
        path: &input.field_path,
        indicator_type: input.indicator_type.into(),
        description: input.description.as_deref(),
    })
}

/// The mapping with this id, as listed.
async fn find_mapping(db: &sqlx::PgPool, id: uuid::Uuid) -> Result<IndicatorMapping> {
    let rows = domain::store::mapping::list(db).await.map_err(internal)?;
    rows.into_iter()
        .find(|row| row.indicator_mapping_id == id)
        .map(mapping)
        .ok_or_else(|| not_found("indicator mapping"))
}

fn mapping_error(error: domain::mapping::MappingError) -> async_graphql::Error {
    use domain::mapping::MappingError as E;
    match error {
        error @ E::InvalidPath => bad_input("fieldPath", &error.to_string()),
        error @ E::Duplicate => coded(&error.to_string(), "CONFLICT"),
        E::NotFound(_) => not_found("user-defined indicator mapping"),
        E::Db(error) => internal(error),
    }
}

#[derive(Default)]
pub(crate) struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Alert counts, MTTA, MTTC, time to enrich, false-positive rate and enrichment coverage
    /// for alerts ingested in `[from, to)` (default: the last 24 hours).
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Metrics> {
        require(ctx, Scope::AlertsRead)?;
        let to = to.unwrap_or_else(Utc::now);
        let from = from.unwrap_or(to - chrono::Duration::hours(24));
        if from >= to {
            return Err(bad_input("from", "must be before to"));
        }
        let m =
            domain::store::metrics::alerts(&state(ctx)?.db, from, to).await.map_err(internal)?;
        let counts = |pairs: Vec<(String, i64)>| -> Vec<Count> {
            pairs.into_iter().map(|(label, count)| Count { label, count }).collect()
        };
        Ok(Metrics {
            from,
            to,
            alert_count: m.total,
            by_severity: counts(m.by_severity),
            by_status: counts(m.by_status),
            by_source: counts(m.by_source),
            by_malice: counts(m.by_malice),
            mtta_seconds: m.mean_time_to_acknowledge,
            mttc_seconds: m.mean_time_to_close,
            mean_time_to_enrich_seconds: m.mean_time_to_enrich,
            false_positive_rate: m.false_positive_rate,
            enrichment_coverage: m.enrichment_coverage,
        })
    }

    /// The indicator mappings applied at ingest (scope `admin`).
    async fn indicator_mappings(&self, ctx: &Context<'_>) -> Result<Vec<IndicatorMapping>> {
        require(ctx, Scope::Admin)?;
        let rows = domain::store::mapping::list(&state(ctx)?.db).await.map_err(internal)?;
        Ok(rows.into_iter().map(mapping).collect())
    }

    /// Every API key, newest first (never their secrets).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        require(ctx, Scope::Admin)?;
        let keys = domain::api_key::list(&state(ctx)?.db).await.map_err(internal)?;
        Ok(keys.into_iter().map(listed).collect())
    }

    /// The audit log of configuration changes, newest first: API keys, providers and their
    /// credentials (field names only) and extractions, indicator mappings, agents, context
    /// documents and detection rules, each with who made it. `before` (an event's id) pages
    /// back.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        before: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i64,
    ) -> Result<Vec<super::types::ActivityEvent>> {
        require(ctx, Scope::Admin)?;
        let before = before
            .map(|id| id.parse::<i64>().map_err(|_| bad_input("before", "is not an event id")))
            .transpose()?;
        let rows = domain::store::activity::configuration(&state(ctx)?.db, before, first)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Jobs, newest first: by default the dead ones, which wait for `retryJob`. `before` (a
    /// job's id) pages back through older jobs.
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(JobState::Dead)")] state: Option<JobState>,
        kind: Option<String>,
        before: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i64,
    ) -> Result<Vec<Job>> {
        require(ctx, Scope::Admin)?;
        let before = before.map(|id| job_id(&id, "before")).transpose()?;
        let rows = domain::store::job::list(
            &super::state(ctx)?.db,
            state.map(Into::into),
            kind.as_deref(),
            before,
            first,
        )
        .await
        .map_err(internal)?;
        rows.into_iter().map(job).collect()
    }
}

/// Where a job is in its life.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::store::job::JobState")]
pub(crate) enum JobState {
    /// Waiting for a worker, or for its next attempt's time.
    Queued,
    Running,
    Succeeded,
    /// Out of attempts, or failed for good: kept until it is retried.
    Dead,
}

/// A unit of background work: enriching an alert, delivering a webhook.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: ID,
    /// `enrich_alert`, `deliver_webhook`, ….
    pub(crate) kind: String,
    pub(crate) state: JobState,
    /// Attempts made so far.
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    /// What the job works on (an alert's id and its indicators, a delivery's id).
    pub(crate) payload: Json<serde_json::Value>,
    /// Why the last attempt failed.
    pub(crate) last_error: Option<String>,
    /// When it runs next (queued jobs).
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

fn job(row: domain::store::job::JobRow) -> Result<Job> {
    Ok(Job {
        id: ID(row.job_id.to_string()),
        kind: row.kind,
        state: domain::store::job::JobState::parse(&row.state)
            .ok_or_else(|| super::unexpected(&format!("a job in state {:?}", row.state)))?
            .into(),
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        payload: Json(row.payload),
        last_error: row.last_error,
        run_at: row.run_at,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

fn job_id(id: &ID, field: &str) -> Result<i64> {
    id.parse().map_err(|_| bad_input(field, &format!("{:?} is not a job id", id.as_str())))
}

#[derive(Default)]
pub(crate) struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Adds an indicator mapping; every server applies it within a second.
    async fn create_indicator_mapping(
        &self,
        ctx: &Context<'_>,
        input: IndicatorMappingInput,
    ) -> Result<IndicatorMapping> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let db = &state(ctx)?.db;
        let id = domain::mapping::create(db, &new_mapping(&input)?, actor)
            .await
            .map_err(mapping_error)?;
        find_mapping(db, id).await
    }

    /// Replaces what a user-defined mapping extracts (system ones can only be turned off);
    /// every server applies it within a second.
    async fn update_indicator_mapping(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: IndicatorMappingInput,
    ) -> Result<IndicatorMapping> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let id = super::parse_id(&id, "id")?;
        let db = &state(ctx)?.db;
        domain::mapping::update(db, id, &new_mapping(&input)?, actor)
            .await
            .map_err(mapping_error)?;
        find_mapping(db, id).await
    }

    /// Turns a mapping (system ones included) on or off.
    async fn set_indicator_mapping_active(
        &self,
        ctx: &Context<'_>,
        id: ID,
        is_active: bool,
    ) -> Result<bool> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let id = super::parse_id(&id, "id")?;
        if domain::mapping::set_active(&state(ctx)?.db, id, is_active, actor)
            .await
            .map_err(internal)?
        {
            Ok(true)
        } else {
            Err(not_found("indicator mapping"))
        }
    }

    /// Deletes a user-defined mapping (system ones can only be turned off).
    async fn delete_indicator_mapping(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let id = super::parse_id(&id, "id")?;
        domain::mapping::delete(&state(ctx)?.db, id, actor).await.map_err(mapping_error)?;
        Ok(true)
    }

    /// Creates an API key; the key itself is returned this once.
    async fn create_api_key(&self, ctx: &Context<'_>, input: ApiKeyInput) -> Result<CreatedApiKey> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let scopes = input
            .scopes
            .iter()
            .enumerate()
            .map(|(n, s)| {
                s.parse::<Scope>().map_err(|e| bad_input(&format!("scopes[{n}]"), &e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let key_type = match input.key_type.as_deref().unwrap_or("human") {
            "human" => KeyType::Human,
            "agent" => KeyType::Agent,
            other => return Err(bad_input("keyType", &format!("{other:?} is not human or agent"))),
        };
        let allowed_sources = input
            .allowed_sources
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(n, s)| {
                        s.parse().map_err(|_| {
                            bad_input(
                                &format!("allowedSources[{n}]"),
                                &format!("{s:?} is not a source"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let new = NewKey {
            name: input.name,
            scopes,
            key_type,
            allowed_sources,
            expires_at: input.expires_at,
            rate_limit_per_minute: input.rate_limit_per_minute,
        };
        let db = &state(ctx)?.db;
        let (principal, key) =
            domain::api_key::create(db, &new, actor).await.map_err(|error| match error {
                domain::api_key::CreateKeyError::Db(error) => internal(error),
                domain::api_key::CreateKeyError::RateLimitNotPositive => {
                    bad_input("rateLimitPerMinute", "must be at least 1")
                }
                other => bad_input("input", &other.to_string()),
            })?;
        let listed_key = domain::api_key::list(db)
            .await
            .map_err(internal)?
            .into_iter()
            .find(|row| row.api_key_id == principal.api_key_id)
            .ok_or_else(|| internal("a new key was not listed"))?;
        Ok(CreatedApiKey { key, api_key: listed(listed_key) })
    }

    /// Puts a dead job back in the queue with a fresh set of attempts; a worker takes it at
    /// once.
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> Result<Job> {
        let principal = require(ctx, Scope::Admin)?;
        let id = job_id(&id, "id")?;
        let db = &state(ctx)?.db;
        let mut tx = db.begin().await.map_err(internal)?;
        let retried = domain::store::job::retry_dead(&mut tx, id).await.map_err(internal)?;
        let row = domain::store::job::get(&mut *tx, id).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        match row {
            Some(row) if retried => {
                tracing::info!(job.id = id, actor = %principal.name, "dead job retried");
                job(row)
            }
            Some(row) => Err(coded(
                &format!("only a dead job can be retried; this one is {}", row.state),
                "CONFLICT",
            )),
            None => Err(not_found("job")),
        }
    }

    /// Revokes the key with this prefix; every server stops accepting it within a second.
    async fn revoke_api_key(&self, ctx: &Context<'_>, prefix: String) -> Result<bool> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        if domain::api_key::revoke(&state(ctx)?.db, &prefix, actor).await.map_err(internal)? {
            Ok(true)
        } else {
            Err(not_found("active API key with that prefix"))
        }
    }

    /// Imports a provider in the JSON format of `greynoise.provider.json`, with its field
    /// extractions (the format of `greynoise.field_extractions.json`).
    async fn import_enrichment_provider(
        &self,
        ctx: &Context<'_>,
        definition: Json<serde_json::Value>,
        field_extractions: Option<Json<serde_json::Value>>,
    ) -> Result<EnrichmentProvider> {
        self.create_enrichment_provider(ctx, definition, field_extractions, None).await
    }

    /// Creates a provider from its definition (the format of `greynoise.provider.json`), with
    /// its field extractions and credentials, in one step: it is usable from the first lookup,
    /// or nothing is stored. Credentials are encrypted and never returned.
    async fn create_enrichment_provider(
        &self,
        ctx: &Context<'_>,
        definition: Json<serde_json::Value>,
        field_extractions: Option<Json<serde_json::Value>>,
        credentials: Option<Json<BTreeMap<String, String>>>,
    ) -> Result<EnrichmentProvider> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let state = state(ctx)?;
        let credentials = match &credentials {
            Some(fields) => Some((super::secret_key(state)?, &fields.0)),
            None => None,
        };
        let extractions = field_extractions.as_ref().map(|json| &json.0);
        registry::create(&state.db, &definition.0, extractions, credentials, actor)
            .await
            .map_err(registry_error)?;
        let name = definition.0["provider_name"].as_str().unwrap_or_default().to_owned();
        Ok(provider(&registry::find(&state.db, &name).await.map_err(registry_error)?))
    }

    /// Changes a provider's settings (or a user provider's whole definition); every worker
    /// uses the change within a second.
    async fn update_enrichment_provider(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: ProviderSettingsInput,
    ) -> Result<EnrichmentProvider> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let positive = |field: &str, value: Option<i32>| -> Result<Option<u32>> {
            value
                .map(|v| u32::try_from(v).map_err(|_| bad_input(field, "must be at least 1")))
                .transpose()
        };
        let update = ProviderUpdate {
            definition: input.definition.map(|json| json.0),
            base_url: match (input.base_url, input.reset_base_url) {
                (Some(_), true) => {
                    return Err(bad_input("resetBaseUrl", "give baseUrl or reset it, not both"));
                }
                (Some(url), false) => Some(Some(url)),
                (None, true) => Some(None),
                (None, false) => None,
            },
            concurrency_limit: positive("concurrencyLimit", input.concurrency_limit)?.map(Some),
            rate_limit_per_minute: match (
                positive("rateLimitPerMinute", input.rate_limit_per_minute)?,
                input.clear_rate_limit,
            ) {
                (Some(_), true) => {
                    return Err(bad_input(
                        "clearRateLimit",
                        "give rateLimitPerMinute or clear it, not both",
                    ));
                }
                (Some(limit), false) => Some(Some(limit)),
                (None, true) => Some(None),
                (None, false) => None,
            },
            is_active: input.is_active,
        };
        let stored = registry::update(&state(ctx)?.db, &name, &update, actor)
            .await
            .map_err(registry_error)?;
        Ok(provider(&stored))
    }

    /// Deletes a user provider (built-ins are deactivated instead).
    async fn delete_enrichment_provider(&self, ctx: &Context<'_>, name: String) -> Result<bool> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        registry::delete(&state(ctx)?.db, &name, actor).await.map_err(registry_error)?;
        Ok(true)
    }

    /// Stores a provider's credentials, encrypted; they are never returned.
    async fn set_enrichment_provider_credentials(
        &self,
        ctx: &Context<'_>,
        name: String,
        credentials: Json<BTreeMap<String, String>>,
    ) -> Result<EnrichmentProvider> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        registry::set_credentials(&state.db, key, &name, &credentials.0, actor)
            .await
            .map_err(registry_error)?;
        Ok(provider(&registry::find(&state.db, &name).await.map_err(registry_error)?))
    }

    /// Replaces a provider's user-defined field extractions, in bulk.
    async fn set_field_extractions(
        &self,
        ctx: &Context<'_>,
        provider: String,
        extractions: Json<serde_json::Value>,
    ) -> Result<i32> {
        let actor = require(ctx, Scope::Admin)?.name.as_str();
        let count = registry::set_extractions(&state(ctx)?.db, &provider, &extractions.0, actor)
            .await
            .map_err(registry_error)?;
        Ok(count as i32)
    }

    /// Runs one lookup with a provider now, without caching it, and shows every step's request
    /// and answer with credentials masked.
    async fn test_enrichment_provider(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(name = "type")] kind: IndicatorType,
        value: String,
    ) -> Result<ProviderTest> {
        require(ctx, Scope::Admin)?;
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        let stored = registry::find(&state.db, &name).await.map_err(registry_error)?;
        let kind: domain::alert::IndicatorType = kind.into();
        let indicator = domain::indicator::clean(kind, &value)
            .ok_or_else(|| bad_input("value", &format!("{value:?} is not a valid {kind}")))?;
        let env = &state.cfg.provider_env;
        let auth = stored
            .credentials(key, |var| env.get(var).cloned())
            .map_err(internal)?
            .ok_or_else(|| {
                let missing: Vec<String> = stored
                    .spec
                    .required_credentials()
                    .into_iter()
                    .map(|field| registry::env_var(&name, &field))
                    .collect();
                coded(
                    &format!("{name} has no credentials; store them or set {}", missing.join(", ")),
                    "NOT_CONFIGURED",
                )
            })?;
        let traced =
            domain::provider::lookup_traced(&state.outbound, &stored.spec, &auth, &indicator).await;
        let steps = traced
            .trace
            .into_iter()
            .map(|step| ProviderTestStep {
                step: step.step,
                method: step.method,
                url: step.url,
                request_headers: Json(serde_json::Value::Object(
                    step.request_headers
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                )),
                request_body: step.request_body,
                status: step.status.map(i32::from),
                response_body: step.response_body,
                elapsed_ms: step.elapsed.as_millis().min(i32::MAX as u128) as i32,
                error: step.error,
            })
            .collect();
        Ok(match traced.result {
            Ok(lookup) => {
                let extracted = match &lookup {
                    domain::provider::Lookup::Found(found) => {
                        Some(Json(serde_json::Value::Object(domain::provider::extract(
                            &stored.extractions,
                            kind,
                            found,
                        ))))
                    }
                    domain::provider::Lookup::NotFound => None,
                };
                let outcome = match &lookup {
                    domain::provider::Lookup::Found(_) => "found",
                    domain::provider::Lookup::NotFound => "not_found",
                };
                let malice = domain::provider::verdict(&stored.spec.malice_rules, &lookup);
                ProviderTest {
                    success: true,
                    outcome: outcome.into(),
                    extracted,
                    malice: Some(malice.into()),
                    steps,
                }
            }
            Err(error) => ProviderTest {
                success: false,
                outcome: error.to_string(),
                extracted: None,
                malice: None,
                steps,
            },
        })
    }

    /// Enriches one indicator now with every configured provider, through the shared cache
    /// (scope `alerts:write`), and returns it with its results.
    async fn enrich_indicator(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] kind: IndicatorType,
        value: String,
    ) -> Result<Indicator> {
        require(ctx, Scope::AlertsWrite)?;
        let state = state(ctx)?;
        let enricher = state.enricher.as_ref().ok_or_else(|| {
            coded(
                "this server has no ALERTGRAPH_SECRET_KEY, so it cannot call providers",
                "NOT_CONFIGURED",
            )
        })?;
        // A provider configured a moment ago counts: read the configuration as committed
        // rather than wait for the NOTIFY-driven reload (on-demand lookups are rare).
        enricher.reload(&state.db).await;
        let kind: domain::alert::IndicatorType = kind.into();
        domain::enrich::enrich_indicator(&state.db, enricher, kind, &value).await.map_err(
            |error| match error {
                domain::enrich::EnrichIndicatorError::InvalidValue(..) => {
                    bad_input("value", &error.to_string())
                }
                domain::enrich::EnrichIndicatorError::Db(error) => internal(error),
            },
        )?;
        let clean =
            domain::indicator::clean(kind, &value).ok_or_else(|| bad_input("value", "invalid"))?;
        let row = domain::store::graph::indicator_by_value(&state.db, kind, &clean.value)
            .await
            .map_err(internal)?
            .ok_or_else(|| not_found("indicator"))?;
        Ok(Indicator(row))
    }
}
