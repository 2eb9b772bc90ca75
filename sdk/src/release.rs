//! A release: the inputs of one deployment (stack variables, the image catalog).
//!
//! A stack program builds its stack from a [`Release`]: variables given on the command line
//! (`--var version=1.5.0`, or `GRAVEN_VAR_version`) and the images the target offers. Stacks ask
//! for images by semantic-version requirement (`release.image("web", "^1.4")`); the plan pins
//! the exact image id.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::id::ImageId;
use crate::value::Value;

/// One image in a catalog: a versioned, content-addressed artefact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// The image's name (`web`).
    pub name: String,
    /// Its semantic version.
    pub version: semver::Version,
    /// The cloud's id of the image (`ami-...`).
    pub id: String,
    /// The content digest (`sha256:...`).
    pub digest: String,
}

impl ImageRecord {
    /// A record whose id and digest derive from name and version, as the local cloud makes them.
    pub fn derived(name: &str, version: &str) -> Result<ImageRecord> {
        let version = semver::Version::parse(version).map_err(|e| Error::Parse {
            what: "an image version",
            input: version.to_owned(),
            message: e.to_string(),
        })?;
        let hash = Sha256::digest(format!("{name}@{version}").as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Ok(ImageRecord {
            name: name.to_owned(),
            version,
            id: format!("ami-{}", &hex[..17]),
            digest: format!("sha256:{hex}"),
        })
    }
}

/// The images the local target ships, so a fresh machine can deploy at once.
pub fn builtin_images() -> Vec<ImageRecord> {
    const BUILTIN: &[(&str, &[&str])] = &[
        ("al2023", &["2023.6.0"]),
        ("debian", &["12.8.0"]),
        ("web", &["1.0.0", "1.1.0", "1.4.0", "1.4.1", "1.5.0", "2.0.0"]),
        ("server", &["1.0.0", "1.1.0", "2.0.0"]),
    ];
    let mut out = Vec::new();
    for (name, versions) in BUILTIN {
        for v in *versions {
            if let Ok(r) = ImageRecord::derived(name, v) {
                out.push(r);
            }
        }
    }
    out
}

/// The inputs of one deployment: variables and the image catalog.
#[derive(Debug, Clone, Default)]
pub struct Release {
    vars: BTreeMap<String, String>,
    images: Vec<ImageRecord>,
}

impl Release {
    /// A release with no variables and the given image catalog.
    pub fn new(images: Vec<ImageRecord>) -> Release {
        Release { vars: BTreeMap::new(), images }
    }

    /// Sets variable `name`.
    #[must_use]
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Release {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Variable `name`.
    ///
    /// # Errors
    /// [`Error::Var`] when it is not set, saying how to set it.
    pub fn get(&self, name: &str) -> Result<&str> {
        self.vars.get(name).map(String::as_str).ok_or_else(|| Error::Var {
            name: name.to_owned(),
            message: format!("not set; pass `--var {name}=...` or set `GRAVEN_VAR_{name}`"),
        })
    }

    /// Variable `name`, or `default` when it is not set.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.vars.get(name).map_or(default, String::as_str)
    }

    /// All variables.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The image catalog.
    pub fn images(&self) -> &[ImageRecord] {
        &self.images
    }

    /// The newest image `name` whose version satisfies `requirement` (`^1.4`, `=1.5.0`).
    ///
    /// # Errors
    /// A malformed requirement, or [`Error::NoImage`] listing the versions there are.
    pub fn image_record(&self, name: &str, requirement: &str) -> Result<&ImageRecord> {
        let req = semver::VersionReq::parse(requirement).map_err(|e| Error::Parse {
            what: "a version requirement",
            input: requirement.to_owned(),
            message: e.to_string(),
        })?;
        self.images
            .iter()
            .filter(|i| i.name == name && req.matches(&i.version))
            .max_by(|a, b| a.version.cmp(&b.version))
            .ok_or_else(|| Error::NoImage {
                name: name.to_owned(),
                requirement: requirement.to_owned(),
                available: {
                    let v: Vec<String> = self
                        .images
                        .iter()
                        .filter(|i| i.name == name)
                        .map(|i| i.version.to_string())
                        .collect();
                    if v.is_empty() { "none".to_owned() } else { v.join(", ") }
                },
            })
    }

    /// The id of the newest image `name` satisfying `requirement`, as an input value.
    ///
    /// # Errors
    /// As [`Release::image_record`].
    pub fn image(&self, name: &str, requirement: &str) -> Result<Value<ImageId>> {
        Ok(Value::Literal(ImageId(self.image_record(name, requirement)?.id.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_matching_version() {
        let r = Release::new(builtin_images());
        assert_eq!(r.image_record("web", "^1.4").unwrap().version.to_string(), "1.5.0");
        assert_eq!(r.image_record("web", "=1.4.0").unwrap().version.to_string(), "1.4.0");
        let e = r.image_record("web", "^3").unwrap_err().to_string();
        assert!(e.contains("1.0.0, 1.1.0"), "{e}");
    }

    #[test]
    fn ids_are_stable() {
        let a = ImageRecord::derived("web", "1.4.0").unwrap();
        assert_eq!(a, ImageRecord::derived("web", "1.4.0").unwrap());
        assert!(a.id.starts_with("ami-") && a.id.len() == 21);
    }
}
