//! The AWS provider against moto_server: every kind created, read, updated and deleted; reads
//! batched; adoption by token; errors classified.

use std::collections::BTreeMap;

use graven::aws::provider::AwsProvider;
use graven::provider::{Create, ErrorKind, Observed, Provider};
use serde_json::{Map, Value as Json, json};

use crate::support::moto;

const VPC: &str = "aws:ec2:Vpc";
const SUBNET: &str = "aws:ec2:Subnet";
const IGW: &str = "aws:ec2:InternetGateway";
const RTB: &str = "aws:ec2:RouteTable";
const SG: &str = "aws:ec2:SecurityGroup";
const LT: &str = "aws:ec2:LaunchTemplate";
const INSTANCE: &str = "aws:ec2:Instance";
const IMAGE: &str = "aws:ec2:Image";
pub(crate) const ASG: &str = "aws:autoscaling:AutoScalingGroup";

pub(crate) fn obj(v: Json) -> Map<String, Json> {
    v.as_object().cloned().expect("an object")
}

/// Creates a resource the way the engine does: Graven's tags and a fresh token.
pub(crate) async fn create(p: &AwsProvider, id: &str, kind: &str, inputs: Json) -> Observed {
    try_create(p, id, kind, inputs).await.unwrap_or_else(|e| panic!("create {id}: {e}"))
}

pub(crate) async fn try_create(
    p: &AwsProvider,
    id: &str,
    kind: &str,
    inputs: Json,
) -> graven::provider::Result<Observed> {
    let inputs = obj(inputs);
    let token = uuid_like(id);
    let tags = BTreeMap::from([
        ("graven:stack".to_owned(), "test".to_owned()),
        ("graven:id".to_owned(), id.to_owned()),
        ("graven:release".to_owned(), "1".to_owned()),
    ]);
    p.create(&Create { id, kind, inputs: &inputs, token: &token, tags: &tags }).await
}

/// A token unique to this process and id.
pub(crate) fn uuid_like(id: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{:08x}-{n:04x}-{}", std::process::id(), id.len())
}

pub(crate) async fn read_one(p: &AwsProvider, kind: &str, id: &str) -> Option<Observed> {
    p.read(kind, &[id.to_owned()]).await.expect("read").pop().flatten()
}

pub(crate) fn s(o: &Observed, output: &str) -> String {
    o.outputs[output].as_str().unwrap_or_else(|| panic!("output {output} of {o:?}")).to_owned()
}

