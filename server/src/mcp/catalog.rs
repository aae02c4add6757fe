//! MCP tools generated from GraphQL operation files (SPEC §7).
//!
//! Every named operation in an `operations/*.graphql` file becomes one tool: its name is the
//! operation's name in snake_case, its description the `#` comment block right above it, its
//! input schema the operation's variables turned into JSON Schema (scalars, enums with their
//! values, input objects, lists; non-null without a default is required), described by the
//! schema's own descriptions of the arguments the variables feed. Queries are read-only tools,
//! mutations destructive ones. Each operation is validated against the schema when the catalog
//! is built, and a problem names its file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, FieldDefinition, InputValueDefinition,
    OperationType, Selection, SelectionSet, Type, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::{parse_query, parse_schema};
use async_graphql::{Name, Positioned};
use async_graphql_value::Value as GraphValue;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

include!(concat!(env!("OUT_DIR"), "/operations.rs"));

/// One operation file: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct OperationFile {
    pub name: String,
    pub source: String,
}

impl OperationFile {
    /// The files of the repository's `operations/`, built into the binary.
    pub fn builtin() -> Vec<OperationFile> {
        OPERATION_FILES
            .iter()
            .map(|(name, source)| OperationFile { name: (*name).into(), source: (*source).into() })
            .collect()
    }

    /// Every `*.graphql` file in `dir`, by name.
    pub fn read_dir(dir: &Path) -> Result<Vec<OperationFile>, CatalogError> {
        let io = |error: std::io::Error| CatalogError {
            file: dir.display().to_string(),
            message: error.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "graphql") {
                let source = std::fs::read_to_string(&path).map_err(|error| CatalogError {
                    file: path.display().to_string(),
                    message: error.to_string(),
                })?;
                files.push(OperationFile { name: path.display().to_string(), source });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// A problem with an operation file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CatalogError {
    pub file: String,
    pub message: String,
}

/// Every problem found in a set of operation files.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid GraphQL operation files:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct CatalogErrors(pub Vec<CatalogError>);

/// A tool and the operation it runs.
#[derive(Debug)]
pub struct OperationTool {
    pub tool: Tool,
    /// The file the operation is in.
    pub file: String,
    pub operation_name: String,
    /// The whole file, sent with `operation_name` (it may hold fragments).
    pub document: Arc<str>,
    /// The variables the operation declares: the only arguments the tool takes.
    pub variables: Vec<String>,
    pub is_mutation: bool,
}

/// The tools of a set of operation files.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: Vec<Arc<OperationTool>>,
    by_name: HashMap<String, Arc<OperationTool>>,
}

impl Catalog {
    /// The tools of `files`, every operation validated against the schema. Fails with every
    /// problem, each naming its file.
    pub async fn build(files: &[OperationFile]) -> Result<Catalog, CatalogErrors> {
        let sdl = crate::graphql::sdl();
        let types = SchemaTypes::parse(&sdl);
        let mut problems = Vec::new();
        let mut catalog = Catalog::default();
        for file in files {
            let problem = |message: String| CatalogError {
                file: file.name.clone(),
                message: message.clone(),
            };
            let document = match parse_query(&file.source) {
                Ok(document) => document,
                Err(error) => {
                    problems.push(problem(format!("not a GraphQL document: {error}")));
                    continue;
                }
            };
            let operations = match &document.operations {
                DocumentOperations::Multiple(operations) => operations,
                DocumentOperations::Single(_) => {
                    problems.push(problem(
                        "its operation has no name; a tool is named after its operation".into(),
                    ));
                    continue;
                }
            };
            let source: Arc<str> = Arc::from(file.source.as_str());
            let mut names: Vec<&Name> = operations.keys().collect();
            names.sort_by_key(|name| operations[*name].pos.line);
            for name in names {
                let errors = crate::graphql::validate(&file.source, Some(name)).await;
                if !errors.is_empty() {
                    problems.push(problem(format!(
                        "operation {name} does not match the schema: {}",
                        errors.join("; ")
                    )));
                    continue;
                }
                match types.tool(&file.source, &document, name, &source, &file.name) {
                    Ok(tool) => {
                        let tool_name = tool.tool.name.to_string();
                        if let Some(existing) = catalog.by_name.get(&tool_name) {
                            problems.push(problem(format!(
                                "tool {tool_name} is already defined by {}",
                                existing.file
                            )));
                            continue;
                        }
                        let tool = Arc::new(tool);
                        catalog.by_name.insert(tool_name, tool.clone());
                        catalog.tools.push(tool);
                    }
                    Err(message) => problems.push(problem(format!("operation {name}: {message}"))),
                }
            }
        }
        if problems.is_empty() { Ok(catalog) } else { Err(CatalogErrors(problems)) }
    }

