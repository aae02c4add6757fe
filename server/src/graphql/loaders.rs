//! Batch loaders, one per relation, created for each request: every key asked for while a
//! level of the query resolves is loaded by one statement (async-graphql's DataLoader).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Result};
use domain::store::graph;
use sqlx::PgPool;
use uuid::Uuid;

use super::internal;
use super::results::{ResultCache, Results, StoredResult};
use crate::AppState;

/// Loads for one request.
pub(crate) struct GraphLoader {
    db: PgPool,
    /// Provider results kept between requests (the only thing that is).
    results: Arc<ResultCache>,
}

pub(crate) type Loaders = DataLoader<GraphLoader>;

/// The request's loaders.
pub(crate) fn loaders<'a>(ctx: &'a Context<'_>) -> Result<&'a Loaders> {
    ctx.data::<Loaders>()
}

/// Loaders for one request or one subscription connection. Keys asked for within the batch
/// delay of the first go in one batch. The loaders keep nothing (a subscription's events must
/// see fresh rows); provider results come from the server's [`ResultCache`], which is never
/// behind the database.
pub(crate) fn new_loaders(state: &AppState) -> Loaders {
    let loader = GraphLoader { db: state.db.clone(), results: state.results.clone() };
    DataLoader::new(loader, tokio::spawn).delay(state.cfg.graphql_batch_delay)
}

/// Loads several keys, in the order given, skipping those that do not exist.
pub(crate) async fn load_many<K>(
    loaders: &Loaders,
    keys: Vec<K>,
) -> Result<Vec<<GraphLoader as Loader<K>>::Value>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    GraphLoader: Loader<K, Error = async_graphql::Error>,
{
    let mut found = loaders.load_many(keys.clone()).await?;
    Ok(keys.into_iter().filter_map(|key| found.remove(&key)).collect())
}

fn group<K: Hash + Eq, V>(pairs: impl IntoIterator<Item = (K, V)>) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = HashMap::new();
    for (key, value) in pairs {
        grouped.entry(key).or_default().push(value);
    }
    grouped
}

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().copied().map(id).collect()
}

macro_rules! key {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) struct $name(pub(crate) Uuid);
    };
}

key!(/// An alert by id.
    AlertById);
key!(/// An indicator by id.
    IndicatorById);
key!(/// A detection rule by id.
    RuleById);
key!(/// The indicators of an alert.
    IndicatorsOf);
key!(/// The raw provider answers for an indicator, by provider name.
    RawResultsOf);
key!(/// An alert's payload as received (the JSON text).
    RawPayloadOf);
key!(/// How many alerts an indicator appears in.
    AlertCount);
key!(/// The documents attached to an alert.
    DocumentsOf);
key!(/// The findings on an alert.
    FindingsOf);
key!(/// The activity of an alert.
    ActivityOf);
key!(/// The deliveries of an alert.
    DeliveriesOf);

/// The newest `.1` alerts of an indicator, and with `.2` how many it has in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NewestAlertsOf(pub Uuid, pub i64, pub bool);

/// The provider results of indicator `.0`, without their raw answers, as of its
/// `results_version` `.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ResultsOf(pub Uuid, pub i64);

/// Up to `.1` alerts sharing indicators with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RelatedOf(pub Uuid, pub i64);

impl Loader<AlertById> for GraphLoader {
    type Value = domain::store::alert::AlertRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AlertById]) -> Result<HashMap<AlertById, Self::Value>> {
        let rows = graph::alerts_by_id(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(rows.into_iter().map(|row| (AlertById(row.alert_id), row)).collect())
    }
}

impl Loader<IndicatorById> for GraphLoader {
    type Value = domain::store::indicator::IndicatorRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[IndicatorById]) -> Result<HashMap<IndicatorById, Self::Value>> {
        let rows =
            graph::indicators_by_id(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(rows.into_iter().map(|row| (IndicatorById(row.indicator_id), row)).collect())
    }
}

impl Loader<RuleById> for GraphLoader {
    type Value = domain::store::rule::RuleRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RuleById]) -> Result<HashMap<RuleById, Self::Value>> {
        let rows = graph::rules_by_id(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(rows.into_iter().map(|row| (RuleById(row.detection_rule_id), row)).collect())
    }
}

impl Loader<IndicatorsOf> for GraphLoader {
    type Value = Vec<domain::store::indicator::IndicatorRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[IndicatorsOf]) -> Result<HashMap<IndicatorsOf, Self::Value>> {
        let rows =
            graph::indicators_of_alerts(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(group(rows.into_iter().map(|(alert, row)| (IndicatorsOf(alert), row))))
    }
}

impl Loader<ResultsOf> for GraphLoader {
    /// Shared: the loader hands each asker a clone of its value.
    type Value = Results;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ResultsOf]) -> Result<HashMap<ResultsOf, Results>> {
        let mut loaded = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        for &key in keys {
            match self.results.get(key.0, key.1) {
                Some(results) => {
                    loaded.insert(key, results);
                }
                None => missing.push(key),
            }
        }
        if missing.is_empty() {
            return Ok(loaded);
        }
        let rows = graph::results_of_indicators(&self.db, &ids(&missing, |k| k.0))
            .await
            .map_err(internal)?;
        let mut read = group(
            rows.into_iter().map(|row| (row.indicator_id, Arc::new(StoredResult::from(row)))),
        );
        for key in missing {
            let results: Results = read.remove(&key.0).unwrap_or_default().into();
            self.results.put(key.0, key.1, results.clone());
            loaded.insert(key, results);
        }
        Ok(loaded)
    }
}

