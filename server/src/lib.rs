//! alertgraph's HTTP server: REST ingest, GraphQL, MCP and health; the web UI joins it.
//!
//! Handlers are thin: they turn a request into domain types, call one `domain` function and
//! turn the result into a response. [`app`] builds the router so tests can serve it directly.

pub mod error;
pub mod graphql;
pub mod http;
pub mod listener;
pub mod mcp;
pub mod state;

pub use http::app;
pub use state::{AppState, ServerConfig, StateError};
