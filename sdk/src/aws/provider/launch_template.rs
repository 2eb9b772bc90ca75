//! Launch templates: an update is a new version carrying the full data.
//!
//! Each new version also becomes the template's default version. AWS launches a group's
//! instances from the version the group names, so the default changes nothing there; but
//! moto launches a group's replacement instances from the template's *default* version (and
//! tags them with it), so keeping the default at the latest makes fleets roll the same way on
//! the emulator as on AWS.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{RequestLaunchTemplateData, ResourceType};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::ec2::{Found, filter, required, retag, tag_map, tag_spec};
use super::kinds::LAUNCH_TEMPLATE;
use super::{AwsProvider, base64, chunks, create_tags, decode, generated_name, object, observed};
use crate::provider::{self, Create, ErrorKind, Observed, tags};

/// moto answers `DescribeLaunchTemplates` with at most 15 templates and no `NextToken` when
/// `MaxResults` is absent, and AWS refuses `MaxResults` together with ids: ask for 15 at a time.
const IDS_PER_CALL: usize = 15;

#[derive(Deserialize)]
struct TemplateIn {
    name: Option<String>,
    image_id: String,
    instance_type: String,
    #[serde(default)]
    security_group_ids: Vec<String>,
    user_data: Option<String>,
    key_name: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn data(input: &TemplateIn) -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .image_id(&input.image_id)
        .instance_type(input.instance_type.as_str().into())
        .set_security_group_ids(Some(input.security_group_ids.clone()).filter(|s| !s.is_empty()))
        .set_user_data(input.user_data.as_deref().map(|d| base64(d.as_bytes())))
        .set_key_name(input.key_name.clone())
        .build()
}

/// The inputs as reported. `user_data` is left out: it holds a secret's value.
fn inputs_json(
    name: &str,
    image: Option<&str>,
    instance_type: Option<&str>,
    groups: &[String],
    key: Option<&str>,
) -> Map<String, Json> {
    object([
        ("name", json!(name)),
        ("image_id", json!(image)),
        ("instance_type", json!(instance_type)),
        ("security_group_ids", json!(groups)),
        ("key_name", json!(key)),
    ])
}

fn outputs(id: &str, version: i64) -> Map<String, Json> {
    object([("id", json!(id)), ("latest_version", json!(u64::try_from(version).unwrap_or(0)))])
}

