//! The subscription root (SPEC §6): `alertEnriched` and `alertUpdated`, fed by this process's
//! LISTEN connection ([`crate::listener`]), so an event committed by any worker reaches
//! subscribers on every server replica. Each subscriber filters in memory; one that falls more
//! than the buffer behind skips the oldest events instead of slowing the others.

use async_graphql::{Context, InputObject, Result, SimpleObject, Subscription};
use domain::api_key::Scope;
use domain::notify::AlertEventKind;
use domain::store::alert::AlertRow;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

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
pub(crate) struct AlertEnriched {
    /// The alert, with its indicators, enrichments, detection rule and documents.
    pub(crate) alert: Alert,
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
            .map(|alert| AlertEnriched { alert }))
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
