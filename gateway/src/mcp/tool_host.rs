//! The gateway's MCP tools as the completion APIs see them: the merged catalog as function
//! definitions, and calls routed like any `tools/call` (built-in or upstream), without a
//! client session behind them.

use futures::future::BoxFuture;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::Value;

use super::McpGateway;
use crate::openai::{FunctionSpec, Tool};
use crate::router::{ToolHost, ToolOutcome};

impl ToolHost for McpGateway {
    fn tools(&self) -> Vec<Tool> {
        self.catalog()
            .tools
            .iter()
            .map(|t| Tool {
                kind: "function".into(),
                function: FunctionSpec {
                    name: t.name.to_string(),
                    description: t.description.as_ref().map(|d| d.to_string()),
                    parameters: Some(Value::Object((*t.input_schema).clone())),
                },
            })
            .collect()
    }

    fn call(
        &self,
        name: String,
        arguments: serde_json::Map<String, Value>,
    ) -> BoxFuture<'static, ToolOutcome> {
        let gateway = self.clone();
        Box::pin(async move { gateway.call_for_completion(&name, arguments).await })
    }
}

impl McpGateway {
    async fn call_for_completion(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
    ) -> ToolOutcome {
        let failed = |content: String| ToolOutcome {
            content,
            is_error: true,
        };
        let catalog = self.catalog();
        let Some(route) = catalog.tool(name) else {
            return failed(format!("no tool named \"{name}\""));
        };
        let Some(upstream) = self.upstream(route.owner) else {
            let cancel = tokio_util::sync::CancellationToken::new();
            return match self
                .call_builtin(&route.original, Some(&arguments), cancel)
                .await
            {
                Some(result) => outcome(result),
                None => failed(format!("no tool named \"{name}\"")),
            };
        };
        let peer = match upstream.peer() {
            Ok(peer) => peer,
            Err(e) => return failed(e.message.to_string()),
        };
        let timeout = self.call_timeout(upstream);
        let params = CallToolRequestParams::new(route.original.clone()).with_arguments(arguments);
        // Dropping the call on timeout cancels it upstream.
        match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Ok(Ok(result)) => outcome(result),
            Ok(Err(e)) => {
                upstream.request_failed(&e);
                failed(format!("upstream \"{}\" failed: {e}", upstream.config.name))
            }
            Err(_) => failed(format!(
                "upstream \"{}\" did not answer within {} ms",
                upstream.config.name,
                timeout.as_millis()
            )),
        }
    }
}

/// A tool result as text for the model: its text blocks, else its structured content.
fn outcome(result: CallToolResult) -> ToolOutcome {
    let texts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block.as_text() {
            Some(text) => text.text.clone(),
            None => serde_json::to_string(block).unwrap_or_default(),
        })
        .collect();
    let content = if texts.is_empty() {
        result
            .structured_content
            .map(|v| v.to_string())
            .unwrap_or_default()
    } else {
        texts.join("\n")
    };
    ToolOutcome {
        content,
        is_error: result.is_error.unwrap_or(false),
    }
}
