//! The `web` example end to end on `moto_server`, through its command line: applied, applied
//! again (a no-op), rolled to a new image version, and destroyed.
//!
//! The stack program is the `crash_stack` binary with `GRAVEN_TEST_STACK=web`, which runs the
//! `web` example exactly as `examples/web/src/main.rs` does, as a child process. The command
//! line builds its provider from the environment (`AwsProvider::from_env`), and a child is the
//! only way to give it an environment of its own: `std::env::set_var` is `unsafe` in edition
//! 2024 and the workspace forbids `unsafe_code` (and would race with the tests that run in
//! parallel besides).
//!
//! Isolation: the example places its subnets in `eu-west-2a` and `eu-west-2b`, so it needs
//! region `eu-west-2`, which other tests may be using in moto's default account. Each test here
//! takes a moto *account* of its own instead ([`Account`]): moto keeps accounts apart, and
//! credentials from `AssumeRole` into `arn:aws:iam::<account>:role/...` act in that account.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use aws_sdk_ec2::types::InstanceStateName;
use graven::provider::tags;
use serde_json::Value as Json;

use crate::apply_support::{Program, Project, Run, web_graph};
use crate::support::moto;

/// The region of the `web` example: its subnets are in `eu-west-2a` and `eu-west-2b`.
pub const WEB_REGION: &str = "eu-west-2";

/// The kinds of the catalog, checked for objects tagged with a stack.
pub const KINDS: [&str; 9] = [
    "aws:ec2:Vpc",
    "aws:ec2:Subnet",
    "aws:ec2:InternetGateway",
    "aws:ec2:RouteTable",
    "aws:ec2:SecurityGroup",
    "aws:ec2:LaunchTemplate",
    "aws:ec2:Instance",
    "aws:ec2:Image",
    "aws:autoscaling:AutoScalingGroup",
];

/// An object of the cloud tagged with a stack.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// Its `graven:id` tag.
    pub id: String,
    /// Its physical id (a group's name).
    pub physical: String,
    /// All its tags.
    pub tags: BTreeMap<String, String>,
}

/// What the cloud holds of a stack.
#[derive(Debug, Default)]
pub struct Seen {
    /// Objects tagged `graven:stack` = the stack, by kind; a group's instances are not here.
    pub objects: BTreeMap<&'static str, Vec<Tagged>>,
    /// Live (not terminated) instances tagged with the stack that a group launched (they carry
    /// the group's tags, `graven:id` included, and `aws:autoscaling:groupName`).
    pub fleet_instances: Vec<Tagged>,
}

impl Seen {
    /// The objects of `kind`.
    pub fn of(&self, kind: &str) -> &[Tagged] {
        self.objects.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Everything tagged with the stack, as `kind id physical` lines, for messages.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .objects
            .iter()
            .flat_map(|(kind, objects)| {
                objects.iter().map(move |o| format!("{kind} {} {}", o.id, o.physical))
            })
            .collect();
        out.extend(self.fleet_instances.iter().map(|o| format!("fleet instance {}", o.physical)));
        out
    }
}

/// A moto account of its own in one region: SDK clients for checks, and the environment a
/// child stack program needs to act there.
pub struct Account {
    /// The runtime the SDK calls of the checks run on (the tests themselves are synchronous,
    /// they drive child processes).
    pub rt: tokio::runtime::Runtime,
    /// The region.
    pub region: &'static str,
    /// EC2 in the account.
    pub ec2: aws_sdk_ec2::Client,
    /// Auto Scaling in the account.
    pub asg: aws_sdk_autoscaling::Client,
    credentials: aws_sdk_ec2::config::Credentials,
}

