//! Which of the relations and columns discovery may read this catalog has, asked in one
//! query that cannot fail, before any query that could: a failed query aborts the
//! transaction, and Redshift has no savepoints.

use std::collections::BTreeSet;

use super::Reader;
use crate::SourceError;

/// Relations that only one of the two systems has (or that a login may lack).
const RELATIONS: [&str; 10] = [
    // Redshift's pg_proc with prokind:
    // https://docs.aws.amazon.com/redshift/latest/dg/r_PG_PROC_INFO.html
    "pg_proc_info",
    // Redshift's pg_attribute with column ACLs:
    // https://docs.aws.amazon.com/redshift/latest/dg/r_PG_ATTRIBUTE_INFO.html
    "pg_attribute_info",
    // PostgreSQL's role memberships.
    "pg_auth_members",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_USER_GRANTS.html
    "svv_user_grants",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_ROLES.html
    "svv_roles",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_DATASHARES.html
    "svv_datashares",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_PG_LIBRARY.html
    "pg_library",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_ML_MODEL_INFO.html
    "svv_ml_model_info",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_MV_INFO.html
    "svv_mv_info",
    // https://docs.aws.amazon.com/redshift/latest/dg/r_STV_MV_INFO.html
    "stv_mv_info",
];

/// Columns whose presence decides how a catalog is read, and whether discovery reads
/// that relation qualified (`pg_catalog.…`, so only `pg_catalog`'s counts) or by the
/// `search_path` (Redshift's own views, wherever Redshift keeps them).
const COLUMNS: [(&str, &str, bool); 5] = [
    ("pg_proc", "prokind", true),
    ("pg_attribute", "attacl", true),
    ("pg_attribute_info", "attacl", false),
    ("pg_default_acl", "defaclrole", true),
    // Redshift names the owner of default privileges defacluser:
    // https://docs.aws.amazon.com/redshift/latest/dg/r_PG_DEFAULT_ACL.html
    ("pg_default_acl", "defacluser", false),
];

/// What the catalog has of [`RELATIONS`] and [`COLUMNS`].
#[derive(Debug, Default)]
pub(super) struct Surface {
    relations: BTreeSet<String>,
    columns: BTreeSet<(String, String)>,
}

/// How this catalog tells procedures and aggregates from functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routines {
    /// PostgreSQL 11 and later: `pg_proc.prokind`.
    ProKind,
    /// Redshift: `pg_proc_info.prokind`; `pg_proc` has no such column.
    ProcInfo,
    /// Neither: every routine is taken for a function.
    PlainProc,
}

impl Routines {
    /// `FROM` clause item (aliased `p`) and the expression of the kind.
    pub(super) fn source(self) -> (&'static str, &'static str) {
        match self {
            Self::ProKind => ("pg_catalog.pg_proc p", "CAST(p.prokind AS varchar)"),
            // Unqualified: the view is Redshift's own, wherever it keeps it.
            Self::ProcInfo => ("pg_proc_info p", "CAST(p.prokind AS varchar)"),
            Self::PlainProc => ("pg_catalog.pg_proc p", "CAST('f' AS varchar)"),
        }
    }
}

impl Surface {
    /// Whether the catalog has a relation called `name`.
    pub(super) fn has(&self, name: &str) -> bool {
        self.relations.contains(name)
    }

    fn has_column(&self, relation: &str, column: &str) -> bool {
        self.columns
            .contains(&(relation.to_owned(), column.to_owned()))
    }

    /// Where routines and their kinds are read. On Redshift its own view comes first.
    pub(super) fn routines(&self, redshift: bool) -> Routines {
        if redshift && self.has("pg_proc_info") {
            Routines::ProcInfo
        } else if self.has_column("pg_proc", "prokind") {
            Routines::ProKind
        } else if self.has("pg_proc_info") {
            Routines::ProcInfo
        } else {
            Routines::PlainProc
        }
    }

