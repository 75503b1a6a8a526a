//! What TensorBoard shows about a run besides its curves: the resolved config as a Markdown
//! table (Text dashboard) and as HParams hyperparameters (HParams dashboard).

use rlpg_agents::BackendKind;

use super::HParamValue;
use crate::Config;

/// The resolved config as flat `(key, value)` pairs: the top-level settings, then the chosen
/// agent's section as `section.key` (the other agents' sections are left out), then
/// `backend`, the backend the agent's `backend` setting resolved to (`libtorch` or `kernel`).
/// Lists and other non-scalar values become their JSON text.
pub fn config_hparams(config: &Config, backend: BackendKind) -> Vec<(String, HParamValue)> {
    let mut out = Vec::new();
    let Ok(serde_json::Value::Object(root)) = serde_json::to_value(config) else {
        return out;
    };
    let agent = config.agent.name();
    for (key, value) in &root {
        match value {
            serde_json::Value::Object(section) => {
                if key == agent {
                    for (inner, value) in section {
                        out.push((format!("{key}.{inner}"), hparam_value(value)));
                    }
                }
            }
            value => out.push((key.clone(), hparam_value(value))),
        }
    }
    out.push(("backend".to_owned(), HParamValue::Text(backend.name().to_owned())));
    out
}

fn hparam_value(value: &serde_json::Value) -> HParamValue {
    match value {
        serde_json::Value::Bool(b) => HParamValue::Bool(*b),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) => HParamValue::Number(x),
            None => HParamValue::Text(n.to_string()),
        },
        serde_json::Value::String(s) => HParamValue::Text(s.clone()),
        serde_json::Value::Null => HParamValue::Text("none".to_owned()),
        other => HParamValue::Text(other.to_string()),
    }
}

/// The resolved config as a two-column Markdown table (`| key | value |`), as CleanRL writes
/// its `hyperparameters` text: one row per entry of `hparams` ([`config_hparams`]).
pub fn config_markdown(hparams: &[(String, HParamValue)]) -> String {
    let mut text = String::from("| key | value |\n|-----|-------|\n");
    for (key, value) in hparams.iter().cloned() {
        let value = match value {
            HParamValue::Number(x) => format!("{x}"),
            HParamValue::Text(t) => t,
            HParamValue::Bool(b) => b.to_string(),
        };
        // A `|` would end the cell.
        text.push_str(&format!("| {key} | {} |\n", value.replace('|', "\\|")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentKind;

    #[test]
    fn the_table_lists_top_level_keys_and_only_the_chosen_agents_section() {
        let config = Config::new("CartPole-v1", AgentKind::Reinforce);
        let hparams = config_hparams(&config, BackendKind::Kernel);
        let table = config_markdown(&hparams);
        assert!(table.starts_with("| key | value |\n|-----|-------|\n"), "{table}");
        assert!(table.contains("| env | CartPole-v1 |\n"), "{table}");
        assert!(table.contains("| agent | reinforce |\n"), "{table}");
        assert!(table.contains("| reinforce.hidden | [64,64] |\n"), "{table}");
        assert!(!table.contains("pathwise."), "{table}");
        assert!(table.contains("| reinforce.backend | auto |\n"), "{table}");
        assert!(table.ends_with("| backend | kernel |\n"), "{table}");
        let seed = hparams.iter().find(|(k, _)| k == "seed").map(|(_, v)| v.clone());
        assert_eq!(seed, Some(HParamValue::Number(config.seed as f64)));
        let norm = hparams.iter().find(|(k, _)| k == "normalize_obs").map(|(_, v)| v.clone());
        assert_eq!(norm, Some(HParamValue::Bool(false)));
    }
}
