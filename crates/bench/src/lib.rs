//! Synthetic organisations for idgraph's benchmarks and scale tests: N people over T
//! database targets with configurable drift, as the file exports idgraph reads
//! ([`write_exports`]) or as model values ([`Params::model`]), with the findings idgraph
//! must report.
//!
//! Deterministic for a given seed; exports are streamed to disk, so a million people never
//! sit in memory at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context as _;
use idgraph_model::{DbUser, ExternalId, IcUser, IdpUser, Mapping, TargetSnapshot};
use serde_json::json;

/// The shape of an organisation.
#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// People in the IdP and Identity Center.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Database targets.
    #[arg(long, default_value_t = 4)]
    pub targets: usize,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of people deactivated in the IdP (they left).
    #[arg(long, default_value_t = 0.05)]
    pub deactivated: f64,
    /// Share of people deleted from the IdP but still in Identity Center.
    #[arg(long, default_value_t = 0.02)]
    pub deleted_from_idp: f64,
    /// Share of people never or no longer in Identity Center.
    #[arg(long, default_value_t = 0.02)]
    pub deleted_from_identity_center: f64,
    /// Share of database users that are bare `GetClusterCredentials` logins (no prefix).
    #[arg(long, default_value_t = 0.1)]
    pub unprefixed: f64,
    /// Share of people with a login on a second target.
    #[arg(long, default_value_t = 0.2)]
    pub second_target: f64,
    /// Local service accounts per target nobody vouches for (unmanaged findings).
    #[arg(long, default_value_t = 5)]
    pub service_accounts: usize,
    /// Share of people whose Identity Center user carries no `ExternalIds` (created there
    /// by hand): linked to the IdP by user name.
    #[arg(long, default_value_t = 0.0)]
    pub without_external_id: f64,
    /// Share of people whose user name is not their email: their database users, named by
    /// email, match Identity Center by email.
    #[arg(long, default_value_t = 0.0)]
    pub email_logins: f64,
    /// Share of the email-login people still in Identity Center who have a second
    /// Identity Center user with the same email: their database users are ambiguous.
    #[arg(long, default_value_t = 0.0)]
    pub ambiguous: f64,
}

impl Params {
    /// `users` people over `targets` targets, with the default drift.
    pub fn new(users: usize, targets: usize) -> Self {
        Self {
            users,
            targets,
            seed: 1,
            deactivated: 0.05,
            deleted_from_idp: 0.02,
            deleted_from_identity_center: 0.02,
            unprefixed: 0.1,
            second_target: 0.2,
            service_accounts: 5,
            without_external_id: 0.0,
            email_logins: 0.0,
            ambiguous: 0.0,
        }
    }
}

/// splitmix64: a fast, well-mixed deterministic stream per (seed, person, purpose).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn uniform(seed: u64, i: usize, purpose: u64) -> f64 {
    (mix(seed ^ mix(i as u64 ^ (purpose << 40))) >> 11) as f64 / (1u64 << 53) as f64
}

/// What happened to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Still here.
    Active,
    /// Deactivated in the IdP: they left.
    Deactivated,
    /// Deleted from the IdP but still in Identity Center.
    DeletedFromIdp,
    /// Never or no longer in Identity Center; still in the IdP.
    DeletedFromIdentityCenter,
}

/// One person of the organisation, with every identity the sources hold of them.
#[derive(Debug, Clone)]
pub struct Person {
    /// Their email in the IdP and Identity Center, and the rest of their database users'
    /// names.
    pub login: String,
    /// Their user name in the IdP and Identity Center: `login`, or for email-login people
    /// the part before the `@`.
    pub user_name: String,
    /// Whether their Identity Center user carries the IdP's external id.
    pub ic_external_id: bool,
    /// The `UserId` of a second Identity Center user with their email, if they have one.
    pub duplicate: Option<String>,
    /// The IdP's `id`.
    pub idp_id: String,
    /// The IdP's `externalId`, which Identity Center carries in `ExternalIds`.
    pub external_id: String,
    /// Identity Center's `UserId`.
    pub ic_id: String,
    /// What happened to them.
    pub fate: Fate,
    /// Their database users: (target index, `usename`, superuser).
    pub logins: Vec<(usize, String, bool)>,
}

