//! The identity model at 10k, 200k and 1M people over 20 targets: building the graph and
//! its findings, and diffing them against the findings open before (an unchanged rerun).
//!
//! `cargo bench -p idgraph-bench --bench model`; `IDGRAPH_BENCH_SIZES=10000,200000` picks
//! the sizes.

// criterion_group! defines public functions of its own; a bench may unwrap like a test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use idgraph_bench::{Model, Params};
use idgraph_model::{diff, Finding, FindingKey, Graph, Scope};

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

criterion_group!(benches, bench_model);
criterion_main!(benches);
