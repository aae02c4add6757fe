//! The subscription root (SPEC §6): `alertEnriched` and `alertUpdated`, fed by this process's
//! LISTEN connection ([`crate::listener`]), so an event committed by any worker reaches
//! subscribers on every server replica. Each subscriber filters in memory; one that falls more
//! than the buffer behind skips the oldest events instead of slowing the others.

use async_graphql::{ComplexObject, Context, InputObject, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use domain::api_key::Scope;
use domain::notify::AlertEventKind;
use domain::store::alert::AlertRow;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::loaders::{ActivityOf, DocumentsOf, loaders};
use super::types::{Alert, AlertStatus, Malice, Severity};
use super::{require, state};

/// Which alerts a subscriber hears of; every given field must match.
#[derive(InputObject, Debug, Default, Clone)]
pub(crate) struct AlertEventFilter {
    /// This severity and above.
    pub(crate) min_severity: Option<Severity>,
    pub(crate) severity: Option<Vec<Severity>>,
    pub(crate) status: Option<Vec<AlertStatus>>,
    /// Source names (`sentinel`, `elastic`, `splunk`, `generic`).
    pub(crate) source: Option<Vec<String>>,
    /// Alerts with at least one of these tags.
    pub(crate) tags: Option<Vec<String>>,
    /// The effective verdict.
    pub(crate) malice: Option<Vec<Malice>>,
}

impl AlertEventFilter {
    fn matches(&self, alert: &AlertRow) -> bool {
        let severity: Severity = alert.severity.into();
        let malice: Malice = alert.malice_override.unwrap_or(alert.malice).into();
        let status: AlertStatus = alert.status.into();
        self.min_severity.is_none_or(|min| alert.severity >= min.into())
            && self.severity.as_ref().is_none_or(|list| list.contains(&severity))
            && self.status.as_ref().is_none_or(|list| list.contains(&status))
            && self
                .source
                .as_ref()
                .is_none_or(|list| list.iter().any(|s| s.eq_ignore_ascii_case(&alert.source_name)))
            && self.tags.as_ref().is_none_or(|list| {
                list.iter().any(|tag| alert.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
            })
            && self.malice.as_ref().is_none_or(|list| list.contains(&malice))
    }
}

/// An alert whose enrichment finished: the `alert.enriched` payload's data as graph types.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub(crate) struct AlertEnriched {
    /// The alert, with its indicators, enrichments, detection rule and documents.
    pub(crate) alert: Alert,
    /// When this server sent the event.
    pub(crate) generated_at: DateTime<Utc>,
}

#[ComplexObject]
impl AlertEnriched {
    /// What the enrichment did, as the `alert.enriched` webhook's `_metadata` says it.
    async fn metadata(&self, ctx: &Context<'_>) -> Result<EnrichmentMetadata> {
        let row = &self.alert.0;
        let loaders = loaders(ctx)?;
        let indicators = self.alert.indicator_rows(ctx).await?;
        let documents = loaders.load_one(DocumentsOf(row.alert_id)).await?.unwrap_or_default();
        let activity = loaders.load_one(ActivityOf(row.alert_id)).await?.unwrap_or_default();
        // The run's own account, written with the alert's `enriched_at`: the last one.
        let run = activity.iter().rev().find(|event| event.event_type == "alert.enriched");
        let providers = |list: &str| -> Vec<String> {
            run.and_then(|event| event.details.get(list))
                .and_then(|names| serde_json::from_value(names.clone()).ok())
                .unwrap_or_default()
        };
        Ok(EnrichmentMetadata {
            generated_at: self.generated_at,
            indicator_count: indicators.len() as i32,
            enrichment: EnrichmentRun {
                succeeded: providers("succeeded"),
                failed: providers("failed"),
                enriched_at: row.enriched_at,
            },
            detection_rule_matched: row.detection_rule_id.is_some(),
            context_documents_applied: documents.len() as i32,
        })
    }
}

/// The `_metadata` of an `alert.enriched` event.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct EnrichmentMetadata {
    /// When the event was sent.
    pub(crate) generated_at: DateTime<Utc>,
    pub(crate) indicator_count: i32,
    pub(crate) enrichment: EnrichmentRun,
    /// Whether the alert names a detection rule.
    pub(crate) detection_rule_matched: bool,
    /// How many context documents are attached to the alert.
    pub(crate) context_documents_applied: i32,
}

/// The providers of the enrichment run that finished.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct EnrichmentRun {
    /// Providers that answered for at least one indicator (from cache or not).
    pub(crate) succeeded: Vec<String>,
    /// Providers that answered for none.
    pub(crate) failed: Vec<String>,
    pub(crate) enriched_at: Option<DateTime<Utc>>,
}

/// An alert that changed.
#[derive(SimpleObject, Debug, Clone)]
pub(crate) struct AlertUpdated {
    pub(crate) alert: Alert,
}

pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Alerts as their enrichment finishes (scope `alerts:read`).
    async fn alert_enriched(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertEventFilter>,
    ) -> Result<impl Stream<Item = AlertEnriched>> {
        require(ctx, Scope::AlertsRead)?;
        let receiver = state(ctx)?.events.subscribe();
        Ok(events(receiver, AlertEventKind::Enriched, filter.unwrap_or_default())
            .map(|alert| AlertEnriched { alert, generated_at: Utc::now() }))
    }

    /// Alerts as people or agents change them: status, severity, tags, verdict (scope
    /// `alerts:read`).
    async fn alert_updated(
        &self,
        ctx: &Context<'_>,
        filter: Option<AlertEventFilter>,
    ) -> Result<impl Stream<Item = AlertUpdated>> {
        require(ctx, Scope::AlertsRead)?;
        let receiver = state(ctx)?.events.subscribe();
        Ok(events(receiver, AlertEventKind::Updated, filter.unwrap_or_default())
            .map(|alert| AlertUpdated { alert }))
    }
}

/// The events of one kind that pass the filter.
fn events(
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::state::LiveAlert>>,
    kind: AlertEventKind,
    filter: AlertEventFilter,
) -> impl Stream<Item = Alert> {
    futures::stream::unfold((receiver, filter), move |(mut receiver, filter)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if event.kind == kind && filter.matches(&event.alert) => {
                    return Some((Alert(event.alert.clone()), (receiver, filter)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a slow subscriber skipped alert events");
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
