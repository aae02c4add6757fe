//! The template language of provider definitions: `{{indicator.value}}`, `{{indicator.type}}`,
//! `{{auth.<field>}}`, `{{base_url}}` and `{{steps.<name>.response.<path>}}`, with an optional
//! `| urlencode` filter and any whitespace inside the braces.
//!
//! It is deliberately not a general template engine: a definition is data that an API client
//! can upload, so the language has no logic, and a variable it does not know is an error
//! rather than an empty string (an empty API key is a confusing 401; a typo should be caught
//! at import). Encoding depends on where the text goes (see [`Escape`]), so a value can never
//! change the structure of a URL, whether or not the author remembered the filter.
//!
//! Secrets pass through here, so nothing in this file puts a rendered value into an error:
//! errors name the template by its place in the definition and the variable by its name.

use serde_json::Value;

use super::auth::AuthValues;
use super::http::StepResponse;
use crate::indicator::Indicator;
use crate::normalize::path::lookup;
use crate::secret::Secret;

/// A variable a template can refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Variable<'t> {
    IndicatorValue,
    IndicatorType,
    BaseUrl,
    /// A credential field, or the OAuth2 token as `auth.access_token`.
    Auth(&'t str),
    /// A value in the body of an earlier step; an empty path is the whole body.
    Step {
        name: &'t str,
        path: &'t str,
    },
}

/// The name under which an OAuth2 provider's fetched token is available to templates.
pub(crate) const ACCESS_TOKEN: &str = "access_token";

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'t> {
    Text(&'t str),
    Placeholder { variable: Variable<'t>, urlencode: bool },
}

/// How rendered values are encoded, by where the rendered text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// A URL template: every value except `{{base_url}}` is percent-encoded as a URL component
    /// (`/`, `?`, `#`, `&`, spaces, …), so `| urlencode` adds nothing and never double-encodes.
    Url,
    /// A query or form field value that the request encodes as a whole afterwards; values go
    /// in as they are and `| urlencode` adds nothing, again to avoid double encoding.
    Field,
    /// A header or a JSON string: values go in as they are, and `| urlencode` encodes them.
    Plain,
}

/// A template that could not be parsed or rendered. Names the template and the variable,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template}: {problem}")]
pub struct TemplateError {
    /// Where the template is in the definition, e.g. `http_config.steps[0].url`.
    pub template: String,
    pub problem: TemplateProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    #[error("a `{{{{` is never closed by `}}}}`")]
    Unclosed,
    #[error("a `{{{{ }}}}` placeholder is empty")]
    Empty,
    #[error(
        "unknown variable `{0}`; expected indicator.value, indicator.type, base_url, \
         auth.<field> or steps.<name>.response.<path>"
    )]
    UnknownVariable(String),
    #[error("unknown filter `{0}`; the only filter is urlencode")]
    UnknownFilter(String),
    #[error("`{0}` has no value")]
    Missing(String),
    #[error("`{0}` is an object or a list, not a single value")]
    NotScalar(String),
    #[error("the rendered URL is not a valid http(s) URL ({0})")]
    InvalidUrl(String),
    #[error("header `{0}` has a name or a rendered value that HTTP does not allow")]
    InvalidHeader(String),
}

impl TemplateProblem {
    pub(crate) fn at(self, template: &str) -> TemplateError {
        TemplateError { template: template.to_owned(), problem: self }
    }
}

/// The variables `text` refers to, in order, or the first reason it does not parse.
pub(crate) fn variables(text: &str) -> Result<Vec<Variable<'_>>, TemplateProblem> {
    let pieces = parse(text)?;
    let variables = pieces.into_iter().filter_map(|piece| match piece {
        Piece::Placeholder { variable, .. } => Some(variable),
        Piece::Text(_) => None,
    });
    Ok(variables.collect())
}

