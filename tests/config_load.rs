//! Loading good configs: defaults, overrides, the written config reading back identically,
//! and the checks against the environment's spaces.

use std::path::{Path, PathBuf};

use rlpg::envs::{BoxSpace, Space};
use rlpg::{AgentKind, Config, ConfigError, Location, Override};

mod common;
use common::Scratch;

fn overrides(args: &[&str]) -> Vec<Override> {
    args.iter()
        .map(|a| Override::parse(a).unwrap_or_else(|e| panic!("`{a}` parses: {e}")))
        .collect()
}

const MINIMAL: &str = "env = \"CartPole-v1\"\nagent = \"reinforce\"\n";

#[test]
fn a_minimal_file_gets_every_default() {
    let config = Config::from_toml_str(MINIMAL, "minimal.toml", &[]).expect("minimal config loads");
    assert_eq!(
        config,
        Config::new("CartPole-v1", AgentKind::Reinforce),
        "only env and agent differ from defaults"
    );
    assert_eq!(config.torch_threads, 1, "one libtorch thread by default");
}

#[test]
fn overrides_set_values_of_every_toml_type_and_a_later_one_wins() {
    let text = format!("{MINIMAL}seed = 7\n[reinforce]\ngamma = 0.9\n");
    let config = Config::from_toml_str(
        &text,
        "base.toml",
        &overrides(&[
            "total_timesteps=20000",
            "reinforce.learning_rate=3e-4",
            "normalize_obs=true",
            "reinforce.hidden=[32, 16]",
            "reinforce.activation=relu",
            "reinforce.gamma=0.95",
            "reinforce.gamma=0.97",
        ]),
    )
    .expect("overrides are valid");
    assert_eq!(config.seed, 7, "file values without overrides stay");
    assert_eq!(config.total_timesteps, 20_000);
    assert_eq!(config.reinforce.learning_rate, 3e-4);
    assert!(config.normalize_obs);
    assert_eq!(config.reinforce.hidden, vec![32, 16]);
    assert_eq!(
        config.reinforce.activation,
        rlpg::agents::Activation::Relu,
        "a bare word is a string"
    );
    assert_eq!(
        config.reinforce.gamma, 0.97,
        "the last override of a key wins over the file and earlier ones"
    );
}

#[test]
fn overrides_alone_make_a_config_and_a_bare_env_id_is_a_string() {
    let config =
        Config::from_overrides(&overrides(&["env=Pendulum-v1", "agent=reinforce", "seed=3"]))
            .expect("valid");
    assert_eq!(config.env, "Pendulum-v1");
    assert_eq!(config.seed, 3);
}

#[test]
fn the_written_config_reads_back_identically() {
    let dir = Scratch::new("config-load-roundtrip");
    let source = dir.join("source.toml");
    std::fs::write(&source, format!("{MINIMAL}seed = 42\nnormalize_obs = true\n"))
        .expect("write source");
    let config = Config::load(
        &source,
        &overrides(&[
            "env=Pendulum-v1",
            "reinforce.learning_rate=3e-4",
            "reinforce.log_std_init=-0.5",
            "reinforce.hidden=[]",
            "reinforce.gae_lambda=0.95",
            "reinforce.max_grad_norm=0.1",
        ]),
    )
    .expect("valid config");
    let text = config.to_toml_string().expect("representable");
    assert!(text.starts_with("# "), "the resolved config starts with a header comment:\n{text}");
    let unset = config.unset_keys();
    assert_eq!(
        unset,
        [
            "pathwise.target_entropy",
            "reinforce.batch_size",
            "reinforce.clip_range",
            "reinforce.clip_range_vf",
            "reinforce.target_kl"
        ],
        "the optional settings are unset by default"
    );
    // Only the chosen agent's section is written: another agent's would be refused on loading.
    assert!(!text.contains("[pathwise]"), "the unused [pathwise] section is written:\n{text}");
    assert!(!text.contains("pathwise."), "keys of the unused section are not named:\n{text}");
    assert!(
        text.contains("# Unset, so chosen automatically: reinforce.batch_size, "),
        "unset keys of the chosen agent are named in the header:\n{text}"
    );
    let pathwise_text =
        Config::new("Pendulum-v1", AgentKind::Pathwise).to_toml_string().expect("representable");
    assert!(
        pathwise_text.contains("# Unset, so chosen automatically: pathwise.target_entropy."),
        "unset keys of the chosen agent are named in the header:\n{pathwise_text}"
    );
    assert!(!pathwise_text.contains("[reinforce]"), "{pathwise_text}");
    let chosen = |key: &&String| !key.starts_with("pathwise.");
    for key in Config::keys().iter().filter(|k| !unset.contains(k)).filter(chosen) {
        let leaf = key.rsplit('.').next().expect("non-empty key");
        assert!(
            text.contains(&format!("\n{leaf} = ")),
            "every key is written out, `{key}` is missing:\n{text}"
        );
    }
    let resolved = dir.join("resolved.toml");
    std::fs::write(&resolved, &text).expect("write resolved");
    let reread = Config::load(&resolved, &[]).expect("the resolved config loads");
    assert_eq!(reread, config, "loading the written config must give the same config");
    assert_eq!(
        reread.to_toml_string().expect("representable"),
        text,
        "and it writes the same text"
    );
}

