//! The deployment graph of stacks: order, nesting, collections, optional fields, cycles,
//! validation and export, all through the public API.

use std::collections::BTreeMap;

use graven::aws::autoscaling::AutoScalingGroup;
use graven::aws::ec2::{
    Instance, InternetGateway, LaunchTemplate, Rule, SecurityGroup, Subnet, Vpc,
};
use graven::graph::{DeploymentGraph, Node};
use graven::prelude::*;
use graven::value::reference_json;
use graven::{Error, Resource};

const AMI: &str = "ami-0123456789abcdef0";

fn cidr(s: &str) -> ipnet::Ipv4Net {
    s.parse().expect("a valid CIDR block")
}

/// The logical ids of `graph` in its deployment order.
fn order(graph: &DeploymentGraph) -> Vec<&str> {
    graph.order().iter().map(|&i| graph.nodes()[i].id.as_str()).collect()
}

/// The logical ids `id` depends on, sorted.
fn deps<'g>(graph: &'g DeploymentGraph, id: &str) -> Vec<&'g str> {
    let node = graph.node(id).unwrap_or_else(|| panic!("`{id}` is in the graph"));
    let mut out: Vec<&str> =
        node.dependencies.iter().map(|&d| graph.nodes()[d].id.as_str()).collect();
    out.sort_unstable();
    out
}

