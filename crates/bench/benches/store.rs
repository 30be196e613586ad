//! The store recording a run that opens 10,000 findings into an empty history, an
//! unchanged rerun over those 10,000 open findings, and a watched run about one person
//! beside them (its cost should not grow with them).
//!
//! `cargo bench -p idgraph-bench --bench store`.

// criterion_group! defines public functions of its own; a bench may unwrap like a test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use idgraph_model::{Finding, FindingKind, MatchRule, Reason, Scope, Severity, Subject};
use idgraph_store::{NewRun, RunScope, RunStatus, SourceRecord, SourceStatus, Store};

/// The allocator the idgraph binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FINDINGS: usize = 10_000;
const TARGETS: usize = 20;

fn findings() -> Vec<Finding> {
    (0..FINDINGS).map(finding).collect()
}

fn finding(i: usize) -> Finding {
    Finding {
        kind: FindingKind::OrphanedDbUser,
        reason: Reason::IdpUserInactive,
        severity: Severity::High,
        target: Some(format!("target{:02}", i % TARGETS)),
        db_user: Some(format!("IAMA:user{i:07}@example.com")),
        ic_user_id: Some(format!("906{i:07x}-0000-0000-0000-000000000000")),
        idp_user_id: Some(format!("00u{i:016x}")),
        user_name: Some(format!("user{i:07}@example.com")),
        superuser: false,
        matched_by: Some(MatchRule::PrefixUserName),
        candidates: Vec::new(),
        logins: None,
    }
}

fn run() -> NewRun {
    NewRun {
        scope: None,
        started_at: Utc::now(),
        finished_at: Utc::now(),
        status: RunStatus::Complete,
        sources: vec![SourceRecord {
            name: "idp".to_owned(),
            kind: "file".to_owned(),
            status: SourceStatus::Ok,
            objects: Some(FINDINGS as u64),
            digest: Some("0".repeat(64)),
            error: None,
            duration_ms: 1,
        }],
    }
}

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let findings = findings();
    let mut evaluated: HashSet<Scope> = (0..TARGETS)
        .map(|t| Scope::Target(format!("target{t:02}")))
        .collect();
    evaluated.insert(Scope::IdentityCenter);

    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FINDINGS as u64));
    group.bench_function("record_run/open 10000", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = rt
                    .block_on(Store::open(&dir.path().join("bench.db")))
                    .unwrap();
                (dir, store)
            },
            |(dir, store)| {
                let recorded = rt
                    .block_on(store.record_run(&run(), &findings, &evaluated))
                    .unwrap();
                assert_eq!(recorded.opened.len(), FINDINGS);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });

    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(Store::open(&dir.path().join("bench.db")))
        .unwrap();
    rt.block_on(store.record_run(&run(), &findings, &evaluated))
        .unwrap();
    group.bench_function("record_run/unchanged 10000", |b| {
        b.iter(|| {
            let recorded = rt
                .block_on(store.record_run(&run(), &findings, &evaluated))
                .unwrap();
            assert_eq!(recorded.open.len(), FINDINGS);
        })
    });

    // One person beside the 10,000: each watched run alternately finds their login orphaned
    // (opens one episode) and not (resolves it).
    let person = finding(FINDINGS);
    let mut watched = run();
    watched.scope = Some(RunScope {
        idp_users: vec![person.idp_user_id.clone().unwrap()],
        subjects: vec![Subject {
            target: person.target.clone().unwrap(),
            subject: person.db_user.clone().unwrap(),
        }],
    });
    let person = [person];
    let mut left = false;
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_run/watched 1 beside 10000 open", |b| {
        b.iter(|| {
            left = !left;
            let found: &[Finding] = if left { &person } else { &[] };
            let recorded = rt
                .block_on(store.record_run(&watched, found, &evaluated))
                .unwrap();
            assert_eq!(recorded.opened.len() + recorded.resolved.len(), 1);
        })
    });
    group.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
