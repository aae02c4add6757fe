//! The mutation root: every change a person or an agent makes, each a call into the domain
//! layer, which validates, stores, and logs it.

use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Json, Object, Result, SimpleObject,
};
use domain::api_key::Scope;
use domain::ingest::{self, Submission};

use super::types::{
    Agent, Alert, AlertStatus, CloseClassification, ContextDocument, DetectionRule, DocumentType,
    Finding, Malice, Severity,
};
use super::{bad_input, domain_error, internal, parse_id, require, state};

#[derive(InputObject, Debug)]
pub(crate) struct UpdateAlertInput {
    pub(crate) status: Option<AlertStatus>,
    /// Required when closing an alert that has none.
    pub(crate) close_classification: Option<CloseClassification>,
    pub(crate) severity: Option<Severity>,
    /// Set the analyst's verdict; see `clearMaliceOverride`.
    pub(crate) malice_override: Option<Malice>,
    /// Remove the analyst's verdict, so the computed one applies again.
    #[graphql(default)]
    pub(crate) clear_malice_override: bool,
    pub(crate) tags: Option<Vec<String>>,
}

#[derive(InputObject, Debug)]
pub(crate) struct FindingInput {
    pub(crate) agent_name: String,
    pub(crate) summary: String,
    /// From 0 to 1.
    pub(crate) confidence: Option<f64>,
    pub(crate) recommended_action: Option<String>,
    pub(crate) evidence: Option<Json<serde_json::Value>>,
}

#[derive(InputObject, Debug)]
pub(crate) struct ContextDocumentInput {
    pub(crate) title: String,
    #[graphql(default_with = "DocumentType::Other")]
    pub(crate) document_type: DocumentType,
    /// Markdown.
    pub(crate) content: String,
    pub(crate) description: Option<String>,
    #[graphql(default)]
    pub(crate) tags: Vec<String>,
    #[graphql(default)]
    pub(crate) is_global: bool,
    /// `{"match_any": [{field, op, value}…], "match_all": […]}`.
    pub(crate) targeting_rules: Option<Json<serde_json::Value>>,
    #[graphql(default = true)]
    pub(crate) is_active: bool,
}

impl ContextDocumentInput {
    fn into_domain(self) -> domain::context::DocumentInput {
        domain::context::DocumentInput {
            title: self.title,
            document_type: self.document_type.into(),
            content: self.content,
            description: self.description,
            tags: self.tags,
            is_global: self.is_global,
            targeting_rules: self.targeting_rules.map(|json| json.0),
            is_active: self.is_active,
        }
    }
}

#[derive(InputObject, Debug)]
pub(crate) struct DetectionRuleInput {
    pub(crate) name: String,
    pub(crate) source_name: String,
    pub(crate) source_rule_id: String,
    pub(crate) severity: Option<Severity>,
    #[graphql(default)]
    pub(crate) mitre_tactics: Vec<String>,
    #[graphql(default)]
    pub(crate) mitre_techniques: Vec<String>,
    #[graphql(default)]
    pub(crate) mitre_subtechniques: Vec<String>,
    #[graphql(default)]
    pub(crate) data_sources: Vec<String>,
    /// Markdown.
    pub(crate) documentation: Option<String>,
    #[graphql(default = true)]
    pub(crate) is_active: bool,
}

impl DetectionRuleInput {
    fn into_domain(self) -> domain::detection_rule::RuleInput {
        domain::detection_rule::RuleInput {
            name: self.name,
            source_name: self.source_name,
            source_rule_id: self.source_rule_id,
            severity: self.severity.map(Into::into),
            mitre_tactics: self.mitre_tactics,
            mitre_techniques: self.mitre_techniques,
            mitre_subtechniques: self.mitre_subtechniques,
            data_sources: self.data_sources,
            documentation: self.documentation,
            is_active: self.is_active,
        }
    }
}

#[derive(InputObject, Debug)]
pub(crate) struct AuthHeaderInput {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[derive(InputObject, Debug)]
pub(crate) struct AgentInput {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) webhook_url: String,
    /// Sent with every delivery; stored encrypted, never returned. Omit to keep the current one.
    pub(crate) auth_header: Option<AuthHeaderInput>,
    #[graphql(default)]
    pub(crate) remove_auth_header: bool,
    /// `{min_severity, source_names, tags, match_any, match_all}`.
    pub(crate) trigger_filter: Option<Json<serde_json::Value>>,
    pub(crate) timeout_seconds: Option<i32>,
    #[graphql(default = true)]
    pub(crate) is_active: bool,
}

