//! Helpers for the local cloud's unit tests.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::provider::{self, Create, Observed, Provider};

use super::LocalCloud;

/// `value` as a JSON object.
pub(crate) fn map(value: Json) -> Map<String, Json> {
    let Json::Object(map) = value else { panic!("an object") };
    map
}

/// Creates resource `id` of `kind` with token `tok-{id}` in stack `test`.
pub(crate) async fn create(
    cloud: &LocalCloud,
    id: &str,
    kind: &str,
    inputs: Json,
) -> provider::Result<Observed> {
    let inputs = map(inputs);
    let tags = BTreeMap::from([
        ("graven:stack".to_owned(), "test".to_owned()),
        ("graven:id".to_owned(), id.to_owned()),
        ("graven:release".to_owned(), "1".to_owned()),
    ]);
    let token = format!("tok-{id}-0123456789");
    cloud.create(&Create { id, kind, inputs: &inputs, token: &token, tags: &tags }).await
}

/// The id of built-in image `web` version `version`.
pub(crate) fn web(version: &str) -> String {
    crate::release::ImageRecord::derived("web", version).unwrap().id
}

/// A VPC `10.0.0.0/16` with subnets `10.0.1.0/24` and `10.0.2.0/24` and a security group.
pub(crate) struct Net {
    pub(crate) vpc: String,
    pub(crate) subnets: Vec<String>,
    pub(crate) sg: String,
}

/// Creates a [`Net`].
pub(crate) async fn network(cloud: &LocalCloud) -> Net {
    let vpc = create(
        cloud,
        "vpc",
        "aws:ec2:Vpc",
        json!({"cidr_block": "10.0.0.0/16", "tags": {"team": "web"}}),
    )
    .await
    .unwrap()
    .physical_id;
    let mut subnets = Vec::new();
    for (n, az) in [(1, "local-1a"), (2, "local-1b")] {
        let subnet = create(
            cloud,
            &format!("subnet{n}"),
            "aws:ec2:Subnet",
            json!({"vpc_id": vpc, "cidr_block": format!("10.0.{n}.0/24"), "availability_zone": az}),
        )
        .await
        .unwrap();
        subnets.push(subnet.physical_id);
    }
    let sg = create(
        cloud,
        "sg",
        "aws:ec2:SecurityGroup",
        json!({"vpc_id": vpc, "name": null, "description": "web", "ingress": [
            {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"],
             "source_security_group_id": null, "description": null}
        ], "egress": []}),
    )
    .await
    .unwrap()
    .physical_id;
    Net { vpc, subnets, sg }
}

/// Creates a launch template of `image` and a group `web` of `desired` instances (min 0, max
/// 10) with grace period `grace` seconds; returns the template's id.
pub(crate) async fn fleet(
    cloud: &LocalCloud,
    net: &Net,
    image: &str,
    desired: u32,
    grace: u64,
) -> String {
    let lt = create(
        cloud,
        "lt",
        "aws:ec2:LaunchTemplate",
        json!({"name": null, "image_id": image, "instance_type": "t3.micro", "security_group_ids": [net.sg],
               "user_data": null, "key_name": null}),
    )
    .await
    .unwrap()
    .physical_id;
    create(
        cloud,
        "asg",
        "aws:autoscaling:AutoScalingGroup",
        json!({"name": "web", "launch_template_id": lt, "launch_template_version": 1, "min_size": 0,
               "desired_capacity": desired, "max_size": 10, "subnet_ids": net.subnets,
               "health_check_type": "EC2", "health_check_grace_period": grace, "rollout": {"any": "thing"}}),
    )
    .await
    .unwrap();
    lt
}