impl Params {
    /// Person `i` of the organisation.
    pub fn person(&self, i: usize) -> Person {
        let r = uniform(self.seed, i, 1);
        let fate = if r < self.deactivated {
            Fate::Deactivated
        } else if r < self.deactivated + self.deleted_from_idp {
            Fate::DeletedFromIdp
        } else if r < self.deactivated + self.deleted_from_idp + self.deleted_from_identity_center {
            Fate::DeletedFromIdentityCenter
        } else {
            Fate::Active
        };
        let login = format!("user{i:07}@example.com");
        let mut targets = vec![i % self.targets.max(1)];
        if self.targets > 1 && uniform(self.seed, i, 2) < self.second_target {
            targets.push((i + 1 + i / self.targets) % self.targets);
            targets.dedup();
        }
        let logins = targets
            .into_iter()
            .enumerate()
            .map(|(n, t)| {
                let bare = uniform(self.seed, i, 3 + n as u64) < self.unprefixed;
                let name = if bare {
                    login.clone()
                } else {
                    format!("IAMA:{login}")
                };
                (t, name, uniform(self.seed, i, 9) < 0.01)
            })
            .collect();
        let h = mix(self.seed ^ mix(i as u64));
        let email_login = uniform(self.seed, i, 20) < self.email_logins;
        let user_name = if email_login {
            format!("user{i:07}")
        } else {
            login.clone()
        };
        let duplicate = (email_login
            && fate != Fate::DeletedFromIdentityCenter
            && uniform(self.seed, i, 22) < self.ambiguous)
            .then(|| format!("906dup{i:07}"));
        Person {
            user_name,
            ic_external_id: uniform(self.seed, i, 21) >= self.without_external_id,
            duplicate,
            idp_id: format!("00u{h:016x}"),
            external_id: format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h >> 32,
                h & 0xffff,
                (h >> 20) & 0xfff,
                (h >> 8) & 0xfff,
                mix(h) & 0xffff_ffff_ffff
            ),
            ic_id: format!(
                "906{:07x}-{:04x}-{:04x}-{:04x}-{:012x}",
                mix(h) >> 36,
                h >> 48,
                (h >> 32) & 0xffff,
                (h >> 16) & 0xffff,
                mix(h ^ 7) & 0xffff_ffff_ffff
            ),
            login,
            fate,
            logins,
        }
    }
}

impl Person {
    /// Whether the IdP still lists the person.
    pub fn in_idp(&self) -> bool {
        self.fate != Fate::DeletedFromIdp
    }

    /// Whether Identity Center still lists the person.
    pub fn in_identity_center(&self) -> bool {
        self.fate != Fate::DeletedFromIdentityCenter
    }

    /// The person as the IdP lists them, if it does.
    pub fn idp_user(&self) -> Option<IdpUser> {
        self.in_idp().then(|| IdpUser {
            id: self.idp_id.clone(),
            external_id: Some(self.external_id.clone()),
            user_name: self.user_name.clone(),
            email: Some(self.login.clone()),
            active: self.fate != Fate::Deactivated,
            last_modified: chrono::DateTime::parse_from_rfc3339(LAST_MODIFIED)
                .ok()
                .map(|at| at.with_timezone(&chrono::Utc)),
        })
    }

    /// The Identity Center users of the person: none, theirs, or theirs and a second
    /// one with the same email.
    pub fn ic_users(&self) -> Vec<IcUser> {
        if !self.in_identity_center() {
            return Vec::new();
        }
        let own = IcUser {
            user_id: self.ic_id.clone(),
            user_name: self.user_name.clone(),
            email: Some(self.login.clone()),
            external_ids: if self.ic_external_id {
                vec![ExternalId {
                    issuer: IC_ISSUER.to_owned(),
                    id: self.external_id.clone(),
                }]
            } else {
                Vec::new()
            },
        };
        let duplicate = self.duplicate.as_ref().map(|user_id| IcUser {
            user_id: user_id.clone(),
            user_name: format!("{}.second", self.user_name),
            email: Some(self.login.clone()),
            external_ids: Vec::new(),
        });
        std::iter::once(own).chain(duplicate).collect()
    }
}

/// IdP user `u` (person `i`) as a SCIM User with the attributes a real IdP sends, about
/// 900 bytes.
pub fn scim_user(u: &IdpUser, i: usize) -> serde_json::Value {
    let given = format!("Given{i}");
    let family = format!("Family{i}");
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": u.id,
        "externalId": u.external_id,
        "userName": u.user_name,
        "name": {"givenName": given, "familyName": family, "formatted": format!("{given} {family}")},
        "displayName": format!("{given} {family}"),
        "active": u.active,
        "emails": [{"value": u.email, "type": "work", "primary": true},
                   {"value": format!("u{i}@personal.example.org"), "type": "home"}],
        "phoneNumbers": [{"value": format!("+1 555 {:07}", i % 10_000_000), "type": "work"}],
        "title": "Analyst",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": format!("E{i:07}"),
            "department": format!("Department {}", i % 40),
            "manager": {"value": format!("00u{:016x}", mix(i as u64 / 8))}
        },
        "meta": {"resourceType": "User", "created": "2024-01-15T09:30:00Z",
                 "lastModified": LAST_MODIFIED,
                 "location": format!("https://idp.example.com/scim/v2/Users/{}", u.id)}
    })
}

