//! Access control lists as the catalog prints them, parsed in Rust.
//!
//! Discovery reads every ACL column as `array_to_string(acl, ',')`, which Redshift and
//! PostgreSQL both answer (Amazon's own `v_generate_user_grant_revoke_ddl` admin view reads
//! ACLs the same way), so that no per-row `has_*_privilege` call is needed. Each item is
//! `grantee=privileges/grantor`:
//!
//! - an empty grantee is `PUBLIC`;
//! - Redshift writes a group as `group name`:
//!   <https://docs.aws.amazon.com/redshift/latest/dg/r_PG_DEFAULT_ACL.html>. AWS does not
//!   say how an RBAC role appears in an ACL (it documents role grants through
//!   `SVV_RELATION_PRIVILEGES` and friends, whose `identity_type` is `role`:
//!   <https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_RELATION_PRIVILEGES.html>), so
//!   a `role name` item is read the way a group's is; a grant to a role never keeps a
//!   user from being dropped, so discovery only has to tell it from a user's;
//! - a name that is not a plain identifier (letters, digits, `_`) is double-quoted, with
//!   `"` doubled inside, so commas, `=`, `/` and spaces appear only inside quotes;
//! - each privilege is one letter (`arwdDxtXUCTc…`; Redshift adds `R`, `D` for DROP, `P`,
//!   `A`), and a `*` after a letter is the grant option.
//!
//! Redshift never lets a role take a user's name
//! (<https://docs.aws.amazon.com/redshift/latest/dg/r_role-usage-notes.html>), so an
//! unprefixed name that equals a user's is that user.

use std::fmt;

/// Who an ACL item grants to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    /// `PUBLIC`: every user, now and later.
    Public,
    /// A user (on PostgreSQL, any role printed without a prefix), exactly as the catalog
    /// holds the name.
    User(String),
    /// A Redshift group (`group name`).
    Group(String),
    /// A Redshift role (`role name`).
    Role(String),
}

impl fmt::Display for Grantee {
    /// `PUBLIC`, `user "name"`, `group "name"`, `role "name"`: for sentences, not SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public => write!(f, "PUBLIC"),
            Self::User(name) => write!(f, "user {name:?}"),
            Self::Group(name) => write!(f, "group {name:?}"),
            Self::Role(name) => write!(f, "role {name:?}"),
        }
    }
}

/// One entry of an access control list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclItem {
    /// Who holds the privileges.
    pub grantee: Grantee,
    /// The privilege letters held, in the order the catalog prints them, without `*`.
    pub privileges: String,
    /// The letters among [`privileges`](Self::privileges) held with the grant option.
    pub grantable: String,
    /// Who granted them, exactly as the catalog holds the name.
    pub grantor: String,
}

/// An ACL text that does not have the shape `grantee=privileges/grantor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ACL item {item:?}: {reason}")]
pub struct AclError {
    /// The item, as read.
    pub item: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses `array_to_string(acl, ',')`: every item, in order. An empty text is an empty
/// list (the catalog's `{}`).
///
/// # Errors
///
/// [`AclError`] when an item is not `grantee=privileges/grantor`, or a quote is not
/// closed.
pub fn parse(text: &str) -> Result<Vec<AclItem>, AclError> {
    split_items(text)?
        .into_iter()
        .filter(|item| !item.is_empty())
        .map(parse_item)
        .collect()
}

/// The items of the list: split on commas outside double quotes.
fn split_items(text: &str) -> Result<Vec<&str>, AclError> {
    let mut items = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            // A doubled quote inside a quoted name toggles twice: still quoted.
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(AclError {
            item: text.to_owned(),
            reason: "a double quote is not closed",
        });
    }
    items.push(&text[start..]);
    Ok(items)
}

fn parse_item(item: &str) -> Result<AclItem, AclError> {
    let error = |reason| AclError {
        item: item.to_owned(),
        reason,
    };
    let (grantee, rest) = if let Some(rest) = item.strip_prefix("group ") {
        let (name, rest) = name(rest, '=').ok_or_else(|| error("bad group name"))?;
        (Grantee::Group(name), rest)
    } else if let Some(rest) = item.strip_prefix("role ") {
        let (name, rest) = name(rest, '=').ok_or_else(|| error("bad role name"))?;
        (Grantee::Role(name), rest)
    } else if item.starts_with('=') {
        (Grantee::Public, item)
    } else {
        let (name, rest) = name(item, '=').ok_or_else(|| error("bad grantee name"))?;
        (Grantee::User(name), rest)
    };
    let rest = rest
        .strip_prefix('=')
        .ok_or_else(|| error("no '=' after the grantee"))?;
    let (letters, grantor) = rest
        .split_once('/')
        .ok_or_else(|| error("no '/' before the grantor"))?;
    let mut privileges = String::new();
    let mut grantable = String::new();
    for c in letters.chars() {
        match c {
            '*' => match privileges.chars().last() {
                Some(last) => grantable.push(last),
                None => return Err(error("'*' before any privilege")),
            },
            c if c.is_ascii_alphabetic() => privileges.push(c),
            _ => return Err(error("a privilege is not a letter")),
        }
    }
    let (grantor, rest) = name(grantor, '\0').ok_or_else(|| error("bad grantor name"))?;
    if !rest.is_empty() || grantor.is_empty() {
        return Err(error("bad grantor name"));
    }
    Ok(AclItem {
        grantee,
        privileges,
        grantable,
        grantor,
    })
}

