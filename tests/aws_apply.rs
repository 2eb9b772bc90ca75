//! End to end on moto_server: a stack planned, applied through the engine with the AWS provider
//! and state in S3, rolled to a new launch template version, and destroyed.

use std::sync::Arc;
use std::time::Duration;

use graven::aws::autoscaling::AutoScalingGroup;
use graven::aws::ec2::{LaunchTemplate, Rule, SecurityGroup, Subnet, Vpc};
use graven::aws::s3_state::S3Store;
use graven::engine::{Engine, Options};
use graven::prelude::*;
use graven::provider::Provider;
use graven::state::{State, Store};

use crate::support::moto;

/// A small web tier.
#[derive(Stack)]
#[allow(dead_code)] // the fields are read through the derive's graph
struct Site {
    vpc: Vpc,
    subnet: Subnet,
    web_sg: SecurityGroup,
    template: LaunchTemplate,
    fleet: AutoScalingGroup,
}

fn site(image: &str, az: &str, instance_type: &str) -> Site {
    let r = Site::refs();
    Site {
        vpc: Vpc::new("10.20.0.0/16".parse().unwrap()),
        subnet: Subnet::new(r.vpc.id(), "10.20.1.0/24".parse().unwrap(), az),
        web_sg: SecurityGroup::new(r.vpc.id(), "web")
            .ingress(Rule::tcp(443, "0.0.0.0/0".parse().unwrap())),
        template: LaunchTemplate::new(ImageId::from(image))
            .instance_type(instance_type)
            .security_groups([r.web_sg.id()]),
        fleet: AutoScalingGroup::new(r.template.latest_version())
            .capacity(2, 2, 4)
            .subnets([r.subnet.id()]),
    }
}

async fn apply(engine: &Engine, store: &S3Store, stack: &Site) -> graven::engine::Report {
    let state = store.load("site").await.unwrap().unwrap_or_else(|| State::new("site"));
    let plan =
        graven::plan::plan_graph(&stack.graph().unwrap(), &state, &graven::plan::Options::new())
            .unwrap();
    engine.apply(&plan, state).await.unwrap_or_else(|e| panic!("apply: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stack_applies_rolls_and_destroys_on_moto() {
    let region = moto::region();
    let s3 = moto::s3(region).await;
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
        .build();
    s3.create_bucket()
        .bucket(moto::bucket_name("graven-e2e"))
        .create_bucket_configuration(location)
        .send()
        .await
        .unwrap();
    let provider = moto::provider(region).await;
    let store = Arc::new(
        S3Store::from_url_with(
            &format!("s3://{}/state", moto::bucket_name("graven-e2e")),
            &moto::config(region),
        )
        .await
        .unwrap(),
    );
    let engine = Engine::with_options(
        Arc::new(provider.clone()) as Arc<dyn Provider>,
        store.clone() as Arc<dyn Store>,
        Options::default().poll_interval(Duration::from_millis(50)),
    );
    let image = moto::some_image(region).await;
    let az = moto::zones(region).await[0].clone();

    let lock = store.lock("site", "apply").await.unwrap();
    let report = apply(&engine, &store, &site(&image, &az, "t3.micro")).await;
    assert_eq!(report.summary.get("create"), Some(&5), "{:?}", report.summary);
    let fleet = &report.state.resources["fleet"];
    let group = fleet.physical_id.clone();
    let instances = provider.fleet_instances(&group).await.unwrap();
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| i.launch_template_version == 1));
    let vpc = provider
        .read("aws:ec2:Vpc", &[report.state.resources["vpc"].physical_id.clone()])
        .await
        .unwrap();
    assert_eq!(vpc[0].as_ref().unwrap().tags["graven:stack"], "site");
    let saved = store.load("site").await.unwrap().unwrap();
    assert_eq!(saved.resources.len(), 5, "the state is in S3");

    // A new instance type: a new template version, and the fleet rolls onto it.
    let report = apply(&engine, &store, &site(&image, &az, "t3.small")).await;
    println!("roll: {:?}", report.summary);
    let instances = provider.fleet_instances(&group).await.unwrap();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.iter().all(|i| i.launch_template_version == 2), "{instances:?}");

    // Destroy: everything goes, in reverse dependency order.
    let state = store.load("site").await.unwrap().unwrap();
    let ids: Vec<(String, String)> =
        state.resources.values().map(|r| (r.kind.clone(), r.physical_id.clone())).collect();
    let plan = graven::plan::destroy(&state).unwrap();
    let report = engine.apply(&plan, state).await.unwrap_or_else(|e| panic!("destroy: {e}"));
    assert!(report.state.resources.is_empty());
    for (kind, id) in ids {
        let read = provider.read(&kind, &[id.clone()]).await.unwrap();
        assert!(read[0].is_none(), "{kind} {id} is gone");
    }
    store.unlock("site", &lock).await.unwrap();
    println!("api calls for apply + roll + destroy: {:?}", provider.api_calls());
}
