//! One-pass resolution for the objects a query returns by the hundred: alerts, indicators and
//! their provider results.
//!
//! async-graphql resolves every selected field of every object as a boxed future of its own,
//! which costs about as much as the value it produces. When each field selected on an object is
//! *plain* — a stored value, with no arguments, no directives, no I/O and no scope check — the
//! object is built here in one synchronous pass instead. Anything else (a fragment, a directive, an
//! argument, a field such as `raw` or `alerts`) leaves the whole object to the derived resolver,
//! so this path never changes what a query means, only what it costs. `tests/it/graphql.rs`
//! checks that both paths give the same answer for every plain field.
//!
//! `@skip` and `@include` need no care: async-graphql applies them before resolving. The schema
//! has no extensions; were one added, its per-field hooks would not run for plain fields.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry as IndexEntry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::enum_value;
use async_graphql::{
    Context, ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
};

use std::sync::Arc;

use super::loaders::{Loaders, ResultsOf};
use super::results::StoredResult;
use super::types::{
    Alert, AlertStatus, Enrichment, EnrichmentStatus, Indicator, IndicatorType, Malice, Severity,
};

/// An object some of whose fields are plain.
pub(crate) trait PlainFields: OutputType {
    /// The names of its plain fields.
    const PLAIN: &'static [&'static str];

    /// The value of plain field `name` (one of [`Self::PLAIN`]).
    fn plain_field(&self, name: &str) -> Value;
}

/// `T` as the schema knows it, resolved in one pass when its selection is all plain.
#[derive(Debug, Clone)]
pub(crate) struct Plain<T>(pub T);

impl<T: PlainFields> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_fields::<T>(&ctx.item.node.items) {
            Some(fields) => Ok(build(&self.0, &fields, |name| Some(self.0.plain_field(name)))),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// The selected fields, when every one is plain (or `__typename`).
fn plain_fields<T: PlainFields>(selection: &[Positioned<Selection>]) -> Option<Vec<&Field>> {
    selection
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field)
                if field.node.arguments.is_empty()
                    && field.node.directives.is_empty()
                    && (field.node.name.node == "__typename"
                        || T::PLAIN.contains(&field.node.name.node.as_str())) =>
            {
                Some(&field.node)
            }
            _ => None,
        })
        .collect()
}

/// The object with `fields`, each valued by `value` (`__typename` aside); a field valued `None`
/// is left out. A response key selected twice keeps its first value, as async-graphql's own
/// merge does for leaves.
fn build<T: OutputType>(
    object: &T,
    fields: &[&Field],
    mut value: impl FnMut(&str) -> Option<Value>,
) -> Value {
    let mut map = IndexMap::with_capacity(fields.len());
    for field in fields {
        let IndexEntry::Vacant(entry) = map.entry(field.response_key().node.clone()) else {
            continue;
        };
        if let Some(resolved) = field_value(object, field, &mut value) {
            entry.insert(resolved);
        }
    }
    Value::Object(map)
}

/// The value of `field` of `object`: its type name for `__typename`, else what `value` gives.
fn field_value<T: OutputType>(
    object: &T,
    field: &Field,
    value: &mut impl FnMut(&str) -> Option<Value>,
) -> Option<Value> {
    match field.name.node.as_str() {
        "__typename" => Some(Value::String(object.introspection_type_name().into_owned())),
        name => value(name),
    }
}

/// The keys of the objects built for one selection, hashed once. The objects of a list are
/// built from copies of [`Shape::template`]: a copy takes the key table as it is, where
/// inserting each key would hash it again (SipHash was a fifth of the work of a large answer).
struct Shape<'a> {
    /// Each response key once, in order of selection, valued null.
    template: IndexMap<Name, Value>,
    /// The field that values each key of the template.
    fields: Vec<&'a Field>,
}

