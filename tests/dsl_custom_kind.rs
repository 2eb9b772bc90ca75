//! A resource kind defined by a user, with `#[derive(Resource)]` and `#[derive(Outputs)]`, used
//! in a stack beside the AWS kinds: its schema, its inputs as JSON, its edges, its validation.

use graven::aws::ec2::{Instance, Subnet, Vpc};
use graven::prelude::*;
use graven::resource::{Update, problem};
use graven::value::{RefTarget, as_reference, reference_json};
use graven::{Error, Problem, Resource};
use serde_json::json;

/// A DNS record in a zone run outside AWS.
#[derive(Debug, Clone, Resource)]
#[graven(kind = "dns:Record", outputs = DnsRecordOutputs, validate = DnsRecord::check)]
pub struct DnsRecord {
    zone: String,
    name: String,
    /// What the record points at: usually another resource's address.
    target: Value<String>,
    /// The VPC of a private zone.
    vpc_id: Option<Value<VpcId>>,
    #[graven(update)]
    ttl: u32,
    #[graven(update, secret)]
    api_token: Secret,
}

/// The outputs of a [`DnsRecord`].
#[derive(Debug, Clone, Outputs)]
pub struct DnsRecordOutputs {
    /// The record's fully qualified name.
    pub fqdn: String,
    /// The DNS provider's id for it.
    pub record_id: String,
}

impl DnsRecord {
    fn new(zone: &str, name: &str, target: impl Into<Value<String>>) -> DnsRecord {
        DnsRecord {
            zone: zone.to_owned(),
            name: name.to_owned(),
            target: target.into(),
            vpc_id: None,
            ttl: 300,
            api_token: Secret::named("dns-token"),
        }
    }

    fn private_to(mut self, vpc: Value<VpcId>) -> DnsRecord {
        self.vpc_id = Some(vpc);
        self
    }

    fn ttl(mut self, ttl: u32) -> DnsRecord {
        self.ttl = ttl;
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(60..=86_400).contains(&self.ttl) {
            out.push(problem(
                "ttl",
                format!("{} s is outside 60..=86400; pick a TTL in range", self.ttl),
            ));
        }
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            out.push(problem("name", format!("`{}` is not a DNS label", self.name)));
        }
        out
    }
}

#[derive(Stack)]
struct Site {
    vpc: Vpc,
    subnet: Subnet,
    web: Instance,
    #[graven(depends_on(subnet))]
    record: DnsRecord,
    alias: DnsRecord,
}

fn site() -> Site {
    let r = Site::refs();
    Site {
        vpc: Vpc::new("10.0.0.0/16".parse().unwrap()),
        subnet: Subnet::new(r.vpc.id(), "10.0.1.0/24".parse().unwrap(), "eu-west-2a"),
        web: Instance::new(ImageId::from("ami-0123456789abcdef0"), r.subnet.id()),
        record: DnsRecord::new("example.com", "www", r.web.private_ip()).private_to(r.vpc.id()),
        alias: DnsRecord::new("example.com", "home", r.record.fqdn()),
    }
}

#[test]
fn the_derive_publishes_the_kind_and_its_schema() {
    assert_eq!(DnsRecord::KIND, "dns:Record");
    let schema = DnsRecord::schema();
    assert_eq!(schema.kind, "dns:Record");
    let fields: Vec<(&str, Update, bool)> =
        schema.fields.iter().map(|f| (f.name, f.update, f.secret)).collect();
    assert_eq!(
        fields,
        [
            ("zone", Update::Replace, false),
            ("name", Update::Replace, false),
            ("target", Update::Replace, false),
            ("vpc_id", Update::Replace, false),
            ("ttl", Update::InPlace, false),
            ("api_token", Update::InPlace, true),
        ]
    );
    let outputs: Vec<(&str, &str, bool)> =
        schema.outputs.iter().map(|o| (o.name, o.ty, o.changes_on_update)).collect();
    assert_eq!(outputs, [("fqdn", "String", false), ("record_id", "String", false)]);
    assert_eq!(schema.field("ttl").map(|f| f.update), Some(Update::InPlace));
    assert!(schema.output("ip").is_none());
}

#[test]
fn the_handle_has_one_typed_method_per_output() {
    let r = Site::refs();
    let handle: DnsRecordHandle = r.record.clone();
    assert_eq!(handle.path(), "record");
    let fqdn: Value<String> = handle.fqdn();
    let reference = fqdn.reference().unwrap();
    assert_eq!((reference.resource(), reference.output()), ("record", "fqdn"));
    assert_eq!(r.alias.record_id().reference().unwrap().output(), "record_id");
}

