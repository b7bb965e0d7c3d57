//! `GET /docs`: the OpenAPI description rendered as one HTML page on the server — operations
//! grouped by tag with their parameters, bodies, responses and security, then every schema.
//! No script and no third-party asset: it works offline and under a strict
//! Content-Security-Policy (its only subresource is `/docs/docs.css`).

use std::{fmt::Write as _, sync::LazyLock};

use axum::{
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use serde_json::Value;

use super::markdown::{block, escape, inline};

const STYLESHEET: &str = include_str!("docs.css");
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

static PAGE: LazyLock<String> = LazyLock::new(|| render(super::spec()));

/// `GET /docs`
#[utoipa::path(get, path = "/docs", tag = "meta", security(()),
    responses((status = 200, description = "this description as an HTML page",
               content_type = "text/html", body = String)))]
pub async fn docs() -> Response {
    let mut response = Html(PAGE.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /docs/docs.css`: the page's only subresource.
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
}

/// The operations of `spec` as `(tag, method, path, operation)`, in the spec's order.
fn operations(spec: &Value) -> Vec<(String, &'static str, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
                out.push((tag, method, path.as_str(), operation));
            }
        }
    }
    out
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("op-{method}{slug}")
}

/// Renders the whole page.
pub fn render(spec: &Value) -> String {
    let info = &spec["info"];
    let title = escape(info["title"].as_str().unwrap_or("API"));
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} HTTP API</title><link rel=\"stylesheet\" href=\"/docs/docs.css\">\
         </head><body><header><h1>{title} HTTP API <small>{}</small></h1>\
         <p>OpenAPI {} · machine-readable: <a href=\"/openapi.json\">/openapi.json</a></p>\
         </header>",
        escape(info["version"].as_str().unwrap_or_default()),
        escape(spec["openapi"].as_str().unwrap_or_default()),
    );
    let operations = operations(spec);
    let tags: Vec<(&str, &str)> = spec["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default(),
                t["description"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    html.push_str("<nav><h2>Operations</h2>");
    for (tag, _) in &tags {
        let _ = write!(html, "<h3>{}</h3><ul>", escape(tag));
        for (_, method, path, _) in operations.iter().filter(|o| o.0 == *tag) {
            let _ = write!(
                html,
                "<li><a href=\"#{}\"><span class=\"method {method}\">{}</span> {}</a></li>",
                anchor(method, path),
                method.to_uppercase(),
                escape(path)
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("<h3><a href=\"#schemas\">Schemas</a></h3></nav><main>");
    let _ = write!(
        html,
        "<section id=\"overview\">{}</section>",
        block(info["description"].as_str().unwrap_or_default())
    );
    html.push_str(&security(spec));
    for (tag, description) in &tags {
        let _ = write!(
            html,
            "<section id=\"tag-{0}\"><h2>{0}</h2><p>{1}</p>",
            escape(tag),
            inline(description)
        );
        for (_, method, path, operation) in operations.iter().filter(|o| o.0 == *tag) {
            html.push_str(&render_operation(method, path, operation));
        }
        html.push_str("</section>");
    }
    html.push_str("<section id=\"schemas\"><h2>Schemas</h2>");
    for (name, schema) in spec["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = write!(
            html,
            "<article id=\"schema-{0}\"><h3>{0}</h3>{1}</article>",
            escape(name),
            render_schema(schema)
        );
    }
    html.push_str("</section></main></body></html>\n");
    html
}

fn security(spec: &Value) -> String {
    let mut html = String::from("<section id=\"security\"><h2>Authentication</h2><dl>");
    for (name, scheme) in spec["components"]["securitySchemes"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = write!(
            html,
            "<dt><code>{}</code>: {} {}</dt><dd>{}</dd>",
            escape(name),
            escape(scheme["type"].as_str().unwrap_or_default()),
            escape(scheme["scheme"].as_str().unwrap_or_default()),
            inline(scheme["description"].as_str().unwrap_or_default())
        );
    }
    html.push_str(
        "</dl><p>Every response carries <code>X-Request-Id</code>: the one the client sent, \
         else a new UUID; error bodies repeat it as <code>request_id</code>.</p></section>",
    );
    html
}

fn render_operation(method: &str, path: &str, operation: &Value) -> String {
    let mut html = format!(
        "<article class=\"operation\" id=\"{}\"><h3><span class=\"method {method}\">{}</span> \
         <code>{}</code></h3>",
        anchor(method, path),
        method.to_uppercase(),
        escape(path)
    );
    // A summary that only repeats the heading (`POST /path`) is left out.
    let heading = format!("`{} {path}", method.to_uppercase());
    for key in ["summary", "description"] {
        if let Some(text) = operation[key].as_str().filter(|t| !t.starts_with(&heading)) {
            let _ = write!(html, "<p>{}</p>", inline(text));
        }
    }
    let public = operation["security"].as_array().is_some_and(|r| {
        r.iter()
            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    html.push_str(if public {
        "<p class=\"auth\">Public: no authentication.</p>"
    } else {
        "<p class=\"auth\">Requires <code>Authorization: Bearer &lt;token&gt;</code>.</p>"
    });
    if let Some(parameters) = operation["parameters"].as_array() {
        html.push_str(
            "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th>\
             <th>Description</th></tr>",
        );
        for p in parameters {
            let required = if p["required"].as_bool() == Some(true) {
                " <em>required</em>"
            } else {
                ""
            };
            let _ = write!(
                html,
                "<tr><td><code>{}</code>{required}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(p["name"].as_str().unwrap_or_default()),
                escape(p["in"].as_str().unwrap_or_default()),
                type_of(&p["schema"]),
                inline(p["description"].as_str().unwrap_or_default())
            );
        }
        html.push_str("</table>");
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        html.push_str("<h4>Request body</h4>");
        for (media_type, media) in content {
            let _ = write!(
                html,
                "<p><code>{}</code>: {}</p>",
                escape(media_type),
                type_of(&media["schema"])
            );
        }
    }
    html.push_str(
        "<h4>Responses</h4><table><tr><th>Status</th><th>Description</th><th>Body</th>\
         <th>Headers</th></tr>",
    );
    for (status, response) in operation["responses"].as_object().into_iter().flatten() {
        html.push_str(&render_response(status, response));
    }
    html.push_str("</table></article>");
    html
}

fn render_response(status: &str, response: &Value) -> String {
    let (response, named) = match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            (&super::spec()["components"]["responses"][name], Some(name))
        }
        None => (response, None),
    };
    let bodies: Vec<String> = response["content"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(media_type, media)| {
            format!(
                "<code>{}</code>: {}",
                escape(media_type),
                type_of(&media["schema"])
            )
        })
        .collect();
    let headers: Vec<String> = response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| *name != "X-Request-Id")
        .map(|(name, h)| {
            format!(
                "<code>{}</code> <span class=\"note\">{}</span>",
                escape(name),
                inline(h["description"].as_str().unwrap_or_default())
            )
        })
        .collect();
    let description = inline(response["description"].as_str().unwrap_or_default());
    let description = match named {
        Some(name) => format!("<strong>{}</strong>: {description}", escape(name)),
        None => description,
    };
    format!(
        "<tr><td class=\"status\">{}</td><td>{description}</td><td>{}</td><td>{}</td></tr>",
        escape(status),
        bodies.join("<br>"),
        headers.join("<br>")
    )
}

