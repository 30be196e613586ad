//! Databases, languages and default privileges: small catalogs, each read whole in one
//! query.

use super::acl::{AclItem, Grantee};
use super::catalog::Surface;
use super::found::Found;
use super::types::{BlockerKind, DefaultAcl, DefaultAclObject};
use super::{quoted, Reader};
use crate::SourceError;

impl Reader<'_> {
    /// Databases of the cluster the users own, and direct grants to them on databases.
    pub(super) async fn databases(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = "SELECT CAST(d.datname AS varchar) AS name, \
                          CAST(d.datdba AS integer) AS owner_id, \
                          CAST(array_to_string(d.datacl, ',') AS varchar) AS acl \
                   FROM pg_catalog.pg_database d";
        for row in self.rows("databases", sql.to_owned()).await? {
            let name: String = self.get(&row, "name")?;
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let acl = self.acl(&row, "acl")?;
            let object = format!("database {}", quoted(&name));
            for (user, _) in found.grants(&acl, Some(owner_id), &object) {
                if let Some(owned) = found.by_name(&user) {
                    owned.database_privileges.push(name.clone());
                }
            }
            if let Some(owned) = found.by_id(owner_id) {
                owned.databases.push(name);
            }
        }
        Ok(())
    }

    /// Direct grants to the users on languages. Who owns a language is not read (Redshift's
    /// catalog does not say): a grant a user made on one counts as made through a grant
    /// option.
    pub(super) async fn languages(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = "SELECT CAST(l.lanname AS varchar) AS name, \
                          CAST(array_to_string(l.lanacl, ',') AS varchar) AS acl \
                   FROM pg_catalog.pg_language l WHERE l.lanacl IS NOT NULL";
        for row in self.rows("languages", sql.to_owned()).await? {
            let name: String = self.get(&row, "name")?;
            let acl = self.acl(&row, "acl")?;
            let object = format!("language {}", quoted(&name));
            for (user, _) in found.grants(&acl, None, &object) {
                if let Some(owned) = found.by_name(&user) {
                    owned.language_privileges.push(name.clone());
                }
            }
        }
        Ok(())
    }

    /// Default privileges the users set, and those of others that grant to them. The
    /// table holds one row per owner, schema and kind of object: read whole.
    pub(super) async fn default_acls(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
    ) -> Result<(), SourceError> {
        let Some((from, owner)) = surface.default_acls(self.redshift) else {
            return Ok(());
        };
        let sql = format!(
            "SELECT CAST(d.{owner} AS integer) AS owner_id, \
                    CAST(pg_catalog.pg_get_userbyid(d.{owner}) AS varchar) AS owner_name, \
                    CAST(n.nspname AS varchar) AS schema_name, \
                    CAST(d.defaclobjtype AS varchar) AS objtype, \
                    CAST(array_to_string(d.defaclacl, ',') AS varchar) AS acl \
             FROM {from} \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace"
        );
        for row in self.rows("default privileges", sql).await? {
            let owner_id: i32 = self.get(&row, "owner_id")?;
            let owner = self.text(&row, "owner_name")?;
            let schema: Option<String> = self.get(&row, "schema_name")?;
            let objtype = self.text(&row, "objtype")?;
            let mut acl = self.acl(&row, "acl")?;
            let owner_is_wanted = found.by_id(owner_id).is_some();
            let Some(object) = DefaultAclObject::from_objtype(&objtype) else {
                if owner_is_wanted {
                    let sentence = format!(
                        "Default privileges of an unknown kind ({objtype:?}){}: \
                         idgraph cannot revoke them; do so by hand.",
                        schema
                            .as_deref()
                            .map(|s| format!(" in schema {}", quoted(s)))
                            .unwrap_or_default()
                    );
                    found.blocker(&owner, BlockerKind::DefaultAcl, &objtype, sentence);
                }
                continue;
            };
            if owner_is_wanted && acl.is_empty() {
                // The owner revoked even its own default privileges: the entry exists all
                // the same.
                acl.push(AclItem {
                    grantee: Grantee::User(owner.clone()),
                    privileges: String::new(),
                    grantable: String::new(),
                    grantor: owner.clone(),
                });
            }
            for item in acl {
                let entry = DefaultAcl {
                    owner: owner.clone(),
                    schema: schema.clone(),
                    object,
                    grantee: item.grantee,
                    privileges: item.privileges,
                    grantable: item.grantable,
                };
                if let Grantee::User(grantee) = &entry.grantee {
                    if grantee != &owner && found.wanted(grantee) {
                        let grantee = grantee.clone();
                        if let Some(owned) = found.by_name(&grantee) {
                            owned.default_acls.push(entry.clone());
                        }
                    }
                }
                if let Some(owned) = found.by_id(owner_id) {
                    owned.default_acls.push(entry);
                }
            }
        }
        Ok(())
    }
}
