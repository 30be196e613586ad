//! A digest of a snapshot's content that does not depend on the order sources list it in.

use sha2::{Digest, Sha256};

use crate::identity::{AsSnapshot, SnapshotRef};

/// SHA-256 over length-prefixed fields, so that no two different records hash the same
/// input: the one encoding of snapshot digests and of the store's run chain.
pub struct Canonical(Sha256);

impl Default for Canonical {
    fn default() -> Self {
        Self::new()
    }
}

impl Canonical {
    /// An empty record.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Bytes as they are, without a length: only for a fixed-size or leading value.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// A string, its length first.
    pub fn text(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    /// An optional string: a 0 byte, or a 1 byte and the string.
    pub fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update([0]),
            Some(s) => {
                self.0.update([1]);
                self.text(s);
            }
        }
    }

    /// An integer, little-endian.
    pub fn int(&mut self, n: i64) {
        self.0.update(n.to_le_bytes());
    }

    /// An optional integer: a 0 byte, or a 1 byte and the integer.
    pub fn opt_int(&mut self, n: Option<i64>) {
        match n {
            None => self.0.update([0]),
            Some(n) => {
                self.0.update([1]);
                self.int(n);
            }
        }
    }

    /// A boolean as one byte.
    pub fn flag(&mut self, b: bool) {
        self.0.update([u8::from(b)]);
    }

    /// The SHA-256 of everything fed.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The hex SHA-256 of the snapshot's content, whatever order the source listed it in.
///
/// Each user is hashed on its own; the sorted user hashes are then hashed with the
/// snapshot's kind and header. Sorting 32-byte hashes rather than the users themselves
/// keeps a 200,000-user digest a sequential pass over memory.
pub fn digest(snapshot: &(impl AsSnapshot + ?Sized)) -> String {
    let mut h = Canonical::new();
    let users: Vec<[u8; 32]> = match snapshot.view() {
        SnapshotRef::Idp(users) => {
            h.text("idp");
            users
                .iter()
                .map(|u| {
                    let mut h = Canonical::new();
                    h.text(&u.id);
                    h.opt_text(u.external_id.as_deref());
                    h.text(&u.user_name);
                    h.opt_text(u.email.as_deref());
                    h.flag(u.active);
                    h.finish()
                })
                .collect()
        }
        SnapshotRef::IdentityCenter(users) => {
            h.text("identity_center");
            users
                .iter()
                .map(|u| {
                    let mut h = Canonical::new();
                    h.text(&u.user_id);
                    h.text(&u.user_name);
                    h.opt_text(u.email.as_deref());
                    let mut ids: Vec<_> = u.external_ids.iter().collect();
                    ids.sort_unstable_by(|a, b| (&a.issuer, &a.id).cmp(&(&b.issuer, &b.id)));
                    h.0.update((ids.len() as u64).to_le_bytes());
                    for id in ids {
                        h.text(&id.issuer);
                        h.text(&id.id);
                    }
                    h.finish()
                })
                .collect()
        }
        SnapshotRef::Target(target) => {
            h.text("target");
            h.text(&target.name);
            h.opt_text(target.master_user.as_deref());
            h.opt_text(target.login_user.as_deref());
            let mut namespaces = target.namespaces.clone();
            namespaces.sort_unstable();
            h.0.update((namespaces.len() as u64).to_le_bytes());
            for ns in &namespaces {
                h.text(ns);
            }
            target
                .users
                .iter()
                .map(|u| {
                    let mut h = Canonical::new();
                    h.text(&u.name);
                    h.flag(u.superuser);
                    h.finish()
                })
                .collect()
        }
    };
    let mut users = users;
    users.sort_unstable();
    h.0.update((users.len() as u64).to_le_bytes());
    for user in &users {
        h.0.update(user);
    }
    hex::encode(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DbUser, TargetSnapshot};

    fn user(name: &str, superuser: bool) -> DbUser {
        DbUser {
            name: name.to_owned(),
            sysid: None,
            superuser,
        }
    }

    #[test]
    fn order_does_not_matter_but_content_does() {
        let a = TargetSnapshot::new("t", vec![user("a", false), user("b", false)]);
        let b = TargetSnapshot::new("t", vec![user("b", false), user("a", false)]);
        let c = TargetSnapshot::new("t", vec![user("b", true), user("a", false)]);
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(digest(&a).len(), 64);
    }

    #[test]
    fn which_user_holds_a_value_matters() {
        use crate::identity::IdpUser;
        let person = |id: &str, active: bool| IdpUser {
            id: id.to_owned(),
            external_id: None,
            user_name: format!("{id}@example.com"),
            email: None,
            active,
            last_modified: None,
        };
        let a = vec![person("1", true), person("2", false)];
        let b = vec![person("2", false), person("1", true)];
        let swapped = vec![person("1", false), person("2", true)];
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&swapped));
        assert_ne!(digest(&a), digest(&vec![person("1", true)]));
    }
}