#[test]
fn a_value_toml_cannot_hold_is_refused_when_writing() {
    let mut config = Config::new("CartPole-v1", AgentKind::Reinforce);
    config.seed = u64::MAX;
    let e = config.validate().expect_err("seed above i64::MAX");
    assert_eq!(e.key(), Some("seed"), "{e}");
    let e = config.to_toml_string().expect_err("u64::MAX cannot be written as a TOML integer");
    assert!(matches!(e, ConfigError::Unrepresentable { .. }), "{e:?}");
}

#[test]
fn type_errors_point_at_the_value_with_line_and_column() {
    let text = "env = \"CartPole-v1\"\nagent = \"reinforce\"\n\n[reinforce]\n  gamma = \"high\"\n";
    let e = Config::from_toml_str(text, "configs/x.toml", &[]).expect_err("string for a float");
    assert_eq!(
        e.location(),
        Some(&Location::File { path: PathBuf::from("configs/x.toml"), line: 5, column: 11 }),
        "{e}"
    );
    assert_eq!(e.key(), Some("reinforce.gamma"));
}

#[test]
fn an_empty_file_is_missing_env() {
    let dir = Scratch::new("config-load-empty");
    let path = dir.join("empty.toml");
    std::fs::write(&path, "").expect("write empty file");
    let e = Config::load(&path, &[]).expect_err("empty");
    assert!(matches!(&e, ConfigError::MissingKey { key, .. } if key == "env"), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!("{}: missing required key `env`", path.display())),
        "{e}"
    );
}

#[test]
fn every_key_of_the_schema_can_be_overridden() {
    // Setting each key to its own default value must be accepted: no key of `Config::keys`
    // is reported unknown, and no key is missing from it (else the resolved file would not load).
    // Each agent's section is set with that agent chosen: another agent's section is refused.
    for agent in AgentKind::ALL {
        let defaults = Config::new("CartPole-v1", agent);
        let table: toml::Table =
            toml::from_str(&defaults.to_toml_string().expect("representable")).expect("toml");
        let mut args = Vec::new();
        let unset = defaults.unset_keys();
        let other_agent = |key: &str| {
            AgentKind::ALL
                .iter()
                .any(|other| *other != agent && key.starts_with(&format!("{}.", other.name())))
        };
        for key in Config::keys().iter().filter(|k| !unset.contains(k) && !other_agent(k)) {
            let mut value = toml::Value::Table(table.clone());
            for segment in key.split('.') {
                value = value
                    .get(segment)
                    .unwrap_or_else(|| panic!("`{key}` is in the written defaults"))
                    .clone();
            }
            args.push(format!("{key}={value}"));
        }
        let mut expected = defaults;
        if agent == AgentKind::Pathwise {
            // An optional setting has no default value to write, but can be given one.
            args.push("pathwise.target_entropy=-1.5".to_owned());
            expected.pathwise.target_entropy = Some(-1.5);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let config =
            Config::from_overrides(&overrides(&args)).expect("every key accepts its default");
        assert_eq!(config, expected);
    }
}

#[test]
fn options_for_one_kind_of_action_space_are_refused_for_the_other() {
    let discrete = Space::Discrete(2);
    let continuous = Space::Box(BoxSpace::uniform(1, -2.0, 2.0));
    let observations = Space::Box(BoxSpace::uniform(3, -8.0, 8.0));

    let mut pathwise = Config::new("Custom-v0", AgentKind::Pathwise);
    pathwise.validate_against(&observations, &discrete).expect("SAC relaxes discrete actions");
    pathwise.pathwise.estimator = rlpg::agents::Estimator::Td3;
    let e = pathwise.validate_against(&observations, &discrete).expect_err("td3 needs Box actions");
    assert_eq!(e.key(), Some("pathwise.estimator"), "{e}");
    assert!(e.to_string().contains("Discrete(2)"), "the message names the action space: {e}");
    pathwise.validate_against(&observations, &continuous).expect("td3 with Box actions is fine");
    pathwise.pathwise.gumbel_temperature = 0.3;
    let e =
        pathwise.validate_against(&observations, &continuous).expect_err("discrete-only option");
    assert_eq!(e.key(), Some("pathwise.gumbel_temperature"), "{e}");

    // Options of the agent that is not chosen are not checked against the space.
    let mut unused = Config::new("Custom-v0", AgentKind::Reinforce);
    unused.pathwise.gumbel_temperature = 0.3;
    unused.validate_against(&observations, &continuous).expect("[pathwise] is unused by reinforce");

    let mut reinforce = Config::new("Custom-v0", AgentKind::Reinforce);
    reinforce
        .validate_against(&observations, &discrete)
        .expect("reinforce with defaults fits both");
    reinforce.reinforce.state_dependent_std = true;
    let e =
        reinforce.validate_against(&observations, &discrete).expect_err("continuous-only option");
    assert_eq!(e.key(), Some("reinforce.state_dependent_std"), "{e}");
    reinforce.validate_against(&observations, &continuous).expect("fine for Box actions");

    let mut normalized = Config::new("Custom-v0", AgentKind::Reinforce);
    normalized.normalize_obs = true;
    let e = normalized
        .validate_against(&Space::Discrete(16), &discrete)
        .expect_err("needs Box observations");
    assert_eq!(e.key(), Some("normalize_obs"), "{e}");
}

#[test]
fn the_agent_kind_names_match_the_config_file_spelling() {
    for agent in AgentKind::ALL {
        let text = format!("env = \"Pendulum-v1\"\nagent = \"{agent}\"\n");
        let config =
            Config::from_toml_str(&text, "a.toml", &[]).expect("both agents load for Pendulum");
        assert_eq!(config.agent, agent);
        assert_eq!(config.agent.name(), agent.to_string());
    }
}

#[test]
fn every_preset_in_configs_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut presets: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    presets.sort();
    assert!(presets.len() >= 5, "expected the presets in {}, found {presets:?}", dir.display());
    for preset in &presets {
        let config = Config::load(preset, &[])
            .unwrap_or_else(|e| panic!("preset {} does not load: {e}", preset.display()));
        config.to_toml_string().unwrap_or_else(|e| panic!("{}: {e}", preset.display()));
    }
}

