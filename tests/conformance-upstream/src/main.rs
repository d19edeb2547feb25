//! An MCP server (stdio) exposing the fixtures that the official conformance suite's server
//! scenarios call: `test_simple_text`, `test_tool_with_progress`, `test://static-text`,
//! `test_simple_prompt` and the rest, each answering as the scenario expects.
//!
//! The gateway's conformance test runs the suite against the gateway with this server as its
//! only upstream (no prefix), so what is scored is what the gateway forwards: progress, logs,
//! sampling and elicitation requests, resources, prompts and completions.

#![allow(deprecated)] // Logging, sampling and subscriptions are 2025-11-25 features.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// 1x1 PNG.
const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    Tool::new(name, description, object(schema))
}

fn empty_schema() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn string_argument(name: &str, description: &str) -> Value {
    json!({ "type": "object", "properties": { name: { "type": "string", "description": description } }, "required": [name] })
}

fn tools() -> Vec<Tool> {
    vec![
        tool(
            "test_simple_text",
            "Returns a simple text response",
            empty_schema(),
        ),
        tool("test_image_content", "Returns an image", empty_schema()),
        tool("test_audio_content", "Returns audio", empty_schema()),
        tool(
            "test_embedded_resource",
            "Returns an embedded resource",
            empty_schema(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and a resource",
            empty_schema(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three log messages while it runs",
            empty_schema(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress three times",
            empty_schema(),
        ),
        tool(
            "test_error_handling",
            "Always returns a tool error",
            empty_schema(),
        ),
        tool(
            "test_sampling",
            "Asks the client's model to answer a prompt",
            string_argument("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Asks the user for input",
            string_argument("message", "The message to show the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation with default values (SEP-1034)",
            empty_schema(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with enum variants (SEP-1330)",
            empty_schema(),
        ),
    ]
}

#[derive(Debug, Clone, Default)]
struct Fixture;

fn text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value)])
}

fn request<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value)
        .map_err(|e| McpError::internal_error(format!("fixture request: {e}"), None))
}

async fn elicit(cx: &RequestContext<RoleServer>, params: Value) -> Result<ElicitResult, McpError> {
    let params: ElicitRequestParams = request(params)?;
    match cx
        .peer
        .send_request(ServerRequest::ElicitRequest(Request::new(params)))
        .await
    {
        Ok(ClientResult::ElicitResult(result)) => Ok(result),
        Ok(other) => Err(McpError::internal_error(
            format!("unexpected answer {other:?}"),
            None,
        )),
        Err(e) => Err(McpError::internal_error(
            format!("elicitation failed: {e}"),
            None,
        )),
    }
}

fn elicitation_summary(result: &ElicitResult) -> String {
    let value = serde_json::to_value(result).unwrap_or_default();
    format!(
        "action={}, content={}",
        value["action"].as_str().unwrap_or("?"),
        value["content"]
    )
}