impl Account {
    /// This run's moto account number `n` ([`moto::account`]) in `region`, reached with
    /// credentials from moto's STS.
    pub fn new(n: u32, region: &'static str) -> Account {
        let id = moto::account(n);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (ec2, asg, credentials) = rt.block_on(async {
            let credentials = moto::credentials_for(&id, region).await;
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region))
                .endpoint_url(moto::endpoint())
                .credentials_provider(credentials.clone())
                .load()
                .await;
            (aws_sdk_ec2::Client::new(&sdk), aws_sdk_autoscaling::Client::new(&sdk), credentials)
        });
        Account { rt, region, ec2, asg, credentials }
    }

    /// Sets the environment of a stack program acting in this account: the AWS variables of
    /// the parent are removed, so that only these reach the standard chain.
    pub fn env(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        let none = "/dev/null"; // no profile, no shared credentials
        cmd.env("AWS_ENDPOINT_URL", moto::endpoint())
            .env("AWS_REGION", self.region)
            .env("AWS_ACCESS_KEY_ID", self.credentials.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", self.credentials.secret_access_key())
            .env("AWS_SESSION_TOKEN", self.credentials.session_token().unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", none)
            .env("AWS_SHARED_CREDENTIALS_FILE", none);
    }

    /// Runs the stack program of `project` with `args` in this account, to its end.
    pub fn run(&self, project: &Project, args: &[&str]) -> Run {
        let mut cmd = project.command(args);
        self.env(&mut cmd);
        let start = Instant::now();
        let run: Run = cmd.output().expect("the stack program runs").into();
        eprintln!("[{:>6.1}s] {} -> {:?}", start.elapsed().as_secs_f64(), args.join(" "), run.code);
        run
    }

    /// Registers images `name-version` owned by the account (copies of one of moto's Amazon
    /// images), as the image catalog of the aws target lists them; their ids by version.
    pub fn register_images(&self, name: &str, versions: &[&str]) -> BTreeMap<String, String> {
        self.rt.block_on(async {
            let out =
                self.ec2.describe_images().owners("amazon").send().await.expect("DescribeImages");
            let mut sources: Vec<&str> = out.images().iter().filter_map(|i| i.image_id()).collect();
            sources.sort_unstable();
            let source = sources.first().expect("moto ships images").to_string();
            let mut ids = BTreeMap::new();
            for v in versions {
                let copy = self
                    .ec2
                    .copy_image()
                    .source_image_id(&source)
                    .source_region(self.region)
                    .name(format!("{name}-{v}"))
                    .send()
                    .await
                    .expect("CopyImage");
                ids.insert((*v).to_owned(), copy.image_id().expect("an image id").to_owned());
            }
            ids
        })
    }

    /// Everything in the account tagged `graven:stack` = `stack`, every kind of the catalog,
    /// each listed whole (the account is the test's own) and filtered here.
    #[allow(clippy::too_many_lines)]
    pub fn seen(&self, stack: &str) -> Seen {
        fn map<'a>(
            list: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
        ) -> BTreeMap<String, String> {
            list.into_iter()
                .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
                .collect()
        }
        macro_rules! ec2_tags {
            ($t:expr) => {
                map($t.iter().map(|t| (t.key(), t.value())))
            };
        }
        let ec2 = &self.ec2;
        let all: Vec<(&'static str, String, BTreeMap<String, String>)> = self.rt.block_on(async {
            let mut all = Vec::new();
            for v in
                ec2.describe_vpcs().into_paginator().items().send().try_collect().await.unwrap()
            {
                all.push((KINDS[0], v.vpc_id().unwrap().to_owned(), ec2_tags!(v.tags())));
            }
            for s in
                ec2.describe_subnets().into_paginator().items().send().try_collect().await.unwrap()
            {
                all.push((KINDS[1], s.subnet_id().unwrap().to_owned(), ec2_tags!(s.tags())));
            }
            for g in ec2
                .describe_internet_gateways()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                all.push((
                    KINDS[2],
                    g.internet_gateway_id().unwrap().to_owned(),
                    ec2_tags!(g.tags()),
                ));
            }
            for r in ec2
                .describe_route_tables()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                all.push((KINDS[3], r.route_table_id().unwrap().to_owned(), ec2_tags!(r.tags())));
            }
            for g in ec2
                .describe_security_groups()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                all.push((KINDS[4], g.group_id().unwrap().to_owned(), ec2_tags!(g.tags())));
            }
            // moto returns at most 15 templates and no `NextToken` unless `MaxResults` is given.
            for t in ec2
                .describe_launch_templates()
                .into_paginator()
                .page_size(100)
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                all.push((
                    KINDS[5],
                    t.launch_template_id().unwrap().to_owned(),
                    ec2_tags!(t.tags()),
                ));
            }
            for r in ec2
                .describe_instances()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                for i in r.instances() {
                    let gone = matches!(
                        i.state().and_then(|s| s.name()),
                        Some(InstanceStateName::Terminated)
                    );
                    if !gone {
                        all.push((
                            KINDS[6],
                            i.instance_id().unwrap().to_owned(),
                            ec2_tags!(i.tags()),
                        ));
                    }
                }
            }
            for i in ec2
                .describe_images()
                .owners("self")
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                all.push((KINDS[7], i.image_id().unwrap().to_owned(), ec2_tags!(i.tags())));
            }
            for g in self
                .asg
                .describe_auto_scaling_groups()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .unwrap()
            {
                let tags = map(g.tags().iter().map(|t| (t.key(), t.value())));
                all.push((KINDS[8], g.auto_scaling_group_name().unwrap().to_owned(), tags));
            }
            all
        });
        let mut seen = Seen::default();
        for (kind, physical, tags) in all {
            if tags.get(tags::STACK).map(String::as_str) != Some(stack) {
                continue;
            }
            let o = Tagged {
                id: tags.get(tags::ID).cloned().unwrap_or_default(),
                physical,
                tags: tags.clone(),
            };
            if kind == KINDS[6] && tags.contains_key("aws:autoscaling:groupName") {
                seen.fleet_instances.push(o);
            } else {
                seen.objects.entry(kind).or_default().push(o);
            }
        }
        seen
    }

    /// A group's live members as Auto Scaling reports them: (instance id, lifecycle state,
    /// launch template version); and the group's own launch template version.
    pub fn group(&self, name: &str) -> (Vec<(String, String, String)>, String) {
        self.rt.block_on(async {
            let out = self
                .asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
                .await
                .expect("DescribeAutoScalingGroups");
            let g = out.auto_scaling_groups().first().expect("the group exists");
            let version =
                g.launch_template().and_then(|t| t.version()).unwrap_or_default().to_owned();
            let members = g
                .instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or_default().to_owned(),
                        i.lifecycle_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                        i.launch_template()
                            .and_then(|t| t.version())
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
            (members, version)
        })
    }

    /// Instances by id: (state, image id, tags).
    pub fn instances(
        &self,
        ids: &[String],
    ) -> BTreeMap<String, (String, String, BTreeMap<String, String>)> {
        self.rt.block_on(async {
            let out = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .send()
                .await
                .expect("DescribeInstances");
            out.reservations()
                .iter()
                .flat_map(aws_sdk_ec2::types::Reservation::instances)
                .map(|i| {
                    let tags = i
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))
                        })
                        .collect();
                    (
                        i.instance_id().unwrap_or_default().to_owned(),
                        (
                            i.state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_owned())
                                .unwrap_or_default(),
                            i.image_id().unwrap_or_default().to_owned(),
                            tags,
                        ),
                    )
                })
                .collect()
        })
    }

    /// The image id of a launch template's version.
    pub fn template_image(&self, template: &str, version: &str) -> String {
        self.rt.block_on(async {
            let out = self
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(template)
                .versions(version)
                .send()
                .await
                .expect("DescribeLaunchTemplateVersions");
            out.launch_template_versions()
                .first()
                .and_then(|v| v.launch_template_data())
                .and_then(|d| d.image_id())
                .expect("the version has an image")
                .to_owned()
        })
    }
}

