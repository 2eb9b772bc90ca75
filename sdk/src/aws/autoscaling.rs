//! EC2 Auto Scaling: fleets of identical instances.

use crate::aws::{Tags, validate_tags};
use crate::error::Problem;
use crate::id::{Arn, AutoScalingGroupName, LaunchTemplateId, LaunchTemplateVersion, SubnetId};
use crate::resource::problem;
use crate::rollout::Rollout;
use crate::value::{Reference, Value};
use crate::{Outputs, Resource};

/// How a group decides an instance is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HealthCheck {
    /// EC2 status checks.
    #[serde(rename = "EC2")]
    Ec2,
    /// Load balancer target health (and EC2 status checks).
    #[serde(rename = "ELB")]
    Elb,
}

impl crate::value::Refs for HealthCheck {
    fn visit_refs(&self, _: &mut dyn FnMut(crate::value::RefTarget<'_>)) {}
}

/// An Auto Scaling group: a fleet launched from a launch template version.
///
/// Capacity, subnets and health checks update in place; a new launch template version rolls
/// the fleet's instances under its [`Rollout`].
///
/// ```
/// # use graven::aws::autoscaling::AutoScalingGroup;
/// # use graven::prelude::*;
/// # use graven::id::{LaunchTemplateId, LaunchTemplateVersion, SubnetId};
/// let fleet = AutoScalingGroup::new(LaunchTemplateVersion(1))
///     .launch_template(LaunchTemplateId::from("lt-0123456789abcdef0"))
///     .capacity(2, 3, 6)
///     .subnets([SubnetId::from("subnet-1")])
///     .rollout(Rollout::rolling().min_healthy_percent(90).max_healthy_percent(120));
/// ```
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:autoscaling:AutoScalingGroup", outputs = AutoScalingGroupOutputs, validate = AutoScalingGroup::check)]
pub struct AutoScalingGroup {
    name: Option<String>,
    #[graven(update)]
    launch_template_id: Option<Value<LaunchTemplateId>>,
    #[graven(roll)]
    launch_template_version: Value<LaunchTemplateVersion>,
    #[graven(update)]
    min_size: u32,
    #[graven(update)]
    desired_capacity: u32,
    #[graven(update)]
    max_size: u32,
    #[graven(update)]
    subnet_ids: Vec<Value<SubnetId>>,
    #[graven(update)]
    health_check_type: HealthCheck,
    #[graven(update)]
    health_check_grace_period: u32,
    #[graven(update)]
    rollout: Rollout,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of an [`AutoScalingGroup`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct AutoScalingGroupOutputs {
    /// The group's name.
    pub name: AutoScalingGroupName,
    /// The group's ARN.
    pub arn: Arn,
}

impl AutoScalingGroup {
    /// A group launching from `version` of a launch template. When `version` is a reference
    /// (`r.template.latest_version()`), the template is the one it refers to; with a literal
    /// version, also call [`AutoScalingGroup::launch_template`]. Capacity defaults to 1/1/1.
    pub fn new(version: impl Into<Value<LaunchTemplateVersion>>) -> AutoScalingGroup {
        let version = version.into();
        let launch_template_id =
            version.reference().map(|r| Value::Ref(Reference::new(r.resource().into(), "id")));
        AutoScalingGroup {
            name: None,
            launch_template_id,
            launch_template_version: version,
            min_size: 1,
            desired_capacity: 1,
            max_size: 1,
            subnet_ids: Vec::new(),
            health_check_type: HealthCheck::Ec2,
            health_check_grace_period: 300,
            rollout: Rollout::default(),
            tags: Tags::new(),
        }
    }

    /// Sets the launch template explicitly.
    #[must_use]
    pub fn launch_template(mut self, id: impl Into<Value<LaunchTemplateId>>) -> AutoScalingGroup {
        self.launch_template_id = Some(id.into());
        self
    }

    /// Sets the group's name (default: generated from the stack and the logical id).
    #[must_use]
    pub fn name(mut self, name: &str) -> AutoScalingGroup {
        self.name = Some(name.into());
        self
    }

    /// Sets minimum, desired and maximum capacity (`min <= desired <= max`).
    #[must_use]
    pub fn capacity(mut self, min: u32, desired: u32, max: u32) -> AutoScalingGroup {
        self.min_size = min;
        self.desired_capacity = desired;
        self.max_size = max;
        self
    }

    /// Sets the subnets instances launch into.
    #[must_use]
    pub fn subnets<S: Into<Value<SubnetId>>>(
        mut self,
        subnets: impl IntoIterator<Item = S>,
    ) -> AutoScalingGroup {
        self.subnet_ids = subnets.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the health check and its grace period in seconds.
    #[must_use]
    pub fn health_check(mut self, check: HealthCheck, grace_period_secs: u32) -> AutoScalingGroup {
        self.health_check_type = check;
        self.health_check_grace_period = grace_period_secs;
        self
    }

    /// Sets how the fleet rolls when its launch template version changes.
    #[must_use]
    pub fn rollout(mut self, rollout: Rollout) -> AutoScalingGroup {
        self.rollout = rollout;
        self
    }

    /// Adds a tag (propagated to instances).
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> AutoScalingGroup {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(self.min_size <= self.desired_capacity && self.desired_capacity <= self.max_size) {
            out.push(problem(
                "desired_capacity",
                format!(
                    "capacity {}/{}/{} (min/desired/max) breaks min <= desired <= max",
                    self.min_size, self.desired_capacity, self.max_size
                ),
            ));
        }
        if self.subnet_ids.is_empty() {
            out.push(problem(
                "subnet_ids",
                "a group needs at least one subnet; call `.subnets([...])`",
            ));
        }
        if self.launch_template_id.is_none() {
            out.push(problem(
                "launch_template_id",
                "a literal launch template version needs the template; call `.launch_template(...)` or pass `r.template.latest_version()`",
            ));
        }
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 255 {
                out.push(problem("name", "a group name has 1 to 255 characters"));
            }
        }
        if self.health_check_grace_period > 7200 {
            out.push(problem(
                "health_check_grace_period",
                "the grace period is at most 7200 seconds",
            ));
        }
        out.extend(self.rollout.validate("rollout"));
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_order_is_checked() {
        let g = AutoScalingGroup::new(LaunchTemplateVersion(1))
            .launch_template(LaunchTemplateId::from("lt-1"))
            .subnets([SubnetId::from("subnet-1")])
            .capacity(3, 2, 6);
        let p = g.check();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("min <= desired <= max"));
    }
}
