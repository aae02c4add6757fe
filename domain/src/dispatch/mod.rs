//! Contextualize and dispatch (SPEC §4, §5), the pipeline's last two steps, run in the
//! enrichment job's final transaction: the documents whose targeting rules match the alert
//! are attached, and one delivery (with its `deliver_webhook` job) is created per active agent
//! whose trigger filter matches, so a slow or failing agent never delays another. The
//! deliveries commit with the alert's enrichment or not at all: a worker that dies after the
//! commit leaves queued jobs that another worker runs.
//!
//! Matching runs on the worker's in-memory snapshot of active documents and agents, reloaded
//! whenever one changes (NOTIFY on [`crate::notify::CONFIG_CHANGED`]).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::store;
use crate::targeting::{AlertFacts, TargetingRules, TriggerFilter};

mod batches;
pub mod deliver;

pub use deliver::{DELIVERY_SCHEDULE, Deliverer};

#[derive(Debug, Clone)]
struct DocumentTarget {
    id: Uuid,
    version: i32,
    is_global: bool,
    rules: TargetingRules,
}

#[derive(Debug, Clone)]
struct AgentTarget {
    id: Uuid,
    filter: TriggerFilter,
}

#[derive(Debug, Default)]
struct Snapshot {
    documents: Vec<DocumentTarget>,
    agents: Vec<AgentTarget>,
}

/// The worker's view of documents and agents, kept current by NOTIFY.
#[derive(Debug, Default)]
pub struct Dispatcher {
    snapshot: RwLock<Arc<Snapshot>>,
}

/// What the last two steps did for one alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub documents: Vec<Uuid>,
    pub deliveries: Vec<Uuid>,
}

impl Dispatcher {
    /// Loads the snapshot and keeps it current; the task ends when the pool closes.
    pub async fn start(
        db: &PgPool,
    ) -> Result<(Arc<Dispatcher>, tokio::task::JoinHandle<()>), sqlx::Error> {
        let dispatcher = Arc::new(Dispatcher::default());
        let mut listener = PgListener::connect_with(db).await?;
        listener.listen(crate::notify::CONFIG_CHANGED).await?;
        dispatcher.reload(db).await?;
        let reloading = tokio::spawn({
            let (db, dispatcher) = (db.clone(), dispatcher.clone());
            async move {
                loop {
                    match listener.recv().await {
                        Ok(_) => {}
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            tracing::warn!(error = %error, "dispatch listener lost its connection");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    if let Err(error) = dispatcher.reload(&db).await {
                        tracing::warn!(error = %error, "reloading documents and agents failed; keeping the previous set");
                    }
                }
            }
        });
        Ok((dispatcher, reloading))
    }

    /// Re-reads the active documents and agents. Rows whose rules no longer parse (they are
    /// validated on write, so only a manual edit of the database does that) are skipped.
    pub async fn reload(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let documents = store::document::list(db)
            .await?
            .into_iter()
            .filter(|d| d.is_active)
            .filter_map(|d| match TargetingRules::from_json(&d.targeting_rules) {
                Ok(rules) => Some(DocumentTarget {
                    id: d.context_document_id,
                    version: d.version,
                    is_global: d.is_global,
                    rules,
                }),
                Err(error) => {
                    tracing::warn!(document = %d.context_document_id, error = %error, "skipping a document with invalid rules");
                    None
                }
            })
            .collect();
        let agents = store::agent::list(db)
            .await?
            .into_iter()
            .filter(|a| a.is_active)
            .filter_map(|a| match TriggerFilter::from_json(&a.trigger_filter) {
                Ok(filter) => Some(AgentTarget { id: a.agent_id, filter }),
                Err(error) => {
                    tracing::warn!(agent = %a.agent_id, error = %error, "skipping an agent with an invalid filter");
                    None
                }
            })
            .collect();
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(Snapshot { documents, agents });
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The documents to attach to an alert: global ones, and those with rules that match.
    /// A non-global document without rules matches nothing.
    pub fn matching_documents(&self, facts: &AlertFacts) -> Vec<(Uuid, i32)> {
        self.snapshot()
            .documents
            .iter()
            .filter(|d| d.is_global || (!d.rules.is_empty() && d.rules.matches(facts)))
            .map(|d| (d.id, d.version))
            .collect()
    }

    /// The active agents whose trigger filter matches (an empty filter matches every alert).
    pub fn matching_agents(&self, facts: &AlertFacts) -> Vec<Uuid> {
        self.snapshot().agents.iter().filter(|a| a.filter.matches(facts)).map(|a| a.id).collect()
    }

    /// Attaches the matching documents and, when `notify_agents`, creates a delivery per
    /// matching agent, inside the caller's transaction, given the alert's `facts` as its
    /// enrichment left them in that transaction. `succeeded`/`failed` name the providers of the
    /// enrichment run.
    pub async fn contextualize_and_dispatch(
        &self,
        tx: &mut PgConnection,
        alert_id: Uuid,
        facts: &AlertFacts,
        notify_agents: bool,
        succeeded: &[String],
        failed: &[String],
    ) -> Result<Dispatched, sqlx::Error> {
        let documents = self.matching_documents(facts);
        store::document::attach(&mut *tx, alert_id, &documents).await?;
        let agents = if notify_agents { self.matching_agents(facts) } else { Vec::new() };
        let deliveries = if agents.is_empty() {
            Vec::new()
        } else {
            store::delivery::create_for_alert(
                &mut *tx,
                alert_id,
                &agents,
                succeeded,
                failed,
                deliver::max_attempts(),
            )
            .await?
        };
        Ok(Dispatched { documents: documents.into_iter().map(|(id, _)| id).collect(), deliveries })
    }
}
