//! Single immutable instances.

use crate::aws::ec2::launch_template::{check_image, check_instance_type};
use crate::aws::{Tags, validate_tags};
use crate::error::Problem;
use crate::id::{ImageId, InstanceId, SecurityGroupId, SubnetId};
use crate::value::{Secret, Value};
use crate::{Outputs, Resource};

/// One instance. Immutable: a new image, instance type, subnet, security groups or user data
/// replaces it; only tags update in place.
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:Instance", outputs = InstanceOutputs, validate = Instance::check)]
pub struct Instance {
    image_id: Value<ImageId>,
    instance_type: String,
    subnet_id: Value<SubnetId>,
    security_group_ids: Vec<Value<SecurityGroupId>>,
    #[graven(secret)]
    user_data: Option<Secret>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of an [`Instance`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct InstanceOutputs {
    /// The instance's id.
    pub id: InstanceId,
    /// Its private IPv4 address.
    pub private_ip: String,
}

impl Instance {
    /// An instance of `image_id` in `subnet_id`, on `t3.micro`.
    pub fn new(
        image_id: impl Into<Value<ImageId>>,
        subnet_id: impl Into<Value<SubnetId>>,
    ) -> Instance {
        Instance {
            image_id: image_id.into(),
            instance_type: "t3.micro".into(),
            subnet_id: subnet_id.into(),
            security_group_ids: Vec::new(),
            user_data: None,
            tags: Tags::new(),
        }
    }

    /// Sets the instance type.
    #[must_use]
    pub fn instance_type(mut self, instance_type: &str) -> Instance {
        self.instance_type = instance_type.into();
        self
    }

    /// Adds security groups.
    #[must_use]
    pub fn security_groups<S: Into<Value<SecurityGroupId>>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> Instance {
        self.security_group_ids.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Sets the user data, as a secret resolved at apply time.
    #[must_use]
    pub fn user_data(mut self, secret: Secret) -> Instance {
        self.user_data = Some(secret);
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Instance {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_instance_type("instance_type", &self.instance_type, &mut out);
        check_image("image_id", &self.image_id, &mut out);
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}