    /// The built-in files, then those of `extra` (whose operations may not reuse a name).
    pub async fn load(extra: Option<&Path>) -> Result<Catalog, CatalogErrors> {
        let mut files = OperationFile::builtin();
        if let Some(dir) = extra {
            files.extend(OperationFile::read_dir(dir).map_err(|error| CatalogErrors(vec![error]))?);
        }
        Catalog::build(&files).await
    }

    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter().map(|tool| &tool.tool)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<OperationTool>> {
        self.by_name.get(name)
    }

    /// The tool running the operation named `operation_name`, if any file defines one.
    pub fn by_operation(&self, operation_name: &str) -> Option<&Arc<OperationTool>> {
        self.tools.iter().find(|tool| tool.operation_name == operation_name)
    }
}

/// The schema's type definitions by name, read from its SDL.
struct SchemaTypes {
    types: HashMap<String, TypeDefinition>,
}

impl SchemaTypes {
    fn parse(sdl: &str) -> SchemaTypes {
        let document = parse_schema(sdl).expect("the schema's own SDL parses");
        let types = document
            .definitions
            .into_iter()
            .filter_map(|definition| match definition {
                TypeSystemDefinition::Type(definition) => {
                    Some((definition.node.name.node.to_string(), definition.node))
                }
                _ => None,
            })
            .collect();
        SchemaTypes { types }
    }

    fn tool(
        &self,
        source: &str,
        document: &ExecutableDocument,
        name: &Name,
        text: &Arc<str>,
        file: &str,
    ) -> Result<OperationTool, String> {
        let DocumentOperations::Multiple(operations) = &document.operations else {
            unreachable!("named operations only")
        };
        let operation = &operations[name];
        let description = comment_above(source, operation.pos.line).ok_or_else(|| {
            "has no description: write a # comment block right above it saying what it \
             returns and when to use it"
                .to_string()
        })?;
        let tool_name = snake_case(name);
        if tool_name.len() > 64 {
            return Err(format!("{tool_name} is longer than the 64 characters a tool name may be"));
        }
        let root = match operation.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => {
                return Err("is a subscription, which a tool cannot run".into());
            }
        };
        let mut usages = Vec::new();
        self.find_usages(&operation.node.selection_set.node, root, document, &mut usages, 0);

        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut variables = Vec::new();
        for variable in &operation.node.variable_definitions {
            let variable = &variable.node;
            let var_name = variable.name.node.to_string();
            let mut schema = self.json_schema(&variable.var_type.node, &mut Vec::new())?;
            let used = usages.iter().filter(|usage| usage.variable == var_name);
            for usage in used.clone() {
                if !usage_allowed(
                    &variable.var_type.node,
                    variable.default_value.is_some(),
                    &usage.expected,
                    usage.has_default,
                ) {
                    return Err(format!(
                        "${var_name} is declared {} but {} takes {}",
                        variable.var_type.node, usage.location, usage.expected
                    ));
                }
            }
            if let Some(text) = used.filter_map(|usage| usage.description.clone()).next() {
                schema.insert("description".into(), Value::String(text));
            }
            match &variable.default_value {
                Some(default) => {
                    let default = default.node.clone().into_json().map_err(|e| e.to_string())?;
                    if !default.is_null() {
                        schema.insert("default".into(), default);
                    }
                }
                None if !variable.var_type.node.nullable => required.push(var_name.clone()),
                None => {}
            }
            properties.insert(var_name.clone(), Value::Object(schema));
            variables.push(var_name);
        }
        let mut input = JsonObject::new();
        input.insert("type".into(), json!("object"));
        input.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            input.insert("required".into(), json!(required));
        }
        input.insert("additionalProperties".into(), json!(false));

