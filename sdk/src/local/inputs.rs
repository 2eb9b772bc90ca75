//! Reading a resource's inputs: typed accessors over the resolved JSON object.
//!
//! Optional fields may be `null` or absent; unknown fields are ignored. A missing required field
//! is `MissingParameter`, a value of the wrong shape `InvalidParameterValue`.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde_json::{Map, Value as Json};

use super::model::{Reject, Route, Rule};

/// The inputs of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    map: &'a Map<String, Json>,
}

fn invalid(field: &str, want: &str, got: &Json) -> Reject {
    Reject::terminal("InvalidParameterValue", format!("`{field}` must be {want}, not `{got}`"))
}

impl<'a> Inputs<'a> {
    /// Reads `map`.
    pub(crate) fn new(map: &'a Map<String, Json>) -> Inputs<'a> {
        Inputs { map }
    }

    /// Field `field`, `None` when absent or null.
    pub(crate) fn get(self, field: &str) -> Option<&'a Json> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A required string.
    pub(crate) fn string(self, field: &str) -> Result<String, Reject> {
        self.opt_string(field)?.ok_or_else(|| {
            Reject::terminal("MissingParameter", format!("the request must contain `{field}`"))
        })
    }

    /// An optional string.
    pub(crate) fn opt_string(self, field: &str) -> Result<Option<String>, Reject> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(invalid(field, "a string", v)),
        }
    }

    /// A boolean, `false` when absent.
    pub(crate) fn bool(self, field: &str) -> Result<bool, Reject> {
        match self.get(field) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(v) => Err(invalid(field, "true or false", v)),
        }
    }

    /// A required unsigned number.
    pub(crate) fn u64(self, field: &str) -> Result<u64, Reject> {
        self.opt_u64(field)?.ok_or_else(|| {
            Reject::terminal("MissingParameter", format!("the request must contain `{field}`"))
        })
    }

    /// An optional unsigned number.
    pub(crate) fn opt_u64(self, field: &str) -> Result<Option<u64>, Reject> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(field, "a whole number >= 0", v)),
        }
    }

    /// A size (of a group), at most `u32::MAX`.
    pub(crate) fn u32(self, field: &str) -> Result<u32, Reject> {
        let n = self.u64(field)?;
        u32::try_from(n).map_err(|_| invalid(field, "a size below 2^32", &Json::from(n)))
    }

    /// A list of strings, empty when absent.
    pub(crate) fn strings(self, field: &str) -> Result<Vec<String>, Reject> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(field, "a list of strings", v))
                })
                .collect(),
            Some(v) => Err(invalid(field, "a list of strings", v)),
        }
    }

    /// A required IPv4 CIDR block, in canonical form (`10.0.0.0/16`, not `10.0.0.1/16`).
    pub(crate) fn cidr(self, field: &str) -> Result<Ipv4Net, Reject> {
        cidr(field, &Json::String(self.string(field)?))
    }

    /// The `tags` object, empty when absent; values that are not strings are written as JSON.
    pub(crate) fn tags(self) -> Result<BTreeMap<String, String>, Reject> {
        match self.get("tags") {
            None => Ok(BTreeMap::new()),
            Some(Json::Object(map)) => Ok(map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()),
            Some(v) => Err(invalid("tags", "an object of strings", v)),
        }
    }

    /// The security group rules of `field` (`ingress`, `egress`), each checked.
    pub(crate) fn rules(self, field: &str) -> Result<Vec<Rule>, Reject> {
        self.objects(field)?.into_iter().map(|rule| parse_rule(field, rule)).collect()
    }

    /// The routes of a route table.
    pub(crate) fn routes(self) -> Result<Vec<Route>, Reject> {
        self.objects("routes")?
            .into_iter()
            .map(|route| {
                let r = Inputs::new(route);
                let destination = r.get("destination").ok_or_else(|| {
                    Reject::terminal("MissingParameter", "each route must contain `destination`")
                })?;
                Ok(Route {
                    destination: cidr("routes.destination", destination)?,
                    gateway_id: r.string("gateway_id")?,
                })
            })
            .collect()
    }

    fn objects(self, field: &str) -> Result<Vec<&'a Map<String, Json>>, Reject> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .map(|v| v.as_object().ok_or_else(|| invalid(field, "a list of objects", v)))
                .collect(),
            Some(v) => Err(invalid(field, "a list of objects", v)),
        }
    }
}