fn parse(text: &str) -> Result<Vec<Piece<'_>>, TemplateProblem> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or(TemplateProblem::Unclosed)?;
        pieces.push(parse_placeholder(&after_open[..close])?);
        rest = &after_open[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Reads `variable | filter | …` from between the braces.
fn parse_placeholder(inside: &str) -> Result<Piece<'_>, TemplateProblem> {
    let mut parts = inside.split('|').map(str::trim);
    let expression = parts.next().unwrap_or_default();
    if expression.is_empty() {
        return Err(TemplateProblem::Empty);
    }
    let variable = parse_variable(expression)?;
    let mut urlencode = false;
    for filter in parts {
        match filter {
            "urlencode" => urlencode = true,
            other => return Err(TemplateProblem::UnknownFilter(other.to_owned())),
        }
    }
    Ok(Piece::Placeholder { variable, urlencode })
}

fn parse_variable(expression: &str) -> Result<Variable<'_>, TemplateProblem> {
    let unknown = || TemplateProblem::UnknownVariable(expression.to_owned());
    match expression {
        "indicator.value" => return Ok(Variable::IndicatorValue),
        "indicator.type" => return Ok(Variable::IndicatorType),
        "base_url" => return Ok(Variable::BaseUrl),
        _ => {}
    }
    if let Some(field) = expression.strip_prefix("auth.") {
        return is_identifier(field).then_some(Variable::Auth(field)).ok_or_else(unknown);
    }
    let (name, path) = split_step_path(expression).ok_or_else(unknown)?;
    Ok(Variable::Step { name, path })
}

/// Splits `steps.<name>.response.<path>` into the step name and the path (empty for the whole
/// body). Malice rules and field extractions use the same form to reach an earlier step.
pub(crate) fn split_step_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("steps.")?;
    let (name, rest) = rest.split_once('.')?;
    let path = match rest.strip_prefix("response") {
        Some("") => "",
        Some(tail) => tail.strip_prefix('.')?,
        None => return None,
    };
    is_identifier(name).then_some((name, path))
}

/// Step names and credential fields: ASCII letters, digits, `_` and `-`.
pub(crate) fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a template can draw values from while a lookup runs.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// `None` while fetching an OAuth2 token, which belongs to no indicator.
    pub(crate) indicator: Option<&'a Indicator>,
    pub(crate) base_url: Option<&'a str>,
    pub(crate) auth: &'a AuthValues,
    pub(crate) access_token: Option<&'a Secret>,
    /// The bodies of the steps that ran before this one.
    pub(crate) steps: &'a [StepResponse],
}

/// Renders `text`, found at `template` in the definition, for the place `escape` describes.
pub(crate) fn render(
    template: &str,
    text: &str,
    scope: &Scope<'_>,
    escape: Escape,
) -> Result<String, TemplateError> {
    let pieces = parse(text).map_err(|problem| problem.at(template))?;
    let mut rendered = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => rendered.push_str(text),
            Piece::Placeholder { variable, urlencode } => {
                let value = value_of(&variable, scope).map_err(|problem| problem.at(template))?;
                let encode = match escape {
                    Escape::Url => variable != Variable::BaseUrl || urlencode,
                    Escape::Field => false,
                    Escape::Plain => urlencode,
                };
                if encode {
                    rendered.push_str(&encode_component(&value));
                } else {
                    rendered.push_str(&value);
                }
            }
        }
    }
    Ok(rendered)
}