#[test]
fn inputs_serialize_with_symbolic_references_and_secrets() {
    let graph = site().graph().unwrap();
    let record = graph.node("record").unwrap();
    assert_eq!(record.kind(), "dns:Record");
    assert_eq!(
        serde_json::Value::Object(record.inputs.clone()),
        json!({
            "zone": "example.com",
            "name": "www",
            "target": reference_json("web", "private_ip"),
            "vpc_id": reference_json("vpc", "id"),
            "ttl": 300,
            "api_token": { "$secret": "dns-token" },
        })
    );
    assert_eq!(as_reference(&record.inputs["vpc_id"]), Some(("vpc", "id")));
    assert_eq!(as_reference(&record.inputs["target"]), Some(("web", "private_ip")));
    // Inputs are in declaration order.
    let keys: Vec<&str> = record.inputs.keys().map(String::as_str).collect();
    assert_eq!(keys, ["zone", "name", "target", "vpc_id", "ttl", "api_token"]);
}

#[test]
fn a_resource_serializes_and_visits_its_references_without_a_graph() {
    let r = Site::refs();
    let record = DnsRecord::new("example.com", "www", r.web.private_ip());
    let inputs = record.inputs().unwrap();
    assert_eq!(inputs["target"], reference_json("web", "private_ip"));
    assert_eq!(inputs["vpc_id"], serde_json::Value::Null);
    assert_eq!(inputs["api_token"], json!({ "$secret": "dns-token" }));
    let mut seen = Vec::new();
    record.private_to(r.vpc.id()).visit_refs(&mut |t: RefTarget<'_>| {
        seen.push((t.resource.to_owned(), t.output));
    });
    assert_eq!(seen, [("web".to_owned(), "private_ip"), ("vpc".to_owned(), "id")]);
}

#[test]
fn references_and_depends_on_make_the_edges() {
    let graph = site().graph().unwrap();
    let deps = |id: &str| {
        let mut d: Vec<&str> = graph
            .node(id)
            .unwrap()
            .dependencies
            .iter()
            .map(|&i| graph.nodes()[i].id.as_str())
            .collect();
        d.sort_unstable();
        d
    };
    assert_eq!(deps("record"), ["subnet", "vpc", "web"]);
    assert_eq!(deps("alias"), ["record"]);
    let order: Vec<&str> = graph.order().iter().map(|&i| graph.nodes()[i].id.as_str()).collect();
    assert_eq!(order, ["vpc", "subnet", "web", "record", "alias"]);
}

#[test]
fn the_custom_validation_runs_with_the_catalogs_and_names_resource_and_field() {
    let r = Site::refs();
    let site = Site {
        record: DnsRecord::new("example.com", "w w", r.web.private_ip()).ttl(5),
        subnet: Subnet::new(r.vpc.id(), "10.1.0.0/24".parse().unwrap(), "eu-west-2a"),
        ..site()
    };
    let Err(Error::Invalid(problems)) = site.graph() else {
        panic!("expected validation problems");
    };
    let mut found: Vec<(&str, &str)> =
        problems.iter().map(|p| (p.resource.as_str(), p.field.as_str())).collect();
    found.sort_unstable();
    assert_eq!(found, [("record", "name"), ("record", "ttl"), ("subnet", "cidr_block")]);
    let ttl = problems.iter().find(|p| p.field == "ttl").unwrap();
    assert!(ttl.message.contains("5 s is outside 60..=86400"), "{}", ttl.message);
}

#[derive(Stack)]
struct Zone {
    records: Vec<DnsRecord>,
}

#[derive(Stack)]
struct Sites {
    site: Site,
    #[graven(protect)]
    zone: Zone,
}

#[test]
fn a_custom_kind_nests_and_collects_like_any_other() {
    let r = Sites::refs();
    let sites = Sites {
        site: site(),
        zone: Zone {
            records: vec![
                DnsRecord::new("example.com", "a", r.site.web.private_ip()),
                DnsRecord::new("example.com", "b", r.site.alias.fqdn()),
            ],
        },
    };
    let graph = sites.graph().unwrap();
    let zone_b = graph.node("zone.records[1]").unwrap();
    assert!(zone_b.protect);
    assert_eq!(zone_b.inputs["target"], reference_json("site.alias", "fqdn"));
    assert_eq!(
        graph.node("site.record").unwrap().inputs["vpc_id"],
        reference_json("site.vpc", "id")
    );
    assert_eq!(graph.len(), 7);
}
