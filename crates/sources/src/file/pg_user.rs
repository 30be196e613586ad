//! A `psql --csv -c 'select * from pg_user'` dump of one database target.

use idgraph_model::{DbUser, Excerpt};

use super::{first_non_whitespace, without_bom, Problem};

pub(super) fn parse_pg_user(bytes: Vec<u8>) -> Result<Vec<DbUser>, Problem> {
    let body = without_bom(&bytes);
    if first_non_whitespace(body).is_none() {
        return Err(Problem::Malformed("the file is empty".to_owned()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);

    let columns = columns(reader.byte_headers().map_err(csv_problem)?)?;
    let (name_column, super_column) = (columns.name, columns.superuser);
    let sysid_column = columns.sysid;

    let mut users = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(csv_problem)? {
        let line = record.position().map_or(0, csv::Position::line);
        // The reader rejects records with a different number of fields than the header,
        // so every column index is present; `field` still fails politely if not.
        let field = |column: usize, label: &str| {
            record.get(column).ok_or_else(|| {
                Problem::Malformed(format!("line {line}: the record has no `{label}` field"))
            })
        };

        let name = std::str::from_utf8(field(name_column, "usename")?).map_err(|_| {
            Problem::Malformed(format!("line {line}: `usename` is not valid UTF-8"))
        })?;
        if name.is_empty() {
            return Err(Problem::Malformed(format!(
                "line {line}: `usename` is empty"
            )));
        }

        let raw_super = field(super_column, "usesuper")?;
        let superuser = parse_bool(raw_super).ok_or_else(|| {
            Problem::Malformed(format!(
                "line {line}: `usesuper` is {}, expected t, f, true or false",
                Excerpt(&String::from_utf8_lossy(raw_super))
            ))
        })?;

        let sysid = match sysid_column {
            None => None,
            Some(column) => {
                let raw = field(column, "usesysid")?;
                parse_sysid(raw).ok_or_else(|| {
                    Problem::Malformed(format!(
                        "line {line}: `usesysid` is {}, expected an integer",
                        Excerpt(&String::from_utf8_lossy(raw))
                    ))
                })?
            }
        };

        users.push(DbUser {
            name: name.to_owned(),
            sysid,
            superuser,
        });
    }
    Ok(users)
}

/// Where the columns idgraph reads sit in the header row.
fn columns(header: &csv::ByteRecord) -> Result<Columns, Problem> {
    let mut columns = Found::default();
    for (i, name) in header.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let name = name.trim();
        for (wanted, slot) in [
            ("usename", &mut columns.name),
            ("usesuper", &mut columns.superuser),
            ("usesysid", &mut columns.sysid),
        ] {
            if name.eq_ignore_ascii_case(wanted) {
                if slot.is_some() {
                    return Err(Problem::Malformed(format!(
                        "line 1: column `{wanted}` appears twice in the header"
                    )));
                }
                *slot = Some(i);
            }
        }
    }
    let missing = |column: &str| {
        // The first line of an arbitrary file (a config pointed at /proc/self/environ) may
        // hold secrets: name what was found only when it looks like a header of columns.
        let found: Option<Vec<&str>> = header
            .iter()
            .map(|h| std::str::from_utf8(h).ok().map(str::trim))
            .map(|h| h.filter(|h| is_column_name(h)))
            .collect();
        Problem::Malformed(match found {
            Some(found) if found.len() <= 64 => format!(
                "missing column `{column}` in the header (found: {})",
                found.join(", ")
            ),
            _ => format!(
                "missing column `{column}`: line 1 is not a header of column names \
                 (is this a `psql --csv` dump of pg_user?)"
            ),
        })
    };
    Ok(Columns {
        name: columns.name.ok_or_else(|| missing("usename"))?,
        superuser: columns.superuser.ok_or_else(|| missing("usesuper"))?,
        sysid: columns.sysid,
    })
}

/// The columns of the header row idgraph reads.
struct Columns {
    name: usize,
    superuser: usize,
    sysid: Option<usize>,
}

/// The columns found so far while reading the header row.
#[derive(Default)]
struct Found {
    name: Option<usize>,
    superuser: Option<usize>,
    sysid: Option<usize>,
}

/// Whether a header field reads like a column name (`usename`, `Valid Until`): letters,
/// digits, `_` and spaces, at most 63 bytes.
fn is_column_name(field: &str) -> bool {
    !field.is_empty()
        && field.len() < 64
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b' ')
}

