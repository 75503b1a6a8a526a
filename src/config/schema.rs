//! The shape of a config (which keys exist, which are sections), taken from the serialized
//! defaults, and the "did you mean" suggestions for keys that do not exist.

use super::error::last_segment;
use super::{AgentKind, Config};

/// The shape of a config: which keys exist and which of them are sections, taken from the
/// serialized defaults (every section has a default, so every key appears).
pub(super) struct Schema {
    pub(super) root: serde_json::Map<String, serde_json::Value>,
    /// Every leaf key path, for suggestions across sections.
    leaves: Vec<String>,
}

impl Schema {
    pub(super) fn get() -> &'static Schema {
        static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| {
            // Serializing to JSON rather than TOML keeps keys whose default is `None` (as null),
            // so an optional setting is never mistaken for an unknown key.
            let root = match serde_json::to_value(Config::new("", AgentKind::Reinforce)) {
                Ok(serde_json::Value::Object(map)) => map,
                other => unreachable!("Config serializes to a JSON object, got {other:?}"),
            };
            let mut leaves = Vec::new();
            collect_leaf_keys(&root, "", &mut leaves);
            Schema { root, leaves }
        })
    }

    /// The schema node at a dotted path, if the path exists.
    pub(super) fn node(&self, path: &[&str]) -> Option<&serde_json::Value> {
        let (first, rest) = path.split_first()?;
        let mut node = self.root.get(*first)?;
        for segment in rest {
            node = node.as_object()?.get(*segment)?;
        }
        Some(node)
    }

    /// The nearest valid key for `unknown` written in the section `siblings` describes: a
    /// sibling with a similar name, else the full path of a same-named key in another section,
    /// else a similar key anywhere. Keys of the `preferred` section (the chosen agent's) win
    /// over equally good keys elsewhere.
    pub(super) fn suggest(
        &self,
        unknown: &str,
        siblings: &serde_json::Map<String, serde_json::Value>,
        preferred: Option<&str>,
    ) -> Option<String> {
        const SIMILAR: f64 = 0.8;
        let unknown_lower = unknown.to_lowercase();
        let score =
            |candidate: &str| strsim::jaro_winkler(&unknown_lower, &candidate.to_lowercase());
        let best = |candidates: &mut dyn Iterator<Item = (String, f64)>| {
            candidates
                .filter(|(_, s)| *s >= SIMILAR)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(name, _)| name)
        };
        if let Some(sibling) = best(&mut siblings.keys().map(|k| (k.clone(), score(k)))) {
            return Some(sibling);
        }
        let in_preferred =
            |p: &&String| preferred.is_some_and(|section| p.starts_with(&format!("{section}.")));
        // The preferred section's keys first: `max_by` keeps the last maximum, `find` the first.
        let (mut ordered, others): (Vec<&String>, Vec<&String>) =
            self.leaves.iter().partition(in_preferred);
        ordered.extend(others);
        if let Some(path) = ordered.iter().find(|p| last_segment(p) == unknown) {
            return Some((*path).clone());
        }
        best(&mut ordered.iter().rev().map(|p| ((*p).clone(), score(last_segment(p)))))
    }
}

pub(super) fn collect_leaf_keys(
    node: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in node {
        let path = join_key(prefix, key);
        match value {
            serde_json::Value::Object(children) => collect_leaf_keys(children, &path, out),
            _ => out.push(path),
        }
    }
}

pub(super) fn collect_null_leaves(
    node: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in node {
        match value {
            serde_json::Value::Object(children) => {
                collect_null_leaves(children, &join_key(prefix, key), out)
            }
            serde_json::Value::Null => out.push(join_key(prefix, key)),
            _ => {}
        }
    }
}

pub(super) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_top_level_setting_and_section_key() {
        let keys = Config::keys();
        for key in
            ["env", "agent", "seed", "log_every", "reinforce.learning_rate", "reinforce.hidden"]
        {
            assert!(keys.iter().any(|k| k == key), "`{key}` missing from {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "reinforce"), "sections are not settable leaves");
    }

    #[test]
    fn suggestions_prefer_similar_siblings_then_the_same_name_elsewhere() {
        let schema = Schema::get();
        let reinforce = schema.root["reinforce"].as_object().expect("section");
        let suggest = |unknown, section, agent| schema.suggest(unknown, section, agent);
        assert_eq!(suggest("learning_rat", reinforce, None).as_deref(), Some("learning_rate"));
        assert_eq!(suggest("gama", reinforce, None).as_deref(), Some("gamma"));
        let root = &schema.root;
        // `gamma` is in both agent sections: the chosen agent's wins.
        assert_eq!(suggest("gamma", root, Some("reinforce")).as_deref(), Some("reinforce.gamma"));
        assert_eq!(suggest("gamma", root, Some("pathwise")).as_deref(), Some("pathwise.gamma"));
        assert_eq!(suggest("batch_size", root, None).as_deref(), Some("pathwise.batch_size"));
        assert_eq!(suggest("zzzzqqq", root, None), None);
    }
}
