//! What only Redshift has and SQL in a plan cannot hand over: datashares, Python UDF
//! libraries, ML models and materialized views. Each is read only where the catalog has
//! its view; each owned one is a blocker.

use super::catalog::Surface;
use super::found::Found;
use super::types::BlockerKind;
use super::{qualified, quoted, Reader};
use crate::SourceError;

impl Reader<'_> {
    /// Datashares, libraries, models and materialized views the users own.
    pub(super) async fn redshift_objects(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
        database: &str,
    ) -> Result<(), SourceError> {
        if surface.has("svv_datashares") {
            self.datashares(found).await?;
        }
        if surface.has("pg_library") {
            self.libraries(found).await?;
        }
        if surface.has("svv_ml_model_info") {
            self.models(found, database).await?;
        }
        self.materialized_views(found, surface, database).await?;
        Ok(())
    }

    /// Outbound datashares: only their owner (or a superuser) may change their owner, and
    /// `ALTER DATASHARE` has no `OWNER TO`.
    /// <https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_DATASHARE.html>
    async fn datashares(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(s.share_name AS varchar) AS name, \
                    CAST(s.share_owner AS integer) AS owner_id \
             FROM svv_datashares s \
             WHERE TRIM(CAST(s.share_type AS varchar)) = 'OUTBOUND' \
               AND CAST(s.share_owner AS integer) IN ({})",
            found.sql_ids()
        );
        for row in self.rows("svv_datashares", sql).await? {
            let name: String = self.get(&row, "name")?;
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let object = format!("datashare {}", quoted(&name));
            let sentence = format!(
                "{object}: the user owns it and Redshift cannot hand a datashare to another \
                 owner; recreate it as another user (and re-authorize its consumers) or \
                 drop it by hand."
            );
            found.blocker_by_id(owner_id, BlockerKind::Datashare, &object, sentence);
        }
        Ok(())
    }

    /// Python UDF libraries (`CREATE LIBRARY`), which have no `ALTER … OWNER TO`.
    /// <https://docs.aws.amazon.com/redshift/latest/dg/r_CREATE_LIBRARY.html>
    async fn libraries(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(l.name AS varchar) AS name, CAST(l.owner AS integer) AS owner_id \
             FROM pg_library l WHERE CAST(l.owner AS integer) IN ({})",
            found.sql_ids()
        );
        for row in self.rows("pg_library", sql).await? {
            let name: String = self.get(&row, "name")?;
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let object = format!("library {}", quoted(&name));
            let sentence = format!(
                "{object}: the user owns it and a library cannot change owner; install it \
                 again as another user (CREATE OR REPLACE LIBRARY) or drop it by hand."
            );
            found.blocker_by_id(owner_id, BlockerKind::Library, &object, sentence);
        }
        Ok(())
    }

    /// ML models (`CREATE MODEL`), which have no `ALTER … OWNER TO`.
    /// <https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_ML_MODEL_INFO.html>
    async fn models(&mut self, found: &mut Found<'_>, database: &str) -> Result<(), SourceError> {
        for (owner, schema, name) in self
            .by_owner_name(OwnedBy::SVV_ML_MODEL_INFO, database)
            .await?
        {
            let object = format!("model {}", qualified(&schema, &name));
            let sentence = format!(
                "{object}: the user owns it and Redshift cannot hand a model to another \
                 owner; train it again as another user or drop it by hand (DROP MODEL)."
            );
            found.blocker(&owner, BlockerKind::Model, &object, sentence);
        }
        Ok(())
    }

    /// Materialized views the login may see in `svv_mv_info` (or, on a Redshift without
    /// it, `stv_mv_info`: <https://docs.aws.amazon.com/redshift/latest/dg/r_STV_MV_INFO.html>).
    async fn materialized_views(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
        database: &str,
    ) -> Result<(), SourceError> {
        let view = if surface.has("svv_mv_info") {
            OwnedBy::SVV_MV_INFO
        } else if surface.has("stv_mv_info") {
            OwnedBy::STV_MV_INFO
        } else {
            return Ok(());
        };
        for (owner, schema, name) in self.by_owner_name(view, database).await? {
            found.materialized_view(&owner, &schema, &name);
        }
        Ok(())
    }

    /// `(owner, schema, name)` of every object in a Redshift view of `char(128)` names
    /// that lives in the database read. The view names the owner rather than giving its
    /// id: every row is read and the owners are matched here, so that no name is sent to
    /// the server.
    async fn by_owner_name(
        &mut self,
        view: OwnedBy,
        database: &str,
    ) -> Result<Vec<(String, String, String)>, SourceError> {
        let OwnedBy {
            relation,
            database_column,
            schema_column,
            name_column,
            owner_column,
        } = view;
        let sql = format!(
            "SELECT TRIM(CAST(v.{database_column} AS varchar)) AS database_name, \
                    TRIM(CAST(v.{schema_column} AS varchar)) AS schema_name, \
                    TRIM(CAST(v.{name_column} AS varchar)) AS name, \
                    TRIM(CAST(v.{owner_column} AS varchar)) AS owner \
             FROM {relation} v"
        );
        let mut owned = Vec::new();
        for row in self.rows(relation, sql).await? {
            if self.text(&row, "database_name")? == database {
                owned.push((
                    self.text(&row, "owner")?,
                    self.text(&row, "schema_name")?,
                    self.text(&row, "name")?,
                ));
            }
        }
        Ok(owned)
    }
}

/// A Redshift view that lists objects with their database, schema and owner's name.
#[derive(Clone, Copy)]
struct OwnedBy {
    relation: &'static str,
    database_column: &'static str,
    schema_column: &'static str,
    name_column: &'static str,
    owner_column: &'static str,
}

impl OwnedBy {
    const SVV_ML_MODEL_INFO: Self = Self {
        relation: "svv_ml_model_info",
        database_column: "database_name",
        schema_column: "schema_name",
        name_column: "model_name",
        owner_column: "user_name",
    };
    const SVV_MV_INFO: Self = Self {
        relation: "svv_mv_info",
        database_column: "database_name",
        schema_column: "schema_name",
        name_column: "name",
        owner_column: "user_name",
    };
    const STV_MV_INFO: Self = Self {
        relation: "stv_mv_info",
        database_column: "db_name",
        schema_column: "schema",
        name_column: "name",
        owner_column: "owner_user_name",
    };
}