/// Checks that the account holds exactly the `web` stack with inputs `vars`, as the state of
/// `project` records it: per kind, as many objects tagged with the stack as the stack declares,
/// no two with one `graven:id`, each the object the state records; no pending create, no old
/// object left to delete; the group runs its desired capacity, all in service on the recorded
/// launch template version and `image`; no live instance of another group tagged with the stack.
/// Returns what it saw.
#[track_caller]
pub fn check_web(account: &Account, project: &Project, vars: &[(&str, &str)], image: &str) -> Seen {
    let graph = web_graph(vars);
    let stack = graph.stack();
    let state = project.state().expect("a state");
    assert!(
        state.pending.is_empty(),
        "creates left pending: {:?}",
        state.pending.keys().collect::<Vec<_>>()
    );
    let seen = account.seen(stack);
    // Old objects of replacements still recorded, and whether the cloud still has them (when
    // it does not, the state lost track of a delete that happened).
    let deposed: Vec<String> = state
        .resources
        .values()
        .flat_map(|r| {
            let seen = &seen;
            r.deposed.iter().map(move |d| {
                let exists = seen.of(&r.kind).iter().any(|o| o.physical == d.physical_id);
                let cloud = if exists { "still in the cloud" } else { "gone from the cloud" };
                format!("{} {} ({cloud})", r.id, d.physical_id)
            })
        })
        .collect();
    assert!(deposed.is_empty(), "old objects left to delete: {deposed:?}");
    let wanted: BTreeSet<&str> = graph.nodes().iter().map(|n| n.id.as_str()).collect();
    let recorded: BTreeSet<&str> = state.resources.keys().map(String::as_str).collect();
    assert_eq!(recorded, wanted, "the state records exactly the stack's resources");

    for kind in KINDS {
        let found = seen.of(kind);
        let desired = graph.nodes().iter().filter(|n| n.kind() == kind).count();
        let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
        let detail: Vec<String> = found
            .iter()
            .map(|o| {
                let tag = |k: &str| o.tags.get(k).cloned().unwrap_or_default();
                format!(
                    "{} {} (release {}, token {})",
                    o.id,
                    o.physical,
                    tag(tags::RELEASE),
                    tag(tags::TOKEN)
                )
            })
            .collect();
        assert_eq!(
            found.len(),
            desired,
            "{kind}: {} objects of the stack, {desired} declared: {detail:?}",
            found.len()
        );
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{kind}: two objects share a `graven:id`: {ids:?}");
        for o in found {
            let r = state.resources.get(&o.id).unwrap_or_else(|| {
                panic!(
                    "{kind} `{}` is tagged `{}`, which the state does not know",
                    o.physical, o.id
                )
            });
            assert_eq!(r.kind, kind, "`{}`", o.id);
            assert_eq!(r.physical_id, o.physical, "`{}`: the state records another object", o.id);
            assert!(
                o.tags.contains_key(tags::RELEASE),
                "`{}` has no release tag: {:?}",
                o.id,
                o.tags
            );
        }
    }

    let fleet = &state.resources["fleet"];
    let version = fleet.inputs["launch_template_version"].as_u64().expect("a version").to_string();
    let desired = fleet.inputs["desired_capacity"].as_u64().expect("a capacity") as usize;
    let (members, group_version) = account.group(&fleet.physical_id);
    assert_eq!(group_version, version, "the group's launch template version");
    let template = state.resources["template"].physical_id.clone();
    assert_eq!(account.template_image(&template, &version), image, "the template's image");
    assert_eq!(members.len(), desired, "the group runs {desired} instances: {members:?}");
    let ids: Vec<String> = members.iter().map(|(id, _, _)| id.clone()).collect();
    let described = account.instances(&ids);
    for (id, lifecycle, v) in &members {
        assert_eq!((lifecycle.as_str(), v.as_str()), ("InService", version.as_str()), "{id}");
        let (st, img, tags) = &described[id];
        assert_eq!((st.as_str(), img.as_str()), ("running", image), "{id}");
        assert_eq!(tags.get(tags::STACK).map(String::as_str), Some(stack), "{id}: {tags:?}");
        assert_eq!(tags.get(tags::ID).map(String::as_str), Some("fleet"), "{id}: {tags:?}");
        assert!(tags.contains_key(tags::RELEASE), "{id}: {tags:?}");
        assert_eq!(tags.get("aws:autoscaling:groupName"), Some(&fleet.physical_id), "{id}");
    }
    let mut live: Vec<&str> = seen.fleet_instances.iter().map(|o| o.physical.as_str()).collect();
    live.sort_unstable();
    let mut members: Vec<&str> = ids.iter().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(live, members, "live instances tagged with the stack are the group's members");
    seen
}

