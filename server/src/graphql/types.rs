//! The graph's types: thin wrappers over the domain's rows. Relations resolve through the
//! request's [`Loaders`](super::loaders::Loaders), so sibling objects share one statement.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use domain::api_key::Scope;
use domain::store::alert::AlertRow;
use domain::store::indicator::IndicatorRow;
use uuid::Uuid;

use super::loaders::{
    ActivityOf, AlertById, AlertCount, DeliveriesOf, DocumentsOf, FindingsOf, IndicatorById,
    IndicatorsOf, NewestAlertsOf, RawPayloadOf, RawResultsOf, RelatedOf, ResultsOf, RuleById,
    load_many, loaders,
};
use super::plain::Plain;
use super::{require, unexpected};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::alert::Severity")]
pub(crate) enum Severity {
    Pending,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::alert::AlertStatus")]
pub(crate) enum AlertStatus {
    Open,
    Triaging,
    Escalated,
    Closed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::alert::Malice")]
pub(crate) enum Malice {
    Pending,
    Benign,
    Suspicious,
    Malicious,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::alert::EnrichmentStatus")]
pub(crate) enum EnrichmentStatus {
    Pending,
    Enriched,
    Failed,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::alert::IndicatorType")]
pub(crate) enum IndicatorType {
    Ip,
    Domain,
    Url,
    #[graphql(name = "HASH_MD5")]
    HashMd5,
    #[graphql(name = "HASH_SHA1")]
    HashSha1,
    #[graphql(name = "HASH_SHA256")]
    HashSha256,
    Email,
    Account,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::context::DocumentType")]
pub(crate) enum DocumentType {
    Runbook,
    IrPlan,
    Sop,
    Playbook,
    DetectionGuide,
    Other,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::triage::CloseClassification")]
pub(crate) enum CloseClassification {
    TruePositiveSuspiciousActivity,
    BenignPositiveSuspiciousButExpected,
    FalsePositiveIncorrectDetectionLogic,
    FalsePositiveInaccurateData,
    Undetermined,
    Duplicate,
    NotApplicable,
}

/// Relay page information.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct PageInfo {
    pub(crate) has_next_page: bool,
    pub(crate) has_previous_page: bool,
    pub(crate) start_cursor: Option<String>,
    pub(crate) end_cursor: Option<String>,
}

/// An alert: the normalized fields, its verdict, and its place in the graph.
#[derive(Debug, Clone)]
pub(crate) struct Alert(pub AlertRow);

#[Object]
impl Alert {
    async fn id(&self) -> ID {
        ID(self.0.alert_id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn severity(&self) -> Severity {
        self.0.severity.into()
    }
    async fn status(&self) -> AlertStatus {
        self.0.status.into()
    }
    /// Why the alert was closed, when it is.
    async fn close_classification(&self) -> Option<CloseClassification> {
        self.close_classification_value()
    }
    /// The source's name (`sentinel`, `elastic`, `splunk`, `generic`).
    async fn source(&self) -> &str {
        &self.0.source_name
    }
    async fn source_name(&self) -> &str {
        &self.0.source_name
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn ingested_at(&self) -> DateTime<Utc> {
        self.0.ingested_at
    }
    async fn enriched_at(&self) -> Option<DateTime<Utc>> {
        self.0.enriched_at
    }
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.0.acknowledged_at
    }
    async fn triaged_at(&self) -> Option<DateTime<Utc>> {
        self.0.triaged_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }
    async fn duplicate_count(&self) -> i32 {
        self.0.duplicate_count
    }
    async fn enrichment_status(&self) -> EnrichmentStatus {
        self.0.enrichment_status.into()
    }
    /// The verdict: the analyst's override, else the worst of its indicators'.
    async fn malice(&self) -> Malice {
        self.0.malice_override.unwrap_or(self.0.malice).into()
    }
    /// The verdict computed from the indicators, whatever an analyst said.
    async fn computed_malice(&self) -> Malice {
        self.0.malice.into()
    }
    async fn malice_override(&self) -> Option<Malice> {
        self.0.malice_override.map(Into::into)
    }
    /// The payload exactly as the SIEM sent it.
    async fn raw_payload(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        let raw = loaders(ctx)?
            .load_one(RawPayloadOf(self.0.alert_id))
            .await?
            .ok_or_else(|| unexpected("the alert vanished"))?;
        let parsed = serde_json::from_str(&raw)
            .map_err(|_| unexpected("a stored raw payload is not JSON"))?;
        Ok(Json(parsed))
    }
    async fn indicators(&self, ctx: &Context<'_>) -> Result<Vec<Plain<Indicator>>> {
        Ok(self.indicator_rows(ctx).await?.into_iter().map(Plain).collect())
    }
    async fn detection_rule(&self, ctx: &Context<'_>) -> Result<Option<DetectionRule>> {
        let Some(id) = self.0.detection_rule_id else { return Ok(None) };
        Ok(loaders(ctx)?.load_one(RuleById(id)).await?.map(DetectionRule))
    }
    async fn context_documents(&self, ctx: &Context<'_>) -> Result<Vec<ContextDocument>> {
        let rows = loaders(ctx)?.load_one(DocumentsOf(self.0.alert_id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(ContextDocument).collect())
    }
    async fn findings(&self, ctx: &Context<'_>) -> Result<Vec<Finding>> {
        let rows = loaders(ctx)?.load_one(FindingsOf(self.0.alert_id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(Finding::from).collect())
    }
    /// What happened to the alert, oldest first.
    async fn activity(&self, ctx: &Context<'_>) -> Result<Vec<ActivityEvent>> {
        let rows = loaders(ctx)?.load_one(ActivityOf(self.0.alert_id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(ActivityEvent::from).collect())
    }
    /// The alert's webhook deliveries to agents (scope `agents:read`).
    async fn deliveries(&self, ctx: &Context<'_>) -> Result<Vec<Delivery>> {
        require(ctx, Scope::AgentsRead)?;
        let rows = loaders(ctx)?.load_one(DeliveriesOf(self.0.alert_id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(Delivery::from).collect())
    }
    /// Other alerts sharing at least one indicator with this one, most recent first.
    async fn related_alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i64,
    ) -> Result<Vec<RelatedAlert>> {
        let related =
            loaders(ctx)?.load_one(RelatedOf(self.0.alert_id, first)).await?.unwrap_or_default();
        Ok(related
            .into_iter()
            .map(|(alert_id, shared)| RelatedAlert { alert_id, shared })
            .collect())
    }
}

/// An alert that shares indicators with another.
#[derive(Debug, Clone)]
pub(crate) struct RelatedAlert {
    alert_id: Uuid,
    shared: Vec<Uuid>,
}

#[Object]
impl RelatedAlert {
    async fn alert(&self, ctx: &Context<'_>) -> Result<Alert> {
        loaders(ctx)?
            .load_one(AlertById(self.alert_id))
            .await?
            .map(Alert)
            .ok_or_else(|| unexpected("a related alert vanished"))
    }
    /// The indicators the two alerts have in common.
    async fn shared_indicators(&self, ctx: &Context<'_>) -> Result<Vec<Plain<Indicator>>> {
        let keys: Vec<IndicatorById> = self.shared.iter().copied().map(IndicatorById).collect();
        let rows = load_many(loaders(ctx)?, keys).await?;
        Ok(rows.into_iter().map(|row| Plain(Indicator(row))).collect())
    }
}

/// An indicator of compromise: one global node per (type, value).
#[derive(Debug, Clone)]
pub(crate) struct Indicator(pub IndicatorRow);

#[Object]
impl Indicator {
    async fn id(&self) -> ID {
        ID(self.0.indicator_id.to_string())
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> IndicatorType {
        self.0.kind.into()
    }
    async fn value(&self) -> &str {
        &self.0.value
    }
    async fn first_seen(&self) -> DateTime<Utc> {
        self.0.first_seen
    }
    async fn last_seen(&self) -> DateTime<Utc> {
        self.0.last_seen
    }
    /// The verdict: the analyst's override, else the worst across providers.
    async fn malice(&self) -> Malice {
        self.0.malice_override.unwrap_or(self.0.malice).into()
    }
    async fn computed_malice(&self) -> Malice {
        self.0.malice.into()
    }
    async fn malice_override(&self) -> Option<Malice> {
        self.0.malice_override.map(Into::into)
    }
    /// Whether providers are ever asked about it (public IPs, external domains, …).
    async fn enrichable(&self) -> bool {
        self.is_enrichable()
    }
    /// One result per provider.
    async fn enrichments(&self, ctx: &Context<'_>) -> Result<Vec<Plain<Enrichment>>> {
        let rows = self.enrichment_rows(ctx).await?;
        Ok(rows.iter().map(|row| Plain(Enrichment(row.clone()))).collect())
    }
    /// How many alerts it appears in.
    async fn alert_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(loaders(ctx)?.load_one(AlertCount(self.0.indicator_id)).await?.unwrap_or(0))
    }
    /// The alerts it appears in, most recent first.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i64,
        after: Option<String>,
    ) -> Result<AlertConnection> {
        let filter = domain::store::graph::AlertFilter {
            indicator_id: Some(self.0.indicator_id),
            ..Default::default()
        };
        if after.is_some() {
            return super::query::alert_page(ctx, filter, Default::default(), first, after).await;
        }
        // The count comes in the same statement as the page when the query asks for it.
        let counted = ctx.look_ahead().field("totalCount").exists();
        let (mut rows, total) = loaders(ctx)?
            .load_one(NewestAlertsOf(self.0.indicator_id, first + 1, counted))
            .await?
            .unwrap_or_default();
        let has_next = rows.len() as i64 > first;
        rows.truncate(first as usize);
        Ok(AlertConnection {
            rows,
            has_next,
            has_previous: false,
            filter,
            counted_by_indicator: Some(self.0.indicator_id),
            total,
        })
    }
}

/// A page of alerts.
#[derive(Debug, Clone)]
pub(crate) struct AlertConnection {
    pub(crate) rows: Vec<AlertRow>,
    pub(crate) has_next: bool,
    pub(crate) has_previous: bool,
    pub(crate) filter: domain::store::graph::AlertFilter,
    /// Set when the page is an indicator's alerts: its count is loaded in a batch.
    pub(crate) counted_by_indicator: Option<Uuid>,
    /// The count, when it was read with the page.
    pub(crate) total: Option<i64>,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct AlertEdge {
    pub(crate) cursor: String,
    pub(crate) node: Alert,
}

#[Object]
impl AlertConnection {
    async fn edges(&self) -> Vec<AlertEdge> {
        self.rows
            .iter()
            .map(|row| AlertEdge { cursor: row.alert_id.to_string(), node: Alert(row.clone()) })
            .collect()
    }
    async fn nodes(&self) -> Vec<Plain<Alert>> {
        self.rows.iter().cloned().map(|row| Plain(Alert(row))).collect()
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: self.rows.first().map(|row| row.alert_id.to_string()),
            end_cursor: self.rows.last().map(|row| row.alert_id.to_string()),
        }
    }
    /// How many alerts match, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        if let Some(total) = self.total {
            return Ok(total);
        }
        if let Some(indicator) = self.counted_by_indicator {
            return Ok(loaders(ctx)?.load_one(AlertCount(indicator)).await?.unwrap_or(0));
        }
        let db = &super::state(ctx)?.db;
        domain::store::graph::count_alerts(db, &self.filter).await.map_err(super::internal)
    }
}

/// A page of indicators.
#[derive(Debug, Clone)]
pub(crate) struct IndicatorConnection {
    pub(crate) rows: Vec<IndicatorRow>,
    pub(crate) has_next: bool,
    pub(crate) has_previous: bool,
    pub(crate) filter: domain::store::graph::IndicatorFilter,
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct IndicatorEdge {
    pub(crate) cursor: String,
    pub(crate) node: Indicator,
}

#[Object]
impl IndicatorConnection {
    async fn edges(&self) -> Vec<IndicatorEdge> {
        self.rows
            .iter()
            .map(|row| IndicatorEdge {
                cursor: row.indicator_id.to_string(),
                node: Indicator(row.clone()),
            })
            .collect()
    }
    async fn nodes(&self) -> Vec<Plain<Indicator>> {
        self.rows.iter().cloned().map(|row| Plain(Indicator(row))).collect()
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: self.rows.first().map(|row| row.indicator_id.to_string()),
            end_cursor: self.rows.last().map(|row| row.indicator_id.to_string()),
        }
    }
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let db = &super::state(ctx)?.db;
        domain::store::graph::count_indicators(db, &self.filter).await.map_err(super::internal)
    }
}

impl Alert {
    /// Its indicators, through the request's loader.
    pub(crate) async fn indicator_rows(&self, ctx: &Context<'_>) -> Result<Vec<Indicator>> {
        let rows = loaders(ctx)?.load_one(IndicatorsOf(self.0.alert_id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(Indicator).collect())
    }

    pub(crate) fn close_classification_value(&self) -> Option<CloseClassification> {
        let stored = self.0.close_classification.as_deref()?;
        stored.parse::<domain::triage::CloseClassification>().ok().map(Into::into)
    }
}

impl Indicator {
    pub(crate) fn is_enrichable(&self) -> bool {
        domain::enrich::is_enrichable(&domain::indicator::Indicator {
            kind: self.0.kind,
            value: self.0.value.clone(),
        })
    }

