//! The resolution pipeline (file, unknown keys, overrides, deserialization, validation) and
//! the spans that locate every error at the `file:line:column` or `--set` argument that caused
//! it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use rlpg_envs::{EnvError, Registry};

use super::error::{last_segment, one_line};
use super::schema::{Schema, join_key};
use super::validate::{invalid, unused_section};
use super::{AgentKind, Config, ConfigError, Location, Override};
/// Keys a config must set: they have no sensible default.
const REQUIRED_KEYS: [(&str, &str); 2] = [
    ("env", "the environment id, e.g. env = \"CartPole-v1\""),
    ("agent", "the algorithm, agent = \"reinforce\" or \"pathwise\""),
];

/// Byte ranges of a key and of its value in the config text.
struct Spans {
    key: Option<Range<usize>>,
    value: Range<usize>,
}

/// A parsed config file with the position of everything written in it.
struct SourceFile<'a> {
    path: &'a Path,
    text: &'a str,
    /// By key path: `reinforce.gamma`, `reinforce.hidden[1]`.
    spans: HashMap<String, Spans>,
}

impl SourceFile<'_> {
    fn location_at(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location::File {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

fn collect_spans(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut HashMap<String, Spans>) {
    for (key, value) in table.iter() {
        let path = join_key(prefix, key.get_ref());
        collect_value_spans(value, &path, out);
        if let Some(spans) = out.get_mut(&path) {
            spans.key = Some(key.span());
        }
    }
}

fn collect_value_spans(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    out: &mut HashMap<String, Spans>,
) {
    out.insert(path.to_owned(), Spans { key: None, value: value.span() });
    match value.get_ref() {
        toml::de::DeValue::Table(table) => collect_spans(table, path, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_value_spans(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The state of one resolution: the file (if any) and the overrides, for locating errors.
struct Resolver<'a> {
    file: Option<SourceFile<'a>>,
    overrides: &'a [Override],
}

/// Which part of a written `key = value` an error points at.
#[derive(Clone, Copy)]
enum Part {
    Key,
    Value,
}

impl Resolver<'_> {
    /// Where `key` (a dotted path, maybe with `[i]` indices) was set: the last override that
    /// set it or a section containing it, else its position in the file, else the nearest
    /// enclosing section's position, else the file as a whole.
    fn locate(&self, key: &str, part: Part) -> Option<Location> {
        let covers = |ov: &Override| {
            key == ov.key
                || key.strip_prefix(ov.key.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
        };
        if let Some(ov) = self.overrides.iter().rev().find(|ov| covers(ov)) {
            return Some(Location::Override { arg: ov.arg.clone() });
        }
        let file = self.file.as_ref()?;
        let mut path = key;
        loop {
            if let Some(spans) = file.spans.get(path) {
                let span = match part {
                    Part::Key => spans.key.clone().unwrap_or_else(|| spans.value.clone()),
                    Part::Value => spans.value.clone(),
                };
                return Some(file.location_at(span.start));
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return Some(Location::WholeFile { path: file.path.to_owned() }),
            }
        }
    }

    /// Where the section `name` was written: its header (or first key) in the file, else the
    /// last override that set a key in it.
    fn locate_section(&self, name: &str) -> Option<Location> {
        if let Some(file) = &self.file
            && let Some(spans) = file.spans.get(name)
        {
            let span = spans.key.as_ref().unwrap_or(&spans.value);
            return Some(file.location_at(span.start));
        }
        let prefix = format!("{name}.");
        self.overrides
            .iter()
            .rev()
            .find(|ov| ov.key.starts_with(&prefix))
            .map(|ov| Location::Override { arg: ov.arg.clone() })
    }

    /// Adds the location of its key to an error made without one.
    fn locate_error(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Invalid { location: None, key, message } => {
                ConfigError::Invalid { location: self.locate(&key, Part::Value), key, message }
            }
            other => other,
        }
    }
}

/// What an agent section that the chosen agent does not use may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum UnusedSections {
    /// Nothing: the section is an error, its settings would be ignored (configs users write).
    Rejected,
    /// Defaults only: a run's resolved config written by an earlier rlpg, which wrote every
    /// agent's section, still loads.
    DefaultsAllowed,
}

pub(super) fn resolve(
    file: Option<(&Path, &str)>,
    overrides: &[Override],
    unused: UnusedSections,
    registry: Option<&Registry>,
) -> Result<Config, ConfigError> {
    let schema = Schema::get();
    let mut resolver = Resolver { file: None, overrides };
    let mut document = toml::Table::new();
    if let Some((path, text)) = file {
        let mut source = SourceFile { path, text, spans: HashMap::new() };
        let syntax_error = |e: toml::de::Error| ConfigError::Syntax {
            location: match e.span() {
                Some(span) => source_location(path, text, span.start),
                None => Location::WholeFile { path: path.to_owned() },
            },
            message: one_line(e.message()),
        };
        let parsed = toml::de::DeTable::parse(text).map_err(syntax_error)?;
        collect_spans(parsed.get_ref(), "", &mut source.spans);
        document = toml::from_str(text).map_err(syntax_error)?;
        resolver.file = Some(source);
        check_unknown_keys(&document, schema, &resolver)?;
    }
    for ov in overrides {
        apply_override(&mut document, ov, schema, &resolver)?;
    }
    for (key, hint) in REQUIRED_KEYS {
        if !document.contains_key(key) {
            let location = file.map(|(path, _)| Location::WholeFile { path: path.to_owned() });
            let hint = if file.is_some() {
                hint.to_owned()
            } else {
                format!("{hint} (no config file was given, so set it with --set {key}=...)")
            };
            return Err(ConfigError::MissingKey { location, key: key.to_owned(), hint });
        }
    }
    let given_sections: Vec<AgentKind> =
        AgentKind::ALL.into_iter().filter(|kind| document.contains_key(kind.name())).collect();
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(document)).map_err(|e| {
            let key = key_path(e.path());
            let message = one_line(e.inner().message());
            ConfigError::Invalid { location: resolver.locate(&key, Part::Value), key, message }
        })?;
    for (kind, at_defaults) in config.agent_sections() {
        let tolerated = unused == UnusedSections::DefaultsAllowed && at_defaults;
        if kind != config.agent && given_sections.contains(&kind) && !tolerated {
            let ConfigError::Invalid { key, message, .. } = unused_section(kind, config.agent)
            else {
                unreachable!("unused_section makes an Invalid error")
            };
            let location = resolver.locate_section(kind.name());
            return Err(ConfigError::Invalid { location, key, message });
        }
    }
    config.validate().map_err(|e| resolver.locate_error(e))?;
    if let Some(registry) = registry {
        check_env(&config, registry, &resolver)?;
    }
    Ok(config)
}

/// Checks that `config.env` is in `registry`, and the settings against its spaces.
fn check_env(
    config: &Config,
    registry: &Registry,
    resolver: &Resolver<'_>,
) -> Result<(), ConfigError> {
    if !registry.contains(&config.env) && config.env.starts_with(super::GYMNASIUM_PREFIX) {
        let spec = super::gymnasium_entry(config)
            .and_then(|entry| entry.spec().map_err(|e| e.to_string()))
            .map_err(|message| resolver.locate_error(invalid("env", message)))?;
        return config
            .validate_against(&spec.observation_space, &spec.action_space)
            .and_then(|()| config.validate_env_reports(spec.masks_actions, &spec.info_keys))
            .map_err(|e| resolver.locate_error(e));
    }
    let spec = registry.spec(&config.env).map_err(|e| {
        let message = match e {
            EnvError::UnknownEnv { id, known } => {
                let nearest = known
                    .iter()
                    .map(|k| (k, strsim::jaro_winkler(&id.to_lowercase(), &k.to_lowercase())))
                    .filter(|(_, s)| *s >= 0.8)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let hint =
                    nearest.map_or_else(String::new, |(k, _)| format!("did you mean `{k}`? "));
                format!("unknown environment `{id}`; {hint}known: {}", known.join(", "))
            }
            other => other.to_string(),
        };
        resolver.locate_error(invalid("env", message))
    })?;
    config
        .validate_against(&spec.observation_space, &spec.action_space)
        .and_then(|()| config.validate_env_reports(spec.masks_actions, &spec.info_keys))
        .map_err(|e| resolver.locate_error(e))
}

fn source_location(path: &Path, text: &str, offset: usize) -> Location {
    SourceFile { path, text, spans: HashMap::new() }.location_at(offset)
}

/// A serde path as our key paths: `reinforce.hidden[1]`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// The `agent` the document names, if it names one: its section is the likeliest home of a
/// misplaced key.
fn chosen_agent(document: &toml::Table) -> Option<&str> {
    document.get("agent").and_then(toml::Value::as_str)
}

/// Rejects the first key (in file order) that no setting has.
fn check_unknown_keys(
    document: &toml::Table,
    schema: &Schema,
    resolver: &Resolver<'_>,
) -> Result<(), ConfigError> {
    let mut unknown = Vec::new();
    find_unknown(document, &schema.root, "", &mut unknown);
    let position = |key: &str| {
        resolver
            .file
            .as_ref()
            .and_then(|f| f.spans.get(key))
            .map_or(usize::MAX, |s| s.key.as_ref().map_or(s.value.start, |k| k.start))
    };
    match unknown.into_iter().min_by_key(|(key, _)| position(key)) {
        None => Ok(()),
        Some((key, section)) => Err(ConfigError::UnknownKey {
            location: resolver.locate(&key, Part::Key),
            suggestion: schema.suggest(last_segment(&key), section, chosen_agent(document)),
            key,
        }),
    }
}

/// Collects `(path, schema of the section it is in)` for every key absent from the schema.
/// Values that should be sections but are not are left to deserialization (a type error).
fn find_unknown<'s>(
    table: &toml::Table,
    schema: &'s serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<(String, &'s serde_json::Map<String, serde_json::Value>)>,
) {
    for (key, value) in table {
        // Keyword arguments for gymnasium.make: any keys (their values are checked by
        // `Config::validate`).
        if prefix.is_empty() && key == "env_kwargs" {
            continue;
        }
        let path = join_key(prefix, key);
        match (schema.get(key), value) {
            (None, _) => out.push((path, schema)),
            (Some(serde_json::Value::Object(section)), toml::Value::Table(t)) => {
                find_unknown(t, section, &path, out)
            }
            _ => {}
        }
    }
}