/// A name at the start of `text`, quoted or bare, and what follows it. A bare name runs
/// to `end` (or the end of the text) and holds no quote; a quoted one runs to its
/// closing quote.
fn name(text: &str, end: char) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let stop = text.find(end).unwrap_or(text.len());
        let bare = &text[..stop];
        // The server quotes any name with a quote in it.
        let valid = !bare.is_empty() && !bare.contains('"');
        return valid.then(|| (bare.to_owned(), &text[stop..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        if chars.peek().is_some_and(|&(_, next)| next == '"') {
            chars.next();
            out.push('"');
            continue;
        }
        return Some((out, &quoted[i + 1..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How PostgreSQL's `putid` prints a name: bare if it is all ASCII letters, digits
    /// and `_`, else quoted with `"` doubled.
    fn putid(name: &str) -> String {
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            name.to_owned()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    fn item(grantee: Grantee, privileges: &str, grantable: &str, grantor: &str) -> AclItem {
        AclItem {
            grantee,
            privileges: privileges.to_owned(),
            grantable: grantable.to_owned(),
            grantor: grantor.to_owned(),
        }
    }

    #[test]
    fn plain_public_group_and_role_items() {
        let acl =
            parse("admin=arwdDxt/admin,=r/admin,group analysts=r*w/admin,role rr=X/admin").unwrap();
        assert_eq!(
            acl,
            vec![
                item(Grantee::User("admin".into()), "arwdDxt", "", "admin"),
                item(Grantee::Public, "r", "", "admin"),
                item(Grantee::Group("analysts".into()), "rw", "r", "admin"),
                item(Grantee::Role("rr".into()), "X", "", "admin"),
            ]
        );
    }

    #[test]
    fn the_grant_option_marks_the_letter_before_it() {
        let acl = parse("dbuser=r*a*w*d*x*X*/admin").unwrap();
        assert_eq!(acl[0].privileges, "rawdxX");
        assert_eq!(acl[0].grantable, "rawdxX");
        let acl = parse("u=arwdRxtXUCTDPA/admin").unwrap();
        assert_eq!(acl[0].privileges, "arwdRxtXUCTDPA");
        assert_eq!(acl[0].grantable, "");
    }

    #[test]
    fn an_empty_list_is_empty() {
        assert_eq!(parse("").unwrap(), Vec::new());
    }

    #[test]
    fn hostile_names_parse_exactly() {
        let long = "é".repeat(63) + "x"; // 127 bytes: Redshift's longest name.
        assert_eq!(long.len(), 127);
        let names = [
            "IAMA:o'brien\"; DROP TABLE canary; --@example.com",
            "a,b",
            "x=y/z",
            "\"",
            "\"\"",
            "group evil",
            "role evil",
            "sp ace",
            "semi;colon",
            "new\nline",
            "ünïcødé",
            "=r/admin",
            ",=",
            long.as_str(),
        ];
        for grantee in names {
            for grantor in names {
                let text = format!(
                    "{}=r*w/{},=U/{},group {}=C/{}",
                    putid(grantee),
                    putid(grantor),
                    putid(grantor),
                    putid(grantee),
                    putid(grantor)
                );
                let acl = parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                assert_eq!(
                    acl,
                    vec![
                        item(Grantee::User(grantee.into()), "rw", "r", grantor),
                        item(Grantee::Public, "U", "", grantor),
                        item(Grantee::Group(grantee.into()), "C", "", grantor),
                    ],
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn bare_unicode_names_parse_too() {
        // Outside the C locale the server may print non-ASCII letters bare.
        let acl = parse("ünï=r/bø").unwrap();
        assert_eq!(acl, vec![item(Grantee::User("ünï".into()), "r", "", "bø")]);
    }

    #[test]
    fn malformed_items_are_errors() {
        for text in [
            "admin",
            "admin=r",
            "\"open=r/admin",
            "a=r/\"open",
            "a=*r/admin",
            "a=r1/admin",
            "a=r/",
            "a=r/b\"c\"",
            "group =r/admin",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
    }
}