/// `meta.lastModified` of every generated SCIM user.
const LAST_MODIFIED: &str = "2026-11-01T12:00:00Z";

/// The issuer of Identity Center's external ids: its SCIM endpoint.
const IC_ISSUER: &str = "https://scim.us-east-1.amazonaws.com/a1b2c3d4e5f-example/scim/v2";

/// Identity Center user `u` (person `i`) as `aws identitystore list-users` prints it.
pub fn ic_user(u: &IcUser, i: usize) -> serde_json::Value {
    let external_ids: Vec<serde_json::Value> = u
        .external_ids
        .iter()
        .map(|e| json!({"Issuer": e.issuer, "Id": e.id}))
        .collect();
    json!({
        "IdentityStoreId": "d-9067c1a2b3",
        "UserId": u.user_id,
        "UserName": u.user_name,
        "Name": {"GivenName": format!("Given{i}"), "FamilyName": format!("Family{i}"),
                 "Formatted": format!("Given{i} Family{i}")},
        "DisplayName": format!("Given{i} Family{i}"),
        "Emails": [{"Value": u.email, "Type": "work", "Primary": true}],
        "ExternalIds": external_ids
    })
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    ))
}

/// Writes the organisation's exports, `idgraph.toml` and `expected.json` into `out`
/// (created if missing) and returns the summary that `expected.json` holds.
///
/// # Errors
///
/// When a file cannot be written.
pub fn write_exports(args: &Params, out: &Path) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.targets >= 1, "--targets must be at least 1");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let idp_count = (0..args.users).filter(|&i| args.person(i).in_idp()).count();
    let mut scim = create(&out.join("scim-users.json"))?;
    write!(
        scim,
        "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":{idp_count},\"itemsPerPage\":{idp_count},\"startIndex\":1,\"Resources\":["
    )?;
    let mut ic = create(&out.join("identitystore-users.json"))?;
    write!(ic, "{{\"Users\":[")?;
    let mut targets = target_writers(args, out)?;

    let mut expected = BTreeMap::<&str, u64>::new();
    expected.insert(
        "unmanaged_db_user",
        (args.targets * args.service_accounts) as u64,
    );
    let (mut first_scim, mut first_ic) = (true, true);
    let mut db_users = (args.targets * (4 + args.service_accounts)) as u64;
    for i in 0..args.users {
        let p = args.person(i);
        if let Some(user) = p.idp_user() {
            if !first_scim {
                scim.write_all(b",")?;
            }
            first_scim = false;
            serde_json::to_writer(&mut scim, &scim_user(&user, i))?;
        }
        let ic_users = p.ic_users();
        for user in &ic_users {
            if !first_ic {
                ic.write_all(b",")?;
            }
            first_ic = false;
            serde_json::to_writer(&mut ic, &ic_user(user, i))?;
        }
        // Every Identity Center user of someone who left is stale; the second one links to
        // the IdP by email, so it is stale exactly when the first is.
        match p.fate {
            Fate::Deactivated | Fate::DeletedFromIdp => {
                *expected.entry("stale_identity_center_user").or_default() += ic_users.len() as u64
            }
            Fate::Active | Fate::DeletedFromIdentityCenter => {}
        }
        for (t, name, superuser) in &p.logins {
            pg_user_row(&mut targets[*t], &db_user(name, 100 + i as i64, *superuser))?;
            db_users += 1;
            let kind = match (p.fate, name.starts_with("IAMA:")) {
                // Named by email, matching both Identity Center users by it.
                _ if p.duplicate.is_some() => Some("ambiguous_mapping"),
                (Fate::Active, _) => None,
                (Fate::Deactivated | Fate::DeletedFromIdp, _) => Some("orphaned_db_user"),
                (Fate::DeletedFromIdentityCenter, true) => Some("orphaned_db_user"),
                (Fate::DeletedFromIdentityCenter, false) => Some("unmanaged_db_user"),
            };
            if let Some(kind) = kind {
                *expected.entry(kind).or_default() += 1;
            }
        }
    }
    scim.write_all(b"]}")?;
    scim.flush()?;
    ic.write_all(b"]}")?;
    ic.flush()?;
    for w in targets {
        w.into_inner()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .flush()?;
    }

    write_config(args, out)?;

    let summary = json!({
        "users": args.users,
        "idp_users": idp_count,
        "targets": args.targets,
        "database_users": db_users,
        "findings": expected,
    });
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// A `pg_user` CSV per target, with its header and the users that are no person's.
fn target_writers(args: &Params, out: &Path) -> anyhow::Result<Vec<csv::Writer<BufWriter<File>>>> {
    (0..args.targets)
        .map(|t| {
            let mut w =
                csv::Writer::from_writer(create(&out.join(format!("target{t:02}-pg_user.csv")))?);
            w.write_record([
                "usename",
                "usesysid",
                "usecreatedb",
                "usesuper",
                "usecatupd",
                "passwd",
                "valuntil",
                "useconfig",
            ])?;
            for user in args.fixed_users(t) {
                pg_user_row(&mut w, &user)?;
            }
            Ok(w)
        })
        .collect()
}