        let is_mutation = root == "Mutation";
        let annotations = ToolAnnotations::new()
            .read_only(!is_mutation)
            .destructive(is_mutation)
            .open_world(false);
        let tool = Tool::new(tool_name, description, Arc::new(input))
            .with_title(title(name))
            .with_annotations(annotations);
        Ok(OperationTool {
            tool,
            file: file.to_owned(),
            operation_name: name.to_string(),
            document: text.clone(),
            variables,
            is_mutation,
        })
    }

    /// Finds every place a variable is passed: straight to an argument, to an input object's
    /// field, or as a list item; with the type expected there and the schema's description.
    fn find_usages(
        &self,
        set: &SelectionSet,
        parent: &str,
        document: &ExecutableDocument,
        out: &mut Vec<Usage>,
        depth: usize,
    ) {
        if depth > 32 {
            return;
        }
        for item in &set.items {
            let (selection, on) = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let Some(definition) = self.field(parent, &field.name.node) else { continue };
                    for (argument, value) in &field.arguments {
                        if let Some(argument) = find_input(&definition.arguments, &argument.node) {
                            let location =
                                format!("argument {} of {}", argument.name.node, field.name.node);
                            let expected = &argument.ty.node;
                            self.value_usages(&value.node, argument, expected, &location, out);
                        }
                    }
                    (&field.selection_set.node, base_name(&definition.ty.node))
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment.node.type_condition.as_ref();
                    let on = on.map_or(parent, |condition| condition.node.on.node.as_str());
                    (&fragment.node.selection_set.node, on)
                }
                Selection::FragmentSpread(spread) => {
                    let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        continue;
                    };
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    (&fragment.node.selection_set.node, on)
                }
            };
            self.find_usages(selection, on, document, out, depth + 1);
        }
    }

    fn value_usages(
        &self,
        value: &GraphValue,
        input: &InputValueDefinition,
        expected: &Type,
        location: &str,
        out: &mut Vec<Usage>,
    ) {
        match value {
            GraphValue::Variable(variable) => out.push(Usage {
                variable: variable.to_string(),
                description: input.description.as_ref().map(|text| text.node.clone()),
                expected: expected.clone(),
                has_default: input.default_value.is_some(),
                location: location.to_owned(),
            }),
            GraphValue::Object(fields) => {
                let Some(TypeKind::InputObject(object)) =
                    self.types.get(base_name(expected)).map(|t| &t.kind)
                else {
                    return;
                };
                for (name, value) in fields {
                    if let Some(field) = find_input(&object.fields, name) {
                        let location = format!("field {name} of {}", base_name(expected));
                        self.value_usages(value, field, &field.ty.node, &location, out);
                    }
                }
            }
            GraphValue::List(items) => {
                if let BaseType::List(item_type) = &expected.base {
                    for item in items {
                        self.value_usages(item, input, item_type, location, out);
                    }
                }
            }
            _ => {}
        }
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldDefinition> {
        let fields = match &self.types.get(parent)?.kind {
            TypeKind::Object(object) => &object.fields,
            TypeKind::Interface(interface) => &interface.fields,
            _ => return None,
        };
        fields.iter().map(|field| &field.node).find(|field| field.name.node == name)
    }

    /// JSON Schema for a GraphQL input type. `seen` holds the input objects being expanded, so
    /// a self-referencing one stops instead of recursing forever.
    fn json_schema(&self, ty: &Type, seen: &mut Vec<String>) -> Result<JsonObject, String> {
        let mut schema = JsonObject::new();
        let name = match &ty.base {
            BaseType::List(item) => {
                schema.insert("type".into(), json!("array"));
                schema.insert("items".into(), Value::Object(self.json_schema(item, seen)?));
                return Ok(schema);
            }
            BaseType::Named(name) => name.as_str(),
        };
        let builtin = match name {
            "String" | "ID" => Some(json!({"type": "string"})),
            "Int" => Some(json!({"type": "integer"})),
            "Float" => Some(json!({"type": "number"})),
            "Boolean" => Some(json!({"type": "boolean"})),
            _ => None,
        };
        if let Some(Value::Object(builtin)) = builtin {
            return Ok(builtin);
        }
        let definition =
            self.types.get(name).ok_or_else(|| format!("the schema has no type {name}"))?;
        let described = definition.description.as_ref().map(|d| d.node.clone());
        match &definition.kind {
            TypeKind::Scalar => {
                let described = match name {
                    "DateTime" => {
                        schema.insert("type".into(), json!("string"));
                        schema.insert("format".into(), json!("date-time"));
                        Some("An RFC 3339 time, such as 2026-01-31T08:00:00Z.".to_owned())
                    }
                    "UUID" => {
                        schema.insert("type".into(), json!("string"));
                        schema.insert("format".into(), json!("uuid"));
                        described
                    }
                    // JSON and other scalars take any value.
                    _ => described,
                };
                if let Some(text) = described {
                    schema.insert("description".into(), Value::String(text));
                }
            }
            TypeKind::Enum(values) => {
                let names: Vec<&str> =
                    values.values.iter().map(|value| value.node.value.node.as_str()).collect();
                schema.insert("type".into(), json!("string"));
                schema.insert("enum".into(), json!(names));
                let explained: Vec<String> = values
                    .values
                    .iter()
                    .filter_map(|value| {
                        let text = value.node.description.as_ref()?;
                        Some(format!("{}: {}", value.node.value.node, text.node))
                    })
                    .collect();
                let text = match (described, explained.is_empty()) {
                    (Some(text), true) => Some(text),
                    (Some(text), false) => Some(format!("{text}\n{}", explained.join("\n"))),
                    (None, false) => Some(explained.join("\n")),
                    (None, true) => None,
                };
                if let Some(text) = text {
                    schema.insert("description".into(), Value::String(text));
                }
            }
            TypeKind::InputObject(object) => {
                schema.insert("type".into(), json!("object"));
                if let Some(text) = described {
                    schema.insert("description".into(), Value::String(text));
                }
                if seen.iter().any(|expanded| expanded == name) {
                    return Ok(schema);
                }
                seen.push(name.to_owned());
                let mut properties = Map::new();
                let mut required = Vec::new();
                for field in &object.fields {
                    let field = &field.node;
                    let mut property = self.json_schema(&field.ty.node, seen)?;
                    if let Some(text) = &field.description {
                        property.insert("description".into(), Value::String(text.node.clone()));
                    }
                    match &field.default_value {
                        Some(default) => {
                            let default =
                                default.node.clone().into_json().map_err(|e| e.to_string())?;
                            if !default.is_null() {
                                property.insert("default".into(), default);
                            }
                        }
                        None if !field.ty.node.nullable => {
                            required.push(field.name.node.to_string())
                        }
                        None => {}
                    }
                    properties.insert(field.name.node.to_string(), Value::Object(property));
                }
                seen.pop();
                schema.insert("properties".into(), Value::Object(properties));
                if !required.is_empty() {
                    schema.insert("required".into(), json!(required));
                }
                schema.insert("additionalProperties".into(), json!(false));
            }
            _ => return Err(format!("{name} is not an input type")),
        }
        Ok(schema)
    }
}

