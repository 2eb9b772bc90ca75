//! Images registered as resources of a stack.

use crate::aws::{Tags, validate_tags};
use crate::error::Problem;
use crate::id::ImageId;
use crate::resource::problem;
use crate::value::Value;
use crate::{Outputs, Resource};

/// A machine image registered from a source image, named and versioned. Any change makes a new
/// image (images are artefacts: never modified).
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:Image", outputs = ImageOutputs, validate = Image::check)]
pub struct Image {
    name: String,
    version: semver::Version,
    source_image_id: Value<ImageId>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of an [`Image`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct ImageOutputs {
    /// The image's id.
    pub id: ImageId,
}

impl Image {
    /// Image `name` at `version`, registered from `source_image_id`.
    pub fn new(
        name: &str,
        version: semver::Version,
        source_image_id: impl Into<Value<ImageId>>,
    ) -> Image {
        Image {
            name: name.into(),
            version,
            source_image_id: source_image_id.into(),
            tags: Tags::new(),
        }
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Image {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.name.is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            out.push(problem(
                "name",
                format!("`{}`: an image name uses letters, digits and `-_.`", self.name),
            ));
        }
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}
