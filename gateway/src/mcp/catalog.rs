//! The merged catalog: the device's own tools, resources and prompts plus those of every
//! upstream, under their exposed names, with the route back to their owner.

use std::collections::HashMap;

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::config::UpstreamConfig;

/// Who answers for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Builtin,
    /// Index into the gateway's upstream list.
    Upstream(usize),
}

/// An exposed entry: its owner and its name (or URI) at the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub owner: Owner,
    pub original: String,
}

/// What one source contributes, under its own names.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// The merged view served to clients. Rebuilt whenever a source's listing changes.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    tool_routes: HashMap<String, Route>,
    prompt_routes: HashMap<String, Route>,
    resource_routes: HashMap<String, Owner>,
    template_routes: Vec<(UriTemplate, Owner)>,
    /// One line per name that two sources both wanted; the first source keeps it.
    pub collisions: Vec<String>,
}

impl Catalog {
    /// Merges the built-in listing and each upstream's (with its configuration for prefix and
    /// tool filters). Sources earlier in the order win collisions: built-ins first, then
    /// upstreams in configuration order.
    pub fn build(builtin: &Listing, upstreams: &[(&UpstreamConfig, &Listing)]) -> Self {
        let mut catalog = Catalog::default();
        catalog.add(Owner::Builtin, "built-in", None, builtin, |_| true);
        for (index, (config, listing)) in upstreams.iter().enumerate() {
            let allowed = |name: &str| {
                (config.allow_tools.is_empty() || config.allow_tools.iter().any(|a| a == name))
                    && !config.deny_tools.iter().any(|d| d == name)
            };
            catalog.add(
                Owner::Upstream(index),
                &config.name,
                config.prefix.as_deref(),
                listing,
                allowed,
            );
        }
        catalog
    }

    fn add(
        &mut self,
        owner: Owner,
        source: &str,
        prefix: Option<&str>,
        listing: &Listing,
        tool_allowed: impl Fn(&str) -> bool,
    ) {
        let exposed = |name: &str| match prefix {
            Some(prefix) => format!("{prefix}_{name}"),
            None => name.to_owned(),
        };
        for tool in listing.tools.iter().filter(|t| tool_allowed(&t.name)) {
            let name = exposed(&tool.name);
            if let Some(existing) = self.tool_routes.get(&name) {
                self.collisions
                    .push(collision("tool", &name, source, existing.owner));
                continue;
            }
            let mut tool = tool.clone();
            let original = std::mem::replace(&mut tool.name, name.clone().into()).into_owned();
            self.tool_routes.insert(name, Route { owner, original });
            self.tools.push(tool);
        }
        for prompt in &listing.prompts {
            let name = exposed(&prompt.name);
            if let Some(existing) = self.prompt_routes.get(&name) {
                self.collisions
                    .push(collision("prompt", &name, source, existing.owner));
                continue;
            }
            let mut prompt = prompt.clone();
            let original = std::mem::replace(&mut prompt.name, name.clone());
            self.prompt_routes.insert(name, Route { owner, original });
            self.prompts.push(prompt);
        }
        // Resource URIs are global names already (their scheme usually says whose they are),
        // so they are not prefixed; a URI two sources both list stays with the first.
        for resource in &listing.resources {
            if let Some(existing) = self.resource_routes.get(&resource.uri) {
                self.collisions
                    .push(collision("resource", &resource.uri, source, *existing));
                continue;
            }
            self.resource_routes.insert(resource.uri.clone(), owner);
            self.resources.push(resource.clone());
        }
        for template in &listing.templates {
            self.template_routes
                .push((UriTemplate::new(&template.uri_template), owner));
            self.templates.push(template.clone());
        }
    }

    pub fn tool(&self, exposed: &str) -> Option<&Route> {
        self.tool_routes.get(exposed)
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Route> {
        self.prompt_routes.get(exposed)
    }

    /// The owner of a resource URI: a listed resource, else the first template it matches.
    pub fn resource_owner(&self, uri: &str) -> Option<Owner> {
        self.resource_routes.get(uri).copied().or_else(|| {
            self.template_routes
                .iter()
                .find(|(t, _)| t.matches(uri))
                .map(|(_, o)| *o)
        })
    }

    /// The owner of a resource template, by its exact template string (for completions).
    pub fn template_owner(&self, uri_template: &str) -> Option<Owner> {
        self.template_routes
            .iter()
            .find(|(t, _)| t.source == uri_template)
            .map(|(_, o)| *o)
    }
}

fn collision(kind: &str, name: &str, source: &str, kept_by: Owner) -> String {
    let kept = match kept_by {
        Owner::Builtin => "the built-in one".to_owned(),
        Owner::Upstream(i) => format!("upstream #{i}"),
    };
    // Prefixes rename tools and prompts; resource URIs keep their names.
    let remedy = if kind == "resource" {
        "only one of them can be read"
    } else {
        "set a prefix"
    };
    format!("{kind} \"{name}\" from {source} is hidden: {kept} already uses that name ({remedy})")
}

/// An RFC 6570 template reduced to what routing needs: literal text and `{variable}` holes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UriTemplate {
    source: String,
    literals: Vec<String>,
}

