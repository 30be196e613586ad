//! The statements of a plan and the quoting that keeps every name a name: identifiers
//! double-quoted with `"` doubled ([`quote_ident`]), names in comments escaped
//! ([`shown`]), database names in psql's `\connect` quoted twice ([`connect`]).

use std::fmt::Write as _;

use idgraph_sources::ownership::{
    DefaultAcl, DefaultAclObject, Function, FunctionKind, Grantee, Owned, Relation, RelationKind,
};

use crate::output::{clean, needs_escape};

/// A SQL identifier: double-quoted, embedded `"` doubled. Inside quotes nothing else is
/// special to the server or to psql, so any name stays one identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A name for a comment line: quoted and escaped as Rust's `{:?}` does (`\n`, `\"`,
/// `\u{202e}`), so that a line break in a name cannot end the comment and invisible or
/// reordering characters show.
pub(super) fn shown(name: &str) -> String {
    format!("{name:?}")
}

/// A warning per `SECURITY DEFINER` routine the plan hands over: it will run with
/// `new_owner`'s privileges for everyone who may execute it, a superuser's if `new_owner`
/// is one.
pub(super) fn security_definer_warnings(out: &mut String, owned: &Owned, new_owner: &str) {
    for f in owned.functions.iter().filter(|f| f.security_definer) {
        let _ = writeln!(
            out,
            "-- WARNING: {}.{}({}) is SECURITY DEFINER: once {} owns it, it runs with {}'s \
             privileges for everyone who may execute it. Review who may, or drop it.",
            shown(&f.schema),
            shown(&f.name),
            clean(&f.arguments),
            shown(new_owner),
            shown(new_owner),
        );
    }
}

/// `ALTER … OWNER TO` for everything the user owns: relations (tables before the views
/// over them and the sequences their columns own, which follow their table), routines,
/// then schemas.
pub(super) fn transfer(out: &mut String, owned: &Owned, owner: &str) {
    let mut relations: Vec<&Relation> = owned.relations.iter().collect();
    relations.sort_by_key(|r| (relation_rank(r.kind), &r.schema, &r.name));
    for r in relations {
        let name = format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name));
        // ALTER TABLE changes the owner of a view on Redshift and PostgreSQL alike; the
        // kinds only PostgreSQL has get their own statement.
        let (statement, note) = match r.kind {
            RelationKind::Table | RelationKind::PartitionedTable => ("ALTER TABLE", ""),
            RelationKind::View => ("ALTER TABLE", "  -- view"),
            RelationKind::MaterializedView => ("ALTER MATERIALIZED VIEW", ""),
            RelationKind::ForeignTable => ("ALTER FOREIGN TABLE", ""),
            RelationKind::Sequence => ("ALTER SEQUENCE", ""),
        };
        let _ = writeln!(out, "{statement} {name} OWNER TO {owner};{note}");
    }
    for f in &owned.functions {
        routine(out, f, owner);
    }
    for schema in &owned.schemas {
        let _ = writeln!(
            out,
            "ALTER SCHEMA {} OWNER TO {owner};",
            quote_ident(schema)
        );
    }
}

fn relation_rank(kind: RelationKind) -> u8 {
    match kind {
        RelationKind::Table | RelationKind::PartitionedTable | RelationKind::ForeignTable => 0,
        RelationKind::View | RelationKind::MaterializedView => 1,
        RelationKind::Sequence => 2,
    }
}

fn routine(out: &mut String, f: &Function, owner: &str) {
    let name = format!("{}.{}", quote_ident(&f.schema), quote_ident(&f.name));
    if !safe_arguments(&f.arguments) {
        // The server formats argument types itself, quoting what needs it; anything else
        // is not spliced into a statement. DROP USER then fails and the transaction
        // changes nothing.
        let _ = writeln!(
            out,
            "-- Not rendered: {} {name} has argument types idgraph cannot quote safely ({}); hand it over by hand.",
            f.kind.as_str(),
            shown(&f.arguments)
        );
        return;
    }
    let (statement, arguments) = match f.kind {
        FunctionKind::Function => ("ALTER FUNCTION", f.arguments.as_str()),
        FunctionKind::Procedure => ("ALTER PROCEDURE", f.arguments.as_str()),
        // An aggregate without arguments is written `agg(*)`.
        FunctionKind::Aggregate if f.arguments.is_empty() => ("ALTER AGGREGATE", "*"),
        FunctionKind::Aggregate => ("ALTER AGGREGATE", f.arguments.as_str()),
    };
    let _ = writeln!(out, "{statement} {name}({arguments}) OWNER TO {owner};");
}

/// Whether the server's formatting of argument types can go into a statement: outside
/// double-quoted names only letters, digits, `_`, spaces, `,`, `.`, `[` and `]` (and the
/// parentheses of a type modifier), quotes balanced.
pub(super) fn safe_arguments(arguments: &str) -> bool {
    let mut quoted = false;
    let mut chars = arguments.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                } else {
                    quoted = false;
                }
            } else if needs_escape(c) {
                return false;
            }
        } else if c == '"' {
            quoted = true;
        } else if !(c.is_ascii_alphanumeric()
            || matches!(c, '_' | ' ' | ',' | '.' | '[' | ']' | '(' | ')'))
        {
            return false;
        }
    }
    !quoted
}

