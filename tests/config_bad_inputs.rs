//! Every way a config can be wrong gives one clear line naming the place and the key.
//!
//! The files in `tests/data/bad_configs/` each start with `# expect: <fragment>`; loading the
//! file (checked against the built-in registry, as `rlpg train` loads it) must fail with a
//! message containing that fragment. Bad `--set` arguments are in the table below the file test.

use std::path::{Path, PathBuf};

use rlpg::envs::Registry;
use rlpg::{Config, ConfigError, Override};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad_configs")
}

/// The fragment from the file's first line, `# expect: <fragment>`.
fn expected_fragment(path: &Path, text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    match first.strip_prefix("# expect: ") {
        Some(fragment) if !fragment.trim().is_empty() => fragment.to_owned(),
        _ => panic!("{} must start with `# expect: <message fragment>`", path.display()),
    }
}

fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.contains('\n') && !message.trim().is_empty(),
        "{what}: an error message must be one non-empty line, got {message:?}"
    );
}

#[test]
fn every_bad_config_file_fails_with_its_expected_message() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus should hold at least 30 bad configs, has {}",
        files.len()
    );

    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable corpus file");
        let expected = expected_fragment(path, &text);
        match Config::load_checked(path, &[], &Registry::builtin()) {
            Ok(config) => failures.push(format!(
                "{}: loaded without error (expected `{expected}`): {config:?}",
                path.display()
            )),
            Err(e) => {
                let message = e.to_string();
                assert_one_line(&path.display().to_string(), &message);
                if !message.contains(&expected) {
                    failures.push(format!(
                        "{}:\n  expected fragment: {expected}\n  actual message:    {message}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs misreported:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// A good base file for override tests.
const GOOD: &str = "env = \"CartPole-v1\"\nagent = \"reinforce\"\n[reinforce]\ngamma = 0.9\n";
/// A good base file without an agent section, for overrides that switch the agent.
const GOOD_NO_SECTION: &str = "env = \"CartPole-v1\"\nagent = \"reinforce\"\n";

#[test]
fn every_bad_override_fails_with_its_expected_message() {
    // (arguments, expected fragment)
    let cases: &[(&[&str], &str)] = &[
        (
            &["reinforce.learning_rat=3e-4"],
            "--set reinforce.learning_rat=3e-4: unknown key `learning_rat` in [reinforce]; did you mean `learning_rate`?",
        ),
        (
            &["reinfroce.gamma=0.9"],
            "--set reinfroce.gamma=0.9: unknown key `reinfroce`; did you mean `reinforce`?",
        ),
        (&["totl_timesteps=100"], "unknown key `totl_timesteps`; did you mean `total_timesteps`?"),
        (&["gamma=0.5"], "--set gamma=0.5: unknown key `gamma`; did you mean `reinforce.gamma`?"),
        (
            &["reinforce=3"],
            "--set reinforce=3: `reinforce` is a section, not a setting; set one of its keys",
        ),
        (
            &["seed.x=1"],
            "--set seed.x=1: `seed` is a setting, not a section, so `seed.x` does not exist",
        ),
        (
            &["total_timesteps=lots"],
            "--set total_timesteps=lots: total_timesteps: invalid type: string \"lots\", expected u64",
        ),
        (&["seed=-3"], "--set seed=-3: seed: invalid value: integer `-3`, expected u64"),
        (
            &["reinforce.gamma=1.5"],
            "--set reinforce.gamma=1.5: reinforce.gamma: must be in (0, 1], got 1.5",
        ),
        (
            &["reinforce.learning_rate=nan"],
            "reinforce.learning_rate: must be a finite number > 0, got NaN",
        ),
        (
            &["reinforce.hidden=[64, 0]"],
            "--set reinforce.hidden=[64, 0]: reinforce.hidden: every hidden layer size must be >= 1",
        ),
        (
            &["reinforce.hidden=[64, -2]"],
            "--set reinforce.hidden=[64, -2]: reinforce.hidden[1]: invalid value: integer `-2`",
        ),
        (&["num_envs=0"], "--set num_envs=0: num_envs: must be an integer >= 1, got 0"),
        (&["env=Nope-v0"], "--set env=Nope-v0: env: unknown environment `Nope-v0`"),
        (&["agent=ppo"], "--set agent=ppo: agent: unknown variant `ppo`"),
        (
            &["agent=pathwise", "pathwise.estimator=td3", "<no section>"],
            "--set pathwise.estimator=td3: pathwise.estimator: td3's deterministic actor needs continuous (Box) actions",
        ),
        (
            &["agent=pathwise", "pathwise.layer_init=xavier", "<no section>"],
            "--set pathwise.layer_init=xavier: pathwise.layer_init: unknown variant `xavier`, expected `pytorch` or `kaiming_uniform`",
        ),
        // Settings of an agent that is not the chosen one would be ignored.
        (
            &["pathwise.gamma=0.5"],
            "--set pathwise.gamma=0.5: pathwise: the [pathwise] section is for agent = \"pathwise\", but agent = \"reinforce\"",
        ),
        (
            &["agent=pathwise"],
            "good.toml:3:2: reinforce: the [reinforce] section is for agent = \"reinforce\", but agent = \"pathwise\"",
        ),
        // A misplaced key is pointed to the chosen agent's section.
        (
            &["agent=pathwise", "gamma=0.5"],
            "--set gamma=0.5: unknown key `gamma`; did you mean `pathwise.gamma`?",
        ),
        // The later of two overrides of one key wins, and is the one blamed.
        (
            &["reinforce.gamma=0.5", "reinforce.gamma=0"],
            "--set reinforce.gamma=0: reinforce.gamma: must be in (0, 1], got 0",
        ),
    ];
    let mut failures = Vec::new();
    for (args, expected) in cases {
        // `<no section>` is not an argument: it picks the base file without [reinforce].
        let base = if args.contains(&"<no section>") { GOOD_NO_SECTION } else { GOOD };
        let overrides: Vec<Override> = args
            .iter()
            .filter(|a| **a != "<no section>")
            .map(|a| Override::parse(a).unwrap_or_else(|e| panic!("`{a}` parses: {e}")))
            .collect();
        match Config::from_toml_str_checked(base, "good.toml", &overrides, &Registry::builtin()) {
            Ok(_) => failures.push(format!("{args:?}: accepted (expected `{expected}`)")),
            Err(e) => {
                let message = e.to_string();
                assert_one_line(&format!("{args:?}"), &message);
                if !message.contains(expected) {
                    failures.push(format!(
                        "{args:?}:\n  expected fragment: {expected}\n  actual message:    {message}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "misreported overrides:\n{}", failures.join("\n"));
}

#[test]
fn malformed_override_arguments_are_rejected_when_parsed() {
    let cases = [
        ("seed", "--set seed: expected KEY=VALUE"),
        ("=3", "--set =3: `` is not a dotted key path"),
        ("reinforce..gamma=1", "`reinforce..gamma` is not a dotted key path"),
        ("a b=1", "`a b` is not a dotted key path"),
    ];
    for (arg, expected) in cases {
        let e = Override::parse(arg).expect_err(arg);
        assert!(
            matches!(e, ConfigError::BadOverride { .. }),
            "`{arg}`: expected BadOverride, got {e:?}"
        );
        assert!(e.to_string().contains(expected), "`{arg}`: expected `{expected}`, got `{e}`");
    }
}

#[test]
fn overrides_alone_must_name_env_and_agent() {
    let overrides = [Override::parse("agent=reinforce").expect("parses")];
    let e = Config::from_overrides(&overrides).expect_err("env is required");
    assert_eq!(e.key(), Some("env"), "the error should be about `env`: {e}");
    assert!(e.to_string().contains("--set env="), "the hint should say how to set it: {e}");
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let path = corpus_dir().join("does_not_exist.toml");
    let e = Config::load(&path, &[]).expect_err("no such file");
    assert!(matches!(e, ConfigError::Read { .. }), "expected a Read error, got {e:?}");
    assert!(e.to_string().contains("does_not_exist.toml"), "the message should name the file: {e}");
    assert_one_line("missing file", &e.to_string());
}

#[test]
fn reading_a_config_never_looks_its_environment_up() {
    // A user's environment id loads without a registry; checked against one that lacks it, the
    // error names the id, the registered ids and where the id was written.
    let text = "env = \"GridReach-v0\"\nagent = \"pathwise\"\n[pathwise]\nestimator = \"td3\"\n";
    let config = Config::from_toml_str(text, "grid.toml", &[]).expect("any env id loads");
    assert_eq!(config.env, "GridReach-v0");
    let e = Config::from_toml_str_checked(text, "grid.toml", &[], &Registry::builtin())
        .expect_err("not a built-in");
    let known = "grid.toml:1:7: env: unknown environment `GridReach-v0`; known: CartPole-v1";
    assert!(e.to_string().starts_with(known), "{e}");
    // In a registry that has it, the space-dependent rules of the chosen agent apply.
    let registry = Registry::builtin().with("GridReach-v0", rlpg::envs::CartPole::new);
    let e = Config::from_toml_str_checked(text, "grid.toml", &[], &registry)
        .expect_err("td3 needs Box actions");
    assert!(
        e.to_string().starts_with("grid.toml:4:13: pathwise.estimator: td3's deterministic actor"),
        "{e}"
    );
}
