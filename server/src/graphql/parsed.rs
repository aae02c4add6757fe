//! Parsed operations, kept by their text. Clients send the same few operation texts again and
//! again (agents and MCP tools their named operations, the UI its own), and async-graphql's
//! parser costs far more than a copy of the document it produces: about 30 µs against under
//! 1 µs for the GraphQL benchmark's queries, some 5 % of the server's CPU on its query (a).
//! Only parsing is skipped: validation and the depth, complexity and directive limits run on
//! every request, on the copy.

use std::sync::Arc;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// Operation texts longer than this are parsed every time (and never kept).
const LONGEST_KEPT: usize = 32 * 1024;

/// Memory for kept documents.
const CAPACITY: u64 = 16 << 20;

/// Parsed documents by operation text.
pub struct ParsedQueries {
    documents: Cache<String, Arc<ExecutableDocument>, ByText>,
}

#[derive(Clone)]
struct ByText;

impl Weighter<String, Arc<ExecutableDocument>> for ByText {
    /// A parsed document takes roughly 16 bytes for each byte of its text.
    fn weight(&self, text: &String, _: &Arc<ExecutableDocument>) -> u64 {
        text.len() as u64 * 17 + 128
    }
}

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries { documents: Cache::with_weighter(4096, CAPACITY, ByText) }
    }
}

impl ParsedQueries {
    /// `request` with its document parsed, from a copy of the kept one when its text was seen
    /// before. A text that does not parse is left for execution to report.
    pub(crate) fn prepare(&self, mut request: Request) -> Request {
        if let Some(document) = self.documents.get(request.query.as_str()) {
            request.set_parsed_query(ExecutableDocument::clone(&document));
        } else if request.query.len() <= LONGEST_KEPT
            && let Ok(document) = request.parsed_query()
        {
            let document = Arc::new(document.clone());
            self.documents.insert(request.query.clone(), document);
        }
        request
    }
}

impl std::fmt::Debug for ParsedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedQueries").field("documents", &self.documents.len()).finish()
    }
}
