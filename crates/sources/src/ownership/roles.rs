//! Role memberships and role ownership.

use super::catalog::Surface;
use super::found::Found;
use super::types::BlockerKind;
use super::{quoted, Reader};
use crate::SourceError;

impl Reader<'_> {
    /// Roles granted to the users, memberships they granted, and (Redshift) roles they
    /// own.
    pub(super) async fn memberships(
        &mut self,
        found: &mut Found<'_>,
        surface: &Surface,
    ) -> Result<(), SourceError> {
        if self.redshift && surface.has("svv_user_grants") {
            self.redshift_role_grants(found).await?;
        } else if surface.has("pg_auth_members") {
            self.postgres_memberships(found).await?;
        }
        if self.redshift && surface.has("svv_roles") {
            self.owned_roles(found).await?;
        }
        Ok(())
    }

    /// PostgreSQL: `pg_auth_members`, where the user is the member or the grantor.
    async fn postgres_memberships(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let ids = found.sql_ids();
        let sql = format!(
            "SELECT CAST(m.member AS integer) AS member_id, \
                    CAST(u.rolname AS varchar) AS member_name, \
                    CAST(m.grantor AS integer) AS grantor_id, \
                    CAST(r.rolname AS varchar) AS role_name \
             FROM pg_catalog.pg_auth_members m \
             JOIN pg_catalog.pg_roles r ON r.oid = m.roleid \
             JOIN pg_catalog.pg_roles u ON u.oid = m.member \
             WHERE CAST(m.member AS integer) IN ({ids}) \
                OR CAST(m.grantor AS integer) IN ({ids})"
        );
        for row in self.rows("role memberships", sql).await? {
            let member_id: i32 = self.get(&row, "member_id")?;
            let member: String = self.get(&row, "member_name")?;
            let grantor_id: Option<i32> = self.get(&row, "grantor_id")?;
            let role: String = self.get(&row, "role_name")?;
            if let Some(owned) = found.by_id(member_id) {
                owned.roles.push(role.clone());
            }
            let Some(grantor_id) = grantor_id.filter(|&g| g != member_id) else {
                continue;
            };
            if found.by_id(grantor_id).is_some() {
                let object = format!("role {}", quoted(&role));
                let sentence = format!(
                    "{object}: the user granted membership in it to {} (ADMIN OPTION); \
                     the membership depends on the user, so revoke it or have another \
                     admin of the role re-grant it before DROP USER.",
                    quoted(&member)
                );
                found.blocker_by_id(grantor_id, BlockerKind::GrantOption, &object, sentence);
            }
        }
        Ok(())
    }

    /// Redshift: `svv_user_grants`, the roles granted to each user
    /// (<https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_USER_GRANTS.html>).
    async fn redshift_role_grants(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT CAST(g.user_id AS integer) AS user_id, \
                    CAST(g.role_name AS varchar) AS role_name \
             FROM svv_user_grants g WHERE CAST(g.user_id AS integer) IN ({})",
            found.sql_ids()
        );
        for row in self.rows("svv_user_grants", sql).await? {
            let user_id: i32 = self.get(&row, "user_id")?;
            let role: String = self.get(&row, "role_name")?;
            if let Some(owned) = found.by_id(user_id) {
                owned.roles.push(role);
            }
        }
        Ok(())
    }

    /// Redshift: `svv_roles`, whose owner is a name
    /// (<https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_ROLES.html>): every role is
    /// read (there are few) and the owners matched here, so that no name is sent to the
    /// server.
    async fn owned_roles(&mut self, found: &mut Found<'_>) -> Result<(), SourceError> {
        let sql = "SELECT CAST(r.role_name AS varchar) AS role_name, \
                          CAST(r.role_owner AS varchar) AS role_owner \
                   FROM svv_roles r";
        for row in self.rows("svv_roles", sql.to_owned()).await? {
            let role: String = self.get(&row, "role_name")?;
            let owner = self.text(&row, "role_owner")?;
            if let Some(owned) = found.by_name(&owner) {
                owned.owned_roles.push(role);
            }
        }
        Ok(())
    }
}
