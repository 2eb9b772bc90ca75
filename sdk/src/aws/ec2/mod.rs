//! EC2 resource kinds: networking, security groups, launch templates, instances, images.

mod image;
mod instance;
mod launch_template;
mod network;
mod security_group;

pub use image::ImageHandle;
pub use image::{Image, ImageOutputs};
pub use instance::InstanceHandle;
pub use instance::{Instance, InstanceOutputs};
pub use launch_template::LaunchTemplateHandle;
pub use launch_template::{LaunchTemplate, LaunchTemplateOutputs};
pub use network::{
    InternetGateway, InternetGatewayOutputs, Route, RouteTable, RouteTableOutputs, Subnet,
    SubnetOutputs, Vpc, VpcOutputs,
};
pub use network::{InternetGatewayHandle, RouteTableHandle, SubnetHandle, VpcHandle};
pub use security_group::SecurityGroupHandle;
pub use security_group::{Rule, SecurityGroup, SecurityGroupOutputs};