impl Fixture {
    async fn call(
        &self,
        name: &str,
        arguments: &JsonObject,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let argument = |key: &str| {
            arguments
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(match name {
            "test_simple_text" => text("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(IMAGE, "image/png")])
            }
            "test_audio_content" => {
                CallToolResult::success(vec![ContentBlock::audio(AUDIO, "audio/wav")])
            }
            "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                )
                .with_mime_type("text/plain"),
            )]),
            "test_multiple_content_types" => CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(IMAGE, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        r#"{"test":"data","value":123}"#,
                        "test://mixed-content-resource",
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => {
                for message in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    let log =
                        LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message));
                    let _ = cx.peer.notify_logging_message(log).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                text("Tool with logging executed successfully")
            }
            "test_tool_with_progress" => {
                let token = cx.meta.get_progress_token();
                if let Some(token) = &token {
                    for (step, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                        let notification = ProgressNotificationParam::new(token.clone(), progress)
                            .with_total(100.0)
                            .with_message(format!("Completed step {} of 3", step + 1));
                        let _ = cx.peer.notify_progress(notification).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                let token = token.map(|t| serde_json::to_value(t).unwrap_or_default());
                text(match token {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => "0".into(),
                })
            }
            "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )]),
            "test_sampling" => {
                let params: CreateMessageRequestParams = request(json!({
                    "messages": [{ "role": "user", "content": { "type": "text", "text": argument("prompt") } }],
                    "maxTokens": 100
                }))?;
                let answer = match cx
                    .peer
                    .send_request(ServerRequest::CreateMessageRequest(Request::new(params)))
                    .await
                {
                    Ok(ClientResult::CreateMessageResult(result)) => result,
                    Ok(other) => {
                        return Err(McpError::internal_error(
                            format!("unexpected answer {other:?}"),
                            None,
                        ))
                    }
                    Err(e) => {
                        return Err(McpError::internal_error(
                            format!("sampling failed: {e}"),
                            None,
                        ))
                    }
                };
                let value = serde_json::to_value(&answer).unwrap_or_default();
                text(format!(
                    "LLM response: {}",
                    value["content"]["text"].as_str().unwrap_or_default()
                ))
            }
            "test_elicitation" => {
                let result = elicit(cx, json!({
                    "mode": "form",
                    "message": argument("message"),
                    "requestedSchema": {
                        "type": "object",
                        "properties": { "response": { "type": "string", "description": "User's response" } },
                        "required": ["response"]
                    }
                }))
                .await?;
                text(format!("User response: {}", elicitation_summary(&result)))
            }
            "test_elicitation_sep1034_defaults" => {
                let result = elicit(cx, json!({
                    "mode": "form",
                    "message": "Please review and update the form fields with defaults",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "name": { "type": "string", "description": "User name", "default": "John Doe" },
                            "age": { "type": "integer", "description": "User age", "default": 30 },
                            "score": { "type": "number", "description": "User score", "default": 95.5 },
                            "status": { "type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active" },
                            "verified": { "type": "boolean", "description": "Verification status", "default": true }
                        },
                        "required": []
                    }
                }))
                .await?;
                text(format!(
                    "Elicitation completed: {}",
                    elicitation_summary(&result)
                ))
            }
            "test_elicitation_sep1330_enums" => {
                let result = elicit(cx, json!({
                    "mode": "form",
                    "message": "Please select options from the enum fields",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "untitledSingle": { "type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"] },
                            "titledSingle": { "type": "string", "description": "Select one option with titles", "oneOf": [
                                { "const": "value1", "title": "First Option" },
                                { "const": "value2", "title": "Second Option" },
                                { "const": "value3", "title": "Third Option" }
                            ] },
                            "legacyEnum": { "type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"] },
                            "untitledMulti": { "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3, "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                            "titledMulti": { "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3, "items": { "anyOf": [
                                { "const": "value1", "title": "First Choice" },
                                { "const": "value2", "title": "Second Choice" },
                                { "const": "value3", "title": "Third Choice" }
                            ] } }
                        },
                        "required": []
                    }
                }))
                .await?;
                text(format!(
                    "Elicitation completed: {}",
                    elicitation_summary(&result)
                ))
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("Tool {other} not found"),
                    None,
                ))
            }
        })
    }
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text")
            .with_title("Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary")
            .with_title("Static Binary Resource")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "watched-resource")
            .with_title("Watched Resource")
            .with_description("A resource that can be subscribed to")
            .with_mime_type("text/plain"),
    ]
}

fn prompts() -> Vec<Prompt> {
    let argument = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with required arguments"),
            Some(vec![
                argument("arg1", "First test argument"),
                argument("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that includes an embedded resource"),
            Some(vec![argument(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt that includes image content"),
            None,
        ),
    ]
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities).with_server_info(Implementation::new(
            "mcp-edge-conformance-upstream",
            "1.0.0",
        ))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.clone().unwrap_or_default();
        self.call(&request.name, &arguments, &cx)
            .await
            .map(Into::into)
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources()))
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new("test://template/{id}/data", "template")
            .with_title("Resource Template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
                    .with_mime_type("text/plain")
            }
            "test://static-binary" => {
                ResourceContents::blob(IMAGE, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => {
                ResourceContents::text("Watched resource content", uri).with_mime_type("text/plain")
            }
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
            {
                Some(id) if !id.is_empty() => {
                    let body = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                    ResourceContents::text(body.to_string(), uri).with_mime_type("application/json")
                }
                _ => {
                    return Err(McpError::invalid_params(
                        format!("Resource {uri} not found"),
                        Some(json!({ "uri": uri })),
                    ))
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        _: SubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let argument = |key: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    argument("arg1"),
                    argument("arg2")
                ),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(
                        ResourceContents::text(
                            "Embedded resource content for testing.",
                            argument("resourceUri"),
                        )
                        .with_mime_type("text/plain"),
                    ),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(IMAGE, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                return Err(McpError::invalid_params(
                    format!("Prompt {other} not found"),
                    None,
                ))
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        _: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::new(CompletionInfo::default()))
    }

    async fn set_level(
        &self,
        _: SetLevelRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = Fixture.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