fn changed(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// A VPC and two subnets, for the tests that need a network.
pub(crate) async fn network(p: &AwsProvider, region: &str) -> (String, String, String) {
    let vpc = create(
        p,
        "vpc",
        VPC,
        json!({"cidr_block": "10.0.0.0/16", "enable_dns_hostnames": true, "tags": {}}),
    )
    .await;
    let vpc = s(&vpc, "id");
    let zones = moto::zones(region).await;
    let mut subnets = Vec::new();
    for (i, az) in zones.iter().take(2).enumerate() {
        let inputs = json!({"vpc_id": vpc, "cidr_block": format!("10.0.{}.0/24", i + 1), "availability_zone": az, "map_public_ip_on_launch": false, "tags": {}});
        subnets.push(s(&create(p, &format!("subnet_{i}"), SUBNET, inputs).await, "id"));
    }
    (vpc, subnets[0].clone(), subnets[1].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_kinds_create_read_update_delete() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let ec2 = moto::ec2(region).await;

    // VPC: tags at creation (the inputs' and Graven's), DNS host names, then in-place updates.
    let vpc = create(
        &p,
        "net.vpc",
        VPC,
        json!({"cidr_block": "10.1.0.0/16", "enable_dns_hostnames": true, "tags": {"team": "web"}}),
    )
    .await;
    let vpc_id = s(&vpc, "id");
    assert_eq!(vpc.inputs["tags"], json!({"team": "web"}));
    let described = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let tags: BTreeMap<_, _> = described.vpcs()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    for key in ["team", "graven:stack", "graven:id", "graven:release", "graven:token"] {
        assert!(tags.contains_key(key), "{key} missing from {tags:?}");
    }
    assert_eq!(tags["graven:id"], "net.vpc");
    let dns = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc_id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(dns.enable_dns_hostnames().and_then(|v| v.value()), Some(true));

    let updated = p
        .update(VPC, &vpc_id, &obj(json!({"cidr_block": "10.1.0.0/16", "enable_dns_hostnames": false, "tags": {"team": "api", "cost": "7"}})), &changed(&["enable_dns_hostnames", "tags"]))
        .await
        .unwrap();
    assert_eq!(updated.inputs["tags"], json!({"cost": "7", "team": "api"}));
    assert_eq!(updated.tags["graven:id"], "net.vpc", "Graven's tags survive a tag update");
    let dns = ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc_id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(dns.enable_dns_hostnames().and_then(|v| v.value()), Some(false));

    // Subnets, public IPs on launch updated in place.
    let az = moto::zones(region).await[0].clone();
    let subnet = create(&p, "net.a", SUBNET, json!({"vpc_id": vpc_id, "cidr_block": "10.1.1.0/24", "availability_zone": az, "map_public_ip_on_launch": true, "tags": {}})).await;
    let subnet_id = s(&subnet, "id");
    let subnet_b = create(&p, "net.b", SUBNET, json!({"vpc_id": vpc_id, "cidr_block": "10.1.2.0/24", "availability_zone": az, "map_public_ip_on_launch": false, "tags": {}})).await;
    let subnet_b_id = s(&subnet_b, "id");
    let read = read_one(&p, SUBNET, &subnet_id).await.unwrap();
    assert_eq!(read.inputs["map_public_ip_on_launch"], json!(true));
    assert_eq!(read.inputs["vpc_id"], json!(vpc_id));
    assert_eq!(read.inputs["cidr_block"], json!("10.1.1.0/24"));
    let off = p
        .update(SUBNET, &subnet_id, &obj(json!({"vpc_id": vpc_id, "cidr_block": "10.1.1.0/24", "availability_zone": az, "map_public_ip_on_launch": false, "tags": {}})), &changed(&["map_public_ip_on_launch"]))
        .await
        .unwrap();
    assert_eq!(off.inputs["map_public_ip_on_launch"], json!(false));

    // An internet gateway, attached.
    let igw = create(&p, "net.igw", IGW, json!({"vpc_id": vpc_id, "tags": {}})).await;
    let igw_id = s(&igw, "id");
    assert_eq!(read_one(&p, IGW, &igw_id).await.unwrap().inputs["vpc_id"], json!(vpc_id));

    // A route table with a default route and one subnet; then routes and subnets change.
    let rtb = create(&p, "net.rtb", RTB, json!({"vpc_id": vpc_id, "routes": [{"destination": "0.0.0.0/0", "gateway_id": igw_id}], "subnet_ids": [subnet_id], "tags": {}})).await;
    let rtb_id = s(&rtb, "id");
    let read = read_one(&p, RTB, &rtb_id).await.unwrap();
    assert_eq!(read.inputs["routes"], json!([{"destination": "0.0.0.0/0", "gateway_id": igw_id}]));
    assert_eq!(read.inputs["subnet_ids"], json!([subnet_id]));
    let moved = p
        .update(
            RTB,
            &rtb_id,
            &obj(json!({"vpc_id": vpc_id, "routes": [{"destination": "192.168.0.0/16", "gateway_id": igw_id}], "subnet_ids": [subnet_b_id], "tags": {"k": "v"}})),
            &changed(&["routes", "subnet_ids", "tags"]),
        )
        .await
        .unwrap();
    assert_eq!(
        moved.inputs["routes"],
        json!([{"destination": "192.168.0.0/16", "gateway_id": igw_id}])
    );
    assert_eq!(moved.inputs["subnet_ids"], json!([subnet_b_id]));
    assert_eq!(moved.inputs["tags"], json!({"k": "v"}));

    // A second table takes a subnet over from the first (as a replacement does).
    let rtb2 = create(
        &p,
        "net.rtb2",
        RTB,
        json!({"vpc_id": vpc_id, "routes": [], "subnet_ids": [subnet_b_id], "tags": {}}),
    )
    .await;
    let rtb2_id = s(&rtb2, "id");
    assert_eq!(read_one(&p, RTB, &rtb_id).await.unwrap().inputs["subnet_ids"], json!([]));
    assert_eq!(
        read_one(&p, RTB, &rtb2_id).await.unwrap().inputs["subnet_ids"],
        json!([subnet_b_id])
    );

    // A security group: generated name, AWS's default egress replaced, rules diffed.
    let rule = |port: i32, cidr: &str| json!({"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [cidr], "source_security_group_id": null, "description": null});
    let sg = create(
        &p,
        "net.web_sg",
        SG,
        json!({"vpc_id": vpc_id, "name": null, "description": "web", "ingress": [rule(80, "0.0.0.0/0")], "egress": [rule(443, "0.0.0.0/0")], "tags": {}}),
    )
    .await;
    let sg_id = s(&sg, "id");
    let read = read_one(&p, SG, &sg_id).await.unwrap();
    let name = read.inputs["name"].as_str().unwrap();
    assert!(name.starts_with("test-net-web-sg-"), "{name}");
    assert_eq!(read.inputs["ingress"], json!([rule(80, "0.0.0.0/0")]));
    assert_eq!(
        read.inputs["egress"],
        json!([rule(443, "0.0.0.0/0")]),
        "the default allow-all egress is gone"
    );
    let from_group = json!({"protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": [], "source_security_group_id": sg_id, "description": "db"});
    let updated = p
        .update(
            SG,
            &sg_id,
            &obj(json!({"vpc_id": vpc_id, "name": null, "description": "web", "ingress": [rule(22, "10.0.0.0/8"), from_group], "egress": [rule(443, "0.0.0.0/0")], "tags": {}})),
            &changed(&["ingress"]),
        )
        .await
        .unwrap();
    let ingress = updated.inputs["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 2, "{ingress:?}");
    assert!(ingress.contains(&rule(22, "10.0.0.0/8")));
    assert!(
        ingress
            .iter()
            .any(|r| r["source_security_group_id"] == json!(sg_id)
                && r["description"] == json!("db")),
        "{ingress:?}"
    );
    let described = ec2.describe_security_groups().group_ids(&sg_id).send().await.unwrap();
    let ports: Vec<Option<i32>> =
        described.security_groups()[0].ip_permissions().iter().map(|p| p.from_port()).collect();
    assert!(!ports.contains(&Some(80)), "port 80 was revoked: {ports:?}");

    // Delete in reverse dependency order; each is gone afterwards, and deleting again succeeds.
    for (kind, id) in [
        (SG, &sg_id),
        (RTB, &rtb2_id),
        (RTB, &rtb_id),
        (IGW, &igw_id),
        (SUBNET, &subnet_b_id),
        (SUBNET, &subnet_id),
        (VPC, &vpc_id),
    ] {
        p.delete(kind, id).await.unwrap_or_else(|e| panic!("delete {kind} {id}: {e}"));
        assert!(read_one(&p, kind, id).await.is_none(), "{kind} {id} is gone");
        p.delete(kind, id).await.unwrap_or_else(|e| panic!("delete {kind} {id} again: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_templates_instances_and_images() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let ec2 = moto::ec2(region).await;
    let (vpc, subnet, _) = network(&p, region).await;
    let ami = moto::some_image(region).await;
    let sg = create(&p, "sg", SG, json!({"vpc_id": vpc, "name": "app", "description": "app", "ingress": [], "egress": [], "tags": {}})).await;
    let sg_id = s(&sg, "id");

    // A launch template: version 1, then an update makes version 2 with the full data.
    let lt_inputs = |image: &str, ty: &str| json!({"name": null, "image_id": image, "instance_type": ty, "security_group_ids": [sg_id], "user_data": "#!/bin/sh\necho hi", "key_name": null, "tags": {"app": "web"}});
    let lt = create(&p, "template", LT, lt_inputs(&ami, "t3.small")).await;
    let lt_id = s(&lt, "id");
    assert_eq!(lt.outputs["latest_version"], json!(1));
    let read = read_one(&p, LT, &lt_id).await.unwrap();
    assert_eq!(read.inputs["image_id"], json!(ami));
    assert_eq!(read.inputs["instance_type"], json!("t3.small"));
    assert!(read.inputs.get("user_data").is_none(), "user data holds a secret: never observed");
    assert_eq!(read.tags["app"], "web");
    let v2 = p
        .update(LT, &lt_id, &obj(lt_inputs(&ami, "t3.large")), &changed(&["instance_type"]))
        .await
        .unwrap();
    assert_eq!(v2.outputs["latest_version"], json!(2));
    assert_eq!(v2.inputs["instance_type"], json!("t3.large"));
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt_id)
        .versions("2")
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!(data.image_id(), Some(ami.as_str()), "the new version carries the full data");
    assert_eq!(data.security_group_ids(), [sg_id.clone()]);
    assert_eq!(data.user_data(), Some("IyEvYmluL3NoCmVjaG8gaGk="), "user data is sent base64");

    // An instance: running, with a private IP and its tags.
    let inst = create(&p, "box", INSTANCE, json!({"image_id": ami, "instance_type": "t3.micro", "subnet_id": subnet, "security_group_ids": [sg_id], "user_data": null, "tags": {"role": "bastion"}})).await;
    let inst_id = s(&inst, "id");
    assert!(s(&inst, "private_ip").starts_with("10.0.1."), "{:?}", inst.outputs);
    let read = read_one(&p, INSTANCE, &inst_id).await.unwrap();
    assert_eq!(read.inputs["subnet_id"], json!(subnet));
    assert_eq!(read.inputs["security_group_ids"], json!([sg_id]));
    assert_eq!(read.tags["role"], "bastion");
    assert_eq!(read.tags["graven:id"], "box");
    let retagged = p.update(INSTANCE, &inst_id, &obj(json!({"image_id": ami, "instance_type": "t3.micro", "subnet_id": subnet, "security_group_ids": [sg_id], "user_data": null, "tags": {}})), &changed(&["tags"])).await.unwrap();
    assert_eq!(retagged.inputs["tags"], json!({}));
    p.delete(INSTANCE, &inst_id).await.unwrap();
    let state = ec2.describe_instances().instance_ids(&inst_id).send().await.unwrap();
    assert_eq!(
        state.reservations()[0].instances()[0].state().and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
    );
    assert!(read_one(&p, INSTANCE, &inst_id).await.is_none(), "a terminated instance is gone");

    // An image copied from a source image, named `{name}-{version}`.
    let image = create(
        &p,
        "image",
        IMAGE,
        json!({"name": "web", "version": "1.4.0", "source_image_id": ami, "tags": {"build": "42"}}),
    )
    .await;
    let image_id = s(&image, "id");
    let read = read_one(&p, IMAGE, &image_id).await.unwrap();
    assert_eq!(
        (read.inputs["name"].clone(), read.inputs["version"].clone()),
        (json!("web"), json!("1.4.0"))
    );
    assert_eq!(read.tags["build"], "42");
    assert_eq!(
        read.tags["graven:id"], "image",
        "moto ignores CopyImage's tag specifications; CreateTags sets them"
    );
    let catalog = p.images().await.unwrap();
    assert!(
        catalog
            .iter()
            .any(|i| i.name == "web" && i.version.to_string() == "1.4.0" && i.id == image_id),
        "{catalog:?}"
    );
    p.delete(IMAGE, &image_id).await.unwrap();
    assert!(read_one(&p, IMAGE, &image_id).await.is_none());

    p.delete(LT, &lt_id).await.unwrap();
    assert!(read_one(&p, LT, &lt_id).await.is_none());
    p.delete(LT, &lt_id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_scaling_groups_create_read_update_delete() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let (_, subnet_a, subnet_b) = network(&p, region).await;
    let ami = moto::some_image(region).await;
    let lt = create(&p, "template", LT, json!({"name": null, "image_id": ami, "instance_type": "t3.micro", "security_group_ids": [], "user_data": null, "key_name": null, "tags": {}})).await;
    let lt_id = s(&lt, "id");
    let inputs = |min: u32, desired: u32, max: u32, subnets: Vec<&str>| {
        json!({"name": null, "launch_template_id": lt_id, "launch_template_version": 1, "min_size": min, "desired_capacity": desired, "max_size": max,
               "subnet_ids": subnets, "health_check_type": "EC2", "health_check_grace_period": 60, "rollout": {"kind": "rolling"}, "tags": {"tier": "web"}})
    };
    let group = create(&p, "fleet", ASG, inputs(1, 2, 3, vec![&subnet_a])).await;
    let name = s(&group, "name");
    assert!(name.starts_with("test-fleet-"), "{name}");
    assert_eq!(group.physical_id, name);
    assert!(s(&group, "arn").starts_with("arn:aws:autoscaling:"), "{:?}", group.outputs);
    let read = read_one(&p, ASG, &name).await.unwrap();
    assert_eq!(read.inputs["desired_capacity"], json!(2));
    assert_eq!(read.inputs["launch_template_version"], json!(1));
    assert_eq!(read.inputs["subnet_ids"], json!([subnet_a]));
    assert_eq!(read.tags["tier"], "web");
    assert_eq!(read.tags["graven:id"], "fleet");

    // Instances carry the group's tags (propagated at launch).
    let fleet = p.fleet_instances(&name).await.unwrap();
    assert_eq!(fleet.len(), 2);
    let ec2 = moto::ec2(region).await;
    let described = ec2.describe_instances().instance_ids(&fleet[0].id).send().await.unwrap();
    let tags: Vec<&str> =
        described.reservations()[0].instances()[0].tags().iter().filter_map(|t| t.key()).collect();
    assert!(tags.contains(&"graven:stack") && tags.contains(&"tier"), "{tags:?}");

    let updated = p
        .update(
            ASG,
            &name,
            &obj(inputs(2, 3, 4, vec![&subnet_a, &subnet_b])),
            &changed(&["min_size", "desired_capacity", "max_size", "subnet_ids"]),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            updated.inputs["min_size"].clone(),
            updated.inputs["desired_capacity"].clone(),
            updated.inputs["max_size"].clone()
        ),
        (json!(2), json!(3), json!(4))
    );
    assert_eq!(updated.inputs["subnet_ids"], json!([subnet_a, subnet_b]));
    assert_eq!(p.fleet_instances(&name).await.unwrap().len(), 3);

    let ids: Vec<String> =
        p.fleet_instances(&name).await.unwrap().into_iter().map(|i| i.id).collect();
    p.delete(ASG, &name).await.unwrap();
    assert!(read_one(&p, ASG, &name).await.is_none());
    let described = ec2.describe_instances().set_instance_ids(Some(ids)).send().await.unwrap();
    for i in described.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(
            i.state().and_then(|s| s.name()),
            Some(&aws_sdk_ec2::types::InstanceStateName::Terminated),
            "{:?}",
            i.instance_id()
        );
    }
    p.delete(ASG, &name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_by_token_adopts_what_a_crashed_create_made() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let (vpc, _, _) = network(&p, region).await;
    let inputs = obj(
        json!({"vpc_id": vpc, "name": null, "description": "x", "ingress": [], "egress": [], "tags": {}}),
    );
    let tags = BTreeMap::from([("graven:stack".to_owned(), "test".to_owned())]);
    let made = p
        .create(&Create { id: "sg", kind: SG, inputs: &inputs, token: "tok-adopt-1", tags: &tags })
        .await
        .unwrap();
    let found = p.find_by_token(SG, "tok-adopt-1").await.unwrap().expect("found by its token tag");
    assert_eq!(found.physical_id, made.physical_id);
    assert!(p.find_by_token(SG, "tok-never-used").await.unwrap().is_none());
    let vpc_found = p.find_by_token(VPC, "tok-never-used").await.unwrap();
    assert!(vpc_found.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reads_each_kind_in_a_few_calls() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let ec2 = moto::ec2(region).await;
    let (vpc, subnet_a, subnet_b) = network(&p, region).await;
    let ami = moto::some_image(region).await;

    // 100 instances (made in one SDK call) and 20 other resources.
    let run = ec2
        .run_instances()
        .image_id(&ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .subnet_id(&subnet_a)
        .min_count(100)
        .max_count(100)
        .send()
        .await
        .unwrap();
    let mut instances: Vec<String> =
        run.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)).collect();
    assert_eq!(instances.len(), 100);
    let mut vpcs = vec![vpc];
    let mut subnets = vec![subnet_a, subnet_b];
    for i in 0..4 {
        vpcs.push(s(&create(&p, &format!("vpc{i}"), VPC, json!({"cidr_block": format!("10.{}.0.0/16", 10 + i), "enable_dns_hostnames": false, "tags": {}})).await, "id"));
    }
    for i in 0..6 {
        let inputs = json!({"vpc_id": vpcs[0], "cidr_block": format!("10.0.{}.0/24", 10 + i), "availability_zone": moto::zones(region).await[0], "map_public_ip_on_launch": false, "tags": {}});
        subnets.push(s(&create(&p, &format!("subnet{i}"), SUBNET, inputs).await, "id"));
    }
    let mut groups = Vec::new();
    for i in 0..5 {
        groups.push(s(&create(&p, &format!("sg{i}"), SG, json!({"vpc_id": vpcs[0], "name": null, "description": "x", "ingress": [], "egress": [], "tags": {}})).await, "id"));
    }
    let mut templates = Vec::new();
    for i in 0..3 {
        templates.push(s(&create(&p, &format!("lt{i}"), LT, json!({"name": null, "image_id": ami, "instance_type": "t3.micro", "security_group_ids": [], "user_data": null, "key_name": null, "tags": {}})).await, "id"));
    }
    assert_eq!(vpcs.len() + subnets.len() + groups.len() + templates.len(), 5 + 8 + 5 + 3);
    // One instance terminated out of band: it reads as gone.
    ec2.terminate_instances().instance_ids(&instances[7]).send().await.unwrap();
    instances.push("i-0000000000000dead".to_owned());

    p.reset_api_calls();
    let read = p.read(INSTANCE, &instances).await.unwrap();
    assert_eq!(read.len(), 101);
    assert_eq!(
        read.iter().filter(|o| o.is_some()).count(),
        99,
        "a terminated instance and an unknown id are None"
    );
    assert!(read[7].is_none() && read[100].is_none());
    assert_eq!(
        read[0].as_ref().unwrap().physical_id,
        instances[0],
        "results follow the ids' order"
    );
    for (kind, ids) in [(VPC, &vpcs), (SUBNET, &subnets), (SG, &groups), (LT, &templates)] {
        let read = p.read(kind, ids).await.unwrap();
        assert!(read.iter().all(Option::is_some), "{kind}");
    }
    let calls = p.api_calls();
    println!(
        "refresh of 100 instances + {} other resources: {calls:?}",
        vpcs.len() + subnets.len() + groups.len() + templates.len()
    );
    assert_eq!(calls.get("DescribeInstances"), Some(&1));
    assert_eq!(calls.get("DescribeVpcs"), Some(&1));
    assert_eq!(calls.get("DescribeSubnets"), Some(&1));
    assert_eq!(calls.get("DescribeSecurityGroups"), Some(&1));
    assert_eq!(calls.get("DescribeLaunchTemplates"), Some(&1));
    assert_eq!(
        calls.get("DescribeLaunchTemplateVersions"),
        Some(&1),
        "more than two templates: one account-wide $Latest query"
    );
    assert_eq!(calls.values().sum::<u64>(), 6, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified_with_call_and_code() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let (vpc, _, _) = network(&p, region).await;

    // A VPC with subnets cannot go: terminal, naming the call and the code.
    let err = p.delete(VPC, &vpc).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Terminal, "{err}");
    assert_eq!(
        (err.call.as_str(), err.code.as_str()),
        ("DeleteVpc", "DependencyViolation"),
        "{err}"
    );

    // Invalid input: terminal.
    let err = try_create(
        &p,
        "bad",
        VPC,
        json!({"cidr_block": "10.0.0.0/8", "enable_dns_hostnames": false, "tags": {}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Terminal, "{err}");
    assert_eq!(err.call, "CreateVpc");

    // A reference to something not (yet) there, inside a create: retry briefly.
    let err = try_create(&p, "orphan", SUBNET, json!({"vpc_id": "vpc-0123456789abcdef0", "cidr_block": "10.0.1.0/24", "availability_zone": moto::zones(region).await[0], "map_public_ip_on_launch": false, "tags": {}}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFoundYet, "{err}");
    assert!(err.code.ends_with(".NotFound"), "{err}");

    // Inputs of the wrong shape, and unknown kinds, are terminal before any call.
    let err = try_create(&p, "x", VPC, json!({"cidr": "10.0.0.0/16"})).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Terminal);
    assert!(err.message.contains("cidr_block"), "{err}");
    let err = p.read("aws:ec2:Nope", &["x".to_owned()]).await.unwrap_err();
    assert_eq!(err.code, "UnknownKind");

    // Fleet calls on a group that does not exist: not found.
    let err = p.fleet_instances("no-such-group").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    let err = p.set_capacity("no-such-group", 1, 1, 1).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_are_transient() {
    // Nothing listens on port 9 of this host.
    let config = moto::config(moto::region()).endpoint_url("http://127.0.0.1:9").max_attempts(1);
    let p = AwsProvider::new(&config).await.unwrap();
    let err = p.read(VPC, &["vpc-1".to_owned()]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert_eq!(err.call, "DescribeVpcs");
    assert!(err.kind.is_retryable());
}