pub(super) async fn create(p: &AwsProvider, request: &Create<'_>) -> provider::Result<Observed> {
    let input: TemplateIn = decode(LAUNCH_TEMPLATE, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let name = input.name.clone().unwrap_or_else(|| generated_name(request, 128));
    let out = p
        .call(
            "CreateLaunchTemplate",
            p.ec2
                .create_launch_template()
                .launch_template_name(&name)
                .client_token(request.token)
                .launch_template_data(data(&input))
                .tag_specifications(tag_spec(ResourceType::LaunchTemplate, &all))
                .send(),
        )
        .await?;
    let template = out.launch_template();
    let id = required(
        "CreateLaunchTemplate",
        "template id",
        template.and_then(|t| t.launch_template_id()),
    )?
    .to_owned();
    let version =
        template.and_then(aws_sdk_ec2::types::LaunchTemplate::latest_version_number).unwrap_or(1);
    let inputs = inputs_json(
        &name,
        Some(&input.image_id),
        Some(&input.instance_type),
        &input.security_group_ids,
        input.key_name.as_deref(),
    );
    Ok(observed(&id, outputs(&id, version), inputs, all))
}

/// Templates by id (15 per call), or the one tagged with `token`.
async fn describe(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::LaunchTemplate>> {
    let mut all = Vec::new();
    if let Some(token) = token {
        let mut next = None;
        loop {
            let request = p
                .ec2
                .describe_launch_templates()
                .filters(filter(&format!("tag:{}", tags::TOKEN), &[token.to_owned()]))
                .max_results(200)
                .set_next_token(next.take());
            let out = p.call("DescribeLaunchTemplates", request.send()).await?;
            all.extend(out.launch_templates().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        return Ok(all);
    }
    for chunk in chunks(ids, IDS_PER_CALL) {
        let request =
            p.ec2.describe_launch_templates().set_launch_template_ids(Some(chunk.to_vec()));
        match p.call("DescribeLaunchTemplates", request.send()).await {
            Ok(out) => all.extend(out.launch_templates().iter().cloned()),
            // AWS fails the whole call when one id is gone: ask for each alone.
            Err(e) if e.kind == ErrorKind::NotFound && chunk.len() > 1 => {
                for id in chunk {
                    let request = p.ec2.describe_launch_templates().launch_template_ids(id);
                    match p.call("DescribeLaunchTemplates", request.send()).await {
                        Ok(out) => all.extend(out.launch_templates().iter().cloned()),
                        Err(e) if e.kind == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

/// The latest version of each template in `wanted` (id to latest version number). Two or fewer
/// are asked for one by one; more in one account-wide `$Latest` query (paginated, 200 a page):
/// `DescribeLaunchTemplateVersions` has no filter by template.
async fn latest_versions(
    p: &AwsProvider,
    wanted: &BTreeMap<String, i64>,
) -> provider::Result<BTreeMap<String, aws_sdk_ec2::types::LaunchTemplateVersion>> {
    let mut out = BTreeMap::new();
    if wanted.len() <= 2 {
        for (id, version) in wanted {
            let request = p
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(id)
                .versions(version.to_string());
            match p.call("DescribeLaunchTemplateVersions", request.send()).await {
                Ok(r) => {
                    if let Some(v) = r.launch_template_versions().first() {
                        out.insert(id.clone(), v.clone());
                    }
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(out);
    }
    let mut next = None;
    loop {
        let request = p
            .ec2
            .describe_launch_template_versions()
            .versions("$Latest")
            .max_results(200)
            .set_next_token(next.take());
        let r = p.call("DescribeLaunchTemplateVersions", request.send()).await?;
        for v in r.launch_template_versions() {
            if let Some(id) = v.launch_template_id().filter(|id| wanted.contains_key(*id)) {
                out.insert(id.to_owned(), v.clone());
            }
        }
        match r.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(out)
}

pub(super) async fn read(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let templates = describe(p, ids, token).await?;
    let wanted: BTreeMap<String, i64> = templates
        .iter()
        .filter_map(|t| {
            Some((t.launch_template_id()?.to_owned(), t.latest_version_number().unwrap_or(1)))
        })
        .collect();
    let versions = latest_versions(p, &wanted).await?;
    let mut found = Found::new();
    for t in &templates {
        let Some(id) = t.launch_template_id() else {
            continue;
        };
        let latest = t.latest_version_number().unwrap_or(1);
        let d = versions.get(id).and_then(|v| v.launch_template_data());
        let groups: Vec<String> = d.map(|d| d.security_group_ids().to_vec()).unwrap_or_default();
        let inputs = inputs_json(
            t.launch_template_name().unwrap_or_default(),
            d.and_then(|d| d.image_id()),
            d.and_then(|d| d.instance_type()).map(aws_sdk_ec2::types::InstanceType::as_str),
            &groups,
            d.and_then(|d| d.key_name()),
        );
        found.insert(id.to_owned(), observed(id, outputs(id, latest), inputs, tag_map(t.tags())));
    }
    Ok(found)
}

pub(super) async fn update(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: TemplateIn = decode(LAUNCH_TEMPLATE, inputs)?;
    let data_fields = ["image_id", "instance_type", "security_group_ids", "user_data", "key_name"];
    if changed.iter().any(|c| data_fields.contains(&c.as_str())) {
        // The full data, never `SourceVersion` (moto ignores it): the version stands alone.
        let out = p
            .call(
                "CreateLaunchTemplateVersion",
                p.ec2
                    .create_launch_template_version()
                    .launch_template_id(id)
                    .launch_template_data(data(&input))
                    .send(),
            )
            .await?;
        let version = out
            .launch_template_version()
            .and_then(aws_sdk_ec2::types::LaunchTemplateVersion::version_number)
            .ok_or_else(|| {
                super::errors::invalid(
                    "CreateLaunchTemplateVersion",
                    "the response has no version number",
                )
            })?;
        p.call(
            "ModifyLaunchTemplate",
            p.ec2
                .modify_launch_template()
                .launch_template_id(id)
                .default_version(version.to_string())
                .send(),
        )
        .await?;
    }
    if changed.iter().any(|c| c == "tags") {
        let templates = describe(p, &[id.to_owned()], None).await?;
        let current = templates.first().map(|t| tag_map(t.tags())).unwrap_or_default();
        retag(p, id, &current, &input.tags).await?;
    }
    Ok(())
}

pub(super) async fn delete(p: &AwsProvider, id: &str) -> provider::Result<()> {
    p.call("DeleteLaunchTemplate", p.ec2.delete_launch_template().launch_template_id(id).send())
        .await
        .map(drop)
}