/// `t`, `f`, `true` or `false` in any case, as psql and hand-written files spell them.
fn parse_bool(raw: &[u8]) -> Option<bool> {
    let raw = raw.trim_ascii();
    if raw.eq_ignore_ascii_case(b"t") || raw.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case(b"f") || raw.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// `Some(None)` for an empty field (psql prints NULL as nothing), `None` if not an integer.
fn parse_sysid(raw: &[u8]) -> Option<Option<i64>> {
    let raw = std::str::from_utf8(raw).ok()?.trim();
    if raw.is_empty() {
        return Some(None);
    }
    raw.parse().ok().map(Some)
}

/// A csv error as "line N: what".
fn csv_problem(err: csv::Error) -> Problem {
    let detail = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            pos: Some(pos),
            expected_len,
            len,
        } => format!(
            "line {}: the record has {len} fields but the header has {expected_len}",
            pos.line()
        ),
        csv::ErrorKind::Utf8 { pos: Some(pos), .. } => {
            format!("line {}: not valid UTF-8", pos.line())
        }
        _ => err.to_string(),
    };
    Problem::Malformed(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    use idgraph_model::TargetSnapshot;

    use crate::file::testing::{file, malformed_detail};
    use crate::file::FileTarget;
    use crate::{Source, SourceError};

    async fn target(content: impl AsRef<[u8]>) -> Result<Vec<DbUser>, SourceError> {
        let f = file(content);
        Ok(FileTarget::new("prod", f.path()).fetch().await?.users)
    }

    #[tokio::test]
    async fn csv_reads_psql_output_with_any_column_order() {
        let content = "usename,usesysid,usecreatedb,usesuper,usecatupd,passwd,valuntil,useconfig\n\
                       rdsdb,1,t,t,t,********,infinity,\n\
                       alice,100,f,f,f,********,,\n";
        let users = target(content).await.expect("parses");
        assert_eq!(
            users,
            [
                DbUser {
                    name: "rdsdb".into(),
                    sysid: Some(1),
                    superuser: true,
                },
                DbUser {
                    name: "alice".into(),
                    sysid: Some(100),
                    superuser: false,
                },
            ]
        );

        let content = " UseSuper , USENAME \nTRUE,admin\nFalse,bob\ntrue,carol\nF,dave\n";
        let users = target(content).await.expect("parses");
        let flags: Vec<(&str, bool, Option<i64>)> = users
            .iter()
            .map(|u| (u.name.as_str(), u.superuser, u.sysid))
            .collect();
        assert_eq!(
            flags,
            [
                ("admin", true, None),
                ("bob", false, None),
                ("carol", true, None),
                ("dave", false, None),
            ]
        );
    }

    #[tokio::test]
    async fn csv_snapshot_carries_the_target_configuration() {
        let f = file("usename,usesuper\nawsuser,t\n");
        let source = FileTarget::new("warehouse", f.path())
            .with_master_user("awsuser")
            .with_login_user("idgraph");
        let snapshot = source.fetch().await.expect("parses");
        assert_eq!(
            snapshot,
            TargetSnapshot {
                name: "warehouse".into(),
                users: vec![DbUser {
                    name: "awsuser".into(),
                    sysid: None,
                    superuser: true,
                }],
                master_user: Some("awsuser".into()),
                login_user: Some("idgraph".into()),
                namespaces: vec![],
            }
        );
    }

    #[tokio::test]
    async fn csv_hostile_names_come_through_intact() {
        let long = format!("{}é", "x".repeat(125));
        assert_eq!(long.len(), 127);
        // Quoted the way psql --csv quotes: fields with quotes, commas, newlines or
        // surrounding spaces are wrapped in double quotes, inner quotes doubled.
        let content = format!(
            "usename,usesysid,usesuper\n\
             \"IAMA:o'brien\"\"; DROP TABLE x; --\",101,f\n\
             \"comma, and\nnewline\",102,f\n\
             用户ü,103,t\n\
             {long},104,f\n\
             \" padded \",105,f\n"
        );
        let users = target(content).await.expect("parses");
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "IAMA:o'brien\"; DROP TABLE x; --",
                "comma, and\nnewline",
                "用户ü",
                long.as_str(),
                " padded ",
            ]
        );
        assert_eq!(users[2].sysid, Some(103));
        assert!(users[2].superuser);
    }

    #[tokio::test]
    async fn csv_bad_boolean_names_the_line_and_the_value() {
        // The quoted newline makes the bad record start on line 4, not record 3.
        let content = "usename,usesuper\n\"multi\nline\",f\nbob,yes\n";
        let err = target(content).await.expect_err("rejects");
        let detail = malformed_detail(&err);
        assert!(detail.starts_with("line 4:"), "{detail}");
        assert!(detail.contains("\"yes\""), "{detail}");
    }

    #[tokio::test]
    async fn csv_bad_rows_are_malformed_with_line() {
        let err = target("usename,usesysid,usesuper\na,x1,t\n")
            .await
            .expect_err("sysid");
        assert!(malformed_detail(&err).starts_with("line 2:"), "{err}");

        let err = target("usename,usesuper\na,t\nb\n")
            .await
            .expect_err("short row");
        assert!(malformed_detail(&err).starts_with("line 3:"), "{err}");

        let err = target("usename,usesuper\n,t\n")
            .await
            .expect_err("empty name");
        assert!(malformed_detail(&err).starts_with("line 2:"), "{err}");
    }

    #[tokio::test]
    async fn csv_missing_usesuper_column() {
        let err = target("usename,usesysid\nalice,100\n")
            .await
            .expect_err("rejects");
        assert!(
            malformed_detail(&err).contains("missing column `usesuper` in the header"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn csv_empty_file_and_byte_order_mark() {
        let err = target("").await.expect_err("empty");
        assert_eq!(malformed_detail(&err), "the file is empty");

        let users = target("\u{feff}usename,usesuper\nalice,f\n")
            .await
            .expect("parses");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "alice");
    }

    // Regression: a CSV error echoed the whole first line, so a target pointed at
    // /proc/self/environ copied the process environment into the store.
    #[tokio::test]
    async fn a_file_that_is_not_a_header_is_not_echoed() {
        let environ = "HOME=/root\0DB_PASSWORD=hunter2-secret,x\0PATH=/usr/bin\0";
        let err = target(environ).await.expect_err("not a pg_user dump");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("missing column `usename`"), "{message}");
    }

    #[tokio::test]
    async fn a_long_field_is_quoted_as_an_excerpt() {
        let content = format!("usename,usesuper\nalice,{}\n", "y".repeat(100_000));
        let err = target(content).await.expect_err("usesuper is no boolean");
        let message = err.to_string();
        assert!(message.len() < 600, "{} bytes", message.len());
        assert!(message.contains("100000 bytes"), "{message}");
    }
}