impl<'a> Shape<'a> {
    /// The shape of `fields`; a response key selected twice keeps its first field, as `build`.
    fn of(fields: &[&'a Field]) -> Self {
        let mut template = IndexMap::with_capacity(fields.len());
        let mut unique = Vec::with_capacity(fields.len());
        for &field in fields {
            if let IndexEntry::Vacant(entry) = template.entry(field.response_key().node.clone()) {
                entry.insert(Value::Null);
                unique.push(field);
            }
        }
        Shape { template, fields: unique }
    }

    /// `object` with every field valued by `value`, as `build` gives it.
    fn build<T: OutputType>(
        &self,
        object: &T,
        mut value: impl FnMut(&str) -> Option<Value>,
    ) -> Value {
        let mut map = self.template.clone();
        // Last to first, so that leaving a field out moves only keys already valued.
        for (index, field) in self.fields.iter().enumerate().rev() {
            match field_value(object, field, &mut value) {
                Some(resolved) => map[index] = resolved,
                None => {
                    map.shift_remove_index(index);
                }
            }
        }
        Value::Object(map)
    }
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

/// `value` as `Json<serde_json::Value>` resolves it, without going through a serializer.
pub(crate) fn json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.clone()),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(json).collect()),
        serde_json::Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (Name::new(k), json(v))).collect())
        }
    }
}

fn optional<T>(value: Option<T>, to_value: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::Null, to_value)
}

impl Alert {
    const PLAIN: &'static [&'static str] = &[
        "id",
        "title",
        "description",
        "severity",
        "status",
        "closeClassification",
        "source",
        "sourceName",
        "occurredAt",
        "ingestedAt",
        "enrichedAt",
        "acknowledgedAt",
        "triagedAt",
        "closedAt",
        "updatedAt",
        "tags",
        "duplicateCount",
        "enrichmentStatus",
        "malice",
        "computedMalice",
        "maliceOverride",
    ];

    fn plain_field(&self, name: &str) -> Value {
        let row = &self.0;
        let time = |at: Option<chrono::DateTime<chrono::Utc>>| optional(at, |at| at.to_value());
        match name {
            "id" => Value::String(row.alert_id.to_string()),
            "title" => text(&row.title),
            "description" => optional(row.description.as_deref(), text),
            "severity" => enum_value(Severity::from(row.severity)),
            "status" => enum_value(AlertStatus::from(row.status)),
            "closeClassification" => optional(self.close_classification_value(), enum_value),
            "source" | "sourceName" => text(&row.source_name),
            "occurredAt" => row.occurred_at.to_value(),
            "ingestedAt" => row.ingested_at.to_value(),
            "enrichedAt" => time(row.enriched_at),
            "acknowledgedAt" => time(row.acknowledged_at),
            "triagedAt" => time(row.triaged_at),
            "closedAt" => time(row.closed_at),
            "updatedAt" => row.updated_at.to_value(),
            "tags" => Value::List(row.tags.iter().map(|tag| text(tag)).collect()),
            "duplicateCount" => Value::Number(row.duplicate_count.into()),
            "enrichmentStatus" => enum_value(EnrichmentStatus::from(row.enrichment_status)),
            "malice" => enum_value(Malice::from(row.malice_override.unwrap_or(row.malice))),
            "computedMalice" => enum_value(Malice::from(row.malice)),
            "maliceOverride" => optional(row.malice_override, |m| enum_value(Malice::from(m))),
            _ => unreachable!("{name} is not a plain field of Alert"),
        }
    }
}

impl PlainFields for Enrichment {
    const PLAIN: &'static [&'static str] =
        &["provider", "success", "extracted", "error", "malice", "enrichedAt", "expiresAt"];

    fn plain_field(&self, name: &str) -> Value {
        let row = &self.0.row;
        match name {
            "provider" => text(&row.provider),
            "success" => Value::Boolean(row.success),
            "extracted" => self.0.extracted.clone(),
            "error" => optional(row.error.as_deref(), text),
            "malice" => enum_value(Malice::from(row.malice)),
            "enrichedAt" => row.enriched_at.to_value(),
            "expiresAt" => row.expires_at.to_value(),
            _ => unreachable!("{name} is not a plain field of Enrichment"),
        }
    }
}

impl Indicator {
    const PLAIN: &'static [&'static str] = &[
        "id",
        "type",
        "value",
        "firstSeen",
        "lastSeen",
        "malice",
        "computedMalice",
        "maliceOverride",
        "enrichable",
    ];

    fn plain_field(&self, name: &str) -> Value {
        let row = &self.0;
        match name {
            "id" => Value::String(row.indicator_id.to_string()),
            "type" => enum_value(IndicatorType::from(row.kind)),
            "value" => text(&row.value),
            "firstSeen" => row.first_seen.to_value(),
            "lastSeen" => row.last_seen.to_value(),
            "malice" => enum_value(Malice::from(row.malice_override.unwrap_or(row.malice))),
            "computedMalice" => enum_value(Malice::from(row.malice)),
            "maliceOverride" => optional(row.malice_override, |m| enum_value(Malice::from(m))),
            "enrichable" => Value::Boolean(self.is_enrichable()),
            _ => unreachable!("{name} is not a plain field of Indicator"),
        }
    }
}

