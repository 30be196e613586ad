//! What discovery returns: plain values a plan renders.

use std::fmt;

pub use super::acl::Grantee;

/// What one database user owns and where it holds privileges, in one database. Every list
/// is sorted and free of repeats; system schemas are never listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// Tables, views, materialized views, foreign tables and sequences the user owns,
    /// sorted by schema and name. Redshift's materialized views are not here (they are
    /// [`blockers`](Self::blockers)), nor are the `mv_tbl__…` tables behind them.
    pub relations: Vec<Relation>,
    /// Functions, procedures and aggregates the user owns, sorted by schema, name and
    /// arguments.
    pub functions: Vec<Function>,
    /// Schemas the user owns (external schemas too), sorted.
    pub schemas: Vec<String>,
    /// Schemas where the user holds a privilege directly: on the schema itself, or on a
    /// table, view, column, sequence or routine in it that it does not own. Sorted by
    /// name.
    pub schema_privileges: Vec<SchemaAccess>,
    /// Tables and views the user does not own but holds a privilege on, granted to the
    /// user itself (not through `PUBLIC`, a group or a role), sorted by schema and name.
    pub table_privileges: Vec<Relation>,
    /// Columns the user holds a privilege on (column grants, `GRANT SELECT (a) ON t`),
    /// one entry per table, sorted.
    pub column_privileges: Vec<ColumnGrant>,
    /// Functions, procedures and aggregates the user does not own but was granted
    /// `EXECUTE` on directly, sorted.
    pub function_privileges: Vec<Function>,
    /// Languages the user was granted `USAGE` on, sorted.
    pub language_privileges: Vec<String>,
    /// Databases of the cluster the user owns (`pg_database.datdba`), sorted. The catalog
    /// lists every database, not only the one read.
    pub databases: Vec<String>,
    /// Databases of the cluster where the user was granted a privilege (`CREATE`,
    /// `TEMP`, `CONNECT`, …) directly, sorted.
    pub database_privileges: Vec<String>,
    /// Default privileges that name the user: those it set for the objects it will
    /// create (`owner` is the user; one entry per grantee, the user itself included) and
    /// those other users set that grant to it (`grantee` is the user). Sorted.
    pub default_acls: Vec<DefaultAcl>,
    /// Roles granted to the user (PostgreSQL `pg_auth_members`, Redshift
    /// `svv_user_grants`), sorted.
    pub roles: Vec<String>,
    /// Redshift roles the user owns (`svv_roles.role_owner`), sorted. PostgreSQL roles
    /// have no owner.
    pub owned_roles: Vec<String>,
    /// What keeps `DROP USER` from succeeding and SQL in the plan cannot portably fix,
    /// sorted: the user's statements must not run until a person has dealt with each.
    pub blockers: Vec<Blocker>,
    /// The database all of this was read from (`current_database()`): a cluster holds
    /// others, which this says nothing about beyond [`databases`](Self::databases) and
    /// [`database_privileges`](Self::database_privileges).
    pub database: String,
    /// Whether the catalog is Redshift's (`version()` names it): Redshift folds quoted
    /// identifiers to lower case unless `enable_case_sensitive_identifier` is on.
    pub redshift: bool,
}

/// A relation in a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relation {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The relation's name, exactly as the catalog holds it.
    pub name: String,
    /// What kind of relation it is.
    pub kind: RelationKind,
}

/// The kinds of relation a plan hands over (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// `r`: an ordinary table.
    Table,
    /// `p`: a partitioned table (PostgreSQL).
    PartitionedTable,
    /// `f`: a foreign table (PostgreSQL).
    ForeignTable,
    /// `v`: a view (on Redshift, late-binding views too).
    View,
    /// `m`: a materialized view (PostgreSQL).
    MaterializedView,
    /// `S`: a sequence (PostgreSQL).
    Sequence,
}

impl RelationKind {
    /// The kind of a `pg_class.relkind`, if a plan deals with it.
    pub fn from_relkind(relkind: &str) -> Option<Self> {
        match relkind {
            "r" => Some(Self::Table),
            "p" => Some(Self::PartitionedTable),
            "f" => Some(Self::ForeignTable),
            "v" => Some(Self::View),
            "m" => Some(Self::MaterializedView),
            "S" => Some(Self::Sequence),
            _ => None,
        }
    }

    /// A readable name: `table`, `view`, `materialized view`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::PartitionedTable => "partitioned table",
            Self::ForeignTable => "foreign table",
            Self::View => "view",
            Self::MaterializedView => "materialized view",
            Self::Sequence => "sequence",
        }
    }
}

/// A function, procedure or aggregate in a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Function {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The function's name, exactly as the catalog holds it.
    pub name: String,
    /// The argument types as the server formats them
    /// (`pg_catalog.oidvectortypes(proargtypes)`: `integer, character varying`), which is
    /// how `ALTER FUNCTION` identifies an overload. Type names that need quoting come back
    /// quoted.
    pub arguments: String,
    /// Function, procedure or aggregate: each has its own `ALTER` statement.
    pub kind: FunctionKind,
    /// `SECURITY DEFINER` (`prosecdef`): the routine runs with its owner's privileges, so
    /// handing it to another owner changes what it may do for everyone who may call it.
    pub security_definer: bool,
}

