//! `idgraph-synth`: writes a synthetic organisation as the file exports idgraph reads —
//! a SCIM ListResponse, `aws identitystore list-users` output, a `pg_user` CSV per target —
//! plus an `idgraph.toml` for them and `expected.json` with the findings idgraph must report.
//!
//! Deterministic for a given seed, streamed to disk (a million users never sit in memory),
//! with realistic attribute sizes and configurable drift.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use serde_json::json;

/// Writes a synthetic organisation's exports.
#[derive(Debug, Parser)]
struct Args {
    /// People in the IdP and Identity Center.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Database targets.
    #[arg(long, default_value_t = 4)]
    targets: usize,
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of people deactivated in the IdP (they left).
    #[arg(long, default_value_t = 0.05)]
    deactivated: f64,
    /// Share of people deleted from the IdP but still in Identity Center.
    #[arg(long, default_value_t = 0.02)]
    deleted_from_idp: f64,
    /// Share of people never or no longer in Identity Center.
    #[arg(long, default_value_t = 0.02)]
    deleted_from_identity_center: f64,
    /// Share of database users that are bare `GetClusterCredentials` logins (no prefix).
    #[arg(long, default_value_t = 0.1)]
    unprefixed: f64,
    /// Share of people with a login on a second target.
    #[arg(long, default_value_t = 0.2)]
    second_target: f64,
    /// Local service accounts per target nobody vouches for (unmanaged findings).
    #[arg(long, default_value_t = 5)]
    service_accounts: usize,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Active,
    Deactivated,
    DeletedFromIdp,
    DeletedFromIdentityCenter,
}

struct Person {
    login: String,
    idp_id: String,
    external_id: String,
    ic_id: String,
    fate: Fate,
    /// (target, usename, superuser)
    logins: Vec<(usize, String, bool)>,
}

fn person(args: &Args, i: usize) -> Person {
    let r = uniform(args.seed, i, 1);
    let fate = if r < args.deactivated {
        Fate::Deactivated
    } else if r < args.deactivated + args.deleted_from_idp {
        Fate::DeletedFromIdp
    } else if r < args.deactivated + args.deleted_from_idp + args.deleted_from_identity_center {
        Fate::DeletedFromIdentityCenter
    } else {
        Fate::Active
    };
    let login = format!("user{i:07}@example.com");
    let mut targets = vec![i % args.targets.max(1)];
    if args.targets > 1 && uniform(args.seed, i, 2) < args.second_target {
        targets.push((i + 1 + i / args.targets) % args.targets);
        targets.dedup();
    }
    let logins = targets
        .into_iter()
        .enumerate()
        .map(|(n, t)| {
            let bare = uniform(args.seed, i, 3 + n as u64) < args.unprefixed;
            let name = if bare {
                login.clone()
            } else {
                format!("IAMA:{login}")
            };
            (t, name, uniform(args.seed, i, 9) < 0.01)
        })
        .collect();
    let h = mix(args.seed ^ mix(i as u64));
    Person {
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

fn in_idp(p: &Person) -> bool {
    p.fate != Fate::DeletedFromIdp
}

fn in_identity_center(p: &Person) -> bool {
    p.fate != Fate::DeletedFromIdentityCenter
}

/// A SCIM User with the attributes a real IdP sends, about 700 bytes.
fn scim_user(p: &Person, i: usize) -> serde_json::Value {
    let given = format!("Given{i}");
    let family = format!("Family{i}");
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": p.idp_id,
        "externalId": p.external_id,
        "userName": p.login,
        "name": {"givenName": given, "familyName": family, "formatted": format!("{given} {family}")},
        "displayName": format!("{given} {family}"),
        "active": p.fate != Fate::Deactivated,
        "emails": [{"value": p.login, "type": "work", "primary": true},
                   {"value": format!("u{i}@personal.example.org"), "type": "home"}],
        "phoneNumbers": [{"value": format!("+1 555 {:07}", i % 10_000_000), "type": "work"}],
        "title": "Analyst",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": format!("E{i:07}"),
            "department": format!("Department {}", i % 40),
            "manager": {"value": format!("00u{:016x}", mix(i as u64 / 8))}
        },
        "meta": {"resourceType": "User", "created": "2024-01-15T09:30:00Z",
                 "lastModified": "2026-11-01T12:00:00Z",
                 "location": format!("https://idp.example.com/scim/v2/Users/{}", p.idp_id)}
    })
}