impl AgentInput {
    fn into_domain(self) -> domain::agent::AgentInput {
        domain::agent::AgentInput {
            name: self.name,
            description: self.description,
            webhook_url: self.webhook_url,
            auth_header: self
                .auth_header
                .map(|h| domain::agent::AuthHeader { name: h.name, value: h.value }),
            remove_auth_header: self.remove_auth_header,
            trigger_filter: self.trigger_filter.map(|json| json.0),
            timeout_seconds: self.timeout_seconds,
            is_active: self.is_active,
        }
    }
}

/// A new agent and its signing secret, shown this once.
#[derive(SimpleObject, Debug)]
pub(crate) struct CreatedAgent {
    pub(crate) agent: Agent,
    /// The Standard Webhooks secret (`whsec_…`) to verify deliveries with. Not shown again.
    pub(crate) signing_secret: String,
}

/// An indicator to add.
#[derive(InputObject, Debug)]
pub(crate) struct IndicatorInput {
    #[graphql(name = "type")]
    pub(crate) kind: super::types::IndicatorType,
    /// Defanged values (`1.2.3[.]4`, `hxxp://…`) are accepted.
    pub(crate) value: String,
}

/// What a test delivery got back.
#[derive(SimpleObject, Debug)]
pub(crate) struct AgentTest {
    pub(crate) success: bool,
    pub(crate) status_code: Option<i32>,
    pub(crate) latency_ms: i32,
    pub(crate) error: Option<String>,
    pub(crate) response_excerpt: Option<String>,
}

/// What ingesting did.
#[derive(SimpleObject, Debug)]
pub(crate) struct IngestReceipt {
    pub(crate) alert_id: ID,
    /// `queued` or `deduplicated`.
    pub(crate) status: String,
    pub(crate) duplicate_count: i32,
}