/// Sets one override in the document, after checking that its key names a setting.
fn apply_override(
    document: &mut toml::Table,
    ov: &Override,
    schema: &Schema,
    resolver: &Resolver<'_>,
) -> Result<(), ConfigError> {
    let segments: Vec<&str> = ov.key.split('.').collect();
    // `env_kwargs.<name>`: any name (see `find_unknown`).
    let free_form = segments.len() >= 2 && segments[0] == "env_kwargs";
    for depth in 1..=segments.len() {
        if free_form {
            break;
        }
        let path = &segments[..depth];
        if schema.node(path).is_none() {
            let section = match schema.node(&segments[..depth - 1]) {
                Some(serde_json::Value::Object(section)) => section,
                Some(_) => {
                    let parent = segments[..depth - 1].join(".");
                    return Err(ConfigError::BadOverride {
                        arg: ov.arg.clone(),
                        message: format!(
                            "`{parent}` is a setting, not a section, so `{}` does not exist",
                            ov.key
                        ),
                    });
                }
                None => &schema.root,
            };
            let key = path.join(".");
            return Err(ConfigError::UnknownKey {
                location: Some(Location::Override { arg: ov.arg.clone() }),
                suggestion: schema.suggest(path[depth - 1], section, chosen_agent(document)),
                key,
            });
        }
    }
    if let Some(serde_json::Value::Object(section)) = schema.node(&segments).filter(|_| !free_form)
    {
        let example =
            section.keys().next().map_or_else(String::new, |k| format!(", e.g. `{}.{k}`", ov.key));
        return Err(ConfigError::BadOverride {
            arg: ov.arg.clone(),
            message: format!(
                "`{}` is a section, not a setting; set one of its keys{example}",
                ov.key
            ),
        });
    }
    let (leaf, parents) = segments.split_last().expect("a parsed override key has a segment");
    let mut table = document;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            other => {
                let key = segments[..=depth].join(".");
                return Err(ConfigError::Invalid {
                    location: resolver.locate(&key, Part::Value),
                    message: format!("expected a section ([{key}]), found {}", other.type_str()),
                    key,
                });
            }
        };
    }
    table.insert(leaf.to_string(), ov.value.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = |offset| source_location(Path::new("f.toml"), text, offset).to_string();
        assert_eq!(at(0), "f.toml:1:1");
        assert_eq!(at(6), "f.toml:2:1");
        // `=` after the two-byte `é`: byte offset 10, character column 4.
        assert_eq!(at(10), "f.toml:2:4");
        assert_eq!(at(text.len()), "f.toml:3:1");
    }

    #[test]
    fn a_run_file_of_an_earlier_rlpg_with_every_section_at_its_defaults_still_loads() {
        let text = "env = \"CartPole-v1\"\nagent = \"reinforce\"\n[reinforce]\n[pathwise]\n\
                    gamma = 0.99\n";
        let name = Path::new("config.toml");
        let config = Config::from_run_toml_str(text, name).expect("defaults-only [pathwise]");
        assert_eq!(config, Config::new("CartPole-v1", super::super::AgentKind::Reinforce));
        let e = Config::from_toml_str(text, "config.toml", &[]).expect_err("a user's file");
        assert_eq!(e.location().map(ToString::to_string).as_deref(), Some("config.toml:4:2"));
        let changed = text.replace("0.99", "0.5");
        let e = Config::from_run_toml_str(&changed, name).expect_err("a setting is ignored");
        assert!(e.to_string().starts_with("config.toml:4:2: pathwise: the [pathwise]"), "{e}");
    }
}