fn ic_user(p: &Person, i: usize) -> serde_json::Value {
    json!({
        "IdentityStoreId": "d-9067c1a2b3",
        "UserId": p.ic_id,
        "UserName": p.login,
        "Name": {"GivenName": format!("Given{i}"), "FamilyName": format!("Family{i}"),
                 "Formatted": format!("Given{i} Family{i}")},
        "DisplayName": format!("Given{i} Family{i}"),
        "Emails": [{"Value": p.login, "Type": "work", "Primary": true}],
        "ExternalIds": [{"Issuer": "https://scim.us-east-1.amazonaws.com/a1b2c3d4e5f-example/scim/v2",
                         "Id": p.external_id}]
    })
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.targets >= 1, "--targets must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let idp_count = (0..args.users)
        .filter(|&i| in_idp(&person(&args, i)))
        .count();
    let mut scim = create(&args.out.join("scim-users.json"))?;
    write!(
        scim,
        "{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":{idp_count},\"itemsPerPage\":{idp_count},\"startIndex\":1,\"Resources\":["
    )?;
    let mut ic = create(&args.out.join("identitystore-users.json"))?;
    write!(ic, "{{\"Users\":[")?;
    let mut targets = (0..args.targets)
        .map(|t| {
            let mut w = csv::Writer::from_writer(create(
                &args.out.join(format!("target{t:02}-pg_user.csv")),
            )?);
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
            for (name, superuser) in [("rdsdb", true), ("awsuser", true), ("etl_service", false)] {
                let flag = if superuser { "t" } else { "f" };
                w.write_record([name, "1", flag, flag, flag, "********", "", ""])?;
            }
            w.write_record([
                &format!("IAMR:loader-{t}"),
                "2",
                "f",
                "f",
                "f",
                "********",
                "",
                "",
            ])?;
            for j in 0..args.service_accounts {
                w.write_record([
                    &format!("svc_{t}_{j}"),
                    "3",
                    "f",
                    "f",
                    "f",
                    "********",
                    "",
                    "",
                ])?;
            }
            Ok(w)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    expected.insert(
        "unmanaged_db_user",
        (args.targets * args.service_accounts) as u64,
    );
    let (mut first_scim, mut first_ic) = (true, true);
    let mut db_users = (args.targets * (4 + args.service_accounts)) as u64;
    for i in 0..args.users {
        let p = person(&args, i);
        if in_idp(&p) {
            if !first_scim {
                scim.write_all(b",")?;
            }
            first_scim = false;
            serde_json::to_writer(&mut scim, &scim_user(&p, i))?;
        }
        if in_identity_center(&p) {
            if !first_ic {
                ic.write_all(b",")?;
            }
            first_ic = false;
            serde_json::to_writer(&mut ic, &ic_user(&p, i))?;
        }
        match p.fate {
            Fate::Deactivated | Fate::DeletedFromIdp => {
                *expected.entry("stale_identity_center_user").or_default() += 1
            }
            Fate::Active | Fate::DeletedFromIdentityCenter => {}
        }
        for (t, name, superuser) in &p.logins {
            let flag = if *superuser { "t" } else { "f" };
            targets[*t].write_record([
                name.as_str(),
                &(100 + i).to_string(),
                "f",
                flag,
                "f",
                "********",
                "",
                "",
            ])?;
            db_users += 1;
            let kind = match (p.fate, name.starts_with("IAMA:")) {
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
    std::fs::write(args.out.join("idgraph.toml"), config)?;

    let summary = json!({
        "users": args.users,
        "idp_users": idp_count,
        "targets": args.targets,
        "database_users": db_users,
        "findings": expected,
    });
    std::fs::write(
        args.out.join("expected.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    println!("{summary}");
    Ok(())
}
