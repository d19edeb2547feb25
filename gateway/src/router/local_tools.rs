//! Tool use on the local model, which has no function-calling API: the tools are described in
//! the system message, and the model calls one by writing
//! `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the Hermes/Qwen convention that
//! small instruction-tuned models are trained on). Earlier calls and their results are written
//! back into the conversation the same way.

use serde_json::{json, Value};

use crate::inference::ChatMessage;
use crate::openai::{FunctionCall, Message, Tool, ToolCall};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// The conversation as the local model's chat template takes it.
pub fn chat_messages(messages: &[Message], tools: &[Tool]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = messages
        .iter()
        .map(|m| {
            let mut content = m.content.clone().unwrap_or_default();
            for call in &m.tool_calls {
                let arguments: Value =
                    serde_json::from_str(&call.function.arguments).unwrap_or(Value::Null);
                content.push_str(&format!(
                    "{OPEN}{}{CLOSE}",
                    json!({ "name": call.function.name, "arguments": arguments })
                ));
            }
            let role = match m.role.as_str() {
                "developer" => "system",
                other => other,
            };
            ChatMessage::new(role, content)
        })
        .collect();
    if tools.is_empty() {
        return out;
    }
    let listing: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "name": t.function.name,
                "description": t.function.description,
                "parameters": t.function.parameters,
            })
        })
        .collect();
    let instructions = format!(
        "You can call tools. To call one, answer with only {OPEN}{{\"name\": \"<tool name>\", \
         \"arguments\": {{...}}}}{CLOSE}. Tools:\n{}",
        Value::Array(listing)
    );
    match out.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{instructions}", first.content);
        }
        _ => out.insert(0, ChatMessage::new("system", instructions)),
    }
    out
}

/// The tool calls in a local answer, and the text outside them. Calls that are not valid JSON
/// with a `name` stay in the text.
pub fn parse_tool_calls(text: &str, round: usize) -> (String, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(start) = remaining.find(OPEN) {
        let after = &remaining[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            break;
        };
        let body = after[..end].trim();
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(call)) if call.get("name").is_some_and(Value::is_string) => {
                rest.push_str(&remaining[..start]);
                let arguments = call.get("arguments").cloned().unwrap_or_else(|| json!({}));
                calls.push(ToolCall {
                    id: format!("call_{round}_{}", calls.len()),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: call["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: arguments.to_string(),
                    },
                });
            }
            _ => rest.push_str(&remaining[..start + OPEN.len() + end + CLOSE.len()]),
        }
        remaining = &after[end + CLOSE.len()..];
    }
    rest.push_str(remaining);
    (rest.trim().to_owned(), calls)
}

/// How much of `text` is certainly not part of a tool call: everything before the first
/// `<tool_call>`, or before a trailing piece that may grow into one.
pub fn plain_text_len(text: &str) -> usize {
    if let Some(at) = text.find(OPEN) {
        return at;
    }
    (1..OPEN.len())
        .rev()
        .find(|&n| text.ends_with(&OPEN[..n]))
        .map_or(text.len(), |n| text.len() - n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_and_broken_ones_left_as_text() {
        let (text, calls) = parse_tool_calls(
            "Let me check.<tool_call>{\"name\": \"device_info\", \"arguments\": {}}</tool_call>\
             <tool_call>not json</tool_call>",
            1,
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.name, "device_info");
        assert_eq!(calls[0].function.arguments, "{}");
        assert_eq!(calls[0].id, "call_1_0");
        assert_eq!(text, "Let me check.<tool_call>not json</tool_call>");
    }

    #[test]
    fn text_before_a_possible_call_is_plain() {
        assert_eq!(plain_text_len("hello"), 5);
        assert_eq!(plain_text_len("hello <tool"), 6);
        assert_eq!(plain_text_len("a<tool_call>{}"), 1);
        assert_eq!(plain_text_len("a < b"), 5);
    }

    #[test]
    fn tools_go_into_the_system_message_and_calls_back_into_the_text() {
        let tool: Tool = serde_json::from_value(json!({
            "type": "function", "function": {"name": "device_info", "parameters": {"type": "object"}}
        }))
        .unwrap();
        let mut assistant = Message::text("assistant", "");
        assistant.tool_calls = parse_tool_calls(
            "<tool_call>{\"name\": \"device_info\", \"arguments\": {}}</tool_call>",
            0,
        )
        .1;
        let messages = chat_messages(&[Message::text("user", "hi"), assistant], &[tool]);
        assert_eq!(messages[0].role, "system");
        assert!(messages[0].content.contains("\"device_info\""));
        assert_eq!(
            messages[2].content,
            "<tool_call>{\"arguments\":{},\"name\":\"device_info\"}</tool_call>"
        );
    }
}