    /// The key its providers' results load by.
    pub(crate) fn results_key(&self) -> ResultsOf {
        ResultsOf(self.0.indicator_id, self.0.results_version)
    }

    /// Its providers' results, through the request's loader.
    pub(crate) async fn enrichment_rows(
        &self,
        ctx: &Context<'_>,
    ) -> Result<crate::graphql::results::Results> {
        Ok(loaders(ctx)?.load_one(self.results_key()).await?.unwrap_or_default())
    }
}

/// One provider's latest result for an indicator.
#[derive(Debug, Clone)]
pub(crate) struct Enrichment(pub std::sync::Arc<crate::graphql::results::StoredResult>);

#[Object]
impl Enrichment {
    async fn provider(&self) -> &str {
        &self.0.row.provider
    }
    async fn success(&self) -> bool {
        self.0.row.success
    }
    /// The fields the provider's extractions picked out.
    async fn extracted(&self) -> Json<&serde_json::Value> {
        Json(&self.0.row.extracted)
    }
    /// The provider's whole answers, by step (scope `enrichments:read`).
    async fn raw(&self, ctx: &Context<'_>) -> Result<Option<Json<serde_json::Value>>> {
        require(ctx, Scope::EnrichmentsRead)?;
        let mut raw = loaders(ctx)?.load_one(RawResultsOf(self.0.row.indicator_id)).await?;
        Ok(raw.as_mut().and_then(|by_provider| by_provider.remove(&self.0.row.provider)).map(Json))
    }
    async fn error(&self) -> Option<&str> {
        self.0.row.error.as_deref()
    }
    async fn malice(&self) -> Malice {
        self.0.row.malice.into()
    }
    async fn enriched_at(&self) -> DateTime<Utc> {
        self.0.row.enriched_at
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.row.expires_at
    }
}

/// A detection rule, created on the first alert that names it or by people.
#[derive(Debug, Clone)]
pub(crate) struct DetectionRule(pub domain::store::rule::RuleRow);

#[Object]
impl DetectionRule {
    async fn id(&self) -> ID {
        ID(self.0.detection_rule_id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn source_name(&self) -> &str {
        &self.0.source_name
    }
    async fn source_rule_id(&self) -> &str {
        &self.0.source_rule_id
    }
    async fn severity(&self) -> Option<Severity> {
        self.0.severity.map(Into::into)
    }
    async fn mitre_tactics(&self) -> &[String] {
        &self.0.mitre_tactics
    }
    async fn mitre_techniques(&self) -> &[String] {
        &self.0.mitre_techniques
    }
    async fn mitre_subtechniques(&self) -> &[String] {
        &self.0.mitre_subtechniques
    }
    async fn data_sources(&self) -> &[String] {
        &self.0.data_sources
    }
    /// Markdown.
    async fn documentation(&self) -> Option<&str> {
        self.0.documentation.as_deref()
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Its alerts, most recent first.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i64,
        after: Option<String>,
    ) -> Result<AlertConnection> {
        let filter = domain::store::graph::AlertFilter {
            detection_rule_id: Some(self.0.detection_rule_id),
            ..Default::default()
        };
        super::query::alert_page(ctx, filter, Default::default(), first, after).await
    }
}

/// A runbook, IR plan, SOP, playbook or detection guide.
#[derive(Debug, Clone)]
pub(crate) struct ContextDocument(pub domain::store::document::DocumentRow);

#[Object]
impl ContextDocument {
    async fn id(&self) -> ID {
        ID(self.0.context_document_id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn document_type(&self) -> DocumentType {
        self.0.document_type.into()
    }
    /// Markdown.
    async fn content(&self) -> &str {
        &self.0.content
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }
    async fn is_global(&self) -> bool {
        self.0.is_global
    }
    /// `{"match_any": [rule…], "match_all": [rule…]}`.
    async fn targeting_rules(&self) -> Json<serde_json::Value> {
        Json(self.0.targeting_rules.clone())
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_by(&self) -> Option<&str> {
        self.0.created_by.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Earlier versions, newest first.
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<DocumentVersion>> {
        let db = &super::state(ctx)?.db;
        let rows = domain::store::document::versions(db, self.0.context_document_id)
            .await
            .map_err(super::internal)?;
        Ok(rows.into_iter().map(DocumentVersion::from).collect())
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct DocumentVersion {
    pub(crate) version: i32,
    pub(crate) title: String,
    pub(crate) document_type: DocumentType,
    pub(crate) content: String,
    pub(crate) description: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) is_global: bool,
    pub(crate) targeting_rules: Json<serde_json::Value>,
    pub(crate) changed_by: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<domain::store::document::VersionRow> for DocumentVersion {
    fn from(row: domain::store::document::VersionRow) -> Self {
        DocumentVersion {
            version: row.version,
            title: row.title,
            document_type: row.document_type.into(),
            content: row.content,
            description: row.description,
            tags: row.tags,
            is_global: row.is_global,
            targeting_rules: Json(row.targeting_rules),
            changed_by: row.changed_by,
            created_at: row.created_at,
        }
    }
}

/// What an agent (or a person) concluded about an alert.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) id: ID,
    pub(crate) agent_name: String,
    pub(crate) summary: String,
    pub(crate) confidence: Option<f64>,
    pub(crate) recommended_action: Option<String>,
    pub(crate) evidence: Json<serde_json::Value>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<domain::store::finding::FindingRow> for Finding {
    fn from(row: domain::store::finding::FindingRow) -> Self {
        Finding {
            id: ID(row.finding_id.to_string()),
            agent_name: row.agent_name,
            summary: row.summary,
            confidence: row.confidence,
            recommended_action: row.recommended_action,
            evidence: Json(row.evidence),
            created_at: row.created_at,
        }
    }
}

/// One entry of an alert's activity log.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct ActivityEvent {
    pub(crate) id: ID,
    pub(crate) event_type: String,
    pub(crate) actor: String,
    pub(crate) details: Json<serde_json::Value>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<domain::store::activity::ActivityRow> for ActivityEvent {
    fn from(row: domain::store::activity::ActivityRow) -> Self {
        ActivityEvent {
            id: ID(row.activity_id.to_string()),
            event_type: row.event_type,
            actor: row.actor,
            details: Json(row.details),
            created_at: row.created_at,
        }
    }
}

/// One event for one agent; its id is the `webhook-id`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub(crate) struct Delivery {
    pub(crate) id: ID,
    pub(crate) agent_id: ID,
    pub(crate) agent_name: String,
    pub(crate) alert_id: ID,
    pub(crate) event: String,
    /// `pending`, `retrying`, `delivered`, `failed` or `cancelled`.
    pub(crate) status: String,
    pub(crate) attempt_count: i32,
    pub(crate) last_status_code: Option<i32>,
    pub(crate) last_error: Option<String>,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) delivered_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
}

#[ComplexObject]
impl Delivery {
    /// Every attempt, first first.
    async fn attempts(&self, ctx: &Context<'_>) -> Result<Vec<DeliveryAttempt>> {
        let id: Uuid = self.id.parse().map_err(|_| unexpected("a delivery id is not a UUID"))?;
        let db = &super::state(ctx)?.db;
        let rows = domain::store::delivery::attempts(db, id).await.map_err(super::internal)?;
        Ok(rows
            .into_iter()
            .map(|row| DeliveryAttempt {
                attempt: row.attempt,
                attempted_at: row.attempted_at,
                status_code: row.status_code,
                latency_ms: row.latency_ms,
                error: row.error,
                response_excerpt: row.response_excerpt,
            })
            .collect())
    }
}

impl From<domain::store::delivery::DeliveryRow> for Delivery {
    fn from(row: domain::store::delivery::DeliveryRow) -> Self {
        Delivery {
            id: ID(row.delivery_id.to_string()),
            agent_id: ID(row.agent_id.to_string()),
            agent_name: row.agent_name,
            alert_id: ID(row.alert_id.to_string()),
            event: row.event,
            status: row.status,
            attempt_count: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        }
    }
}

#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct DeliveryAttempt {
    pub(crate) attempt: i32,
    pub(crate) attempted_at: DateTime<Utc>,
    pub(crate) status_code: Option<i32>,
    pub(crate) latency_ms: i32,
    pub(crate) error: Option<String>,
    pub(crate) response_excerpt: Option<String>,
}

/// An agent that receives `alert.enriched` webhooks. Its secrets are never returned.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) webhook_url: String,
    /// The name of the auth header sent with deliveries, if any; its value is never shown.
    pub(crate) auth_header_name: Option<String>,
    pub(crate) trigger_filter: Json<serde_json::Value>,
    pub(crate) timeout_seconds: i32,
    pub(crate) is_active: bool,
    pub(crate) deactivated_reason: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<domain::store::agent::AgentRow> for Agent {
    fn from(row: domain::store::agent::AgentRow) -> Self {
        Agent {
            id: ID(row.agent_id.to_string()),
            name: row.name,
            description: row.description,
            webhook_url: row.webhook_url,
            auth_header_name: row.auth_header_name,
            trigger_filter: Json(row.trigger_filter),
            timeout_seconds: row.timeout_seconds,
            is_active: row.is_active,
            deactivated_reason: row.deactivated_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// An enrichment provider as configured. Credentials are never returned.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct EnrichmentProvider {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) description: Option<String>,
    pub(crate) supported_indicator_types: Vec<IndicatorType>,
    pub(crate) base_url: Option<String>,
    pub(crate) auth_type: String,
    pub(crate) concurrency_limit: i32,
    pub(crate) rate_limit_per_minute: Option<i32>,
    pub(crate) is_builtin: bool,
    pub(crate) is_active: bool,
    /// Whether credentials are stored in the database (environment variables may also supply
    /// them).
    pub(crate) has_stored_credentials: bool,
    /// The provider definition in the importable format, people's settings applied.
    pub(crate) definition: Json<serde_json::Value>,
    /// Its active field extractions, built-in and people's, in the importable format (that of
    /// `setFieldExtractions`, which replaces people's).
    pub(crate) field_extractions: Json<serde_json::Value>,
}

/// The caller: the API key and its scopes.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) key_type: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    /// Requests a minute this key may make, across every server together; unlimited when null.
    pub(crate) rate_limit_per_minute: Option<i32>,
}