#[derive(Default)]
pub(crate) struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Ingests a raw payload as `POST /v1/ingest/{source}` does (signatures are not checked:
    /// the caller holds an API key with `alerts:write`).
    async fn ingest_alert(
        &self,
        ctx: &Context<'_>,
        source: String,
        payload: Json<serde_json::Value>,
    ) -> Result<IngestReceipt> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        // The REST code for the same mistake, with the field named as bad input names it.
        let parsed: domain::alert::Source = source.parse().map_err(|_| {
            let message = format!(
                "source: unknown source {source:?}; expected one of sentinel, elastic, splunk, generic"
            );
            super::coded(&message, "UNKNOWN_SOURCE")
                .extend_with(|_, extensions| extensions.set("field", "source"))
        })?;
        if !principal.may_ingest_into(parsed) {
            return Err(super::coded(
                "this API key may not ingest into that source",
                "SOURCE_NOT_ALLOWED",
            ));
        }
        let state = state(ctx)?;
        let body = serde_json::to_vec(&payload.0).map_err(internal)?;
        let submission =
            Submission { source: parsed, body: &body, signature: None, actor: &principal.name };
        let accepted = state
            .ingest(submission, crate::state::Signature::NotExpected)
            .await
            .map_err(|error| match error {
                ingest::IngestError::InvalidPayload { cause, .. } => {
                    bad_input(&cause.field, &cause.problem)
                }
                other => internal(other),
            })?;
        Ok(IngestReceipt {
            alert_id: ID(accepted.alert_id.to_string()),
            status: if accepted.deduplicated { "deduplicated" } else { "queued" }.to_owned(),
            duplicate_count: accepted.duplicate_count,
        })
    }

    /// Changes an alert's status, severity, tags or verdict; each change is logged.
    async fn update_alert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAlertInput,
    ) -> Result<Alert> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        let update = domain::triage::AlertUpdate {
            status: input.status.map(Into::into),
            close_classification: input.close_classification.map(Into::into),
            severity: input.severity.map(Into::into),
            malice_override: match (input.malice_override, input.clear_malice_override) {
                (Some(_), true) => {
                    return Err(bad_input(
                        "clearMaliceOverride",
                        "give maliceOverride or clear it, not both",
                    ));
                }
                (Some(malice), false) => Some(Some(malice.into())),
                (None, true) => Some(None),
                (None, false) => None,
            },
            tags: input.tags,
        };
        let row = domain::triage::update_alert(&state(ctx)?.db, id, &update, &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(Alert(row))
    }

    async fn add_finding(
        &self,
        ctx: &Context<'_>,
        alert_id: ID,
        input: FindingInput,
    ) -> Result<Finding> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let alert_id = parse_id(&alert_id, "alertId")?;
        let input = domain::triage::FindingInput {
            agent_name: input.agent_name,
            summary: input.summary,
            confidence: input.confidence,
            recommended_action: input.recommended_action,
            evidence: input.evidence.map(|json| json.0),
        };
        let row = domain::triage::add_finding(&state(ctx)?.db, alert_id, &input, &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(Finding::from(row))
    }

    /// Sets an analyst's verdict on an indicator (null clears it); it sticks until cleared.
    async fn set_indicator_malice(
        &self,
        ctx: &Context<'_>,
        id: ID,
        malice: Option<Malice>,
    ) -> Result<super::types::Indicator> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        let db = &state(ctx)?.db;
        domain::triage::set_indicator_malice(db, id, malice.map(Into::into), &principal.name)
            .await
            .map_err(domain_error)?;
        let row = domain::store::graph::indicators_by_id(db, &[id]).await.map_err(internal)?;
        row.into_iter()
            .next()
            .map(super::types::Indicator)
            .ok_or_else(|| super::not_found("indicator"))
    }

    /// Queues the alert's enrichment again; agents hear of it only when `notifyAgents`. Stored
    /// provider results are reused while they last, unless `fresh`: then every provider is
    /// asked again.
    async fn reenrich_alert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] notify_agents: bool,
        #[graphql(default)] fresh: bool,
    ) -> Result<bool> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        let db = &state(ctx)?.db;
        domain::triage::reenrich_alert(db, id, notify_agents, fresh, &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(true)
    }

    async fn create_context_document(
        &self,
        ctx: &Context<'_>,
        input: ContextDocumentInput,
    ) -> Result<ContextDocument> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let row = domain::context::create(&state(ctx)?.db, &input.into_domain(), &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(ContextDocument(row))
    }

    /// Replaces a document; a content change keeps the previous version.
    async fn update_context_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ContextDocumentInput,
    ) -> Result<ContextDocument> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        let row =
            domain::context::update(&state(ctx)?.db, id, &input.into_domain(), &principal.name)
                .await
                .map_err(domain_error)?;
        Ok(ContextDocument(row))
    }

    async fn delete_context_document(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        domain::context::delete(&state(ctx)?.db, id, &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(true)
    }

    /// Imports a markdown or plain-text file as a document (title from its first heading).
    async fn import_context_document(
        &self,
        ctx: &Context<'_>,
        file_name: String,
        content: String,
    ) -> Result<ContextDocument> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let row = domain::context::import_file(
            &state(ctx)?.db,
            &file_name,
            content.as_bytes(),
            &principal.name,
        )
        .await
        .map_err(domain_error)?;
        Ok(ContextDocument(row))
    }

    async fn create_detection_rule(
        &self,
        ctx: &Context<'_>,
        input: DetectionRuleInput,
    ) -> Result<DetectionRule> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let row =
            domain::detection_rule::create(&state(ctx)?.db, &input.into_domain(), &principal.name)
                .await
                .map_err(domain_error)?;
        Ok(DetectionRule(row))
    }

    /// Replaces a rule, an auto-created one included; its alerts stay linked.
    async fn update_detection_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: DetectionRuleInput,
    ) -> Result<DetectionRule> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        let row = domain::detection_rule::update(
            &state(ctx)?.db,
            id,
            &input.into_domain(),
            &principal.name,
        )
        .await
        .map_err(domain_error)?;
        Ok(DetectionRule(row))
    }

    async fn delete_detection_rule(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let id = parse_id(&id, "id")?;
        domain::detection_rule::delete(&state(ctx)?.db, id, &principal.name)
            .await
            .map_err(domain_error)?;
        Ok(true)
    }

    /// Registers an agent; its signing secret is returned this once.
    async fn create_agent(&self, ctx: &Context<'_>, input: AgentInput) -> Result<CreatedAgent> {
        let principal = require(ctx, Scope::AgentsWrite)?;
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        let created = domain::agent::create(
            &state.db,
            key,
            &state.cfg.outbound,
            &input.into_domain(),
            &principal.name,
        )
        .await
        .map_err(domain_error)?;
        Ok(CreatedAgent {
            agent: Agent::from(created.agent),
            signing_secret: created.signing_secret,
        })
    }

    async fn update_agent(&self, ctx: &Context<'_>, id: ID, input: AgentInput) -> Result<Agent> {
        let principal = require(ctx, Scope::AgentsWrite)?;
        let id = parse_id(&id, "id")?;
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        let row = domain::agent::update(
            &state.db,
            key,
            &state.cfg.outbound,
            id,
            &input.into_domain(),
            &principal.name,
        )
        .await
        .map_err(domain_error)?;
        Ok(Agent::from(row))
    }

    /// Replaces an agent's signing secret and returns the new one, this once.
    async fn rotate_agent_secret(&self, ctx: &Context<'_>, id: ID) -> Result<String> {
        let principal = require(ctx, Scope::AgentsWrite)?;
        let id = parse_id(&id, "id")?;
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        domain::agent::rotate_signing_secret(&state.db, key, id, &principal.name)
            .await
            .map_err(domain_error)
    }

    async fn delete_agent(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let principal = require(ctx, Scope::AgentsWrite)?;
        let id = parse_id(&id, "id")?;
        domain::agent::delete(&state(ctx)?.db, id, &principal.name).await.map_err(domain_error)?;
        Ok(true)
    }

    /// Links indicators to an alert (created if new) and, with `enrich`, queues the alert's
    /// enrichment so they are looked up.
    async fn add_indicators(
        &self,
        ctx: &Context<'_>,
        alert_id: ID,
        indicators: Vec<IndicatorInput>,
        #[graphql(default = true)] enrich: bool,
    ) -> Result<Vec<super::types::Indicator>> {
        let principal = require(ctx, Scope::AlertsWrite)?;
        let alert_id = parse_id(&alert_id, "alertId")?;
        let given: Vec<(domain::alert::IndicatorType, String)> =
            indicators.into_iter().map(|i| (i.kind.into(), i.value)).collect();
        let db = &state(ctx)?.db;
        let ids = domain::triage::add_indicators(db, alert_id, &given, enrich, &principal.name)
            .await
            .map_err(domain_error)?;
        let rows = domain::store::graph::indicators_by_id(db, &ids).await.map_err(internal)?;
        Ok(rows.into_iter().map(super::types::Indicator).collect())
    }

    /// Sends a signed `agent.test` event to an agent's webhook now and reports the answer.
    async fn test_agent(&self, ctx: &Context<'_>, id: ID) -> Result<AgentTest> {
        require(ctx, Scope::AgentsWrite)?;
        let id = parse_id(&id, "id")?;
        let state = state(ctx)?;
        let key = super::secret_key(state)?;
        let deliverer = domain::dispatch::Deliverer::new(key.clone(), state.cfg.outbound.clone());
        let attempt = deliverer
            .test_agent(&state.db, id)
            .await
            .map_err(internal)?
            .ok_or_else(|| super::not_found("agent"))?;
        Ok(AgentTest {
            success: attempt.status_code.is_some_and(|code| (200..300).contains(&code)),
            status_code: attempt.status_code,
            latency_ms: attempt.latency_ms,
            error: attempt.error,
            response_excerpt: attempt.response_excerpt,
        })
    }

    /// Sends a delivery again, with the same `webhook-id`.
    async fn redeliver(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        require(ctx, Scope::AgentsWrite)?;
        let id = parse_id(&id, "id")?;
        match domain::store::delivery::redeliver(&state(ctx)?.db, id, 50).await.map_err(internal)? {
            Some(true) => Ok(true),
            Some(false) => Err(super::coded("the delivery is already on its way", "CONFLICT")),
            None => Err(super::not_found("delivery")),
        }
    }
}
