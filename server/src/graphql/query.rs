//! The query root (SPEC §6). Every field checks its scope; lists are Relay-style connections
//! with keyset cursors (the last row's id), so paging never skips or repeats a row.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use domain::api_key::Scope;
use domain::store::graph::{
    self, AlertFilter as StoreAlertFilter, AlertOrder, IndicatorFilter as StoreIndicatorFilter,
};
use uuid::Uuid;

use super::loaders::{AlertById, IndicatorById, loaders};
use super::types::{
    Agent, Alert, AlertConnection, AlertStatus, ContextDocument, Delivery, DetectionRule,
    EnrichmentProvider, Indicator, IndicatorConnection, IndicatorType, Malice, Severity, Viewer,
};
use super::{bad_input, internal, parse_id, require, state};

/// What alerts to list. Every field narrows the list; lists match any of their values.
#[derive(InputObject, Debug, Default, Clone)]
pub(crate) struct AlertFilter {
    pub(crate) status: Option<Vec<AlertStatus>>,
    pub(crate) severity: Option<Vec<Severity>>,
    /// This severity and above.
    pub(crate) min_severity: Option<Severity>,
    /// Source names (`sentinel`, `elastic`, `splunk`, `generic`).
    pub(crate) source: Option<Vec<String>>,
    /// The effective verdict (override, else computed).
    pub(crate) malice: Option<Vec<Malice>>,
    /// Alerts carrying all of these tags.
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) occurred_after: Option<DateTime<Utc>>,
    pub(crate) occurred_before: Option<DateTime<Utc>>,
    pub(crate) ingested_after: Option<DateTime<Utc>>,
    pub(crate) ingested_before: Option<DateTime<Utc>>,
    pub(crate) detection_rule_id: Option<ID>,
    pub(crate) indicator_id: Option<ID>,
    /// Case-insensitive text in the title or description.
    pub(crate) search: Option<String>,
}

