//! PostgreSQL's own list of what depends on a role (`pg_shdepend`): the guard that catches
//! every object a plan does not hand over or revoke (types, foreign servers, publications,
//! event triggers, …). `DROP USER` fails while any such dependency remains, so a user that
//! has one is blocked rather than left to stop the plan half-way. Redshift has no such
//! catalog that AWS documents; there, discovery's list is all there is.

use super::found::Found;
use super::types::BlockerKind;
use super::Reader;
use crate::SourceError;

/// The catalogs whose dependencies the plan handles itself: relations (and their columns),
/// routines, schemas, languages, databases and default privileges.
const HANDLED: &str =
    "'pg_class', 'pg_proc', 'pg_namespace', 'pg_language', 'pg_database', 'pg_default_acl'";

impl Reader<'_> {
    /// Owner (`o`) and privilege (`a`) dependencies of the users, in this database, on
    /// objects of catalogs the plan does not handle: one blocker per user and catalog.
    pub(super) async fn other_dependencies(
        &mut self,
        found: &mut Found<'_>,
    ) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(d.refobjid AS integer) AS user_id, \
                    CAST(c.relname AS varchar) AS catalog, \
                    CAST(COUNT(*) AS integer) AS objects \
             FROM pg_catalog.pg_shdepend d \
             JOIN pg_catalog.pg_class c ON c.oid = d.classid \
             WHERE d.refclassid = CAST('pg_catalog.pg_authid' AS regclass) \
               AND d.deptype IN ('o', 'a') \
               AND d.dbid = (SELECT oid FROM pg_catalog.pg_database \
                             WHERE datname = current_database()) \
               AND CAST(c.relname AS varchar) NOT IN ({HANDLED}) \
               AND CAST(d.refobjid AS integer) IN ({}) \
             GROUP BY d.refobjid, c.relname",
            found.sql_ids()
        );
        for row in self.rows("pg_shdepend", sql).await? {
            let id: i32 = self.get(&row, "user_id")?;
            let catalog: String = self.get(&row, "catalog")?;
            let objects: i32 = self.get(&row, "objects")?;
            let object = format!("{objects} object(s) in {catalog}");
            let sentence = format!(
                "owns or holds privileges on {object}, which the plan does not hand over or \
                 revoke; find them with `SELECT * FROM pg_shdepend WHERE refobjid = {id}` and \
                 deal with them by hand"
            );
            found.blocker_by_id(id, BlockerKind::OtherObject, &object, sentence);
        }
        Ok(())
    }
}
