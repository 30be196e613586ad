//! A digest of a snapshot's content that does not depend on the order sources list it in.

use sha2::{Digest, Sha256};

use crate::identity::Snapshot;

/// Feeds length-prefixed fields so that no two different snapshots hash the same input.
struct Canonical(Sha256);

impl Canonical {
    fn str(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update([0]),
            Some(s) => {
                self.0.update([1]);
                self.str(s);
            }
        }
    }

    fn flag(&mut self, b: bool) {
        self.0.update([b as u8]);
    }
}

/// The hex SHA-256 of the snapshot's content, with users in a canonical order.
pub fn digest(snapshot: &Snapshot) -> String {
    let mut h = Canonical(Sha256::new());
    match snapshot {
        Snapshot::Idp(users) => {
            h.str("idp");
            let mut users: Vec<_> = users.iter().collect();
            users.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            for u in users {
                h.str(&u.id);
                h.opt(u.external_id.as_deref());
                h.str(&u.user_name);
                h.opt(u.email.as_deref());
                h.flag(u.active);
            }
        }
        Snapshot::IdentityCenter(users) => {
            h.str("identity_center");
            let mut users: Vec<_> = users.iter().collect();
            users.sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
            for u in users {
                h.str(&u.user_id);
                h.str(&u.user_name);
                h.opt(u.email.as_deref());
                let mut ids: Vec<_> = u.external_ids.iter().collect();
                ids.sort_unstable_by(|a, b| (&a.issuer, &a.id).cmp(&(&b.issuer, &b.id)));
                h.0.update((ids.len() as u64).to_le_bytes());
                for id in ids {
                    h.str(&id.issuer);
                    h.str(&id.id);
                }
            }
        }
        Snapshot::Target(target) => {
            h.str("target");
            h.str(&target.name);
            h.opt(target.master_user.as_deref());
            h.opt(target.login_user.as_deref());
            let mut namespaces = target.namespaces.clone();
            namespaces.sort_unstable();
            for ns in &namespaces {
                h.str(ns);
            }
            let mut users: Vec<_> = target.users.iter().collect();
            users.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            for u in users {
                h.str(&u.name);
                h.flag(u.superuser);
            }
        }
    }
    hex::encode(h.0.finalize())
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
        let a = Snapshot::Target(TargetSnapshot::new(
            "t",
            vec![user("a", false), user("b", false)],
        ));
        let b = Snapshot::Target(TargetSnapshot::new(
            "t",
            vec![user("b", false), user("a", false)],
        ));
        let c = Snapshot::Target(TargetSnapshot::new(
            "t",
            vec![user("b", true), user("a", false)],
        ));
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(digest(&a).len(), 64);
    }
}