impl AlertFilter {
    fn into_store(self) -> Result<StoreAlertFilter> {
        Ok(StoreAlertFilter {
            statuses: self.status.unwrap_or_default().into_iter().map(Into::into).collect(),
            severities: self.severity.unwrap_or_default().into_iter().map(Into::into).collect(),
            min_severity: self.min_severity.map(Into::into),
            sources: self.source.unwrap_or_default(),
            malice: self.malice.unwrap_or_default().into_iter().map(Into::into).collect(),
            tags: self.tags.unwrap_or_default(),
            occurred_after: self.occurred_after,
            occurred_before: self.occurred_before,
            ingested_after: self.ingested_after,
            ingested_before: self.ingested_before,
            detection_rule_id: self
                .detection_rule_id
                .map(|id| parse_id(&id, "filter.detectionRuleId"))
                .transpose()?,
            indicator_id: self
                .indicator_id
                .map(|id| parse_id(&id, "filter.indicatorId"))
                .transpose()?,
            text: self.search,
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub(crate) enum AlertOrderBy {
    /// Most recently ingested first.
    #[default]
    Newest,
    Oldest,
    /// Most severe first, then newest.
    Severity,
    /// Most recently occurred first.
    Occurred,
}

impl From<AlertOrderBy> for AlertOrder {
    fn from(order: AlertOrderBy) -> Self {
        match order {
            AlertOrderBy::Newest => AlertOrder::Newest,
            AlertOrderBy::Oldest => AlertOrder::Oldest,
            AlertOrderBy::Severity => AlertOrder::Severity,
            AlertOrderBy::Occurred => AlertOrder::Occurred,
        }
    }
}

#[derive(InputObject, Debug, Default, Clone)]
pub(crate) struct IndicatorFilter {
    #[graphql(name = "type")]
    pub(crate) kind: Option<Vec<IndicatorType>>,
    pub(crate) malice: Option<Vec<Malice>>,
    /// Seen (last) at or after.
    pub(crate) seen_after: Option<DateTime<Utc>>,
    /// Seen (first) before.
    pub(crate) seen_before: Option<DateTime<Utc>>,
    /// Case-insensitive text in the value.
    pub(crate) search: Option<String>,
}

/// One page of alerts, fetching one row more than asked to know whether another page follows.
pub(super) async fn alert_page(
    ctx: &Context<'_>,
    filter: StoreAlertFilter,
    order: AlertOrder,
    first: i64,
    after: Option<String>,
) -> Result<AlertConnection> {
    let after = after.map(|cursor| parse_id(&ID(cursor), "after")).transpose()?;
    let db = &state(ctx)?.db;
    let mut rows =
        graph::search_alerts(db, &filter, order, after, first + 1).await.map_err(internal)?;
    let has_next = rows.len() as i64 > first;
    rows.truncate(first as usize);
    Ok(AlertConnection {
        rows,
        has_next,
        has_previous: after.is_some(),
        filter,
        counted_by_indicator: None,
        total: None,
    })
}

#[derive(Default)]
pub(crate) struct CoreQuery;

#[Object]
impl CoreQuery {
    /// The calling API key.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let principal = super::principal(ctx)?;
        Ok(Viewer {
            name: principal.name.clone(),
            prefix: principal.prefix.clone(),
            key_type: principal.key_type.as_str().to_owned(),
            scopes: principal.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: principal.expires_at,
            rate_limit_per_minute: principal.rate_limit_per_minute,
        })
    }

    async fn alert(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Alert>> {
        require(ctx, Scope::AlertsRead)?;
        let id = parse_id(&id, "id")?;
        Ok(loaders(ctx)?.load_one(AlertById(id)).await?.map(Alert))
    }

    /// Alerts, newest first unless ordered otherwise.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertFilter>,
        #[graphql(default)] order_by: AlertOrderBy,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i64,
        after: Option<String>,
    ) -> Result<AlertConnection> {
        require(ctx, Scope::AlertsRead)?;
        let filter = filter.unwrap_or_default().into_store()?;
        alert_page(ctx, filter, order_by.into(), first, after).await
    }

    /// One indicator, by id or by type and value.
    async fn indicator(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        #[graphql(name = "type")] kind: Option<IndicatorType>,
        value: Option<String>,
    ) -> Result<Option<Indicator>> {
        require(ctx, Scope::AlertsRead)?;
        match (id, kind, value) {
            (Some(id), None, None) => {
                let id = parse_id(&id, "id")?;
                Ok(loaders(ctx)?.load_one(IndicatorById(id)).await?.map(Indicator))
            }
            (None, Some(kind), Some(value)) => {
                let kind: domain::alert::IndicatorType = kind.into();
                // Look the value up as it is stored: refanged and canonical.
                let Some(clean) = domain::indicator::clean(kind, &value) else {
                    return Err(bad_input("value", &format!("{value:?} is not a valid {kind}")));
                };
                let db = &state(ctx)?.db;
                let row =
                    graph::indicator_by_value(db, kind, &clean.value).await.map_err(internal)?;
                Ok(row.map(Indicator))
            }
            _ => Err(bad_input("id", "give either id, or type and value")),
        }
    }

    /// Indicators, most recently seen first.
    async fn indicators(
        &self,
        ctx: &Context<'_>,
        filter: Option<IndicatorFilter>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i64,
        after: Option<String>,
    ) -> Result<IndicatorConnection> {
        require(ctx, Scope::AlertsRead)?;
        let filter = filter.unwrap_or_default();
        let filter = StoreIndicatorFilter {
            types: filter.kind.unwrap_or_default().into_iter().map(Into::into).collect(),
            malice: filter.malice.unwrap_or_default().into_iter().map(Into::into).collect(),
            seen_after: filter.seen_after,
            seen_before: filter.seen_before,
            value_contains: filter.search,
        };
        let after = after.map(|cursor| parse_id(&ID(cursor), "after")).transpose()?;
        let db = &state(ctx)?.db;
        let mut rows =
            graph::search_indicators(db, &filter, after, first + 1).await.map_err(internal)?;
        let has_next = rows.len() as i64 > first;
        rows.truncate(first as usize);
        Ok(IndicatorConnection { rows, has_next, has_previous: after.is_some(), filter })
    }

    async fn detection_rule(&self, ctx: &Context<'_>, id: ID) -> Result<Option<DetectionRule>> {
        require(ctx, Scope::AlertsRead)?;
        let id = parse_id(&id, "id")?;
        Ok(loaders(ctx)?.load_one(super::loaders::RuleById(id)).await?.map(DetectionRule))
    }

    /// Detection rules by name; `search` matches the name, source rule id or a MITRE id.
    async fn detection_rules(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
    ) -> Result<Vec<DetectionRule>> {
        require(ctx, Scope::AlertsRead)?;
        let db = &state(ctx)?.db;
        let rows = domain::store::rule::list(db).await.map_err(internal)?;
        let needle = search.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        Ok(rows
            .into_iter()
            .filter(|rule| match &needle {
                None => true,
                Some(needle) => {
                    rule.name.to_lowercase().contains(needle)
                        || rule.source_rule_id.to_lowercase().contains(needle)
                        || rule
                            .mitre_tactics
                            .iter()
                            .chain(&rule.mitre_techniques)
                            .chain(&rule.mitre_subtechniques)
                            .any(|id| id.to_lowercase() == *needle)
                }
            })
            .map(DetectionRule)
            .collect())
    }

    async fn context_document(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ContextDocument>> {
        require(ctx, Scope::AlertsRead)?;
        let id = parse_id(&id, "id")?;
        let db = &state(ctx)?.db;
        Ok(domain::store::document::get(db, id).await.map_err(internal)?.map(ContextDocument))
    }

    /// Context documents, newest first.
    async fn context_documents(&self, ctx: &Context<'_>) -> Result<Vec<ContextDocument>> {
        require(ctx, Scope::AlertsRead)?;
        let db = &state(ctx)?.db;
        Ok(domain::store::document::list(db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(ContextDocument)
            .collect())
    }

    async fn agents(&self, ctx: &Context<'_>) -> Result<Vec<Agent>> {
        require(ctx, Scope::AgentsRead)?;
        let db = &state(ctx)?.db;
        Ok(domain::store::agent::list(db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(Agent::from)
            .collect())
    }

    /// Deliveries, newest first.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        agent_id: Option<ID>,
        alert_id: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 500))] first: i64,
    ) -> Result<Vec<Delivery>> {
        require(ctx, Scope::AgentsRead)?;
        let agent: Option<Uuid> = agent_id.map(|id| parse_id(&id, "agentId")).transpose()?;
        let alert: Option<Uuid> = alert_id.map(|id| parse_id(&id, "alertId")).transpose()?;
        let db = &state(ctx)?.db;
        let rows = domain::store::delivery::list(db, alert, agent, status.as_deref(), first)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    /// The enrichment providers, people's settings applied; never their credentials.
    async fn enrichment_providers(&self, ctx: &Context<'_>) -> Result<Vec<EnrichmentProvider>> {
        require(ctx, Scope::EnrichmentsRead)?;
        let db = &state(ctx)?.db;
        let providers = domain::provider::registry::load(db).await.map_err(internal)?;
        Ok(providers.iter().map(super::admin::provider).collect())
    }
}