/// A one-line, linked description of a schema's type.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = escape(reference.rsplit('/').next().unwrap_or_default());
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(value) = schema.get("const") {
        return format!("<code>{}</code>", escape(&value.to_string()));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect();
        return format!("one of {}", values.join(", "));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema[key].as_array() {
            let branches: Vec<String> = branches.iter().map(type_of).collect();
            return branches.join(" | ");
        }
    }
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut parts: Vec<String> = kinds
        .iter()
        .map(|kind| match *kind {
            "array" => format!("array of {}", type_of(&schema["items"])),
            "object" if schema["properties"].is_object() => "object (below)".to_owned(),
            "object" => match schema.get("additionalProperties") {
                Some(values) if values.is_object() => format!("map of {}", type_of(values)),
                _ => "object".to_owned(),
            },
            "string" if schema.get("contentSchema").is_some() => format!(
                "string of {} {}",
                escape(schema["contentMediaType"].as_str().unwrap_or_default()),
                type_of(&schema["contentSchema"])
            ),
            other => escape(other),
        })
        .collect();
    if parts.is_empty() {
        parts.push("any".to_owned());
    }
    let mut text = parts.join(" | ");
    let mut facets = Vec::new();
    if let Some(format) = schema["format"].as_str() {
        facets.push(escape(format));
    }
    for (key, sign) in [("minimum", "≥"), ("maximum", "≤")] {
        if let Some(bound) = schema.get(key) {
            facets.push(format!("{sign} {bound}"));
        }
    }
    if !facets.is_empty() {
        let _ = write!(text, " <span class=\"note\">({})</span>", facets.join(", "));
    }
    text
}

/// A schema in full: its description, then its properties or branches.
fn render_schema(schema: &Value) -> String {
    let mut html = String::new();
    if let Some(description) = schema["description"].as_str() {
        let _ = write!(html, "<p>{}</p>", inline(description));
    }
    if let Some(properties) = schema["properties"].as_object() {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        html.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
        for (name, property) in properties {
            let mark = if required.contains(&name.as_str()) {
                " <em>required</em>"
            } else {
                ""
            };
            let nested = if property["properties"].is_object()
                || property["items"]["properties"].is_object()
            {
                let inner = if property["items"].is_object() {
                    &property["items"]
                } else {
                    property
                };
                render_schema(&Value::Object(
                    inner
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| *k != "description")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
            } else {
                String::new()
            };
            let _ = write!(
                html,
                "<tr><td><code>{}</code>{mark}</td><td>{}</td><td>{}{nested}</td></tr>",
                escape(name),
                type_of(property),
                inline(property["description"].as_str().unwrap_or_default())
            );
        }
        html.push_str("</table>");
    } else if let Some(branches) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        html.push_str("<p>One of:</p><ul>");
        for branch in branches {
            let title = branch["title"]
                .as_str()
                .map(|t| format!("<strong>{}</strong> ", escape(t)))
                .unwrap_or_default();
            let _ = write!(
                html,
                "<li>{title}{}{}</li>",
                if branch["properties"].is_object() {
                    String::new()
                } else {
                    type_of(branch)
                },
                if branch["properties"].is_object() {
                    render_schema(branch)
                } else {
                    String::new()
                }
            );
        }
        html.push_str("</ul>");
    } else {
        let _ = write!(html, "<p>Type: {}</p>", type_of(schema));
    }
    html
}
