//! The statements of a plan and the quoting that keeps every name a name: identifiers
//! double-quoted with `"` doubled ([`quote_ident`]), names in comments escaped
//! ([`shown`]), database names in psql's `\connect` quoted twice ([`connect`]).

use std::fmt::Write as _;

use idgraph_sources::ownership::{Function, FunctionKind, Owned, Relation, RelationKind};

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
    for access in &owned.schema_privileges {
        let schema = quote_ident(&access.schema);
        if access.unchecked && !access.tables {
            let _ = writeln!(
                out,
                "-- idgraph's login may not use schema {}: privileges on its tables were not checked, so they are revoked regardless.",
                shown(&access.schema)
            );
        }
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
        if access.has_functions {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {user};"
            );
        }
        if access.has_procedures {
            let _ = writeln!(
                out,
                "REVOKE ALL ON ALL PROCEDURES IN SCHEMA {schema} FROM {user};"
            );
        }
        let _ = writeln!(out, "REVOKE ALL ON SCHEMA {schema} FROM {user};");
    }
    if !owned.database.is_empty() {
        let _ = writeln!(
            out,
            "REVOKE ALL ON DATABASE {} FROM {user};",
            quote_ident(&owned.database)
        );
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