impl UriTemplate {
    fn new(template: &str) -> Self {
        let mut literals = Vec::new();
        let mut rest = template;
        loop {
            match rest.find('{') {
                Some(open) => {
                    literals.push(rest[..open].to_owned());
                    rest = rest[open..]
                        .find('}')
                        .map_or("", |close| &rest[open + close + 1..]);
                }
                None => {
                    literals.push(rest.to_owned());
                    break;
                }
            }
        }
        Self {
            source: template.to_owned(),
            literals,
        }
    }

    /// Whether `uri` is the literals in order with non-empty text in each hole.
    fn matches(&self, uri: &str) -> bool {
        let Some((first, rest)) = self.literals.split_first() else {
            return false;
        };
        let Some(mut remaining) = uri.strip_prefix(first.as_str()) else {
            return false;
        };
        let holes = rest.len();
        for (i, literal) in rest.iter().enumerate() {
            let last = i + 1 == holes;
            let found = if last && literal.is_empty() {
                Some(remaining.len())
            } else if last {
                remaining.strip_suffix(literal.as_str()).map(str::len)
            } else {
                remaining.find(literal.as_str())
            };
            match found {
                Some(at) if at > 0 => remaining = &remaining[at + literal.len()..],
                _ => return false,
            }
        }
        holes > 0 || remaining.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_owned(), "d", Arc::new(serde_json::Map::new()))
    }

    fn listing(tools: &[&str]) -> Listing {
        Listing {
            tools: tools.iter().map(|t| tool(t)).collect(),
            ..Listing::default()
        }
    }

    fn upstream(name: &str, prefix: Option<&str>) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            prefix: prefix.map(Into::into),
            ..UpstreamConfig::default()
        }
    }

    #[test]
    fn prefixes_namespace_tools_and_routes_lead_back() {
        let (a, b) = (upstream("a", Some("a")), upstream("b", Some("b")));
        let (la, lb) = (listing(&["echo"]), listing(&["echo"]));
        let catalog = Catalog::build(&listing(&["device_info"]), &[(&a, &la), (&b, &lb)]);
        let names: Vec<&str> = catalog.tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["device_info", "a_echo", "b_echo"]);
        assert_eq!(
            catalog.tool("b_echo"),
            Some(&Route {
                owner: Owner::Upstream(1),
                original: "echo".into()
            })
        );
        assert!(catalog.collisions.is_empty());
    }

    #[test]
    fn collisions_are_reported_and_the_first_source_wins() {
        let (a, b) = (upstream("a", None), upstream("b", None));
        let (la, lb) = (listing(&["echo", "device_info"]), listing(&["echo"]));
        let catalog = Catalog::build(&listing(&["device_info"]), &[(&a, &la), (&b, &lb)]);
        assert_eq!(
            catalog.tool("echo").map(|r| r.owner),
            Some(Owner::Upstream(0))
        );
        assert_eq!(
            catalog.tool("device_info").map(|r| r.owner),
            Some(Owner::Builtin)
        );
        assert_eq!(catalog.collisions.len(), 2, "{:?}", catalog.collisions);
        assert!(catalog.collisions[1].contains("tool \"echo\" from b is hidden"));
    }

    #[test]
    fn allow_and_deny_lists_filter_tools() {
        let mut a = upstream("a", None);
        a.allow_tools = vec!["x".into(), "y".into()];
        a.deny_tools = vec!["y".into()];
        let la = listing(&["x", "y", "z"]);
        let catalog = Catalog::build(&Listing::default(), &[(&a, &la)]);
        let names: Vec<&str> = catalog.tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["x"]);
        assert!(catalog.tool("z").is_none());
    }

    #[test]
    fn uri_templates_route_matching_uris() {
        let t = UriTemplate::new("test://template/{id}/data");
        assert!(t.matches("test://template/123/data"));
        assert!(!t.matches("test://template//data"));
        assert!(!t.matches("test://template/123/other"));
        assert!(UriTemplate::new("file:///{path}").matches("file:///etc/hosts"));
        assert!(UriTemplate::new("plain://x").matches("plain://x"));
        assert!(!UriTemplate::new("plain://x").matches("plain://xy"));
    }
}
