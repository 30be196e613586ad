//! What discovery has found so far, per wanted user, as the catalogs are read.

use std::collections::{BTreeMap, BTreeSet};

use super::acl::{AclItem, Grantee};
use super::types::{Blocker, BlockerKind, ColumnGrant, Owned, RelationKind, SchemaAccess};
use super::{qualified, UserIds};

/// Everything found, by user name.
pub(super) struct Found<'a> {
    ids: &'a UserIds,
    owned: BTreeMap<String, Owned>,
    /// By user and schema.
    access: BTreeMap<(String, String), SchemaAccess>,
    /// By user, schema and table: the columns.
    columns: BTreeMap<(String, String, String), BTreeSet<String>>,
}

impl<'a> Found<'a> {
    pub(super) fn new(ids: &'a UserIds, database: &str, redshift: bool) -> Self {
        let owned = ids
            .names
            .values()
            .map(|name| {
                (
                    name.clone(),
                    Owned {
                        database: database.to_owned(),
                        redshift,
                        ..Owned::default()
                    },
                )
            })
            .collect();
        Self {
            ids,
            owned,
            access: BTreeMap::new(),
            columns: BTreeMap::new(),
        }
    }

    /// The wanted users' ids as an SQL list of integers.
    pub(super) fn sql_ids(&self) -> &'a str {
        &self.ids.sql_list
    }

    /// The wanted user with `id`.
    pub(super) fn by_id(&mut self, id: i32) -> Option<&mut Owned> {
        let name = self.ids.name(id)?;
        self.owned.get_mut(name)
    }

    /// The name of the wanted user with `id`.
    pub(super) fn name_of(&self, id: i32) -> Option<String> {
        self.ids.name(id).map(str::to_owned)
    }

    /// The wanted user called `name`.
    pub(super) fn by_name(&mut self, name: &str) -> Option<&mut Owned> {
        self.owned.get_mut(name)
    }

    /// Whether `name` is a wanted user.
    pub(super) fn wanted(&self, name: &str) -> bool {
        self.owned.contains_key(name)
    }

    /// What `user` may do in `schema`, created empty on first use.
    pub(super) fn schema_access(&mut self, user: &str, schema: &str) -> &mut SchemaAccess {
        self.access
            .entry((user.to_owned(), schema.to_owned()))
            .or_insert_with(|| SchemaAccess {
                schema: schema.to_owned(),
                ..SchemaAccess::default()
            })
    }

    /// Notes that `user` holds a privilege on `column` of `schema.table`.
    pub(super) fn column(&mut self, user: &str, schema: &str, table: &str, column: String) {
        self.columns
            .entry((user.to_owned(), schema.to_owned(), table.to_owned()))
            .or_default()
            .insert(column);
    }

    /// The items of an object's ACL that grant to a wanted user other than the object's
    /// owner (`owner_id`; `None` when the catalog does not say), by that user's name.
    /// Items a wanted user granted on an object it does not own — through a grant
    /// option — become that user's blockers: `object` names the object in the sentence.
    pub(super) fn grants<'i>(
        &mut self,
        acl: &'i [AclItem],
        owner_id: Option<i32>,
        object: &str,
    ) -> Vec<(String, &'i AclItem)> {
        let mut granted = Vec::new();
        for item in acl {
            if let Some(grantor) = self.ids.id(&item.grantor) {
                if Some(grantor) != owner_id {
                    self.grant_option_blocker(item, object);
                }
            }
            if let Grantee::User(name) = &item.grantee {
                if let Some(id) = self.ids.id(name) {
                    if Some(id) != owner_id {
                        granted.push((name.clone(), item));
                    }
                }
            }
        }
        granted
    }

    fn grant_option_blocker(&mut self, item: &AclItem, object: &str) {
        let sentence = format!(
            "{object}: the user granted {} privileges ({}) on it through a grant option; \
             the grant depends on the user, so revoke it (REVOKE … FROM the grantee, \
             CASCADE as the owner) or have the owner re-grant it before DROP USER.",
            item.grantee, item.privileges
        );
        self.blocker(
            &item.grantor.clone(),
            BlockerKind::GrantOption,
            object,
            sentence,
        );
    }

    /// Records that `owner` owns the Redshift materialized view `schema.name`: not a
    /// relation a plan may hand over, since Redshift has no ALTER MATERIALIZED VIEW …
    /// OWNER TO (<https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_MATERIALIZED_VIEW.html>),
    /// but a blocker.
    pub(super) fn materialized_view(&mut self, owner: &str, schema: &str, name: &str) {
        if let Some(owned) = self.owned.get_mut(owner) {
            owned.relations.retain(|r| {
                !(r.schema == schema && r.name == name && r.kind == RelationKind::View)
            });
        }
        let object = format!("materialized view {}", qualified(schema, name));
        let sentence = format!(
            "{object}: the user owns it and Redshift has no ALTER MATERIALIZED VIEW … \
             OWNER TO; recreate it as another user or drop it by hand."
        );
        self.blocker(owner, BlockerKind::MaterializedView, &object, sentence);
    }

    /// Records a blocker of the wanted user with `id`.
    pub(super) fn blocker_by_id(
        &mut self,
        id: i32,
        kind: BlockerKind,
        object: &str,
        sentence: String,
    ) {
        if let Some(name) = self.ids.name(id) {
            self.blocker(name, kind, object, sentence);
        }
    }

    /// Records a blocker of the wanted user `user`.
    pub(super) fn blocker(
        &mut self,
        user: &str,
        kind: BlockerKind,
        object: &str,
        sentence: String,
    ) {
        if let Some(owned) = self.owned.get_mut(user) {
            owned.blockers.push(Blocker {
                kind,
                object: object.to_owned(),
                sentence,
            });
        }
    }

    /// Every user's findings, each list sorted and without repeats.
    pub(super) fn finish(mut self) -> BTreeMap<String, Owned> {
        for ((user, _), access) in std::mem::take(&mut self.access) {
            if let Some(owned) = self.owned.get_mut(&user) {
                owned.schema_privileges.push(access);
            }
        }
        for ((user, schema, table), columns) in std::mem::take(&mut self.columns) {
            if let Some(owned) = self.owned.get_mut(&user) {
                owned.column_privileges.push(ColumnGrant {
                    schema,
                    table,
                    columns: columns.into_iter().collect(),
                });
            }
        }
        for owned in self.owned.values_mut() {
            sort(&mut owned.relations);
            sort(&mut owned.functions);
            sort(&mut owned.schemas);
            sort(&mut owned.schema_privileges);
            sort(&mut owned.table_privileges);
            sort(&mut owned.column_privileges);
            sort(&mut owned.function_privileges);
            sort(&mut owned.language_privileges);
            sort(&mut owned.databases);
            sort(&mut owned.database_privileges);
            sort(&mut owned.default_acls);
            sort(&mut owned.roles);
            sort(&mut owned.owned_roles);
            sort(&mut owned.blockers);
        }
        self.owned
    }
}