/// A variable passed somewhere in an operation.
struct Usage {
    variable: String,
    description: Option<String>,
    expected: Type,
    /// The argument or field has a default, so a nullable variable may fill a non-null slot.
    has_default: bool,
    location: String,
}

/// Whether a variable of type `variable` may be passed where `location` is expected (the
/// GraphQL spec's IsVariableUsageAllowed).
fn usage_allowed(
    variable: &Type,
    variable_default: bool,
    location: &Type,
    location_default: bool,
) -> bool {
    if !location.nullable && variable.nullable {
        if !(variable_default || location_default) {
            return false;
        }
        let non_null = Type { base: variable.base.clone(), nullable: false };
        return is_subtype(&non_null, location);
    }
    is_subtype(variable, location)
}

fn is_subtype(variable: &Type, location: &Type) -> bool {
    if !location.nullable && variable.nullable {
        return false;
    }
    match (&variable.base, &location.base) {
        (BaseType::List(variable), BaseType::List(location)) => is_subtype(variable, location),
        (BaseType::Named(variable), BaseType::Named(location)) => variable == location,
        _ => false,
    }
}

fn find_input<'a>(
    inputs: &'a [Positioned<InputValueDefinition>],
    name: &str,
) -> Option<&'a InputValueDefinition> {
    inputs.iter().map(|input| &input.node).find(|input| input.name.node == name)
}