/// Renders every string inside a JSON body, keeping its structure.
pub(crate) fn render_json(
    template: &str,
    body: &Value,
    scope: &Scope<'_>,
) -> Result<Value, TemplateError> {
    Ok(match body {
        Value::String(text) => Value::String(render(template, text, scope, Escape::Plain)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_json(template, item, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, field)| Ok((key.clone(), render_json(template, field, scope)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        scalar => scalar.clone(),
    })
}

fn value_of(variable: &Variable<'_>, scope: &Scope<'_>) -> Result<String, TemplateProblem> {
    match *variable {
        Variable::IndicatorValue => scope
            .indicator
            .map(|indicator| indicator.value.clone())
            .ok_or_else(|| TemplateProblem::Missing("indicator.value".into())),
        Variable::IndicatorType => scope
            .indicator
            .map(|indicator| indicator.kind.as_str().to_owned())
            .ok_or_else(|| TemplateProblem::Missing("indicator.type".into())),
        Variable::BaseUrl => scope
            .base_url
            .map(str::to_owned)
            .ok_or_else(|| TemplateProblem::Missing("base_url".into())),
        Variable::Auth(field) => auth_value(field, scope)
            .map(|secret| secret.expose().to_owned())
            .ok_or_else(|| TemplateProblem::Missing(format!("auth.{field}"))),
        Variable::Step { name, path } => step_value(name, path, scope),
    }
}

/// A credential field; `access_token` is the fetched OAuth2 token when there is one, so an
/// `api_token` provider may still call a configured field by that name.
fn auth_value<'a>(field: &str, scope: &Scope<'a>) -> Option<&'a Secret> {
    let fetched = scope.access_token.filter(|_| field == ACCESS_TOKEN);
    fetched.or_else(|| scope.auth.get(field))
}

fn step_value(name: &str, path: &str, scope: &Scope<'_>) -> Result<String, TemplateProblem> {
    let display = || match path {
        "" => format!("steps.{name}.response"),
        path => format!("steps.{name}.response.{path}"),
    };
    let body = scope.steps.iter().find(|step| step.step == name).map(|step| &step.body);
    let found = match (body, path) {
        (Some(body), "") => Some(body),
        (Some(body), path) => lookup(body, path).into_iter().next(),
        (None, _) => None,
    };
    match found {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(scalar @ (Value::Number(_) | Value::Bool(_))) => Ok(scalar.to_string()),
        Some(Value::Array(_) | Value::Object(_)) => Err(TemplateProblem::NotScalar(display())),
        Some(Value::Null) | None => Err(TemplateProblem::Missing(display())),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, the strictest encoding
/// of a URL component: the result is safe in a path segment, a query and a fragment alike.
pub(crate) fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::alert::IndicatorType;

    fn indicator(value: &str) -> Indicator {
        Indicator { kind: IndicatorType::Url, value: value.to_owned() }
    }

    fn auth() -> AuthValues {
        [("api_key".to_owned(), Secret::new("k3y/with+slash"))].into_iter().collect()
    }

    fn render_with(
        text: &str,
        escape: Escape,
        steps: &[StepResponse],
    ) -> Result<String, TemplateError> {
        let indicator = indicator("http://a.example/x y?q=1#frag");
        let auth = auth();
        let scope = Scope {
            indicator: Some(&indicator),
            base_url: Some("https://api.example.com/v3"),
            auth: &auth,
            access_token: None,
            steps,
        };
        render("test.url", text, &scope, escape)
    }

    #[test]
    fn values_in_a_url_are_percent_encoded_without_the_filter() {
        let rendered = render_with("{{base_url}}/urls/{{indicator.value}}", Escape::Url, &[]);
        assert_eq!(
            rendered.as_deref(),
            Ok("https://api.example.com/v3/urls/http%3A%2F%2Fa.example%2Fx%20y%3Fq%3D1%23frag")
        );
    }

    #[test]
    fn the_urlencode_filter_in_a_url_does_not_encode_twice() {
        let plain = render_with("{{base_url}}/u/{{indicator.value}}", Escape::Url, &[]);
        let filtered =
            render_with("{{base_url}}/u/{{ indicator.value | urlencode }}", Escape::Url, &[]);
        assert_eq!(plain, filtered);
    }

    #[test]
    fn headers_take_values_as_they_are_unless_filtered() {
        assert_eq!(
            render_with("{{auth.api_key}}", Escape::Plain, &[]).as_deref(),
            Ok("k3y/with+slash")
        );
        assert_eq!(
            render_with("{{auth.api_key|urlencode}}", Escape::Plain, &[]).as_deref(),
            Ok("k3y%2Fwith%2Bslash")
        );
    }

    #[test]
    fn query_and_form_fields_are_left_for_the_request_to_encode() {
        assert_eq!(
            render_with("{{ indicator.value | urlencode }}", Escape::Field, &[]).as_deref(),
            Ok("http://a.example/x y?q=1#frag")
        );
    }

    #[test]
    fn whitespace_inside_the_braces_is_allowed() {
        assert_eq!(
            render_with("{{   indicator.type   }}", Escape::Plain, &[]).as_deref(),
            Ok("url")
        );
    }

    #[test]
    fn earlier_step_values_are_reached_by_path() {
        let steps = [StepResponse {
            step: "user".into(),
            status: 200,
            body: json!({"id": "00u1", "profile": {"age": 42}, "groups": ["a"]}),
        }];
        assert_eq!(
            render_with(
                "/users/{{steps.user.response.id}}/{{steps.user.response.profile.age}}",
                Escape::Url,
                &steps
            )
            .as_deref(),
            Ok("/users/00u1/42")
        );
        assert_eq!(
            render_with("{{steps.user.response.profile}}", Escape::Plain, &steps),
            Err(TemplateProblem::NotScalar("steps.user.response.profile".into()).at("test.url"))
        );
    }

    #[test]
    fn unknown_variables_are_errors_that_name_the_template() {
        let error = render_with("{{indicator.valu}}", Escape::Plain, &[]).unwrap_err();
        assert_eq!(error.template, "test.url");
        assert_eq!(error.problem, TemplateProblem::UnknownVariable("indicator.valu".into()));
        assert!(
            error.to_string().starts_with("template test.url: unknown variable `indicator.valu`")
        );
    }

    #[test]
    fn missing_values_are_errors_not_empty_strings() {
        assert_eq!(
            render_with("{{auth.api_token}}", Escape::Plain, &[]),
            Err(TemplateProblem::Missing("auth.api_token".into()).at("test.url"))
        );
        assert_eq!(
            render_with("{{steps.user.response.id}}", Escape::Plain, &[]),
            Err(TemplateProblem::Missing("steps.user.response.id".into()).at("test.url"))
        );
    }

    #[test]
    fn malformed_placeholders_are_reported() {
        assert_eq!(parse("a {{ indicator.value"), Err(TemplateProblem::Unclosed));
        assert_eq!(parse("{{ }}"), Err(TemplateProblem::Empty));
        assert_eq!(
            parse("{{indicator.value | upper}}"),
            Err(TemplateProblem::UnknownFilter("upper".into()))
        );
        assert_eq!(
            parse("{{steps.user.body.id}}"),
            Err(TemplateProblem::UnknownVariable("steps.user.body.id".into()))
        );
    }

    #[test]
    fn rendering_errors_never_contain_the_secret() {
        let error = render_with("{{auth.api_key}} {{nope}}", Escape::Plain, &[]).unwrap_err();
        assert!(!format!("{error} {error:?}").contains("k3y"));
    }

    #[test]
    fn step_paths_split_into_name_and_path() {
        assert_eq!(
            split_step_path("steps.user.response.profile.email"),
            Some(("user", "profile.email"))
        );
        assert_eq!(split_step_path("steps.user.response"), Some(("user", "")));
        assert_eq!(split_step_path("steps.user.responses.x"), None);
        assert_eq!(split_step_path("data.attributes"), None);
    }

    #[test]
    fn json_bodies_render_every_string_inside() {
        let auth = auth();
        let indicator = indicator("x");
        let scope = Scope {
            indicator: Some(&indicator),
            base_url: None,
            auth: &auth,
            access_token: None,
            steps: &[],
        };
        let body =
            json!({"query": ["{{indicator.value}}", 3], "nested": {"key": "{{auth.api_key}}"}});
        assert_eq!(
            render_json("json_body", &body, &scope),
            Ok(json!({"query": ["x", 3], "nested": {"key": "k3y/with+slash"}}))
        );
    }
}
