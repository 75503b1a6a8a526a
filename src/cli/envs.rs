//! `rlpg envs`: the registered environments with their spaces, masks, infos and time limits.

use rlpg_envs::Registry;

use super::to_json;
use crate::run::RunError;

/// The arguments of `rlpg envs`.
#[derive(clap::Args)]
pub(super) struct EnvsArgs {
    /// Print a JSON array of `{"id", "observation_space", "action_space", "masks_actions",
    /// "infos", "max_episode_steps", "description"}` instead of text (`infos`: `[{"name",
    /// "reduce"}]`, the step infos the env reports and how each adds up over an episode).
    #[arg(long)]
    json: bool,
}

/// Runs `rlpg envs`.
pub(super) fn envs(args: EnvsArgs, registry: &Registry) -> Result<(), RunError> {
    print_envs(registry, args.json)
}

/// `rlpg envs`: one line per environment, or a JSON array.
fn print_envs(registry: &Registry, json: bool) -> Result<(), RunError> {
    let specs = registry.specs()?;
    if json {
        let list: Vec<serde_json::Value> = specs
            .iter()
            .map(|spec| {
                serde_json::json!({
                    "id": spec.id,
                    "observation_space": spec.observation_space.to_string(),
                    "action_space": spec.action_space.to_string(),
                    "masks_actions": spec.masks_actions,
                    "infos": spec.info_keys,
                    "max_episode_steps": spec.max_episode_steps,
                    "description": spec.description,
                })
            })
            .collect();
        #[cfg(feature = "gymnasium")]
        let list = {
            let mut list = list;
            list.push(serde_json::json!({
                "id": GYMNASIUM_SYNTAX.0,
                "observation_space": "Box, Discrete, MultiDiscrete or MultiBinary",
                "action_space": "Box, Discrete, MultiDiscrete or MultiBinary",
                "masks_actions": "when the env has action_masks()",
                "infos": [],
                "max_episode_steps": null,
                "description": GYMNASIUM_SYNTAX.1,
            }));
            list
        };
        println!("{}", to_json(&list, "environment list as JSON")?);
    } else {
        for spec in specs {
            println!("{spec}");
        }
        #[cfg(feature = "gymnasium")]
        println!("{}: {}", GYMNASIUM_SYNTAX.0, GYMNASIUM_SYNTAX.1);
    }
    Ok(())
}

/// How `rlpg envs` lists the ids of the `gymnasium` bridge: the syntax and what it means.
#[cfg(feature = "gymnasium")]
const GYMNASIUM_SYNTAX: (&str, &str) = (
    "gymnasium:<ID>",
    "any Gymnasium environment with Box, Discrete, MultiDiscrete or MultiBinary spaces (masked \
     when it has sb3-contrib's action_masks()), e.g. gymnasium:LunarLander-v3, \
     made by gymnasium.make(ID, **env_kwargs) with Gymnasium's own time limit, in the Python of \
     RLPG_PYTHON, VIRTUAL_ENV or scripts/setup.sh --gymnasium",
);
