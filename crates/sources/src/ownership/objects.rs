//! Relations, columns, routines and schemas: one query each, over the rows a wanted user
//! owns or that carry an ACL.

use super::catalog::Surface;
use super::found::Found;
use super::types::{Function, FunctionKind, Relation, RelationKind};
use super::{qualified, quoted, Reader, USER_SCHEMA};
use crate::SourceError;

/// The relation kinds a user can own and `ALTER … OWNER TO` can hand over: tables, views
/// and (PostgreSQL only) partitioned tables, materialized views, foreign tables and
/// sequences. Redshift's catalog simply has no rows of the kinds it lacks.
const OWNED_RELKINDS: &str = "'r', 'p', 'v', 'm', 'f', 'S'";

/// The prefix of the tables Redshift keeps a materialized view's rows in
/// (`mv_tbl__<name>__0`, relkind `r`): they belong to the view and must be left alone.
/// AWS does not document these tables; they show in `pg_class` beside the view (the
/// Redshift Research Project's materialized-view pages list view and table apart:
/// <https://redshiftresearchproject.org/redshift_workbench/docs/database_views_materialized_v1.html>).
const MV_TABLE_PREFIX: &str = "mv_tbl__";

impl Reader<'_> {
    /// Relations the users own, and direct grants to them on relations they do not own.
    /// On Redshift a view with an `mv_tbl__<name>__0` table beside it is a materialized
    /// view: a blocker, found here even when `svv_mv_info` shows the login nothing.
    pub(super) async fn relations(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(c.relowner AS integer) AS owner_id, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(c.relname AS varchar) AS name, \
                    CAST(c.relkind AS varchar) AS kind, \
                    CAST(array_to_string(c.relacl, ',') AS varchar) AS acl \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ({OWNED_RELKINDS}) AND {USER_SCHEMA} \
               AND (CAST(c.relowner AS integer) IN ({}) OR c.relacl IS NOT NULL)",
            found.sql_ids()
        );
        let mut materialized = Vec::new();
        for row in self.rows("relations", sql).await? {
            let Some(kind) = RelationKind::from_relkind(&self.text(&row, "kind")?) else {
                continue;
            };
            let relation = Relation {
                schema: self.get(&row, "schema_name")?,
                name: self.get(&row, "name")?,
                kind,
            };
            let owner_id: i32 = self.get(&row, "owner_id")?;
            if self.redshift && relation.name.starts_with(MV_TABLE_PREFIX) {
                if let Some(view) = materialized_view_of(&relation.name) {
                    materialized.push((owner_id, relation.schema, view.to_owned()));
                }
                continue;
            }
            let acl = self.acl(&row, "acl")?;
            let object = format!(
                "{} {}",
                kind.as_str(),
                qualified(&relation.schema, &relation.name)
            );
            for (user, _) in found.grants(&acl, Some(owner_id), &object) {
                let access = found.schema_access(&user, &relation.schema);
                if kind == RelationKind::Sequence {
                    access.has_sequences = true;
                } else {
                    access.tables = true;
                    if let Some(owned) = found.by_name(&user) {
                        owned.table_privileges.push(relation.clone());
                    }
                }
            }
            if let Some(owned) = found.by_id(owner_id) {
                owned.relations.push(relation);
            }
        }
        for (owner_id, schema, view) in materialized {
            if let Some(owner) = found.name_of(owner_id) {
                found.materialized_view(&owner, &schema, &view);
            }
        }
        Ok(())
    }

    /// Direct grants to the users on columns of relations they do not own.
    pub(super) async fn columns(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
    ) -> Result<(), SourceError> {
        let Some(attributes) = surface.column_acls(self.redshift) else {
            return Ok(());
        };
        let sql = format!(
            "SELECT CAST(c.relowner AS integer) AS owner_id, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(c.relname AS varchar) AS name, \
                    CAST(a.attname AS varchar) AS column_name, \
                    CAST(array_to_string(a.attacl, ',') AS varchar) AS acl \
             FROM {attributes} \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped \
               AND {USER_SCHEMA}"
        );
        for row in self.rows("column privileges", sql).await? {
            let schema: String = self.get(&row, "schema_name")?;
            let table: String = self.get(&row, "name")?;
            let column: String = self.get(&row, "column_name")?;
            let object = format!(
                "column {} of {}",
                quoted(&column),
                qualified(&schema, &table)
            );
            let acl = self.acl(&row, "acl")?;
            let owner_id = Some(self.get(&row, "owner_id")?);
            for (user, _) in found.grants(&acl, owner_id, &object) {
                found.schema_access(&user, &schema).tables = true;
                found.column(&user, &schema, &table, column.clone());
            }
        }
        Ok(())
    }

    /// Routines the users own, and direct grants to them on routines they do not own.
    pub(super) async fn routines(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
    ) -> Result<(), SourceError> {
        let (proc_from, proc_kind) = surface.routines(self.redshift).source();
        let sql = format!(
            "SELECT CAST(p.proowner AS integer) AS owner_id, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(p.proname AS varchar) AS name, \
                    CAST(pg_catalog.oidvectortypes(p.proargtypes) AS varchar) AS arguments, \
                    {proc_kind} AS kind, p.prosecdef AS security_definer, \
                    CAST(array_to_string(p.proacl, ',') AS varchar) AS acl \
             FROM {proc_from} \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_SCHEMA} \
               AND (CAST(p.proowner AS integer) IN ({}) OR p.proacl IS NOT NULL)",
            found.sql_ids()
        );
        for row in self.rows("routines", sql).await? {
            let function = Function {
                schema: self.get(&row, "schema_name")?,
                name: self.get(&row, "name")?,
                arguments: self.text(&row, "arguments")?,
                kind: FunctionKind::from_prokind(&self.text(&row, "kind")?),
                security_definer: self
                    .get::<Option<bool>>(&row, "security_definer")?
                    .unwrap_or(false),
            };
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let acl = self.acl(&row, "acl")?;
            let object = format!(
                "{} {}({})",
                function.kind.as_str(),
                qualified(&function.schema, &function.name),
                function.arguments
            );
            for (user, _) in found.grants(&acl, Some(owner_id), &object) {
                let access = found.schema_access(&user, &function.schema);
                match function.kind {
                    FunctionKind::Procedure => access.has_procedures = true,
                    FunctionKind::Function | FunctionKind::Aggregate => {
                        access.has_functions = true;
                    }
                }
                if let Some(owned) = found.by_name(&user) {
                    owned.function_privileges.push(function.clone());
                }
            }
            if let Some(owned) = found.by_id(owner_id) {
                owned.functions.push(function);
            }
        }
        Ok(())
    }

    /// Schemas the users own (external schemas are schemas too), and direct grants to
    /// them on schemas they do not own.
    pub(super) async fn schemas(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(n.nspowner AS integer) AS owner_id, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(array_to_string(n.nspacl, ',') AS varchar) AS acl \
             FROM pg_catalog.pg_namespace n \
             WHERE {USER_SCHEMA} \
               AND (CAST(n.nspowner AS integer) IN ({}) OR n.nspacl IS NOT NULL)",
            found.sql_ids()
        );
        for row in self.rows("schemas", sql).await? {
            let schema: String = self.get(&row, "schema_name")?;
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let acl = self.acl(&row, "acl")?;
            let object = format!("schema {}", quoted(&schema));
            for (user, item) in found.grants(&acl, Some(owner_id), &object) {
                let access = found.schema_access(&user, &schema);
                access.usage |= item.privileges.contains('U');
                access.create |= item.privileges.contains('C');
            }
            if let Some(owned) = found.by_id(owner_id) {
                owned.schemas.push(schema);
            }
        }
        Ok(())
    }
}

/// The materialized view an `mv_tbl__<name>__0` table holds the rows of.
fn materialized_view_of(table: &str) -> Option<&str> {
    table
        .strip_prefix(MV_TABLE_PREFIX)?
        .strip_suffix("__0")
        .filter(|view| !view.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_materialized_view_is_named_by_its_table() {
        assert_eq!(
            materialized_view_of("mv_tbl__sales_mv__0"),
            Some("sales_mv")
        );
        assert_eq!(materialized_view_of("mv_tbl__a__b__0"), Some("a__b"));
        assert_eq!(materialized_view_of("mv_tbl____0"), None);
        assert_eq!(materialized_view_of("mv_tbl__x__1"), None);
        assert_eq!(materialized_view_of("orders"), None);
    }
}
