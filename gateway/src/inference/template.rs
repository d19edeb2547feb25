//! Chat messages to prompt text: the model's own Jinja chat template when its file carries one
//! (`tokenizer.chat_template`), else ChatML.

use minijinja::{context, Environment};

use super::request::ChatMessage;

/// How a model's conversations are written out.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Which template is in use, for `/v1/models` and the logs.
    pub source: &'static str,
}

const TEMPLATE: &str = "chat";

/// ChatML, used by SmolLM, Qwen and many others.
const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n\
{{ message.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

impl ChatTemplate {
    /// The model's template when given and valid, else ChatML. A template that does not
    /// compile is reported in the returned warning and replaced by ChatML.
    pub fn new(model_template: Option<String>) -> (Self, Option<String>) {
        if let Some(text) = model_template {
            match Self::compile(text, "model") {
                Ok(template) => return (template, None),
                Err(e) => {
                    let warning =
                        format!("the model's chat template does not compile ({e}); using ChatML");
                    return (Self::chatml(), Some(warning));
                }
            }
        }
        (Self::chatml(), None)
    }

    pub fn chatml() -> Self {
        #[allow(clippy::expect_used)] // A constant, compiled by the tests below.
        Self::compile(CHATML.to_owned(), "chatml").expect("the ChatML template compiles")
    }

    fn compile(text: String, source: &'static str) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        // Hugging Face templates are written for Python's Jinja: `.strip()`, `.items()`, ...
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<(), minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        env.add_template_owned(TEMPLATE, text)?;
        Ok(Self { env, source })
    }

    /// The prompt for `messages`, ending where the assistant's answer starts.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, String> {
        let template = self
            .env
            .get_template(TEMPLATE)
            .map_err(|e| format!("chat template: {e}"))?;
        template
            .render(context! { messages => messages, add_generation_prompt => true })
            .map_err(|e| format!("the chat template refused these messages: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_ends_with_the_assistant_turn() {
        let template = ChatTemplate::chatml();
        let text = template
            .render(&[
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Hi"),
            ])
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_model_template_is_used_and_a_broken_one_replaced() {
        let (template, warning) = ChatTemplate::new(Some(
            "{% for m in messages %}[{{ m.role }}] {{ m.content.strip() }}{% endfor %}".into(),
        ));
        assert!(warning.is_none());
        assert_eq!(template.source, "model");
        assert_eq!(
            template
                .render(&[ChatMessage::new("user", " hi ")])
                .unwrap(),
            "[user] hi"
        );
        let (template, warning) = ChatTemplate::new(Some("{% for %}".into()));
        assert_eq!(template.source, "chatml");
        assert!(warning.unwrap().contains("does not compile"));
    }
}