fn base_name(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => base_name(item),
    }
}

/// The `#` comment block ending on the line above `line` (1-based): its lines joined with
/// spaces, a bare `#` line starting a new paragraph.
fn comment_above(source: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut block = Vec::new();
    for text in lines[..line.saturating_sub(1).min(lines.len())].iter().rev() {
        match text.trim().strip_prefix('#') {
            Some(comment) => block.push(comment.trim()),
            None => break,
        }
    }
    block.reverse();
    let mut paragraphs: Vec<String> = vec![String::new()];
    for comment in block {
        let current = paragraphs.last_mut().expect("one paragraph at least");
        if comment.is_empty() {
            if !current.is_empty() {
                paragraphs.push(String::new());
            }
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(comment);
        }
    }
    let text = paragraphs.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n\n");
    (!text.is_empty()).then_some(text)
}

/// `GetAlert` → `get_alert`; a run of capitals is one word (`GetIPReport` → `get_ip_report`).
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let starts_word = match previous {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                Some(_) => false,
            };
            if starts_word {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `GetAlert` → `Get alert`.
fn title(name: &str) -> String {
    let words = snake_case(name).replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// The tools as committed in the snapshot: name, title, description, input schema and
/// annotations, in file order.
pub fn snapshot(catalog: &Catalog) -> Value {
    let tools: Vec<BTreeMap<&str, Value>> = catalog
        .tools()
        .map(|tool| {
            let mut entry = BTreeMap::new();
            entry.insert("name", json!(tool.name));
            entry.insert("title", json!(tool.title));
            entry.insert("description", json!(tool.description));
            entry.insert("inputSchema", Value::Object((*tool.input_schema).clone()));
            entry.insert("annotations", json!(tool.annotations));
            entry
        })
        .collect();
    json!(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_with_acronyms_as_words() {
        assert_eq!(snake_case("GetAlert"), "get_alert");
        assert_eq!(snake_case("GetIPReport"), "get_ip_report");
        assert_eq!(snake_case("searchAlerts"), "search_alerts");
        assert_eq!(snake_case("Lookup2Hashes"), "lookup2_hashes");
        assert_eq!(title("GetRelatedAlerts"), "Get related alerts");
    }

    #[test]
    fn the_comment_block_right_above_is_the_description() {
        let source =
            "# unrelated\n\n# Line one\n# continues.\n#\n# Second paragraph.\nquery A { x }";
        assert_eq!(
            comment_above(source, 7).as_deref(),
            Some("Line one continues.\n\nSecond paragraph.")
        );
        assert_eq!(comment_above("query A { x }", 1), None);
    }
}
