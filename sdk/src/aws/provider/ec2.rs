//! VPCs, subnets, internet gateways, route tables and instances; the EC2 helpers the other
//! EC2 kinds share (tags, filters).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceStateName, ResourceType, Tag, TagSpecification,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::kinds::{INSTANCE, INTERNET_GATEWAY, ROUTE_TABLE, SUBNET, VPC};
use super::{AwsProvider, base64, chunks, create_tags, decode, object, observed, tag_diff};
use crate::provider::{self, Create, ErrorKind, Observed, tags};

/// The most values EC2 takes in one filter.
pub(super) const FILTER_VALUES: usize = 200;

/// Resources found by a read, by physical id.
pub(super) type Found = BTreeMap<String, Observed>;

// ---------------------------------------------------------------- shared helpers

/// A filter.
pub(super) fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.to_vec())).build()
}

/// The filter sets a read runs: the token's tag when finding by token, else `id_filter` over
/// the ids in chunks.
pub(super) fn id_filters(id_filter: &str, ids: &[String], token: Option<&str>) -> Vec<Vec<Filter>> {
    match token {
        Some(t) => vec![vec![filter(&format!("tag:{}", tags::TOKEN), &[t.to_owned()])]],
        None => chunks(ids, FILTER_VALUES).map(|c| vec![filter(id_filter, c)]).collect(),
    }
}

/// EC2 tags as a map.
pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

/// EC2 tags from a map.
pub(super) fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Tags for a resource of type `resource` at its creation.
pub(super) fn tag_spec(
    resource: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder().resource_type(resource).set_tags(Some(tag_list(tags))).build()
}

/// Brings the user tags of EC2 resource `id` from `current` (all its tags) to `desired`.
pub(super) async fn retag(
    p: &AwsProvider,
    id: &str,
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> provider::Result<()> {
    let (set, remove) = tag_diff(current, desired);
    if !set.is_empty() {
        p.call(
            "CreateTags",
            p.ec2.create_tags().resources(id).set_tags(Some(tag_list(&set))).send(),
        )
        .await?;
    }
    if !remove.is_empty() {
        let keys = remove.iter().map(|k| Tag::builder().key(k).build()).collect();
        p.call("DeleteTags", p.ec2.delete_tags().resources(id).set_tags(Some(keys)).send()).await?;
    }
    Ok(())
}

/// Reads one resource (for updates, which need its current state).
pub(super) async fn current(p: &AwsProvider, kind: &str, id: &str) -> provider::Result<Observed> {
    use crate::provider::Provider as _;
    let read = p.read(kind, &[id.to_owned()]).await?;
    read.into_iter().next().flatten().ok_or_else(|| {
        provider::Error::new(
            ErrorKind::NotFound,
            format!("update {kind}"),
            "NotFound",
            format!("`{id}` does not exist"),
        )
    })
}

/// The `tags` input of an update.
#[derive(Deserialize)]
struct TagsIn {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Updates the user tags of an EC2 resource to the inputs' `tags`.
pub(super) async fn update_tags(
    p: &AwsProvider,
    kind: &str,
    id: &str,
    inputs: &Map<String, Json>,
) -> provider::Result<()> {
    let desired: TagsIn = decode(kind, inputs)?;
    let now = current(p, kind, id).await?;
    retag(p, id, &now.tags, &desired.tags).await
}

/// The update of kinds whose only in-place change is their tags.
pub(super) async fn update_tags_only(
    p: &AwsProvider,
    kind: &str,
    id: &str,
    inputs: &Map<String, Json>,
) -> provider::Result<()> {
    update_tags(p, kind, id, inputs).await
}

/// A required field of a response.
pub(super) fn required<'a>(
    call: &str,
    what: &str,
    value: Option<&'a str>,
) -> provider::Result<&'a str> {
    value.ok_or_else(|| super::errors::invalid(call, format!("the response has no {what}")))
}