#[test]
fn a_config_built_in_code_with_settings_for_the_other_agent_is_refused() {
    let mut config = Config::new("CartPole-v1", AgentKind::Pathwise);
    config.validate().expect("defaults are valid");
    config.reinforce.gamma = 0.5;
    let e = config.validate().expect_err("[reinforce] is ignored by pathwise");
    assert_eq!(e.key(), Some("reinforce"), "{e}");
    assert!(e.to_string().contains("agent = \"pathwise\""), "names the chosen agent: {e}");
    config.to_toml_string().expect_err("cannot be written so that it reads back");
}

#[test]
fn env_kwargs_load_for_gymnasium_ids_round_trip_and_are_refused_elsewhere() {
    let text = "env = \"gymnasium:LunarLander-v3\"\nagent = \"reinforce\"\n\
                [env_kwargs]\ncontinuous = false\ngravity = -9.5\nname = \"x\"\nsizes = [1, 2]\n";
    let name = "kwargs.toml";
    let config = Config::from_toml_str(text, name, &overrides(&["env_kwargs.wind_power=12.5"]))
        .expect("any keys under [env_kwargs] load");
    let json = config.env_kwargs_json();
    assert_eq!(json["gravity"], serde_json::json!(-9.5));
    assert_eq!(json["continuous"], serde_json::json!(false));
    assert_eq!(json["sizes"], serde_json::json!([1, 2]));
    assert_eq!(json["wind_power"], serde_json::json!(12.5), "--set env_kwargs.NAME works");
    let written = config.to_toml_string().expect("write");
    let again = Config::from_toml_str(&written, name, &[]).expect("read back");
    assert_eq!(again, config);
    // A config without env_kwargs writes none (run configs of other envs are unchanged).
    let plain = Config::from_toml_str(MINIMAL, name, &[]).expect("minimal");
    assert!(!plain.to_toml_string().expect("write").contains("env_kwargs"));

    let err = Config::from_toml_str(MINIMAL, name, &overrides(&["env_kwargs.x=1"]))
        .expect_err("env_kwargs for a built-in env");
    assert!(
        err.to_string().contains("env_kwargs") && err.to_string().contains("CartPole-v1"),
        "{err}"
    );
    let dated =
        "env = \"gymnasium:CartPole-v1\"\nagent = \"reinforce\"\n[env_kwargs]\nwhen = 1979-05-27\n";
    // A date or time reaches Python as its TOML text.
    let config = Config::from_toml_str(dated, name, &[]).expect("a date");
    assert_eq!(config.env_kwargs_json()["when"], serde_json::json!("1979-05-27"));
    let err =
        Config::from_toml_str(dated, name, &overrides(&["env_kwargs.x=nan"])).expect_err("NaN");
    assert!(err.to_string().contains("env_kwargs.x"), "{err}");
}