/// `REVOKE` on every schema where the user holds privileges, what the schema holds, and
/// the database.
pub(super) fn revoke(out: &mut String, owned: &Owned, user: &str) {
    // Column grants before the tables': on Redshift a table's REVOKE does not reach them.
    for grant in &owned.column_privileges {
        let columns: Vec<String> = grant.columns.iter().map(|c| quote_ident(c)).collect();
        let _ = writeln!(
            out,
            "REVOKE ALL ({}) ON TABLE {}.{} FROM {user};",
            columns.join(", "),
            quote_ident(&grant.schema),
            quote_ident(&grant.table)
        );
    }
    for access in &owned.schema_privileges {
        let schema = quote_ident(&access.schema);
        let _ = writeln!(
            out,
            "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {user};"
        );
        if access.has_sequences {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {user};"
            );
        }
        // EXECUTE is the one privilege on routines, and the form Redshift documents:
        // https://docs.aws.amazon.com/redshift/latest/dg/r_REVOKE.html
        if access.has_functions {
            let _ = writeln!(
                out,
                "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} FROM {user};"
            );
        }
        if access.has_procedures {
            let _ = writeln!(
                out,
                "REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA {schema} FROM {user};"
            );
        }
        let _ = writeln!(out, "REVOKE ALL ON SCHEMA {schema} FROM {user};");
    }
    for language in &owned.language_privileges {
        let _ = writeln!(
            out,
            "REVOKE USAGE ON LANGUAGE {} FROM {user};",
            quote_ident(language)
        );
    }
    if !owned.database.is_empty() {
        let _ = writeln!(
            out,
            "REVOKE ALL ON DATABASE {} FROM {user};",
            quote_ident(&owned.database)
        );
    }
}

/// `ALTER DEFAULT PRIVILEGES` so that no default privilege names `user` (exactly as the
/// catalog holds it) in this database: the ones it set are revoked from every grantee and,
/// for the whole database, put back to the built-in defaults (which leaves no entry
/// behind); the ones other users set that grant to it are revoked from it only.
pub(super) fn default_privileges(out: &mut String, owned: &Owned, user: &str) {
    let quoted = quote_ident(user);
    let mut restored: Vec<(DefaultAclObject, bool)> = Vec::new();
    for acl in &owned.default_acls {
        let scope = |owner: &str| match &acl.schema {
            Some(schema) => format!(
                "ALTER DEFAULT PRIVILEGES FOR USER {} IN SCHEMA {}",
                quote_ident(owner),
                quote_ident(schema)
            ),
            None => format!("ALTER DEFAULT PRIVILEGES FOR USER {}", quote_ident(owner)),
        };
        let object = acl.object.as_sql();
        if acl.owner != user {
            // Another user's default that grants to this one.
            if acl.grantee == Grantee::User(user.to_owned()) {
                let _ = writeln!(
                    out,
                    "{} REVOKE ALL ON {object} FROM {quoted};",
                    scope(&acl.owner)
                );
            }
            continue;
        }
        let global = acl.schema.is_none();
        if global && (acl.grantee == Grantee::User(user.to_owned()) || public_by_default(acl)) {
            // Part of the built-in default: restored below, not revoked.
        } else {
            let _ = writeln!(
                out,
                "{} REVOKE ALL ON {object} FROM {};",
                scope(user),
                grantee_sql(&acl.grantee)
            );
        }
        if global && !restored.iter().any(|(o, _)| *o == acl.object) {
            let has_public = owned.default_acls.iter().any(|a| {
                a.owner == user
                    && a.schema.is_none()
                    && a.object == acl.object
                    && a.grantee == Grantee::Public
            });
            restored.push((acl.object, has_public));
        }
    }
    for (object, has_public) in restored {
        let keyword = object.as_sql();
        let _ = writeln!(
            out,
            "ALTER DEFAULT PRIVILEGES FOR USER {quoted} GRANT ALL ON {keyword} TO {quoted};  -- the built-in default"
        );
        if let (Some(privilege), false) = (public_default(object), has_public) {
            let _ = writeln!(
                out,
                "ALTER DEFAULT PRIVILEGES FOR USER {quoted} GRANT {privilege} ON {keyword} TO PUBLIC;  -- the built-in default"
            );
        }
    }
}

/// What PUBLIC holds on new objects of this kind by default (PostgreSQL's and Redshift's
/// built-in default privileges): EXECUTE on functions and procedures, USAGE on types.
fn public_default(object: DefaultAclObject) -> Option<&'static str> {
    match object {
        DefaultAclObject::Functions | DefaultAclObject::Procedures => Some("EXECUTE"),
        DefaultAclObject::Types => Some("USAGE"),
        _ => None,
    }
}

/// Whether `acl` is PUBLIC's part of the built-in default for its kind of object.
fn public_by_default(acl: &DefaultAcl) -> bool {
    acl.grantee == Grantee::Public && public_default(acl.object).is_some()
}