fn ids(graph: &DeploymentGraph) -> Vec<&str> {
    graph.nodes().iter().map(|n| n.id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Order

#[derive(Stack)]
struct Tiers {
    web_sg: SecurityGroup,
    vpc: Vpc,
    subnet_b: Subnet,
    logs: Vpc,
    subnet_a: Subnet,
}

fn tiers() -> Tiers {
    let r = Tiers::refs();
    Tiers {
        web_sg: SecurityGroup::new(r.vpc.id(), "web"),
        vpc: Vpc::new(cidr("10.0.0.0/16")),
        subnet_b: Subnet::new(r.vpc.id(), cidr("10.0.2.0/24"), "eu-west-2b"),
        logs: Vpc::new(cidr("10.9.0.0/16")),
        subnet_a: Subnet::new(r.vpc.id(), cidr("10.0.1.0/24"), "eu-west-2a"),
    }
}

#[test]
fn order_puts_dependencies_first_and_breaks_ties_by_declaration_order() {
    let graph = tiers().graph().unwrap();
    // `vpc` and `logs` are ready at once: `vpc` is declared first. Once `vpc` is done,
    // `web_sg`, `subnet_b` and `subnet_a` are ready too, and each goes in declaration order,
    // `logs` (declared between them) included.
    assert_eq!(order(&graph), ["vpc", "web_sg", "subnet_b", "logs", "subnet_a"]);
    // Nodes stay in declaration order; the order is a permutation of them.
    assert_eq!(ids(&graph), ["web_sg", "vpc", "subnet_b", "logs", "subnet_a"]);
    assert_eq!(graph.stack(), "tiers");
}

#[test]
fn order_is_the_same_on_every_build() {
    let first = order(&tiers().graph().unwrap()).join(",");
    for _ in 0..20 {
        assert_eq!(order(&tiers().graph().unwrap()).join(","), first);
    }
}

#[test]
fn dependants_are_the_reverse_edges() {
    let graph = tiers().graph().unwrap();
    let vpc = graph.index_of("vpc").unwrap();
    let dependants: Vec<&str> =
        graph.dependants()[vpc].iter().map(|&i| graph.nodes()[i].id.as_str()).collect();
    assert_eq!(dependants, ["web_sg", "subnet_b", "subnet_a"]);
    assert!(graph.dependants()[graph.index_of("logs").unwrap()].is_empty());
}

// ---------------------------------------------------------------------------------------------
// Cycles

#[derive(Stack)]
struct Ring {
    a: SecurityGroup,
    b: SecurityGroup,
    c: SecurityGroup,
    outside: Vpc,
}

#[test]
fn a_cycle_of_references_is_named_whole() {
    let r = Ring::refs();
    let group = |name: &str, from: Value<SecurityGroupId>| {
        SecurityGroup::new(VpcId::from("vpc-0abc"), name).ingress(Rule::tcp_from_group(443, from))
    };
    let ring = Ring {
        a: group("a", r.b.id()),
        b: group("b", r.c.id()),
        c: group("c", r.a.id()),
        outside: Vpc::new(cidr("10.0.0.0/16")),
    };
    match ring.graph() {
        Err(Error::Cycle { path }) => assert_eq!(path, "a -> b -> c -> a"),
        other => panic!("expected a cycle, got {other:?}"),
    }
    let message = ring.graph().unwrap_err().to_string();
    assert!(message.contains("a -> b -> c -> a"), "{message}");
    assert!(message.contains("remov"), "the message says how to break it: {message}");
}

#[derive(Stack)]
struct Knot {
    #[graven(depends_on(egress))]
    ingress: SecurityGroup,
    egress: SecurityGroup,
}

#[test]
fn a_cycle_through_depends_on_and_a_reference_is_found_when_the_graph_is_built() {
    // The derive rejects cycles among `depends_on` edges alone; one closed by a reference can
    // only be seen at run time.
    let r = Knot::refs();
    let knot = Knot {
        ingress: SecurityGroup::new(VpcId::from("vpc-0abc"), "in"),
        egress: SecurityGroup::new(VpcId::from("vpc-0abc"), "out")
            .ingress(Rule::tcp_from_group(443, r.ingress.id())),
    };
    match knot.graph() {
        Err(Error::Cycle { path }) => assert_eq!(path, "ingress -> egress -> ingress"),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

fn node(id: &str, dependencies: Vec<usize>) -> Node {
    Node {
        id: id.to_owned(),
        schema: <Vpc as Resource>::schema(),
        inputs: serde_json::Map::new(),
        dependencies,
        protect: false,
        destroy_before_create: false,
    }
}

#[test]
fn from_nodes_names_the_cycle_and_not_the_nodes_around_it() {
    // `entry` leads into the cycle and `after` hangs off it; neither is part of it.
    let nodes = vec![
        node("entry", vec![]),
        node("x", vec![0, 3]),
        node("y", vec![1]),
        node("z", vec![2]),
        node("after", vec![3]),
    ];
    match DeploymentGraph::from_nodes("hand", nodes) {
        Err(Error::Cycle { path }) => assert_eq!(path, "x -> z -> y -> x"),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn from_nodes_names_a_self_dependency() {
    match DeploymentGraph::from_nodes("hand", vec![node("a", vec![]), node("b", vec![1])]) {
        Err(Error::Cycle { path }) => assert_eq!(path, "b -> b"),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn from_nodes_orders_an_acyclic_graph() {
    let graph = DeploymentGraph::from_nodes(
        "hand",
        vec![node("c", vec![1, 2]), node("b", vec![2]), node("a", vec![])],
    )
    .unwrap();
    assert_eq!(order(&graph), ["a", "b", "c"]);
}

// ---------------------------------------------------------------------------------------------
// Nested stacks

#[derive(Stack)]
struct Network {
    vpc: Vpc,
    subnet: Subnet,
    #[graven(depends_on(subnet))]
    gateway: InternetGateway,
}

impl Network {
    fn new(block: &str) -> Network {
        // Handles made here are relative to this stack: `vpc` means this stack's `vpc`, at
        // whatever path the stack ends up.
        let r = Network::refs();
        Network {
            vpc: Vpc::new(cidr(block)),
            subnet: Subnet::new(
                r.vpc.id(),
                cidr(&block.replace(".0.0/16", ".1.0/24")),
                "eu-west-2a",
            ),
            gateway: InternetGateway::new(r.vpc.id()),
        }
    }
}

#[derive(Stack)]
struct App {
    /// Same name as the nested stack's `vpc`: references made inside `Network` still mean
    /// `network.vpc` (the innermost scope that has the name wins).
    vpc: Vpc,
    network: Network,
    sg: SecurityGroup,
}

fn app() -> App {
    let r = App::refs();
    App {
        vpc: Vpc::new(cidr("10.8.0.0/16")),
        network: Network::new("10.0.0.0/16"),
        sg: SecurityGroup::new(r.network.vpc.id(), "app"),
    }
}

#[test]
fn nested_stacks_prefix_their_ids() {
    let graph = app().graph().unwrap();
    assert_eq!(ids(&graph), ["vpc", "network.vpc", "network.subnet", "network.gateway", "sg"]);
    assert_eq!(graph.stack(), "app");
}

#[test]
fn references_made_inside_a_nested_stack_resolve_to_its_own_members() {
    let graph = app().graph().unwrap();
    assert_eq!(deps(&graph, "network.subnet"), ["network.vpc"]);
    assert_eq!(
        graph.node("network.subnet").unwrap().inputs["vpc_id"],
        reference_json("network.vpc", "id"),
        "the reference is stored with its absolute logical id"
    );
    // `depends_on` inside the nested stack names its sibling.
    assert_eq!(deps(&graph, "network.gateway"), ["network.subnet", "network.vpc"]);
}

#[test]
fn references_from_the_parent_reach_into_a_nested_stack() {
    let r = App::refs();
    assert_eq!(r.network.vpc.id().reference().unwrap().resource(), "network.vpc");
    let graph = app().graph().unwrap();
    assert_eq!(deps(&graph, "sg"), ["network.vpc"]);
    assert_eq!(graph.node("sg").unwrap().inputs["vpc_id"], reference_json("network.vpc", "id"));
}

#[derive(Stack)]
struct Subnets {
    subnet: Subnet,
}

#[derive(Stack)]
struct Shared {
    shared_vpc: Vpc,
    zone: Subnets,
}

#[test]
fn a_reference_passed_down_from_the_parent_resolves_in_the_parent() {
    // The handle `shared_vpc` is made by the parent and used inside `zone`, which has no
    // member of that name: resolution walks out to the parent's scope.
    let r = Shared::refs();
    let stack = Shared {
        shared_vpc: Vpc::new(cidr("10.0.0.0/16")),
        zone: Subnets { subnet: Subnet::new(r.shared_vpc.id(), cidr("10.0.3.0/24"), "eu-west-2c") },
    };
    let graph = stack.graph().unwrap();
    assert_eq!(deps(&graph, "zone.subnet"), ["shared_vpc"]);
    assert_eq!(
        graph.node("zone.subnet").unwrap().inputs["vpc_id"],
        reference_json("shared_vpc", "id")
    );
}

#[derive(Stack)]
struct Region {
    network: Network,
}

#[derive(Stack)]
#[graven(name = "global")]
struct World {
    eu: Region,
    us: Region,
}

#[test]
fn stacks_nest_at_any_depth() {
    let world = World {
        eu: Region { network: Network::new("10.0.0.0/16") },
        us: Region { network: Network::new("10.1.0.0/16") },
    };
    let graph = world.graph().unwrap();
    assert_eq!(graph.stack(), "global");
    assert_eq!(
        ids(&graph),
        [
            "eu.network.vpc",
            "eu.network.subnet",
            "eu.network.gateway",
            "us.network.vpc",
            "us.network.subnet",
            "us.network.gateway",
        ]
    );
    assert_eq!(deps(&graph, "us.network.subnet"), ["us.network.vpc"]);
    assert_eq!(deps(&graph, "eu.network.gateway"), ["eu.network.subnet", "eu.network.vpc"]);
}

// ---------------------------------------------------------------------------------------------
// Collections and optional members

#[derive(Stack)]
struct Fleet {
    vpc: Vpc,
    subnets: BTreeMap<String, Subnet>,
    web: Vec<Instance>,
    bastion: Option<Instance>,
    #[graven(depends_on(web))]
    webhook: SecurityGroup,
}

fn fleet(web: usize, bastion: bool) -> Fleet {
    let r = Fleet::refs();
    let zones = [("a", "10.0.1.0/24"), ("b", "10.0.2.0/24")];
    Fleet {
        vpc: Vpc::new(cidr("10.0.0.0/16")),
        subnets: zones
            .iter()
            .map(|(zone, block)| {
                let subnet = Subnet::new(r.vpc.id(), cidr(block), &format!("eu-west-2{zone}"));
                ((*zone).to_owned(), subnet)
            })
            .collect(),
        web: (0..web)
            .map(|i| {
                let zone = if i % 2 == 0 { "a" } else { "b" };
                Instance::new(ImageId::from(AMI), r.subnets.key(zone).id())
            })
            .collect(),
        bastion: bastion.then(|| Instance::new(ImageId::from(AMI), r.subnets.key("a").id())),
        webhook: SecurityGroup::new(r.vpc.id(), "webhook"),
    }
}

#[test]
fn collections_give_indexed_and_keyed_ids() {
    let graph = fleet(3, false).graph().unwrap();
    assert_eq!(
        ids(&graph),
        ["vpc", r#"subnets["a"]"#, r#"subnets["b"]"#, "web[0]", "web[1]", "web[2]", "webhook"]
    );
    assert_eq!(deps(&graph, "web[1]"), [r#"subnets["b"]"#]);
    assert_eq!(
        graph.node("web[1]").unwrap().inputs["subnet_id"],
        reference_json(r#"subnets["b"]"#, "id")
    );
}

#[test]
fn handles_of_collections_name_their_elements() {
    let r = Fleet::refs();
    assert_eq!(r.web.at(0).id().reference().unwrap().resource(), "web[0]");
    assert_eq!(r.web.at(12).private_ip().reference().unwrap().output(), "private_ip");
    assert_eq!(r.subnets.key("a").id().reference().unwrap().resource(), r#"subnets["a"]"#);
    // An optional member's handle is its resource's.
    assert_eq!(r.bastion.id().reference().unwrap().resource(), "bastion");
}

#[test]
fn an_absent_optional_member_is_not_in_the_graph() {
    let without = fleet(1, false).graph().unwrap();
    assert!(without.node("bastion").is_none());
    let with = fleet(1, true).graph().unwrap();
    assert_eq!(deps(&with, "bastion"), [r#"subnets["a"]"#]);
    assert_eq!(with.len(), without.len() + 1);
}

#[derive(Stack)]
struct Gap {
    vpc: Vpc,
    extra: Option<Subnet>,
    server: Instance,
}

#[test]
fn a_reference_to_an_absent_optional_member_dangles() {
    let r = Gap::refs();
    let gap = Gap {
        vpc: Vpc::new(cidr("10.0.0.0/16")),
        extra: None,
        server: Instance::new(ImageId::from(AMI), r.extra.id()),
    };
    match gap.graph() {
        Err(Error::DanglingReference { from, to, output }) => {
            assert_eq!((from.as_str(), to.as_str(), output.as_str()), ("server", "extra", "id"));
        }
        other => panic!("expected a dangling reference, got {other:?}"),
    }
    let message = gap.graph().unwrap_err().to_string();
    assert!(message.contains("`server` refers to `extra`.id"), "{message}");
}

#[test]
fn a_reference_past_the_end_of_a_collection_dangles() {
    let r = Fleet::refs();
    let mut stack = fleet(2, false);
    stack.bastion = Some(Instance::new(ImageId::from(AMI), r.subnets.key("c").id()));
    match stack.graph() {
        Err(Error::DanglingReference { from, to, .. }) => {
            assert_eq!((from.as_str(), to.as_str()), ("bastion", r#"subnets["c"]"#));
        }
        other => panic!("expected a dangling reference, got {other:?}"),
    }
}

#[test]
fn depends_on_a_collection_waits_for_every_element() {
    let graph = fleet(3, false).graph().unwrap();
    // `webhook` names `web`; `webhook` itself starts with `web` but is not an element of it.
    assert_eq!(deps(&graph, "webhook"), ["vpc", "web[0]", "web[1]", "web[2]"]);
}

#[test]
fn depends_on_an_empty_collection_adds_nothing() {
    let graph = fleet(0, false).graph().unwrap();
    assert_eq!(deps(&graph, "webhook"), ["vpc"]);
}

#[derive(Stack)]
struct Guarded {
    #[graven(protect)]
    network: Network,
    #[graven(depends_on(network), destroy_before_create)]
    web: Vec<Instance>,
    #[graven(depends_on(web))]
    monitor: Instance,
}

fn guarded() -> Guarded {
    let r = Guarded::refs();
    Guarded {
        network: Network::new("10.0.0.0/16"),
        web: vec![
            Instance::new(ImageId::from(AMI), r.network.subnet.id()),
            Instance::new(ImageId::from(AMI), r.network.subnet.id()),
        ],
        monitor: Instance::new(ImageId::from(AMI), r.network.subnet.id()),
    }
}

#[test]
fn depends_on_a_nested_stack_waits_for_every_resource_in_it() {
    let graph = guarded().graph().unwrap();
    let network = ["network.gateway", "network.subnet", "network.vpc"];
    assert_eq!(deps(&graph, "web[0]"), network);
    assert_eq!(deps(&graph, "web[1]"), network);
    assert_eq!(deps(&graph, "monitor"), ["network.subnet", "web[0]", "web[1]"]);
}

#[test]
fn protect_and_destroy_before_create_reach_every_resource_inside_the_field() {
    let graph = guarded().graph().unwrap();
    let flags = |id: &str| {
        let n = graph.node(id).unwrap();
        (n.protect, n.destroy_before_create)
    };
    for id in ["network.vpc", "network.subnet", "network.gateway"] {
        assert_eq!(flags(id), (true, false), "{id}");
    }
    for id in ["web[0]", "web[1]"] {
        assert_eq!(flags(id), (false, true), "{id}");
    }
    assert_eq!(flags("monitor"), (false, false));
}

// ---------------------------------------------------------------------------------------------
// Validation

#[derive(Stack)]
struct Broken {
    vpc: Vpc,
    inside: Subnet,
    outside: Subnet,
    overlapping: Subnet,
    sg: SecurityGroup,
    template: LaunchTemplate,
    fleet: AutoScalingGroup,
}

#[test]
fn every_invalid_input_is_reported_at_once_with_its_resource_and_field() {
    let r = Broken::refs();
    let broken = Broken {
        vpc: Vpc::new(cidr("10.0.0.0/16")).tag("k".repeat(129), "v").tag("aws:owner", "me"),
        inside: Subnet::new(r.vpc.id(), cidr("10.0.1.0/24"), "eu-west-2a"),
        outside: Subnet::new(r.vpc.id(), cidr("10.1.0.0/24"), "eu-west-2a"),
        overlapping: Subnet::new(r.vpc.id(), cidr("10.0.1.0/25"), "eu-west-2b"),
        sg: SecurityGroup::new(r.vpc.id(), "web")
            .ingress(Rule::tcp(443, cidr("0.0.0.0/0")))
            .ingress(Rule::new("tcp", 80, 70_000, vec![cidr("0.0.0.0/0")])),
        template: LaunchTemplate::new(ImageId::from(AMI)).instance_type("t3.small"),
        fleet: AutoScalingGroup::new(r.template.latest_version())
            .subnets([r.inside.id()])
            .capacity(3, 2, 6),
    };
    let Err(Error::Invalid(problems)) = broken.graph() else {
        panic!("expected validation problems");
    };
    let mut found: Vec<(&str, &str)> =
        problems.iter().map(|p| (p.resource.as_str(), p.field.as_str())).collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            ("fleet", "desired_capacity"),
            ("outside", "cidr_block"),
            ("overlapping", "cidr_block"),
            ("sg", "ingress[1]"),
            ("vpc", "tags"),
            ("vpc", "tags"),
        ]
    );
    let message = |resource: &str, needle: &str| {
        problems
            .iter()
            .filter(|p| p.resource == resource)
            .map(|p| p.message.as_str())
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| {
                panic!("a problem of `{resource}` mentions {needle:?}: {problems:?}")
            })
    };
    message("outside", "is not inside the CIDR 10.0.0.0/16");
    message("overlapping", "overlaps 10.0.1.0/24 of subnet `inside`");
    message("sg", "70000");
    message("vpc", "limit is 128");
    message("vpc", "`aws:`");
    message("fleet", "min <= desired <= max");

    // The error's text lists them all, each as `resource`.`field`.
    let text = broken.graph().unwrap_err().to_string();
    for (resource, field) in &found {
        assert!(text.contains(&format!("`{resource}`.`{field}`")), "{text}");
    }
}

#[test]
fn a_valid_tag_limit_passes() {
    let stack = Tiers {
        vpc: Vpc::new(cidr("10.0.0.0/16")).tag("k".repeat(128), "v".repeat(256)),
        ..tiers()
    };
    assert!(stack.graph().is_ok());
}

// ---------------------------------------------------------------------------------------------
// Export

#[derive(Stack)]
#[graven(name = "web")]
struct Web {
    vpc: Vpc,
    subnets: BTreeMap<String, Subnet>,
    sg: SecurityGroup,
    template: LaunchTemplate,
    #[graven(depends_on(sg))]
    fleet: AutoScalingGroup,
}

fn web() -> Web {
    let r = Web::refs();
    Web {
        vpc: Vpc::new(cidr("10.0.0.0/16")),
        subnets: [("a", "10.0.1.0/24"), ("b", "10.0.2.0/24")]
            .into_iter()
            .map(|(z, b)| {
                (z.to_owned(), Subnet::new(r.vpc.id(), cidr(b), &format!("eu-west-2{z}")))
            })
            .collect(),
        sg: SecurityGroup::new(r.vpc.id(), "web").ingress(Rule::tcp(443, cidr("0.0.0.0/0"))),
        template: LaunchTemplate::new(ImageId::from(AMI)).security_groups([r.sg.id()]),
        fleet: AutoScalingGroup::new(r.template.latest_version())
            .capacity(2, 3, 6)
            .subnets([r.subnets.key("a").id(), r.subnets.key("b").id()]),
    }
}

#[test]
fn the_graph_exports_to_dot() {
    insta::assert_snapshot!(web().graph().unwrap().to_dot());
}

#[test]
fn the_graph_exports_to_mermaid() {
    insta::assert_snapshot!(web().graph().unwrap().to_mermaid());
}
