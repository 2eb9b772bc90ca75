//! Images: a copy of a source image in the provider's region, named `{name}-{version}`.
//!
//! `CopyImage` is what both AWS and moto support for making an image from an image. moto
//! ignores its `TagSpecifications`, so the tags are also set with `CreateTags` after the copy.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ImageState, ResourceType};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::ec2::{FILTER_VALUES, Found, filter, required, retag, tag_list, tag_map, tag_spec};
use super::kinds::IMAGE;
use super::{AwsProvider, chunks, create_tags, decode, object, observed};
use crate::provider::{self, Create, ErrorKind, Observed, tags};

#[derive(Deserialize)]
struct ImageIn {
    name: String,
    version: String,
    source_image_id: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Splits `{name}-{version}` where the version is the first suffix that parses as semver
/// (`my-web-1.2.0-rc.1` is `my-web` at `1.2.0-rc.1`).
pub(super) fn split_name(full: &str) -> Option<(&str, &str)> {
    full.match_indices('-')
        .map(|(i, _)| (&full[..i], &full[i + 1..]))
        .find(|(_, v)| semver::Version::parse(v).is_ok())
}

pub(super) async fn create(p: &AwsProvider, request: &Create<'_>) -> provider::Result<Observed> {
    let input: ImageIn = decode(IMAGE, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let name = format!("{}-{}", input.name, input.version);
    let out = p
        .call(
            "CopyImage",
            p.ec2
                .copy_image()
                .source_image_id(&input.source_image_id)
                .source_region(p.region())
                .name(&name)
                .description(format!("{name}, made by Graven from {}", input.source_image_id))
                .client_token(request.token)
                .tag_specifications(tag_spec(ResourceType::Image, &all))
                .send(),
        )
        .await?;
    let id = required("CopyImage", "image id", out.image_id())?.to_owned();
    let steps = async {
        p.persist(|| async {
            p.call(
                "CreateTags",
                p.ec2.create_tags().resources(&id).set_tags(Some(tag_list(&all))).send(),
            )
            .await
            .map(drop)
        })
        .await?;
        p.wait_until("CopyImage", &format!("image {id} to be available"), || async {
            let images = describe(p, std::slice::from_ref(&id), None).await?;
            match images.first().and_then(|i| i.state()) {
                Some(ImageState::Available) => Ok(true),
                Some(ImageState::Pending) | None => Ok(false),
                Some(other) => Err(provider::Error::new(
                    ErrorKind::Terminal,
                    "CopyImage",
                    "ImageFailed",
                    format!("image {id} is {}", other.as_str()),
                )),
            }
        })
        .await
    };
    if let Err(e) = steps.await {
        return Err(p.undo_create(IMAGE, &id, e).await);
    }
    let inputs = object([
        ("name", json!(input.name)),
        ("version", json!(input.version)),
        ("source_image_id", json!(input.source_image_id)),
    ]);
    Ok(observed(&id, object([("id", json!(id))]), inputs, all))
}

async fn describe(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::Image>> {
    let mut all = Vec::new();
    let requests: Vec<_> = match token {
        // Only this account's images: a tag filter alone would look through every public image.
        Some(t) => vec![
            p.ec2
                .describe_images()
                .owners("self")
                .filters(filter(&format!("tag:{}", tags::TOKEN), &[t.to_owned()])),
        ],
        None => chunks(ids, FILTER_VALUES)
            .map(|c| p.ec2.describe_images().filters(filter("image-id", c)))
            .collect(),
    };
    for request in requests {
        let mut next = None;
        loop {
            let out = p
                .call("DescribeImages", request.clone().set_next_token(next.take()).send())
                .await?;
            all.extend(out.images().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

pub(super) async fn read(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for i in describe(p, ids, token).await? {
        let Some(id) = i.image_id() else { continue };
        if matches!(i.state(), Some(ImageState::Deregistered)) {
            continue;
        }
        let full = i.name().unwrap_or_default();
        let (name, version) = split_name(full).map_or((full, None), |(n, v)| (n, Some(v)));
        let mut inputs = object([("name", json!(name)), ("version", json!(version))]);
        if let Some(source) = i.source_image_id() {
            inputs.insert("source_image_id".into(), json!(source));
        }
        found.insert(
            id.to_owned(),
            observed(id, object([("id", json!(id))]), inputs, tag_map(i.tags())),
        );
    }
    Ok(found)
}

pub(super) async fn update(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
) -> provider::Result<()> {
    let input: ImageIn = decode(IMAGE, inputs)?;
    let images = describe(p, &[id.to_owned()], None).await?;
    let current = images.first().map(|i| tag_map(i.tags())).unwrap_or_default();
    retag(p, id, &current, &input.tags).await
}

/// Deregisters the image and deletes its snapshots (which would otherwise be kept, and billed).
pub(super) async fn delete(p: &AwsProvider, id: &str) -> provider::Result<()> {
    let images = describe(p, &[id.to_owned()], None).await?;
    let Some(image) =
        images.first().filter(|i| !matches!(i.state(), Some(ImageState::Deregistered)))
    else {
        return Ok(());
    };
    let snapshots: Vec<String> = image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
        .collect();
    p.call("DeregisterImage", p.ec2.deregister_image().image_id(id).send()).await?;
    for s in snapshots {
        if let Err(e) =
            p.call("DeleteSnapshot", p.ec2.delete_snapshot().snapshot_id(&s).send()).await
        {
            if e.kind != ErrorKind::NotFound {
                tracing::warn!(image = id, snapshot = %s, error = %e, "could not delete the snapshot of a deregistered image; delete it by hand");
            }
        }
    }
    Ok(())
}

/// The images of this account named `{name}-{version}`, for stacks to pick by version. The
/// digest is the image's `digest` tag when it has one, else `ami:<id>` (AWS keeps no content
/// digest of an image).
pub(super) async fn catalog(p: &AwsProvider) -> provider::Result<Vec<crate::release::ImageRecord>> {
    let mut out = Vec::new();
    let mut next = None;
    loop {
        let request = p
            .ec2
            .describe_images()
            .owners("self")
            .filters(filter("state", &["available".to_owned()]))
            .set_next_token(next.take());
        let page = p.call("DescribeImages", request.send()).await?;
        for i in page.images() {
            let (Some(id), Some((name, version))) = (i.image_id(), i.name().and_then(split_name))
            else {
                continue;
            };
            let Ok(version) = semver::Version::parse(version) else {
                continue;
            };
            let tags = tag_map(i.tags());
            let digest = tags.get("digest").cloned().unwrap_or_else(|| format!("ami:{id}"));
            out.push(crate::release::ImageRecord {
                name: name.to_owned(),
                version,
                id: id.to_owned(),
                digest,
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => break,
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn names_split_at_the_version() {
        assert_eq!(split_name("web-1.4.0"), Some(("web", "1.4.0")));
        assert_eq!(split_name("my-web-1.2.0-rc.1"), Some(("my-web", "1.2.0-rc.1")));
        assert_eq!(split_name("web"), None);
    }
}
