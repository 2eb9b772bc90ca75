//! Typed identifiers of cloud resources.
//!
//! Each AWS id is its own type, so wiring a [`SubnetId`] where a [`VpcId`] is expected does not
//! compile. They are plain strings on the wire.

use serde::{Deserialize, Serialize};

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl crate::value::Refs for $name {
            fn visit_refs(&self, _: &mut dyn FnMut(crate::value::RefTarget<'_>)) {}
        }
    )*};
}

ids! {
    /// The id of a VPC (`vpc-...`).
    VpcId;
    /// The id of a subnet (`subnet-...`).
    SubnetId;
    /// The id of an internet gateway (`igw-...`).
    InternetGatewayId;
    /// The id of a route table (`rtb-...`).
    RouteTableId;
    /// The id of a security group (`sg-...`).
    SecurityGroupId;
    /// The id of a launch template (`lt-...`).
    LaunchTemplateId;
    /// The id of a machine image (`ami-...`).
    ImageId;
    /// The id of an instance (`i-...`).
    InstanceId;
    /// The name of an Auto Scaling group.
    AutoScalingGroupName;
    /// An Amazon Resource Name.
    Arn;
}

/// A launch template version number (`1`, `2`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LaunchTemplateVersion(pub u64);

impl std::fmt::Display for LaunchTemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl crate::value::Refs for LaunchTemplateVersion {
    fn visit_refs(&self, _: &mut dyn FnMut(crate::value::RefTarget<'_>)) {}
}
