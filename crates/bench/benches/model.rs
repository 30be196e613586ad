//! The identity model at 10k, 200k and 1M people over 20 targets: building the graph and
//! its findings, diffing them against the findings open before (an unchanged rerun), and
//! a watched run's targeted re-check of one person with the whole universe loaded.
//!
//! `cargo bench -p idgraph-bench --bench model`; `IDGRAPH_BENCH_SIZES=10000,200000` picks
//! the sizes.

// criterion_group! defines public functions of its own; a bench may unwrap like a test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use idgraph_bench::{Model, Params};
use idgraph_model::focus::Universe;
use idgraph_model::{diff, DbUser, Finding, FindingKey, Graph, Scope};

/// The allocator the idgraph binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TARGETS: usize = 20;

fn sizes() -> Vec<usize> {
    std::env::var("IDGRAPH_BENCH_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("IDGRAPH_BENCH_SIZES: numbers, comma-separated")
                })
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 200_000, 1_000_000])
}

fn build(model: Model) -> Vec<Finding> {
    let graph = Graph::build(
        model.idp,
        model.identity_center,
        model.targets,
        &model.mapping,
    );
    graph.findings()
}

fn bench_model(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    for users in sizes() {
        let model = Params::new(users, TARGETS).model();
        group.throughput(Throughput::Elements(users as u64));
        // The graph takes its snapshots by value, as a run hands them over: cloning them
        // is setup, not measured.
        group.bench_with_input(BenchmarkId::new("build+findings", users), &model, |b, m| {
            b.iter_batched(|| m.clone(), build, BatchSize::LargeInput)
        });

        let findings = build(model.clone());
        let open: HashMap<FindingKey, Finding> =
            findings.iter().map(|f| (f.key(), f.clone())).collect();
        let mut evaluated: HashSet<Scope> = model
            .targets
            .iter()
            .map(|t| Scope::Target(t.name.clone()))
            .collect();
        evaluated.insert(Scope::IdentityCenter);
        group.bench_with_input(BenchmarkId::new("diff", users), &findings, |b, found| {
            b.iter(|| {
                let changes = diff(&open, found, &evaluated);
                assert!(changes.opened.is_empty() && changes.resolved.is_empty());
            })
        });
    }
    group.finish();
}

/// The process's resident memory (`VmRSS`), 0 where /proc has none.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One targeted re-check of one deactivated person with the whole organisation's
/// universe loaded: the CPU a watched run spends besides its requests. Identity Center
/// answers from the universe, as an unchanged export does; the `pg_user` rows a target
/// would return are picked beforehand.
fn bench_recheck(c: &mut Criterion) {
    let mut group = c.benchmark_group("recheck");
    group.sample_size(50);
    for users in sizes() {
        let model = Params::new(users, TARGETS).model();
        let (rss_before, start) = (rss_kib(), std::time::Instant::now());
        let mut universe = Universe::new(
            model.idp.clone(),
            model.identity_center.clone(),
            &model.targets,
            &model.mapping,
        );
        eprintln!(
            "recheck/{users}: indexing the universe took {:.0} ms and {} MiB of resident memory",
            start.elapsed().as_secs_f64() * 1000.0,
            rss_kib().saturating_sub(rss_before) / 1024
        );
        // Someone in the middle with a login on a target, who now leaves.
        let person = model
            .idp
            .iter()
            .skip(users / 2)
            .find(|u| {
                u.active
                    && model.targets.iter().any(|t| {
                        t.users
                            .iter()
                            .any(|d| d.name.to_lowercase().ends_with(&u.user_name.to_lowercase()))
                    })
            })
            .expect("an active person with a login");
        let mut changed = person.clone();
        changed.active = false;
        let people = universe.people(vec![changed.clone()]);
        let read: Vec<(String, Vec<DbUser>)> = model
            .targets
            .iter()
            .map(|t| {
                let wanted: HashSet<String> =
                    universe.candidates(&people, &t.name).into_iter().collect();
                let rows = t
                    .users
                    .iter()
                    .filter(|u| wanted.contains(&u.name.to_lowercase()))
                    .cloned()
                    .collect();
                (t.name.clone(), rows)
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("one person", users), &users, |b, _| {
            b.iter(|| {
                let mut people = universe.people(vec![changed.clone()]);
                // Identity Center answers as an export unchanged since the full run does.
                let fresh = universe.answer(&people.lookup);
                universe.apply(&mut people, fresh);
                let evaluation = universe.evaluate(&people, read.clone());
                assert!(!evaluation.findings.is_empty());
                evaluation
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_model, bench_recheck);
criterion_main!(benches);