/// An indicator resolves in one pass when its selection is plain fields plus, optionally,
/// `enrichments` with a plain selection: the results come from the request's loader as usual,
/// and are built without a future each.
impl OutputType for Plain<Indicator> {
    fn type_name() -> Cow<'static, str> {
        Indicator::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Indicator::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let Some(plan) = IndicatorPlan::of(&ctx.item.node.items) else {
            return self.0.resolve(ctx, field).await;
        };
        let mut enrichments = None;
        if let Some((selected, shape)) = &plan.relation {
            let ctx_field = ctx.with_field(selected);
            match self.0.enrichment_rows(&ctx_field).await {
                Ok(rows) => enrichments = Some(IndicatorPlan::enrichments(shape, &rows)),
                Err(error) => record(ctx, &ctx_field, selected, error),
            }
        }
        Ok(plan.build(&self.0, |name| self.0.plain_field(name), enrichments))
    }
}

/// An alert resolves in one pass when its selection is plain fields plus, optionally,
/// `indicators` whose selection an [`IndicatorPlan`] takes: its indicators come from the
/// request's loader, and all of their results from one load.
impl OutputType for Plain<Alert> {
    fn type_name() -> Cow<'static, str> {
        Alert::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Alert::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let Some(plan) = AlertPlan::of(&ctx.item.node.items) else {
            return self.0.resolve(ctx, field).await;
        };
        let mut indicators = None;
        if let Some((selected, indicator_plan)) = &plan.relation {
            let ctx_field = ctx.with_field(selected);
            match self.0.indicator_rows(&ctx_field).await {
                Ok(rows) => {
                    let ctx_list = ctx_field.with_selection_set(&selected.node.selection_set);
                    let built = indicator_plan.build_all(&ctx_list, &rows).await;
                    indicators = Some(Value::List(built));
                }
                Err(error) => record(ctx, &ctx_field, selected, error),
            }
        }
        Ok(plan.build(&self.0, |name| self.0.plain_field(name), indicators))
    }
}

/// Records the error of field `selected` at its path; the field is left out of its object, as
/// async-graphql does.
fn record(
    ctx: &ContextSelectionSet<'_>,
    ctx_field: &Context<'_>,
    selected: &Positioned<Field>,
    error: async_graphql::Error,
) {
    ctx.add_error(ctx_field.set_error_path(error.into_server_error(selected.pos)));
}

/// What an object's selection asks for, when it can be resolved in one pass: plain fields and,
/// optionally, one relation, whose selection has a one-pass plan `R` of its own.
struct Plan<'a, R> {
    /// The object's fields, the relation's among them.
    shape: Shape<'a>,
    /// The relation's field, when selected, with the plan for its selection.
    relation: Option<(&'a Positioned<Field>, R)>,
}