fn cidr(field: &str, value: &Json) -> Result<Ipv4Net, Reject> {
    let text = value.as_str().ok_or_else(|| invalid(field, "an IPv4 CIDR block", value))?;
    let net: Ipv4Net = text.parse().map_err(|_| {
        Reject::terminal(
            "InvalidParameterValue",
            format!("`{field}`: `{text}` is not an IPv4 CIDR block"),
        )
    })?;
    if net.trunc() != net {
        return Err(Reject::terminal(
            "InvalidParameterValue",
            format!("`{field}`: `{text}` has host bits set; write `{}`", net.trunc()),
        ));
    }
    Ok(net)
}

fn port(field: &str, rule: Inputs<'_>, name: &str) -> Result<Option<i64>, Reject> {
    match rule.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(&format!("{field}.{name}"), "a port number", v)),
    }
}

fn parse_rule(field: &str, map: &Map<String, Json>) -> Result<Rule, Reject> {
    let r = Inputs::new(map);
    let protocol = r.string("protocol")?;
    let from_port = port(field, r, "from_port")?;
    let to_port = port(field, r, "to_port")?;
    let cidr_blocks = match r.get("cidr_blocks") {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| cidr(&format!("{field}.cidr_blocks"), v))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(invalid(&format!("{field}.cidr_blocks"), "a list of CIDR blocks", v));
        }
    };
    let rule = Rule {
        protocol,
        from_port,
        to_port,
        cidr_blocks,
        source_security_group_id: r.opt_string("source_security_group_id")?,
        description: r.opt_string("description")?,
    };
    check_rule(field, &rule)?;
    Ok(rule)
}

fn check_rule(field: &str, rule: &Rule) -> Result<(), Reject> {
    let bad = |message: String| {
        Reject::terminal("InvalidParameterValue", format!("`{field}`: {message}"))
    };
    match rule.protocol.as_str() {
        "tcp" | "udp" => {
            let (Some(from), Some(to)) = (rule.from_port, rule.to_port) else {
                return Err(bad(format!(
                    "a `{}` rule needs `from_port` and `to_port`",
                    rule.protocol
                )));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(bad(format!(
                    "ports {from}-{to} are not a range within 0-65535 (`from_port` <= `to_port`)"
                )));
            }
        }
        "icmp" => {
            for p in [rule.from_port, rule.to_port].into_iter().flatten() {
                if !(-1..=255).contains(&p) {
                    return Err(bad(format!("icmp type/code {p} is not within -1-255")));
                }
            }
        }
        "-1" => {}
        other => {
            return Err(bad(format!(
                "protocol `{other}` is not one of `tcp`, `udp`, `icmp`, `-1`"
            )));
        }
    }
    if rule.cidr_blocks.is_empty() && rule.source_security_group_id.is_none() {
        return Err(bad("a rule needs `cidr_blocks` or `source_security_group_id`".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Json) -> Map<String, Json> {
        let Json::Object(m) = v else { panic!("an object") };
        m
    }

    #[test]
    fn optional_fields_may_be_null_or_absent() {
        let m = map(json!({"a": null, "n": 3, "tags": {"team": "web", "n": 1}}));
        let i = Inputs::new(&m);
        assert_eq!(i.opt_string("a").unwrap(), None);
        assert_eq!(i.opt_string("b").unwrap(), None);
        assert!(!i.bool("b").unwrap());
        assert_eq!(i.u32("n").unwrap(), 3);
        assert_eq!(i.tags().unwrap()["n"], "1");
        assert_eq!(i.string("a").unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn rules_and_cidrs_are_checked() {
        let m = map(json!({
            "cidr": "10.0.0.1/16",
            "ingress": [{"protocol": "tcp", "from_port": 443, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]}],
            "egress": [{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
        }));
        let i = Inputs::new(&m);
        assert!(i.cidr("cidr").unwrap_err().message.contains("write `10.0.0.0/16`"));
        assert!(i.rules("ingress").unwrap_err().message.contains("443-80"));
        assert_eq!(i.rules("egress").unwrap()[0].cidr_blocks[0].to_string(), "0.0.0.0/0");
    }
}