fn sort<T: Ord>(list: &mut Vec<T>) {
    list.sort();
    list.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::acl;

    fn ids() -> UserIds {
        let names: BTreeMap<i32, String> =
            [(10, "ann".to_owned()), (11, "bob \"b\"".to_owned())].into();
        UserIds {
            ids: names.iter().map(|(id, n)| (n.clone(), *id)).collect(),
            names,
            sql_list: "10, 11".to_owned(),
        }
    }

    #[test]
    fn grants_name_wanted_grantees_other_than_the_owner() {
        let ids = ids();
        let mut found = Found::new(&ids, "dev", false);
        // ann owns the object: her own entry is ownership, not a grant; PUBLIC, groups
        // and users not looked at are nobody's business here.
        let items =
            acl::parse("ann=arwd/ann,\"bob \"\"b\"\"\"=r/ann,=r/ann,group bob=r/ann,carol=r/ann")
                .unwrap();
        let granted: Vec<(String, String)> = found
            .grants(&items, Some(10), "table x")
            .into_iter()
            .map(|(user, item)| (user, item.privileges.clone()))
            .collect();
        assert_eq!(granted, vec![("bob \"b\"".to_owned(), "r".to_owned())]);
        assert!(found.finish().values().all(|o| o.blockers.is_empty()));
    }

    #[test]
    fn a_grant_made_on_someone_elses_object_is_a_blocker_of_its_grantor() {
        let ids = ids();
        let mut found = Found::new(&ids, "dev", false);
        let items = acl::parse("admin=arwd/admin,ann=r*/admin,carol=r/ann").unwrap();
        let granted = found.grants(&items, Some(1), "table \"s\".\"t\"");
        assert_eq!(granted.len(), 1);
        let owned = found.finish();
        let blockers = &owned["ann"].blockers;
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert_eq!(blockers[0].kind, BlockerKind::GrantOption);
        assert_eq!(blockers[0].object, "table \"s\".\"t\"");
        assert!(
            blockers[0].sentence.contains("user \"carol\""),
            "{blockers:?}"
        );
        assert!(owned["bob \"b\""].blockers.is_empty());
    }
}
