//! Launch templates: what a fleet's instances are launched from.

use crate::aws::{Tags, validate_tags};
use crate::error::Problem;
use crate::id::{ImageId, LaunchTemplateId, LaunchTemplateVersion, SecurityGroupId};
use crate::resource::problem;
use crate::value::{Secret, Value};
use crate::{Outputs, Resource};

/// A launch template. Versions are immutable: a change to the image, the instance type, the
/// security groups or the user data makes a new version (an in-place update whose
/// `latest_version` output changes), and a fleet that uses `latest_version` then rolls.
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:LaunchTemplate", outputs = LaunchTemplateOutputs, validate = LaunchTemplate::check)]
pub struct LaunchTemplate {
    name: Option<String>,
    #[graven(update)]
    image_id: Value<ImageId>,
    #[graven(update)]
    instance_type: String,
    #[graven(update)]
    security_group_ids: Vec<Value<SecurityGroupId>>,
    #[graven(update, secret)]
    user_data: Option<Secret>,
    #[graven(update)]
    key_name: Option<String>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of a [`LaunchTemplate`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct LaunchTemplateOutputs {
    /// The template's id.
    pub id: LaunchTemplateId,
    /// The newest version; every in-place update makes a new one.
    #[graven(changes_on_update)]
    pub latest_version: LaunchTemplateVersion,
}

impl LaunchTemplate {
    /// A template launching `image_id` on `t3.micro`.
    pub fn new(image_id: impl Into<Value<ImageId>>) -> LaunchTemplate {
        LaunchTemplate {
            name: None,
            image_id: image_id.into(),
            instance_type: "t3.micro".into(),
            security_group_ids: Vec::new(),
            user_data: None,
            key_name: None,
            tags: Tags::new(),
        }
    }

    /// Sets the template's name (default: generated from the stack and the logical id).
    #[must_use]
    pub fn name(mut self, name: &str) -> LaunchTemplate {
        self.name = Some(name.into());
        self
    }

    /// Sets the instance type (`t3.small`).
    #[must_use]
    pub fn instance_type(mut self, instance_type: &str) -> LaunchTemplate {
        self.instance_type = instance_type.into();
        self
    }

    /// Adds security groups.
    #[must_use]
    pub fn security_groups<S: Into<Value<SecurityGroupId>>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> LaunchTemplate {
        self.security_group_ids.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Sets the user data, as a secret resolved at apply time (never stored).
    #[must_use]
    pub fn user_data(mut self, secret: Secret) -> LaunchTemplate {
        self.user_data = Some(secret);
        self
    }

    /// Sets the SSH key pair's name.
    #[must_use]
    pub fn key_name(mut self, key: &str) -> LaunchTemplate {
        self.key_name = Some(key.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> LaunchTemplate {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_instance_type("instance_type", &self.instance_type, &mut out);
        check_image("image_id", &self.image_id, &mut out);
        if let Some(n) = &self.name {
            if n.len() < 3
                || n.len() > 128
                || !n.chars().all(|c| c.is_ascii_alphanumeric() || "()./_-".contains(c))
            {
                out.push(problem("name", format!("`{n}`: a template name has 3 to 128 characters among letters, digits and `()./_-`")));
            }
        }
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

/// Checks an instance type's shape (`family.size`, e.g. `t3.small`).
pub(crate) fn check_instance_type(field: &str, t: &str, out: &mut Vec<Problem>) {
    let ok = t.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && family.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && family.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !size.is_empty()
            && size.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if !ok {
        out.push(problem(
            field,
            format!("`{t}` is not an instance type; write one like `t3.small`"),
        ));
    }
}

/// Checks a literal image id's shape (`ami-` and hex digits).
pub(crate) fn check_image(field: &str, image: &Value<ImageId>, out: &mut Vec<Problem>) {
    if let Some(id) = image.literal() {
        let ok = id.0.strip_prefix("ami-").is_some_and(|h| {
            (8..=17).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            out.push(problem(
                field,
                format!("`{id}` is not an image id; image ids look like `ami-0123456789abcdef0`"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_type_and_image_are_checked() {
        let p = LaunchTemplate::new(ImageId::from("ubuntu")).instance_type("big").check();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            LaunchTemplate::new(ImageId::from("ami-0123456789abcdef0"))
                .instance_type("t3.small")
                .check()
                .is_empty()
        );
    }
}