/// The kinds of routine a plan hands over (`prokind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunctionKind {
    /// `f` (and PostgreSQL's window functions, `w`): `ALTER FUNCTION`.
    Function,
    /// `p`: `ALTER PROCEDURE`.
    Procedure,
    /// `a`: `ALTER AGGREGATE`.
    Aggregate,
}

impl FunctionKind {
    pub(super) fn from_prokind(prokind: &str) -> Self {
        match prokind {
            "p" => Self::Procedure,
            "a" => Self::Aggregate,
            _ => Self::Function,
        }
    }

    /// A readable name: `function`, `procedure`, `aggregate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Procedure => "procedure",
            Self::Aggregate => "aggregate",
        }
    }
}

/// A schema where a user holds privileges, and what in it a revocation must cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaAccess {
    /// The schema, exactly as the catalog holds it.
    pub schema: String,
    /// The user was granted `USAGE` on the schema.
    pub usage: bool,
    /// The user was granted `CREATE` on the schema.
    pub create: bool,
    /// The user holds a privilege on a table or view in the schema, or on a column of
    /// one, that it does not own (`REVOKE ALL ON ALL TABLES IN SCHEMA` revokes both).
    pub tables: bool,
    /// The user holds a privilege on a function or aggregate in the schema.
    pub has_functions: bool,
    /// The user holds a privilege on a procedure in the schema.
    pub has_procedures: bool,
    /// The user holds a privilege on a sequence in the schema (PostgreSQL;
    /// `REVOKE … ON ALL TABLES` skips sequences).
    pub has_sequences: bool,
}

/// Columns of one table a user holds privileges on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnGrant {
    /// The table's schema, exactly as the catalog holds it.
    pub schema: String,
    /// The table or view, exactly as the catalog holds it.
    pub table: String,
    /// The columns, sorted.
    pub columns: Vec<String>,
}

/// One grantee's entry in the default privileges one user set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DefaultAcl {
    /// The user whose future objects the entry applies to (`FOR USER owner`).
    pub owner: String,
    /// The schema it is limited to (`IN SCHEMA`), `None` for the whole database.
    pub schema: Option<String>,
    /// The kind of object it applies to.
    pub object: DefaultAclObject,
    /// Who the privileges go to. An entry of the owner itself with no privileges means
    /// the owner revoked its own default privileges.
    pub grantee: Grantee,
    /// The privilege letters granted (as in an ACL: `r` SELECT, `X` EXECUTE, …).
    pub privileges: String,
    /// The letters among `privileges` granted with the grant option.
    pub grantable: String,
}

/// The kinds of object default privileges apply to (`defaclobjtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefaultAclObject {
    /// `r`: tables and views (`ON TABLES`).
    Tables,
    /// `S`: sequences (PostgreSQL).
    Sequences,
    /// `f`: functions (on PostgreSQL, procedures too).
    Functions,
    /// `p`: procedures (Redshift).
    Procedures,
    /// `T`: types (PostgreSQL).
    Types,
    /// `n`: schemas (PostgreSQL).
    Schemas,
    /// `L`: large objects (PostgreSQL 17 and later).
    LargeObjects,
}

impl DefaultAclObject {
    /// The kind of a `defaclobjtype`, if known.
    pub fn from_objtype(objtype: &str) -> Option<Self> {
        match objtype {
            "r" => Some(Self::Tables),
            "S" => Some(Self::Sequences),
            "f" => Some(Self::Functions),
            "p" => Some(Self::Procedures),
            "T" => Some(Self::Types),
            "n" => Some(Self::Schemas),
            "L" => Some(Self::LargeObjects),
            _ => None,
        }
    }

    /// The keyword of `ALTER DEFAULT PRIVILEGES … ON <keyword>`: `TABLES`, `FUNCTIONS`, …
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Tables => "TABLES",
            Self::Sequences => "SEQUENCES",
            Self::Functions => "FUNCTIONS",
            Self::Procedures => "PROCEDURES",
            Self::Types => "TYPES",
            Self::Schemas => "SCHEMAS",
            Self::LargeObjects => "LARGE OBJECTS",
        }
    }
}

/// Something that keeps `DROP USER` from succeeding and that the plan's SQL cannot fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blocker {
    /// What kind of thing it is.
    pub kind: BlockerKind,
    /// The object, as a person reads it (identifiers double-quoted).
    pub object: String,
    /// One sentence: what it is and what a person must do.
    pub sentence: String,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sentence)
    }
}

/// The kinds of [`Blocker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockerKind {
    /// A Redshift datashare the user owns.
    Datashare,
    /// A Redshift Python UDF library the user owns.
    Library,
    /// A Redshift ML model the user owns.
    Model,
    /// A Redshift materialized view the user owns.
    MaterializedView,
    /// A privilege the user granted to someone through a grant option, on an object it
    /// does not own.
    GrantOption,
    /// Default privileges of a kind discovery does not know.
    DefaultAcl,
    /// Any other object the user owns or holds privileges on, which PostgreSQL's
    /// `pg_shdepend` lists and the plan does not handle (a type, a foreign server, …).
    OtherObject,
}
