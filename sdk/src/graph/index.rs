//! Node indices by logical id, without a copy of the ids.
//!
//! A graph of 100,000 resources would otherwise keep a second copy of every id in a
//! `HashMap<String, usize>`. This table stores only indices into the node slice and compares
//! against the nodes' own ids; a lookup can also take an id in parts (`network` `.` `vpc`), so
//! resolving a reference made in a nested stack allocates nothing.

use super::Node;

const EMPTY: usize = usize::MAX;

/// An open-addressing hash table (linear probing, at most half full) of indices into `nodes`.
#[derive(Clone, Default)]
pub(super) struct IdIndex {
    slots: Vec<usize>,
}

impl std::fmt::Debug for IdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdIndex").field("slots", &self.slots.len()).finish()
    }
}

impl IdIndex {
    /// Indexes `nodes` by id; `Err(i)` when node `i` has the id of an earlier node.
    pub(super) fn build(nodes: &[Node]) -> Result<IdIndex, usize> {
        let mut slots = vec![EMPTY; (nodes.len() * 2).next_power_of_two().max(8)];
        let mask = slots.len() - 1;
        for (i, node) in nodes.iter().enumerate() {
            let mut s = hash(&[&node.id]) & mask;
            loop {
                match slots[s] {
                    EMPTY => {
                        slots[s] = i;
                        break;
                    }
                    j if nodes[j].id == node.id => return Err(i),
                    _ => s = (s + 1) & mask,
                }
            }
        }
        Ok(IdIndex { slots })
    }

    /// The index of the node whose id is the concatenation of `parts`.
    pub(super) fn get(&self, nodes: &[Node], parts: &[&str]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut s = hash(parts) & mask;
        loop {
            match self.slots[s] {
                EMPTY => return None,
                j if is_concatenation(&nodes[j].id, parts) => return Some(j),
                _ => s = (s + 1) & mask,
            }
        }
    }
}

/// Whether `id` is `parts` joined.
fn is_concatenation(id: &str, parts: &[&str]) -> bool {
    let mut rest = id;
    for part in parts {
        match rest.strip_prefix(part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// FNV-1a over the bytes of `parts` in sequence, then a multiply-xorshift to spread the bits
/// the table's mask keeps. Logical ids are short, so a byte-wise hash beats `SipHash` here.
fn hash(parts: &[&str]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::aws::ec2::Vpc;

    fn nodes(ids: &[&str]) -> Vec<Node> {
        ids.iter()
            .map(|id| Node {
                id: (*id).to_owned(),
                schema: <Vpc as Resource>::schema(),
                inputs: serde_json::Map::new(),
                dependencies: Vec::new(),
                protect: false,
                destroy_before_create: false,
            })
            .collect()
    }

    #[test]
    fn finds_ids_whole_and_in_parts() {
        let ns = nodes(&["vpc", "network.vpc", "web[0]", r#"web["a"]"#]);
        let index = IdIndex::build(&ns).unwrap();
        assert_eq!(index.get(&ns, &["vpc"]), Some(0));
        assert_eq!(index.get(&ns, &["network", ".", "vpc"]), Some(1));
        assert_eq!(index.get(&ns, &["network.", "vpc"]), Some(1));
        assert_eq!(index.get(&ns, &[r#"web["a"]"#]), Some(3));
        assert_eq!(index.get(&ns, &["network", ".", "vp"]), None);
        assert_eq!(index.get(&ns, &["web"]), None);
    }

    #[test]
    fn reports_the_first_duplicate() {
        assert_eq!(IdIndex::build(&nodes(&["a", "b", "a"])).unwrap_err(), 2);
    }

    #[test]
    fn holds_many_ids() {
        let ids: Vec<String> = (0..5000).map(|i| format!("l{}[{}]", i % 10, i)).collect();
        let ns = nodes(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let index = IdIndex::build(&ns).unwrap();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(index.get(&ns, &[id]), Some(i));
        }
        assert_eq!(IdIndex::default().get(&ns, &["a"]), None);
    }
}
