//! Resolution of a change's inputs at apply time: references become the outputs recorded in
//! state, secrets become their values for the provider and stay symbolic for the state.

use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::state::State;
use crate::value::{as_reference, as_secret};

/// Where secrets come from.
pub type Secrets = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets from the environment: secret `db_password` is `GRAVEN_SECRET_DB_PASSWORD`.
pub fn env_secrets() -> Secrets {
    std::sync::Arc::new(|name: &str| std::env::var(secret_var(name)).ok())
}

/// The environment variable that holds secret `name`.
pub fn secret_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("GRAVEN_SECRET_{upper}")
}

/// A change's inputs, resolved twice over.
pub(crate) struct Resolved {
    /// For the state: references replaced, secrets kept as `{"$secret": name}`.
    pub(crate) state: Map<String, Json>,
    /// For the provider, when it differs from `state` (the inputs hold secrets): references
    /// and secrets replaced by values.
    revealed: Option<Map<String, Json>>,
}

impl Resolved {
    /// The inputs for the provider: references and secrets replaced by values.
    pub(crate) fn provider(&self) -> &Map<String, Json> {
        self.revealed.as_ref().unwrap_or(&self.state)
    }
}

/// Resolves `inputs` of resource `id` against `state`. One copy of the inputs is made; a
/// second only when they hold secrets (most do not).
pub(crate) fn resolve(
    id: &str,
    inputs: &Map<String, Json>,
    state: &State,
    secrets: &Secrets,
) -> Result<Resolved> {
    let mut recorded = Map::new();
    let mut has_secrets = false;
    for (k, v) in inputs {
        recorded.insert(k.clone(), walk(id, v, state, &mut has_secrets)?);
    }
    let revealed = if has_secrets {
        let mut provider = Map::new();
        for (k, v) in &recorded {
            provider.insert(k.clone(), reveal(id, v, secrets)?);
        }
        Some(provider)
    } else {
        None
    };
    Ok(Resolved { state: recorded, revealed })
}

fn walk(id: &str, v: &Json, state: &State, has_secrets: &mut bool) -> Result<Json> {
    if let Some((res, out)) = as_reference(v) {
        return state.resources.get(res).and_then(|r| r.outputs.get(out)).cloned().ok_or_else(
            || {
                Error::Plan(format!(
                    "`{id}` reads `{res}.{out}`, which the state does not record; run `plan` again"
                ))
            },
        );
    }
    if as_secret(v).is_some() {
        *has_secrets = true;
        return Ok(v.clone());
    }
    Ok(match v {
        Json::Array(a) => {
            Json::Array(a.iter().map(|x| walk(id, x, state, has_secrets)).collect::<Result<_>>()?)
        }
        Json::Object(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                o.insert(k.clone(), walk(id, x, state, has_secrets)?);
            }
            Json::Object(o)
        }
        other => other.clone(),
    })
}

fn reveal(id: &str, v: &Json, secrets: &Secrets) -> Result<Json> {
    if let Some(name) = as_secret(v) {
        return secrets(name).map(Json::String).ok_or_else(|| Error::Var {
            name: name.to_owned(),
            message: format!("secret of `{id}` is not set; export `{}`", secret_var(name)),
        });
    }
    Ok(match v {
        Json::Array(a) => {
            Json::Array(a.iter().map(|x| reveal(id, x, secrets)).collect::<Result<_>>()?)
        }
        Json::Object(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                o.insert(k.clone(), reveal(id, x, secrets)?);
            }
            Json::Object(o)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::reference_json;

    #[test]
    fn secrets_stay_symbolic_in_state() {
        let mut state = State::new("s");
        let mut vpc = crate::testing::applied_graph(
            &crate::graph::DeploymentGraph::from_nodes("s", Vec::new()).unwrap(),
        );
        vpc.resources.clear();
        state.resources.insert(
            "vpc".into(),
            serde_json::from_value(serde_json::json!({
                "id": "vpc", "kind": "aws:ec2:Vpc", "physical_id": "vpc-1", "outputs": {"id": "vpc-1"},
                "token": "t", "created_at": "", "updated_at": "", "release": 1
            }))
            .unwrap(),
        );
        let mut inputs = Map::new();
        inputs.insert("vpc_id".into(), reference_json("vpc", "id"));
        inputs.insert("user_data".into(), serde_json::json!({"$secret": "boot"}));
        let secrets: Secrets =
            std::sync::Arc::new(|n: &str| (n == "boot").then(|| "s3cr3t".to_owned()));
        let r = resolve("x", &inputs, &state, &secrets).unwrap();
        assert_eq!(r.provider()["vpc_id"], "vpc-1");
        assert_eq!(r.provider()["user_data"], "s3cr3t");
        assert_eq!(r.state["user_data"], serde_json::json!({"$secret": "boot"}));
        let none: Secrets = std::sync::Arc::new(|_: &str| None);
        let e = resolve("x", &inputs, &state, &none).err().unwrap().to_string();
        assert!(e.contains("GRAVEN_SECRET_BOOT"), "{e}");
    }
}
