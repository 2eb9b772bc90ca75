//! Plans reviewed as insta snapshots: the cases a reviewer meets most.

use graven::aws::ec2::{Instance, Subnet, Vpc};
use graven::plan::{Action, Operation};
use graven::prelude::*;
use graven::state::State;
use graven::testing;
use web::Web;

fn web(vars: &[(&str, &str)]) -> Web {
    let mut release = testing::release();
    for (k, v) in vars {
        release = release.var(*k, *v);
    }
    Web::new(&release).expect("the web stack builds")
}

#[test]
fn first_deploy_creates_everything_in_dependency_order() {
    let plan = graven::plan(&web(&[]), &State::new("web")).unwrap();
    assert_eq!(plan.summary.create, 6);
    insta::assert_snapshot!(plan.render());
}

#[test]
fn applying_the_same_stack_again_changes_nothing() {
    let stack = web(&[]);
    let before = testing::applied(&stack).unwrap();
    let plan = graven::plan(&stack, &before).unwrap();
    assert!(plan.is_empty());
    assert_eq!(plan.summary.unchanged, 6);
    insta::assert_snapshot!(plan.render());
}

#[test]
fn a_new_image_version_rolls_the_fleet_and_replaces_nothing() {
    let before = testing::applied(&web(&[("version", "1.4.0")])).unwrap();
    let plan = graven::plan(&web(&[("version", "1.5.0")]), &before).unwrap();
    assert_eq!(plan.summary.replace, 0);
    assert_eq!(plan.summary.roll, 1);
    assert_eq!(plan.change("template").map(|c| c.action), Some(Action::Update));
    assert_eq!(plan.change("fleet").map(|c| c.action), Some(Action::Roll));
    insta::assert_snapshot!(plan.render());
}

#[test]
fn a_vpc_cidr_change_cascades_to_everything_on_it() {
    let before = testing::applied(&web(&[])).unwrap();
    let plan = graven::plan(&web(&[("cidr", "10.1.0.0/16")]), &before).unwrap();
    for id in ["vpc", "subnet_a", "subnet_b", "web_sg"] {
        assert_eq!(plan.change(id).map(|c| c.action), Some(Action::Replace), "{id}");
    }
    assert_eq!(plan.change("fleet").map(|c| c.action), Some(Action::Roll));
    insta::assert_snapshot!(plan.render());
}

#[test]
fn the_plan_as_json_is_versioned_and_stable() {
    let before = testing::applied(&web(&[("version", "1.4.0")])).unwrap();
    let plan = graven::plan(&web(&[("version", "1.5.0")]), &before).unwrap();
    let json = plan.to_json();
    assert_eq!(json["format_version"], "1.0");
    let back = graven::Plan::from_json(&json.to_string()).unwrap();
    assert_eq!(back, plan);
    testing::settings().bind(|| insta::assert_json_snapshot!(json));
}

/// A small stack with an optional bastion host.
#[derive(Stack)]
#[graven(name = "site")]
struct Site {
    vpc: Vpc,
    subnet: Subnet,
    bastion: Option<Instance>,
    #[graven(protect)]
    database: Option<Instance>,
}

fn site(bastion: bool, database: bool) -> Site {
    let r = Site::refs();
    let release = testing::release();
    let image = release.image("debian", "^12").unwrap();
    Site {
        vpc: Vpc::new("10.0.0.0/16".parse().unwrap()),
        subnet: Subnet::new(r.vpc.id(), "10.0.1.0/24".parse().unwrap(), "eu-west-2a"),
        bastion: bastion.then(|| Instance::new(image.clone(), r.subnet.id())),
        database: database
            .then(|| Instance::new(image.clone(), r.subnet.id()).instance_type("r6g.large")),
    }
}

#[test]
fn a_removed_resource_is_deleted() {
    let before = testing::applied(&site(true, false)).unwrap();
    let plan = graven::plan(&site(false, false), &before).unwrap();
    assert_eq!(plan.summary.delete, 1);
    assert_eq!(plan.change("bastion").map(|c| c.action), Some(Action::Delete));
    insta::assert_snapshot!(plan.render());
}

#[test]
fn removing_a_protected_resource_is_an_error() {
    let before = testing::applied(&site(false, true)).unwrap();
    let err = graven::plan(&site(false, false), &before).unwrap_err();
    assert!(matches!(err, graven::Error::Protected { .. }));
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn destroying_the_stack_deletes_everything_in_reverse_order() {
    let before = testing::applied(&web(&[])).unwrap();
    let plan = graven::plan::destroy(&before).unwrap();
    assert_eq!(plan.operation, Operation::Destroy);
    assert_eq!(plan.summary.delete, 6);
    let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order.first(), Some(&"fleet"));
    assert_eq!(order.last(), Some(&"vpc"));
    insta::assert_snapshot!(plan.render());
}

#[test]
fn secrets_render_as_secret_and_never_as_values() {
    use graven::aws::ec2::LaunchTemplate;
    #[derive(Stack)]
    struct WithSecret {
        template: LaunchTemplate,
    }
    let image = testing::release().image("web", "=1.4.0").unwrap();
    let stack =
        WithSecret { template: LaunchTemplate::new(image).user_data(Secret::named("bootstrap")) };
    let plan = graven::plan(&stack, &State::new("with_secret")).unwrap();
    let text = plan.render();
    assert!(text.contains("user_data") && text.contains("(secret)"), "{text}");
}
