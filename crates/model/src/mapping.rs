//! How database user names map to identities: the `[mapping]` section of the config.

use serde::{Deserialize, Serialize};

/// An attribute of an Identity Center user that a database user name can equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchOn {
    /// `UserName`, compared case-insensitively.
    UserName,
    /// The primary email, compared case-insensitively.
    Email,
}

/// Matching rules for database user names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// Prefixes a federated login puts before the person's name (`IAM:`, `IAMA:`, the
    /// Identity Center namespace `AWSIDC:`), compared case-insensitively; the longest wins.
    pub prefixes: Vec<String>,
    /// Prefixes, among `prefixes`, that mark IAM roles (`IAMR:`): no source covers roles,
    /// so these users are accounted for and never reported.
    pub role_prefixes: Vec<String>,
    /// Identity Center attributes the rest of a name is compared with, tried in order.
    pub match_on: Vec<MatchOn>,
    /// Users the database itself owns (`rdsdb`); never findings.
    pub system_users: Vec<String>,
    /// Local users an operator vouches for (service accounts); never findings.
    pub local_allowlist: Vec<String>,
    /// A database user with no login for this many days is a `dormant_db_user` finding,
    /// once idgraph has watched the target's logins (and seen the user) that long. Off
    /// when absent.
    pub dormant_after_days: Option<u32>,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            prefixes: ["IAM:", "IAMA:", "IAMR:", "AWSIDC:"]
                .map(String::from)
                .to_vec(),
            role_prefixes: vec!["IAMR:".to_owned()],
            match_on: vec![MatchOn::UserName, MatchOn::Email],
            system_users: vec!["rdsdb".to_owned()],
            local_allowlist: Vec::new(),
            dormant_after_days: None,
        }
    }
}

/// What a database user name says about itself before any identity is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm<'a> {
    /// A person's federated login: the prefix and the rest.
    Prefixed {
        /// The prefix as the name holds it, e.g. `IAMA:`.
        prefix: &'a str,
        /// What follows it: a user name or an email.
        rest: &'a str,
    },
    /// An IAM role's login: the prefix and the role name.
    Role {
        /// The role prefix as the name holds it, e.g. `IAMR:`.
        prefix: &'a str,
        /// The role name.
        rest: &'a str,
    },
    /// No known prefix: a local user, or a bare `GetClusterCredentials` user.
    Bare,
}

impl Mapping {
    /// Splits `name` by the configured prefixes plus a target's own namespaces
    /// (given without their colon).
    pub fn classify<'a>(&self, name: &'a str, namespaces: &[String]) -> NameForm<'a> {
        let mut best: Option<(usize, bool)> = None;
        let consider = |prefix: &str, role: bool, best: &mut Option<(usize, bool)>| {
            let n = prefix.len();
            if n > 0
                && name.len() >= n
                && name.is_char_boundary(n)
                && name[..n].eq_ignore_ascii_case(prefix)
                && best.is_none_or(|(len, _)| n > len)
            {
                *best = Some((n, role));
            }
        };
        for prefix in &self.prefixes {
            let role = self
                .role_prefixes
                .iter()
                .any(|r| r.eq_ignore_ascii_case(prefix));
            consider(prefix, role, &mut best);
        }
        for prefix in &self.role_prefixes {
            consider(prefix, true, &mut best);
        }
        for ns in namespaces {
            consider(&format!("{ns}:"), false, &mut best);
        }
        match best {
            Some((n, true)) => NameForm::Role {
                prefix: &name[..n],
                rest: &name[n..],
            },
            Some((n, false)) => NameForm::Prefixed {
                prefix: &name[..n],
                rest: &name[n..],
            },
            None => NameForm::Bare,
        }
    }

    /// The name with any known prefix removed.
    pub fn strip<'a>(&self, name: &'a str, namespaces: &[String]) -> &'a str {
        match self.classify(name, namespaces) {
            NameForm::Prefixed { rest, .. } | NameForm::Role { rest, .. } => rest,
            NameForm::Bare => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_case_is_ignored() {
        let mut mapping = Mapping::default();
        mapping.prefixes.push("IAMA:X".to_owned());
        assert_eq!(
            mapping.classify("iama:bob", &[]),
            NameForm::Prefixed {
                prefix: "iama:",
                rest: "bob"
            }
        );
        assert_eq!(
            mapping.classify("IAMA:Xbob", &[]),
            NameForm::Prefixed {
                prefix: "IAMA:X",
                rest: "bob"
            }
        );
        assert_eq!(
            mapping.classify("IAMR:loader", &[]),
            NameForm::Role {
                prefix: "IAMR:",
                rest: "loader"
            }
        );
        assert_eq!(mapping.classify("bob", &[]), NameForm::Bare);
        assert_eq!(mapping.classify("IAM", &[]), NameForm::Bare);
    }

    #[test]
    fn target_namespace_is_a_prefix() {
        let mapping = Mapping::default();
        assert_eq!(
            mapping.classify("CORP:ann@example.com", &["CORP".to_owned()]),
            NameForm::Prefixed {
                prefix: "CORP:",
                rest: "ann@example.com"
            }
        );
        assert_eq!(mapping.classify("CORP:ann", &[]), NameForm::Bare);
    }

    #[test]
    fn multibyte_names_do_not_panic() {
        let mapping = Mapping::default();
        assert_eq!(mapping.classify("ü", &[]), NameForm::Bare);
        assert_eq!(mapping.classify("IAü:x", &[]), NameForm::Bare);
    }
}