/// A grantee as `REVOKE … FROM` names it.
fn grantee_sql(grantee: &Grantee) -> String {
    match grantee {
        Grantee::Public => "PUBLIC".to_owned(),
        Grantee::User(name) => quote_ident(name),
        Grantee::Group(name) => format!("GROUP {}", quote_ident(name)),
        Grantee::Role(name) => format!("ROLE {}", quote_ident(name)),
    }
}

/// What a user has cluster-wide, whichever database it was read from: the databases it
/// owns or holds privileges on, the roles granted to it and the roles it owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ClusterWide {
    /// Databases it owns.
    pub(super) databases: Vec<String>,
    /// Databases it holds a privilege on.
    pub(super) database_privileges: Vec<String>,
    /// Roles granted to it.
    pub(super) roles: Vec<String>,
    /// Roles it owns (Redshift).
    pub(super) owned_roles: Vec<String>,
    /// Whether the cluster is Redshift.
    pub(super) redshift: bool,
}

impl ClusterWide {
    /// Adds what `owned` lists.
    pub(super) fn add(&mut self, owned: &Owned) {
        for (list, more) in [
            (&mut self.databases, &owned.databases),
            (&mut self.database_privileges, &owned.database_privileges),
            (&mut self.roles, &owned.roles),
            (&mut self.owned_roles, &owned.owned_roles),
        ] {
            list.extend(more.iter().cloned());
            list.sort();
            list.dedup();
        }
        self.redshift |= owned.redshift;
    }
}

/// The statements that precede `DROP USER` once every database is done: databases and
/// (Redshift) roles it owns go to `owner`; its database privileges and role memberships
/// are revoked. `ALTER DATABASE … OWNER TO` and `ALTER ROLE … OWNER TO`:
/// https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_DATABASE.html,
/// https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_ROLE.html; Redshift revokes a
/// role with `REVOKE ROLE`, PostgreSQL with `REVOKE role`.
pub(super) fn cluster_wide(out: &mut String, wide: &ClusterWide, user: &str, owner: &str) {
    for database in &wide.databases {
        let _ = writeln!(
            out,
            "ALTER DATABASE {} OWNER TO {owner};",
            quote_ident(database)
        );
    }
    for database in &wide.database_privileges {
        let _ = writeln!(
            out,
            "REVOKE ALL ON DATABASE {} FROM {user};",
            quote_ident(database)
        );
    }
    for role in &wide.owned_roles {
        let _ = writeln!(out, "ALTER ROLE {} OWNER TO {owner};", quote_ident(role));
    }
    let keyword = if wide.redshift { "ROLE " } else { "" };
    for role in &wide.roles {
        let _ = writeln!(out, "REVOKE {keyword}{} FROM {user};", quote_ident(role));
    }
}

fn has_upper(name: &str) -> bool {
    name.chars().any(char::is_uppercase)
}

/// Whether an object name in the user's transaction has upper-case letters, which Redshift
/// folds away even when quoted unless `enable_case_sensitive_identifier` is on. User names
/// are exempt: Redshift always keeps the case of a quoted user name.
pub(super) fn needs_case_sensitivity(owned: &Owned) -> bool {
    has_upper(&owned.database)
        || owned
            .relations
            .iter()
            .any(|r| has_upper(&r.schema) || has_upper(&r.name))
        || owned
            .functions
            .iter()
            .any(|f| has_upper(&f.schema) || has_upper(&f.name) || has_upper(&f.arguments))
        || owned.schemas.iter().any(|s| has_upper(s))
        || owned.schema_privileges.iter().any(|s| has_upper(&s.schema))
        || owned.column_privileges.iter().any(|c| {
            has_upper(&c.schema) || has_upper(&c.table) || c.columns.iter().any(|n| has_upper(n))
        })
        || owned.language_privileges.iter().any(|l| has_upper(l))
        || owned
            .default_acls
            .iter()
            .any(|d| d.schema.as_deref().is_some_and(has_upper))
        || [
            &owned.databases,
            &owned.database_privileges,
            &owned.roles,
            &owned.owned_roles,
        ]
        .iter()
        .any(|names| names.iter().any(|n| has_upper(n)))
}

/// psql's `\connect` to `database` on `host`:`port`, keeping the login of the connection
/// before it (`-reuse-previous=on`), or `None` when a name holds a control character that
/// psql's line-based meta-commands cannot carry.
///
/// Always a connection string, so that no database name is taken for one (psql reads a
/// `dbname` holding `=` as a connection string): each value single-quoted with `\` and `'`
/// backslash-escaped, as libpq's connection strings take them; then the whole string
/// double-quoted for psql, which reads `\connect`'s arguments as identifiers: inside
/// double quotes everything is literal but `""`, which stands for `"`.
pub(super) fn connect(database: &str, host: &str, port: u16) -> Option<String> {
    if [database, host]
        .iter()
        .any(|v| v.chars().any(char::is_control))
    {
        return None;
    }
    let value = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let conninfo = format!(
        "dbname={} host={} port={port}",
        value(database),
        value(host)
    );
    Some(format!(
        "\\connect -reuse-previous=on \"{}\"",
        conninfo.replace('"', "\"\"")
    ))
}