/// Retries a delete step while AWS reports a dependency that is going away (an instance's
/// network interface after it terminated, a gateway's public addresses): AWS releases them a
/// little after the dependant is gone. Other errors return at once.
pub(super) async fn while_dependencies_go<T, F, Fut>(
    p: &AwsProvider,
    mut step: F,
) -> provider::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = provider::Result<T>>,
{
    let start = std::time::Instant::now();
    loop {
        match step().await {
            Err(e) if e.code == "DependencyViolation" && start.elapsed() < p.settle_timeout() => {
                tracing::debug!(call = %e.call, "waiting for dependencies to go");
                tokio::time::sleep(p.poll_interval).await;
            }
            other => return other,
        }
    }
}

// ---------------------------------------------------------------- VPC

#[derive(Deserialize)]
struct VpcIn {
    cidr_block: String,
    #[serde(default)]
    enable_dns_hostnames: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(super) async fn create_vpc(
    p: &AwsProvider,
    request: &Create<'_>,
) -> provider::Result<Observed> {
    let input: VpcIn = decode(VPC, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let out = p
        .call(
            "CreateVpc",
            p.ec2
                .create_vpc()
                .cidr_block(&input.cidr_block)
                .tag_specifications(tag_spec(ResourceType::Vpc, &all))
                .send(),
        )
        .await?;
    let id = required("CreateVpc", "VPC id", out.vpc().and_then(|v| v.vpc_id()))?.to_owned();
    if input.enable_dns_hostnames {
        let step = || set_dns_hostnames(p, &id, true);
        if let Err(e) = p.persist(step).await {
            return Err(p.undo_create(VPC, &id, e).await);
        }
    }
    let inputs = object([
        ("cidr_block", json!(input.cidr_block)),
        ("enable_dns_hostnames", json!(input.enable_dns_hostnames)),
    ]);
    Ok(observed(&id, object([("id", json!(id))]), inputs, all))
}

async fn set_dns_hostnames(p: &AwsProvider, id: &str, on: bool) -> provider::Result<()> {
    let value = AttributeBooleanValue::builder().value(on).build();
    p.call(
        "ModifyVpcAttribute",
        p.ec2.modify_vpc_attribute().vpc_id(id).enable_dns_hostnames(value).send(),
    )
    .await?;
    Ok(())
}

/// VPCs by id, or the one carrying `token`. `enable_dns_hostnames` is not reported: reading it
/// takes one `DescribeVpcAttribute` call per VPC.
pub(super) async fn read_vpcs(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for filters in id_filters("vpc-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeVpcs",
                    p.ec2
                        .describe_vpcs()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            for vpc in out.vpcs() {
                let Some(id) = vpc.vpc_id() else { continue };
                let inputs = object([("cidr_block", json!(vpc.cidr_block()))]);
                found.insert(
                    id.to_owned(),
                    observed(id, object([("id", json!(id))]), inputs, tag_map(vpc.tags())),
                );
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(found)
}

pub(super) async fn update_vpc(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: VpcIn = decode(VPC, inputs)?;
    if changed.iter().any(|c| c == "enable_dns_hostnames") {
        set_dns_hostnames(p, id, input.enable_dns_hostnames).await?;
    }
    if changed.iter().any(|c| c == "tags") {
        update_tags(p, VPC, id, inputs).await?;
    }
    Ok(())
}

pub(super) async fn delete_vpc(p: &AwsProvider, id: &str) -> provider::Result<()> {
    while_dependencies_go(p, || async {
        p.call("DeleteVpc", p.ec2.delete_vpc().vpc_id(id).send()).await.map(drop)
    })
    .await
}

// ---------------------------------------------------------------- subnets

#[derive(Deserialize)]
struct SubnetIn {
    vpc_id: String,
    cidr_block: String,
    availability_zone: String,
    #[serde(default)]
    map_public_ip_on_launch: bool,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(super) async fn create_subnet(
    p: &AwsProvider,
    request: &Create<'_>,
) -> provider::Result<Observed> {
    let input: SubnetIn = decode(SUBNET, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let out = p
        .call(
            "CreateSubnet",
            p.ec2
                .create_subnet()
                .vpc_id(&input.vpc_id)
                .cidr_block(&input.cidr_block)
                .availability_zone(&input.availability_zone)
                .tag_specifications(tag_spec(ResourceType::Subnet, &all))
                .send(),
        )
        .await?;
    let id =
        required("CreateSubnet", "subnet id", out.subnet().and_then(|s| s.subnet_id()))?.to_owned();
    if input.map_public_ip_on_launch {
        if let Err(e) = p.persist(|| set_map_public_ip(p, &id, true)).await {
            return Err(p.undo_create(SUBNET, &id, e).await);
        }
    }
    let inputs = object([
        ("vpc_id", json!(input.vpc_id)),
        ("cidr_block", json!(input.cidr_block)),
        ("availability_zone", json!(input.availability_zone)),
        ("map_public_ip_on_launch", json!(input.map_public_ip_on_launch)),
    ]);
    Ok(observed(&id, object([("id", json!(id))]), inputs, all))
}

async fn set_map_public_ip(p: &AwsProvider, id: &str, on: bool) -> provider::Result<()> {
    let value = AttributeBooleanValue::builder().value(on).build();
    p.call(
        "ModifySubnetAttribute",
        p.ec2.modify_subnet_attribute().subnet_id(id).map_public_ip_on_launch(value).send(),
    )
    .await?;
    Ok(())
}

pub(super) async fn read_subnets(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for filters in id_filters("subnet-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeSubnets",
                    p.ec2
                        .describe_subnets()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            for s in out.subnets() {
                let Some(id) = s.subnet_id() else { continue };
                let inputs = object([
                    ("vpc_id", json!(s.vpc_id())),
                    ("cidr_block", json!(s.cidr_block())),
                    ("availability_zone", json!(s.availability_zone())),
                    (
                        "map_public_ip_on_launch",
                        json!(s.map_public_ip_on_launch().unwrap_or(false)),
                    ),
                ]);
                found.insert(
                    id.to_owned(),
                    observed(id, object([("id", json!(id))]), inputs, tag_map(s.tags())),
                );
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(found)
}

pub(super) async fn update_subnet(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: SubnetIn = decode(SUBNET, inputs)?;
    if changed.iter().any(|c| c == "map_public_ip_on_launch") {
        set_map_public_ip(p, id, input.map_public_ip_on_launch).await?;
    }
    if changed.iter().any(|c| c == "tags") {
        update_tags(p, SUBNET, id, inputs).await?;
    }
    Ok(())
}

pub(super) async fn delete_subnet(p: &AwsProvider, id: &str) -> provider::Result<()> {
    while_dependencies_go(p, || async {
        p.call("DeleteSubnet", p.ec2.delete_subnet().subnet_id(id).send()).await.map(drop)
    })
    .await
}

// ---------------------------------------------------------------- internet gateways

#[derive(Deserialize)]
struct GatewayIn {
    vpc_id: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(super) async fn create_internet_gateway(
    p: &AwsProvider,
    request: &Create<'_>,
) -> provider::Result<Observed> {
    let input: GatewayIn = decode(INTERNET_GATEWAY, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let out = p
        .call(
            "CreateInternetGateway",
            p.ec2
                .create_internet_gateway()
                .tag_specifications(tag_spec(ResourceType::InternetGateway, &all))
                .send(),
        )
        .await?;
    let id = required(
        "CreateInternetGateway",
        "gateway id",
        out.internet_gateway().and_then(|g| g.internet_gateway_id()),
    )?
    .to_owned();
    let attach = || async {
        p.call(
            "AttachInternetGateway",
            p.ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(&input.vpc_id).send(),
        )
        .await
    };
    if let Err(e) = p.persist(attach).await {
        return Err(p.undo_create(INTERNET_GATEWAY, &id, e).await);
    }
    let inputs = object([("vpc_id", json!(input.vpc_id))]);
    Ok(observed(&id, object([("id", json!(id))]), inputs, all))
}

async fn describe_gateways(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::InternetGateway>> {
    let mut all = Vec::new();
    for filters in id_filters("internet-gateway-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeInternetGateways",
                    p.ec2
                        .describe_internet_gateways()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            all.extend(out.internet_gateways().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

pub(super) async fn read_internet_gateways(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for g in describe_gateways(p, ids, token).await? {
        let Some(id) = g.internet_gateway_id() else {
            continue;
        };
        let vpc = g.attachments().iter().find_map(|a| a.vpc_id());
        let inputs = object([("vpc_id", json!(vpc))]);
        found.insert(
            id.to_owned(),
            observed(id, object([("id", json!(id))]), inputs, tag_map(g.tags())),
        );
    }
    Ok(found)
}

pub(super) async fn delete_internet_gateway(p: &AwsProvider, id: &str) -> provider::Result<()> {
    let gateways = describe_gateways(p, &[id.to_owned()], None).await?;
    for vpc in gateways
        .iter()
        .flat_map(aws_sdk_ec2::types::InternetGateway::attachments)
        .filter_map(|a| a.vpc_id())
    {
        let detach = || async {
            p.call(
                "DetachInternetGateway",
                p.ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send(),
            )
            .await
            .map(drop)
        };
        match while_dependencies_go(p, detach).await {
            Err(e) if e.kind == ErrorKind::NotFound || e.code == "Gateway.NotAttached" => {}
            other => other?,
        }
    }
    if gateways.is_empty() {
        return Ok(());
    }
    p.call("DeleteInternetGateway", p.ec2.delete_internet_gateway().internet_gateway_id(id).send())
        .await
        .map(drop)
}

// ---------------------------------------------------------------- route tables

#[derive(Deserialize)]
struct RouteIn {
    destination: String,
    gateway_id: String,
}

#[derive(Deserialize)]
struct RouteTableIn {
    vpc_id: String,
    #[serde(default)]
    routes: Vec<RouteIn>,
    #[serde(default)]
    subnet_ids: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(super) async fn create_route_table(
    p: &AwsProvider,
    request: &Create<'_>,
) -> provider::Result<Observed> {
    let input: RouteTableIn = decode(ROUTE_TABLE, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let out = p
        .call(
            "CreateRouteTable",
            p.ec2
                .create_route_table()
                .vpc_id(&input.vpc_id)
                .client_token(request.token)
                .tag_specifications(tag_spec(ResourceType::RouteTable, &all))
                .send(),
        )
        .await?;
    let id = required(
        "CreateRouteTable",
        "route table id",
        out.route_table().and_then(|r| r.route_table_id()),
    )?
    .to_owned();
    let steps = async {
        for r in &input.routes {
            p.persist(|| create_route(p, &id, r)).await?;
        }
        let subnets: Vec<String> = input.subnet_ids.clone();
        p.persist(|| associate(p, &id, &subnets)).await
    };
    if let Err(e) = steps.await {
        return Err(p.undo_create(ROUTE_TABLE, &id, e).await);
    }
    Ok(observed(&id, object([("id", json!(id))]), route_table_inputs(&input), all))
}

fn route_table_inputs(input: &RouteTableIn) -> Map<String, Json> {
    let routes: Vec<Json> = input
        .routes
        .iter()
        .map(|r| json!({"destination": r.destination, "gateway_id": r.gateway_id}))
        .collect();
    object([
        ("vpc_id", json!(input.vpc_id)),
        ("routes", Json::Array(routes)),
        ("subnet_ids", json!(input.subnet_ids)),
    ])
}

async fn create_route(p: &AwsProvider, table: &str, r: &RouteIn) -> provider::Result<()> {
    let call = p
        .ec2
        .create_route()
        .route_table_id(table)
        .destination_cidr_block(&r.destination)
        .gateway_id(&r.gateway_id)
        .send();
    match p.call("CreateRoute", call).await {
        // A retry of a create that went through: the route is there.
        Err(e) if e.code == "RouteAlreadyExists" => Ok(()),
        other => other.map(drop),
    }
}

/// Associates `subnets` with `table`. A subnet associated with another table is moved
/// (`ReplaceRouteTableAssociation`), so a replacement table takes over from the old one.
async fn associate(p: &AwsProvider, table: &str, subnets: &[String]) -> provider::Result<()> {
    if subnets.is_empty() {
        return Ok(());
    }
    let mut existing = BTreeMap::new();
    for chunk in chunks(subnets, FILTER_VALUES) {
        let out = p
            .call(
                "DescribeRouteTables",
                p.ec2
                    .describe_route_tables()
                    .filters(filter("association.subnet-id", chunk))
                    .send(),
            )
            .await?;
        for t in out.route_tables() {
            for a in t.associations() {
                if let (Some(s), Some(aid)) = (a.subnet_id(), a.route_table_association_id()) {
                    existing.insert(
                        s.to_owned(),
                        (aid.to_owned(), t.route_table_id().unwrap_or_default().to_owned()),
                    );
                }
            }
        }
    }
    for subnet in subnets {
        match existing.get(subnet) {
            Some((_, t)) if t == table => {}
            Some((aid, _)) => {
                p.call(
                    "ReplaceRouteTableAssociation",
                    p.ec2
                        .replace_route_table_association()
                        .association_id(aid)
                        .route_table_id(table)
                        .send(),
                )
                .await?;
            }
            None => {
                p.call(
                    "AssociateRouteTable",
                    p.ec2.associate_route_table().route_table_id(table).subnet_id(subnet).send(),
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn describe_route_tables(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::RouteTable>> {
    let mut all = Vec::new();
    for filters in id_filters("route-table-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeRouteTables",
                    p.ec2
                        .describe_route_tables()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            all.extend(out.route_tables().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

/// The routes Graven manages: to a gateway other than `local`, by destination.
fn gateway_routes(t: &aws_sdk_ec2::types::RouteTable) -> BTreeMap<String, String> {
    t.routes()
        .iter()
        .filter_map(|r| {
            Some((
                r.destination_cidr_block()?.to_owned(),
                r.gateway_id().filter(|g| *g != "local")?.to_owned(),
            ))
        })
        .collect()
}

/// The subnet associations: subnet id to association id.
fn subnet_associations(t: &aws_sdk_ec2::types::RouteTable) -> BTreeMap<String, String> {
    t.associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter_map(|a| {
            Some((a.subnet_id()?.to_owned(), a.route_table_association_id()?.to_owned()))
        })
        .collect()
}

pub(super) async fn read_route_tables(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for t in describe_route_tables(p, ids, token).await? {
        let Some(id) = t.route_table_id() else {
            continue;
        };
        let routes: Vec<Json> = gateway_routes(&t)
            .into_iter()
            .map(|(d, g)| json!({"destination": d, "gateway_id": g}))
            .collect();
        let subnets: Vec<String> = subnet_associations(&t).into_keys().collect();
        let inputs = object([
            ("vpc_id", json!(t.vpc_id())),
            ("routes", Json::Array(routes)),
            ("subnet_ids", json!(subnets)),
        ]);
        found.insert(
            id.to_owned(),
            observed(id, object([("id", json!(id))]), inputs, tag_map(t.tags())),
        );
    }
    Ok(found)
}

pub(super) async fn update_route_table(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: RouteTableIn = decode(ROUTE_TABLE, inputs)?;
    let tables = describe_route_tables(p, &[id.to_owned()], None).await?;
    let Some(table) = tables.first() else {
        return Err(provider::Error::new(
            ErrorKind::NotFound,
            "update aws:ec2:RouteTable",
            "InvalidRouteTableID.NotFound",
            format!("`{id}` does not exist"),
        ));
    };
    if changed.iter().any(|c| c == "routes") {
        let now = gateway_routes(table);
        let desired: BTreeMap<&str, &RouteIn> =
            input.routes.iter().map(|r| (r.destination.as_str(), r)).collect();
        for dest in now.keys().filter(|d| !desired.contains_key(d.as_str())) {
            p.call(
                "DeleteRoute",
                p.ec2.delete_route().route_table_id(id).destination_cidr_block(dest).send(),
            )
            .await?;
        }
        for (dest, r) in &desired {
            match now.get(*dest) {
                Some(g) if *g == r.gateway_id => {}
                Some(_) => {
                    p.call(
                        "ReplaceRoute",
                        p.ec2
                            .replace_route()
                            .route_table_id(id)
                            .destination_cidr_block(*dest)
                            .gateway_id(&r.gateway_id)
                            .send(),
                    )
                    .await?;
                }
                None => create_route(p, id, r).await?,
            }
        }
    }
    if changed.iter().any(|c| c == "subnet_ids") {
        let now = subnet_associations(table);
        let desired: BTreeSet<&String> = input.subnet_ids.iter().collect();
        for (subnet, association) in &now {
            if !desired.contains(subnet) {
                p.call(
                    "DisassociateRouteTable",
                    p.ec2.disassociate_route_table().association_id(association).send(),
                )
                .await?;
            }
        }
        let new: Vec<String> =
            input.subnet_ids.iter().filter(|s| !now.contains_key(*s)).cloned().collect();
        associate(p, id, &new).await?;
    }
    if changed.iter().any(|c| c == "tags") {
        retag(p, id, &tag_map(table.tags()), &input.tags).await?;
    }
    Ok(())
}

pub(super) async fn delete_route_table(p: &AwsProvider, id: &str) -> provider::Result<()> {
    let tables = describe_route_tables(p, &[id.to_owned()], None).await?;
    let Some(table) = tables.first() else {
        return Ok(());
    };
    for association in subnet_associations(table).values() {
        match p
            .call(
                "DisassociateRouteTable",
                p.ec2.disassociate_route_table().association_id(association).send(),
            )
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound => {}
            other => other.map(drop)?,
        }
    }
    while_dependencies_go(p, || async {
        p.call("DeleteRouteTable", p.ec2.delete_route_table().route_table_id(id).send())
            .await
            .map(drop)
    })
    .await
}

// ---------------------------------------------------------------- instances

#[derive(Deserialize)]
struct InstanceIn {
    image_id: String,
    instance_type: String,
    subnet_id: String,
    #[serde(default)]
    security_group_ids: Vec<String>,
    user_data: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub(super) async fn create_instance(
    p: &AwsProvider,
    request: &Create<'_>,
) -> provider::Result<Observed> {
    let input: InstanceIn = decode(INSTANCE, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let out = p
        .call(
            "RunInstances",
            p.ec2
                .run_instances()
                .image_id(&input.image_id)
                .instance_type(input.instance_type.as_str().into())
                .subnet_id(&input.subnet_id)
                .set_security_group_ids(
                    Some(input.security_group_ids.clone()).filter(|s| !s.is_empty()),
                )
                .set_user_data(input.user_data.as_deref().map(|d| base64(d.as_bytes())))
                .min_count(1)
                .max_count(1)
                .client_token(request.token)
                .tag_specifications(tag_spec(ResourceType::Instance, &all))
                .tag_specifications(tag_spec(ResourceType::Volume, &all))
                .send(),
        )
        .await?;
    let instance = out.instances().first();
    let id =
        required("RunInstances", "instance id", instance.and_then(|i| i.instance_id()))?.to_owned();
    let private_ip =
        std::sync::Mutex::new(instance.and_then(|i| i.private_ip_address()).map(str::to_owned));
    // Dependants (and users) expect a running instance.
    let running = p
        .wait_until("RunInstances", &format!("instance {id} to run"), || async {
            let found = describe_instances(p, std::slice::from_ref(&id), None).await?;
            let Some(i) = found.first() else {
                return Ok(false);
            };
            if let (Ok(mut ip), Some(seen)) = (private_ip.lock(), i.private_ip_address()) {
                ip.get_or_insert_with(|| seen.to_owned());
            }
            match i.state().and_then(|s| s.name()) {
                Some(InstanceStateName::Running) => Ok(true),
                Some(InstanceStateName::Pending) | None => Ok(false),
                Some(other) => Err(provider::Error::new(
                    ErrorKind::Terminal,
                    "RunInstances",
                    "InstanceDidNotStart",
                    format!(
                        "instance {id} is {} instead of running: {}",
                        other.as_str(),
                        i.state_reason().and_then(|r| r.message()).unwrap_or("no reason given")
                    ),
                )),
            }
        })
        .await;
    if let Err(e) = running {
        return Err(p.undo_create(INSTANCE, &id, e).await);
    }
    let inputs = object([
        ("image_id", json!(input.image_id)),
        ("instance_type", json!(input.instance_type)),
        ("subnet_id", json!(input.subnet_id)),
        ("security_group_ids", json!(input.security_group_ids)),
    ]);
    Ok(observed(
        &id,
        object([
            ("id", json!(id)),
            ("private_ip", json!(private_ip.into_inner().ok().flatten().unwrap_or_default())),
        ]),
        inputs,
        all,
    ))
}

/// Instances by id (or token), terminated ones included.
pub(super) async fn describe_instances(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::Instance>> {
    let mut all = Vec::new();
    for filters in id_filters("instance-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeInstances",
                    p.ec2
                        .describe_instances()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            all.extend(
                out.reservations()
                    .iter()
                    .flat_map(aws_sdk_ec2::types::Reservation::instances)
                    .cloned(),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

/// Instances by id, or the one carrying `token`; terminated instances are gone.
pub(super) async fn read_instances(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for i in describe_instances(p, ids, token).await? {
        let Some(id) = i.instance_id() else { continue };
        if matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated)) {
            continue;
        }
        let groups: Vec<&str> = i.security_groups().iter().filter_map(|g| g.group_id()).collect();
        let inputs = object([
            ("image_id", json!(i.image_id())),
            (
                "instance_type",
                json!(i.instance_type().map(aws_sdk_ec2::types::InstanceType::as_str)),
            ),
            ("subnet_id", json!(i.subnet_id())),
            ("security_group_ids", json!(groups)),
        ]);
        let outputs = object([
            ("id", json!(id)),
            ("private_ip", json!(i.private_ip_address().unwrap_or_default())),
        ]);
        found.insert(id.to_owned(), observed(id, outputs, inputs, tag_map(i.tags())));
    }
    Ok(found)
}

/// Terminates instances and waits until they are terminated.
pub(super) async fn terminate_and_wait(p: &AwsProvider, ids: &[String]) -> provider::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    match p
        .call(
            "TerminateInstances",
            p.ec2.terminate_instances().set_instance_ids(Some(ids.to_vec())).send(),
        )
        .await
    {
        Err(e) if e.kind == ErrorKind::NotFound => {}
        other => other.map(drop)?,
    }
    wait_terminated(p, ids).await
}

/// Waits until every instance of `ids` is terminated (or unknown).
pub(super) async fn wait_terminated(p: &AwsProvider, ids: &[String]) -> provider::Result<()> {
    p.wait_until(
        "TerminateInstances",
        &format!("{} instance(s) to terminate", ids.len()),
        || async {
            let found = describe_instances(p, ids, None).await?;
            Ok(found.iter().all(|i| {
                matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated))
            }))
        },
    )
    .await
}

pub(super) async fn delete_instance(p: &AwsProvider, id: &str) -> provider::Result<()> {
    terminate_and_wait(p, &[id.to_owned()]).await
}