impl<'a, R> Plan<'a, R> {
    /// The plan for `selection`, when every field in it is one of `plain` or `relation` (once,
    /// with a selection `nested` accepts).
    fn with_relation(
        selection: &'a [Positioned<Selection>],
        plain: &[&str],
        relation: &str,
        nested: impl FnOnce(&'a [Positioned<Selection>]) -> Option<R>,
    ) -> Option<Self> {
        let mut nested = Some(nested);
        let mut fields = Vec::with_capacity(selection.len());
        let mut relation_plan = None;
        for selection in selection {
            let Selection::Field(field) = &selection.node else { return None };
            let node = &field.node;
            if !node.arguments.is_empty() || !node.directives.is_empty() {
                return None;
            }
            match node.name.node.as_str() {
                "__typename" => {}
                // Selected twice, the relation merges field by field: that is left to
                // async-graphql.
                name if name == relation => {
                    let nested = nested.take()?(&node.selection_set.node.items)?;
                    relation_plan = Some((field, nested));
                }
                name if plain.contains(&name) => {}
                _ => return None,
            }
            fields.push(node);
        }
        Some(Plan { shape: Shape::of(&fields), relation: relation_plan })
    }

    /// `object` with the selected fields, valued by `plain`, and the relation's value (when
    /// selected) already built.
    fn build<T: OutputType>(
        &self,
        object: &T,
        plain: impl Fn(&str) -> Value,
        mut relation: Option<Value>,
    ) -> Value {
        let relation_name = self.relation.as_ref().map(|(field, _)| field.node.name.node.as_str());
        self.shape.build(object, |name| {
            if Some(name) == relation_name { relation.take() } else { Some(plain(name)) }
        })
    }
}

/// An indicator's plan; its relation is `enrichments`, with the shape of its plain fields.
type IndicatorPlan<'a> = Plan<'a, Shape<'a>>;

/// An alert's plan; its relation is `indicators`, with an indicator's plan.
type AlertPlan<'a> = Plan<'a, IndicatorPlan<'a>>;

impl<'a> AlertPlan<'a> {
    fn of(selection: &'a [Positioned<Selection>]) -> Option<Self> {
        Plan::with_relation(selection, Alert::PLAIN, "indicators", IndicatorPlan::of)
    }
}

impl<'a> IndicatorPlan<'a> {
    fn of(selection: &'a [Positioned<Selection>]) -> Option<Self> {
        Plan::with_relation(selection, Indicator::PLAIN, "enrichments", |selection| {
            plain_fields::<Enrichment>(selection).map(|fields| Shape::of(&fields))
        })
    }

    /// `enrichments` built from `rows`.
    fn enrichments(shape: &Shape<'_>, rows: &[Arc<StoredResult>]) -> Value {
        let built = rows.iter().map(|row| {
            let row = Enrichment(row.clone());
            shape.build(&row, |name| Some(row.plain_field(name)))
        });
        Value::List(built.collect())
    }

    /// A list of indicators, `ctx` being the list field's: the results of all of them are
    /// asked for in one load rather than one each.
    async fn build_all(
        &self,
        ctx: &ContextSelectionSet<'_>,
        indicators: &[Indicator],
    ) -> Vec<Value> {
        let mut enrichments: Vec<Option<Value>> = vec![None; indicators.len()];
        if let Some((selected, shape)) = &self.relation {
            let keys: Vec<ResultsOf> = indicators.iter().map(Indicator::results_key).collect();
            let loaded = match ctx.data::<Loaders>() {
                Ok(loaders) => loaders.load_many(keys.iter().copied()).await,
                Err(error) => Err(error),
            };
            match loaded {
                Ok(loaded) => {
                    for (slot, key) in enrichments.iter_mut().zip(&keys) {
                        let rows = loaded.get(key).map_or(&[][..], |rows| &rows[..]);
                        *slot = Some(Self::enrichments(shape, rows));
                    }
                }
                // Recorded for each indicator.
                Err(error) => {
                    for index in 0..indicators.len() {
                        let ctx_index = ctx.with_index(index);
                        record(ctx, &ctx_index.with_field(selected), selected, error.clone());
                    }
                }
            }
        }
        let indicators = indicators.iter().zip(enrichments);
        indicators
            .map(|(indicator, built)| {
                self.build(indicator, |name| indicator.plain_field(name), built)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use async_graphql::parser::types::{DocumentOperations, Selection};

    use super::*;

    /// The fields of the document's only operation.
    fn fields(document: &async_graphql::parser::types::ExecutableDocument) -> Vec<&Field> {
        let DocumentOperations::Single(operation) = &document.operations else { unreachable!() };
        let selection = &operation.node.selection_set.node.items;
        selection
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => &field.node,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_shape_builds_what_inserting_each_key_builds() {
        let document = parse_query("{ a b a: c d __typename e }").unwrap();
        let fields = fields(&document);
        let shape = Shape::of(&fields);
        // `b` and `e` have no value (a relation that failed): they are left out, wherever they
        // are, and the rest keep their places.
        let value = |name: &str| (!matches!(name, "b" | "e")).then(|| Value::from(name));
        for _ in 0..2 {
            let built = shape.build(&true, value);
            assert_eq!(built, build(&true, &fields, value));
            assert_eq!(
                built.to_string(),
                r#"{a: "a", d: "d", __typename: "Boolean"}"#,
                "a key selected twice keeps its first field"
            );
        }
    }
}