impl Loader<RawResultsOf> for GraphLoader {
    type Value = HashMap<String, serde_json::Value>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RawResultsOf]) -> Result<HashMap<RawResultsOf, Self::Value>> {
        let rows = graph::raw_results_of_indicators(&self.db, &ids(keys, |k| k.0))
            .await
            .map_err(internal)?;
        let mut loaded: HashMap<RawResultsOf, Self::Value> = HashMap::new();
        for (indicator, provider, raw) in rows {
            if let Some(raw) = raw {
                loaded.entry(RawResultsOf(indicator)).or_default().insert(provider, raw);
            }
        }
        Ok(loaded)
    }
}

impl Loader<RawPayloadOf> for GraphLoader {
    type Value = String;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RawPayloadOf]) -> Result<HashMap<RawPayloadOf, String>> {
        let rows = graph::raw_payloads(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(rows.into_iter().map(|(alert, raw)| (RawPayloadOf(alert), raw)).collect())
    }
}

impl Loader<AlertCount> for GraphLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AlertCount]) -> Result<HashMap<AlertCount, i64>> {
        let rows = graph::alert_counts(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(rows.into_iter().map(|(id, count)| (AlertCount(id), count)).collect())
    }
}

impl Loader<DocumentsOf> for GraphLoader {
    type Value = Vec<domain::store::document::DocumentRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[DocumentsOf]) -> Result<HashMap<DocumentsOf, Self::Value>> {
        let rows =
            graph::documents_of_alerts(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(group(rows.into_iter().map(|(alert, row)| (DocumentsOf(alert), row))))
    }
}

impl Loader<FindingsOf> for GraphLoader {
    type Value = Vec<domain::store::finding::FindingRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[FindingsOf]) -> Result<HashMap<FindingsOf, Self::Value>> {
        let rows =
            graph::findings_of_alerts(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(group(rows.into_iter().map(|row| (FindingsOf(row.alert_id), row))))
    }
}

impl Loader<ActivityOf> for GraphLoader {
    type Value = Vec<domain::store::activity::ActivityRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ActivityOf]) -> Result<HashMap<ActivityOf, Self::Value>> {
        let rows =
            graph::activity_of_alerts(&self.db, &ids(keys, |k| k.0)).await.map_err(internal)?;
        Ok(group(rows.into_iter().map(|(alert, row)| (ActivityOf(alert), row))))
    }
}

impl Loader<DeliveriesOf> for GraphLoader {
    type Value = Vec<domain::store::delivery::DeliveryRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[DeliveriesOf]) -> Result<HashMap<DeliveriesOf, Self::Value>> {
        let rows = domain::store::delivery::of_alerts(&self.db, &ids(keys, |k| k.0))
            .await
            .map_err(internal)?;
        Ok(group(rows.into_iter().map(|row| (DeliveriesOf(row.alert_id), row))))
    }
}

impl Loader<NewestAlertsOf> for GraphLoader {
    type Value = (Vec<domain::store::alert::AlertRow>, Option<i64>);
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[NewestAlertsOf]) -> Result<HashMap<NewestAlertsOf, Self::Value>> {
        // One statement per distinct page size and counting asked for (usually one).
        let mut by_shape: HashMap<(i64, bool), Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_shape.entry((key.1, key.2)).or_default().push(key.0);
        }
        let mut loaded = HashMap::new();
        for ((limit, counted), indicators) in by_shape {
            let rows = graph::newest_alerts_of_indicators(&self.db, &indicators, limit, counted)
                .await
                .map_err(internal)?;
            for indicator in indicators {
                loaded.insert(
                    NewestAlertsOf(indicator, limit, counted),
                    (Vec::new(), counted.then_some(0)),
                );
            }
            for (indicator, total, row) in rows {
                let (rows, count) = loaded
                    .get_mut(&NewestAlertsOf(indicator, limit, counted))
                    .expect("rows belong to an indicator asked for");
                *count = total;
                rows.push(row);
            }
        }
        Ok(loaded)
    }
}

impl Loader<RelatedOf> for GraphLoader {
    type Value = Vec<(Uuid, Vec<Uuid>)>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RelatedOf]) -> Result<HashMap<RelatedOf, Self::Value>> {
        let mut by_limit: HashMap<i64, Vec<Uuid>> = HashMap::new();
        for key in keys {
            by_limit.entry(key.1).or_default().push(key.0);
        }
        let mut loaded = HashMap::new();
        for (limit, alerts) in by_limit {
            let rows = graph::related_alerts(&self.db, &alerts, limit).await.map_err(internal)?;
            let grouped =
                group(rows.into_iter().map(|(alert, related, shared)| (alert, (related, shared))));
            for (alert, related) in grouped {
                loaded.insert(RelatedOf(alert, limit), related);
            }
        }
        Ok(loaded)
    }
}