    /// The `FROM` item (aliased `a`) that holds column ACLs, if any: Redshift keeps them
    /// in `pg_attribute_info`, PostgreSQL in `pg_attribute.attacl`.
    pub(super) fn column_acls(&self, redshift: bool) -> Option<&'static str> {
        let info = self.has_column("pg_attribute_info", "attacl");
        let plain = self.has_column("pg_attribute", "attacl");
        match (redshift, info, plain) {
            (true, true, _) | (false, true, false) => Some("pg_attribute_info a"),
            (_, _, true) => Some("pg_catalog.pg_attribute a"),
            _ => None,
        }
    }

    /// The `FROM` item (aliased `d`) of default privileges and its owner column.
    pub(super) fn default_acls(&self, redshift: bool) -> Option<(&'static str, &'static str)> {
        let user = self.has_column("pg_default_acl", "defacluser");
        let role = self.has_column("pg_default_acl", "defaclrole");
        match (redshift, user, role) {
            // Unqualified, as for Redshift's other views.
            (true, true, _) | (false, true, false) => Some(("pg_default_acl d", "defacluser")),
            (_, _, true) => Some(("pg_catalog.pg_default_acl d", "defaclrole")),
            _ => None,
        }
    }
}

impl Reader<'_> {
    /// Which of [`RELATIONS`] and [`COLUMNS`] the catalog has.
    pub(super) async fn surface(&mut self) -> Result<Surface, SourceError> {
        let list = |names: &mut dyn Iterator<Item = &str>| {
            names
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let relations = list(
            &mut RELATIONS
                .iter()
                .copied()
                .chain(COLUMNS.iter().map(|(relation, _, _)| *relation)),
        );
        let columns = list(&mut COLUMNS.iter().map(|(_, column, _)| *column));
        let sql = format!(
            "SELECT DISTINCT CAST(c.relname AS varchar) AS relname, \
                    CAST(a.attname AS varchar) AS attname, \
                    CAST(n.nspname AS varchar) AS schema_name \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                  AND CAST(a.attname AS varchar) IN ({columns}) \
             WHERE CAST(c.relname AS varchar) IN ({relations})"
        );
        let mut surface = Surface::default();
        for row in self.rows("the catalog's relations", sql).await? {
            let relation: String = self.get(&row, "relname")?;
            let in_catalog = self.get::<String>(&row, "schema_name")? == "pg_catalog";
            if let Some(column) = self.get::<Option<String>>(&row, "attname")? {
                // A user's own table called pg_proc says nothing about pg_catalog.pg_proc.
                let counts = COLUMNS.iter().any(|&(r, c, qualified)| {
                    r == relation && c == column && (in_catalog || !qualified)
                });
                if counts {
                    surface.columns.insert((relation.clone(), column));
                }
            }
            surface.relations.insert(relation);
        }
        Ok(surface)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(relations: &[&str], columns: &[(&str, &str)]) -> Surface {
        Surface {
            relations: relations.iter().map(|r| (*r).to_owned()).collect(),
            columns: columns
                .iter()
                .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn postgres_reads_its_own_catalog() {
        let pg = surface(
            &[
                "pg_proc",
                "pg_attribute",
                "pg_default_acl",
                "pg_auth_members",
            ],
            &[
                ("pg_proc", "prokind"),
                ("pg_attribute", "attacl"),
                ("pg_default_acl", "defaclrole"),
            ],
        );
        assert_eq!(pg.routines(false), Routines::ProKind);
        assert_eq!(pg.column_acls(false), Some("pg_catalog.pg_attribute a"));
        assert_eq!(
            pg.default_acls(false),
            Some(("pg_catalog.pg_default_acl d", "defaclrole"))
        );
    }

    #[test]
    fn redshift_prefers_its_own_views_where_both_exist() {
        // The test fixture: PostgreSQL's catalog with Redshift's views beside it.
        let both = surface(
            &[
                "pg_proc",
                "pg_proc_info",
                "pg_attribute_info",
                "pg_default_acl",
            ],
            &[
                ("pg_proc", "prokind"),
                ("pg_attribute", "attacl"),
                ("pg_attribute_info", "attacl"),
                ("pg_default_acl", "defaclrole"),
                ("pg_default_acl", "defacluser"),
            ],
        );
        assert_eq!(both.routines(true), Routines::ProcInfo);
        assert_eq!(both.column_acls(true), Some("pg_attribute_info a"));
        assert_eq!(
            both.default_acls(true),
            Some(("pg_default_acl d", "defacluser"))
        );
        assert_eq!(both.routines(false), Routines::ProKind);
        // A catalog with neither form reads nothing rather than fail.
        let none = surface(&[], &[]);
        assert_eq!(none.routines(true), Routines::PlainProc);
        assert_eq!(none.column_acls(true), None);
        assert_eq!(none.default_acls(false), None);
    }
}