/// The physical ids the state of `project` records, by logical id.
pub fn recorded(project: &Project) -> BTreeMap<String, String> {
    let state = project.state().expect("a state");
    state.resources.values().map(|r| (r.id.clone(), r.physical_id.clone())).collect()
}

#[test]
fn the_web_example_applies_rolls_and_destroys_on_moto_through_its_command_line() {
    let started = Instant::now();
    let account = Account::new(1, WEB_REGION);
    let images = account.register_images("web", &["1.4.0", "1.5.0"]);
    let project = Project::new(Program::Web);
    let aws = ["--target", "aws"];
    let args = |more: &[&'static str]| -> Vec<&'static str> {
        aws.iter().copied().chain(more.iter().copied()).collect()
    };

    // Apply: the network, the security group, the template, and a group of 3 instances.
    account.run(&project, &args(&["apply", "--auto-approve"])).expect_code(0);
    let seen = check_web(&account, &project, &[], &images["1.4.0"]);
    assert_eq!(seen.fleet_instances.len(), 3, "{:?}", seen.describe());
    for (kind, n) in [
        ("aws:ec2:Vpc", 1),
        ("aws:ec2:Subnet", 2),
        ("aws:ec2:SecurityGroup", 1),
        ("aws:ec2:LaunchTemplate", 1),
        ("aws:autoscaling:AutoScalingGroup", 1),
    ] {
        assert_eq!(seen.of(kind).len(), n, "{kind}");
    }
    let vpc = &seen.of("aws:ec2:Vpc")[0];
    assert_eq!(vpc.tags.get("tier").map(String::as_str), Some("web"), "{:?}", vpc.tags);
    let first = recorded(&project);
    let v1: BTreeSet<String> = seen.fleet_instances.iter().map(|o| o.physical.clone()).collect();

    // Again: nothing to do, nothing touched.
    let again = account.run(&project, &args(&["apply", "--auto-approve"]));
    again.expect_code(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    account.run(&project, &args(&["plan", "--detailed-exitcode"])).expect_code(0);
    assert_eq!(recorded(&project), first);
    let seen = check_web(&account, &project, &[], &images["1.4.0"]);
    let still: BTreeSet<String> = seen.fleet_instances.iter().map(|o| o.physical.clone()).collect();
    assert_eq!(still, v1, "the second apply replaced no instance");

    // A new image version: a new template version, and the fleet rolls onto it.
    let v15 = ["--var", "version=1.5.0"];
    account.run(&project, &args(&["plan", "--detailed-exitcode", v15[0], v15[1]])).expect_code(2);
    account.run(&project, &args(&["apply", "--auto-approve", v15[0], v15[1]])).expect_code(0);
    let seen = check_web(&account, &project, &[("version", "1.5.0")], &images["1.5.0"]);
    let rolled: BTreeSet<String> =
        seen.fleet_instances.iter().map(|o| o.physical.clone()).collect();
    assert!(rolled.is_disjoint(&v1), "every instance was replaced: {v1:?} -> {rolled:?}");
    let old: Vec<String> = v1.into_iter().collect();
    for (id, (st, _, _)) in account.instances(&old) {
        assert_eq!(st, "terminated", "old instance {id}");
    }
    let state = project.state().expect("a state");
    assert_eq!(state.resources["fleet"].inputs["launch_template_version"], Json::from(2));
    assert_eq!(recorded(&project), first, "the roll replaced no resource");
    account.run(&project, &args(&["plan", "--detailed-exitcode", v15[0], v15[1]])).expect_code(0);

    // Destroy: nothing tagged with the stack is left, of any kind.
    account.run(&project, &args(&["destroy", "--auto-approve", v15[0], v15[1]])).expect_code(0);
    let seen = account.seen("web");
    assert!(seen.describe().is_empty(), "left after destroy: {:?}", seen.describe());
    let state = project.state().expect("a state");
    assert!(state.resources.is_empty(), "{:?}", state.resources.keys().collect::<Vec<_>>());
    eprintln!("web on moto: {:.1}s in all", started.elapsed().as_secs_f64());
}