/// The `idgraph.toml` that reads the exports: a file source each.
fn write_config(args: &Params, out: &Path) -> anyhow::Result<()> {
    let mut config = String::from(
        "# Written by idgraph-synth.\n[store]\npath = \"idgraph.db\"\n\n\
         [idp]\nkind = \"file\"\npath = \"scim-users.json\"\n\n\
         [identity_center]\nkind = \"file\"\npath = \"identitystore-users.json\"\n\n",
    );
    for t in 0..args.targets {
        config.push_str(&format!(
            "[[targets]]\nname = \"target{t:02}\"\nkind = \"file\"\npath = \"target{t:02}-pg_user.csv\"\nmaster_user = \"awsuser\"\n\n"
        ));
    }
    config.push_str("[mapping]\nlocal_allowlist = [\"etl_service\"]\n");
    std::fs::write(out.join("idgraph.toml"), config)?;
    Ok(())
}

/// An organisation as the sources' snapshots, what idgraph would read from its exports.
#[derive(Debug, Clone)]
pub struct Model {
    /// The IdP's users.
    pub idp: Vec<IdpUser>,
    /// Identity Center's users.
    pub identity_center: Vec<IcUser>,
    /// Every target with its `pg_user` rows.
    pub targets: Vec<TargetSnapshot>,
    /// The mapping of the generated `idgraph.toml`.
    pub mapping: Mapping,
}

impl Params {
    /// The organisation as model values, equal to what idgraph parses from
    /// [`write_exports`]'s files.
    pub fn model(&self) -> Model {
        let mut idp = Vec::with_capacity(self.users);
        let mut identity_center = Vec::with_capacity(self.users);
        let mut targets: Vec<TargetSnapshot> = (0..self.targets)
            .map(|t| {
                let mut target = TargetSnapshot::new(format!("target{t:02}"), self.fixed_users(t));
                target.master_user = Some("awsuser".to_owned());
                target
            })
            .collect();
        for i in 0..self.users {
            let p = self.person(i);
            idp.extend(p.idp_user());
            identity_center.extend(p.ic_users());
            for (t, name, superuser) in p.logins {
                targets[t]
                    .users
                    .push(db_user(&name, 100 + i as i64, superuser));
            }
        }
        Model {
            idp,
            identity_center,
            targets,
            mapping: Mapping {
                local_allowlist: vec!["etl_service".to_owned()],
                ..Mapping::default()
            },
        }
    }
}

impl Params {
    /// The users target `t` holds besides people: the system user, the master user, an
    /// allowlisted service, an IAM role, and local service accounts nobody vouches for.
    fn fixed_users(&self, t: usize) -> Vec<DbUser> {
        let mut users = vec![
            db_user("rdsdb", 1, true),
            db_user("awsuser", 1, true),
            db_user("etl_service", 1, false),
            db_user(&format!("IAMR:loader-{t}"), 2, false),
        ];
        users
            .extend((0..self.service_accounts).map(|j| db_user(&format!("svc_{t}_{j}"), 3, false)));
        users
    }
}

/// A row of `psql --csv -c 'select * from pg_user'`.
fn pg_user_row(w: &mut csv::Writer<BufWriter<File>>, user: &DbUser) -> anyhow::Result<()> {
    let flag = if user.superuser { "t" } else { "f" };
    let sysid = user.sysid.unwrap_or_default().to_string();
    w.write_record([&user.name, &sysid, "f", flag, "f", "********", "", ""])?;
    Ok(())
}

fn db_user(name: &str, sysid: i64, superuser: bool) -> DbUser {
    DbUser {
        name: name.to_owned(),
        sysid: Some(sysid),
        superuser,
    }
}
