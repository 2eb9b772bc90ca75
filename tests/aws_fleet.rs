//! The fleet primitives rollouts use, against moto_server: list a group's instances with their
//! version and health, set capacity, terminate with and without decrement.

use graven::provider::{Health, InstanceState, Provider};
use serde_json::json;

use crate::aws_provider::{ASG, create, network, obj, s};
use crate::support::moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_rolls_by_terminating_and_replacing() {
    let region = moto::region();
    let p = moto::provider(region).await;
    let asg = moto::autoscaling(region).await;
    let (_, subnet, _) = network(&p, region).await;
    let ami = moto::some_image(region).await;
    let lt_inputs = |ty: &str| json!({"name": null, "image_id": ami, "instance_type": ty, "security_group_ids": [], "user_data": null, "key_name": null, "tags": {}});
    let lt = create(&p, "template", "aws:ec2:LaunchTemplate", lt_inputs("t3.micro")).await;
    let lt_id = s(&lt, "id");
    let group = create(
        &p,
        "fleet",
        ASG,
        json!({"name": "web-fleet", "launch_template_id": lt_id, "launch_template_version": 1, "min_size": 3, "desired_capacity": 3, "max_size": 6,
               "subnet_ids": [subnet], "health_check_type": "EC2", "health_check_grace_period": 0, "rollout": null, "tags": {}}),
    )
    .await;
    let name = s(&group, "name");
    assert_eq!(name, "web-fleet");

    // Three running, healthy instances of version 1.
    let fleet = p.fleet_instances(&name).await.unwrap();
    assert_eq!(fleet.len(), 3);
    for i in &fleet {
        assert_eq!(
            (i.launch_template_version, i.state, i.health),
            (1, InstanceState::Running, Health::Healthy),
            "{i:?}"
        );
        assert_eq!(i.image_id, ami);
    }

    // Version 2 of the template; the group launches new instances from it.
    let v2 = p
        .update(
            "aws:ec2:LaunchTemplate",
            &lt_id,
            &obj(lt_inputs("t3.small")),
            &["instance_type".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(v2.outputs["latest_version"], json!(2));
    let inputs = obj(
        json!({"name": "web-fleet", "launch_template_id": lt_id, "launch_template_version": 2, "min_size": 3, "desired_capacity": 3, "max_size": 6,
                                "subnet_ids": [subnet], "health_check_type": "EC2", "health_check_grace_period": 0, "rollout": null, "tags": {}}),
    );
    let updated =
        p.update(ASG, &name, &inputs, &["launch_template_version".to_owned()]).await.unwrap();
    assert_eq!(updated.inputs["launch_template_version"], json!(2));

    // Surge: capacity 4, one new instance of version 2.
    p.set_capacity(&name, 3, 4, 6).await.unwrap();
    let fleet = p.fleet_instances(&name).await.unwrap();
    assert_eq!(fleet.len(), 4);
    let mut versions: Vec<u64> = fleet.iter().map(|i| i.launch_template_version).collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 1, 1, 2]);

    // Terminate an old one with decrement: back to 3, no replacement.
    let old: Vec<String> =
        fleet.iter().filter(|i| i.launch_template_version == 1).map(|i| i.id.clone()).collect();
    p.terminate_instances(&name, &old[..1], true).await.unwrap();
    let described =
        asg.describe_auto_scaling_groups().auto_scaling_group_names(&name).send().await.unwrap();
    assert_eq!(described.auto_scaling_groups()[0].desired_capacity(), Some(3));
    let fleet = p.fleet_instances(&name).await.unwrap();
    assert_eq!(fleet.len(), 3);
    assert!(!fleet.iter().any(|i| i.id == old[0]), "the terminated instance left the fleet");

    // Terminate another without decrement: the group replaces it from version 2.
    p.terminate_instances(&name, &old[1..2], false).await.unwrap();
    let fleet = p.fleet_instances(&name).await.unwrap();
    assert_eq!(fleet.len(), 3);
    let mut versions: Vec<u64> = fleet.iter().map(|i| i.launch_template_version).collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 2]);
    let new = fleet.iter().find(|i| i.launch_template_version == 2).unwrap();
    let described =
        moto::ec2(region).await.describe_instances().instance_ids(&new.id).send().await.unwrap();
    let ty =
        described.reservations()[0].instances()[0].instance_type().map(|t| t.as_str().to_owned());
    assert_eq!(ty.as_deref(), Some("t3.small"), "launched from version 2's data");

    // Terminating what already left the group is a no-op.
    p.terminate_instances(&name, &old[..1], true).await.unwrap();

    // An instance Auto Scaling marks unhealthy reads as unhealthy.
    let sick = fleet[0].id.clone();
    asg.set_instance_health().instance_id(&sick).health_status("Unhealthy").send().await.unwrap();
    let fleet = p.fleet_instances(&name).await.unwrap();
    let health = fleet.iter().find(|i| i.id == sick).map(|i| i.health);
    assert_eq!(health, Some(Health::Unhealthy));

    p.delete(ASG, &name).await.unwrap();
    assert!(p.fleet_instances(&name).await.is_err(), "the group is gone");
    let calls = p.api_calls();
    assert!(calls.get("TerminateInstanceInAutoScalingGroup") == Some(&2), "{calls:?}");
}
