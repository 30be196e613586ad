//! What a user finds in the repository before running anything: the licence, and
//! deployment files that work as shipped.

use crate::peers::repo;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `idgraph.toml` the ConfigMap holds: its block scalar, unindented.
fn configmap_toml() -> String {
    read("deploy/kubernetes/configmap.yaml")
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("idgraph.toml: |"))
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

// Regression: Cargo.toml said Apache-2.0 but the repository held no licence text.
#[test]
fn the_licence_cargo_names_is_in_the_repository() {
    assert!(read("Cargo.toml").contains("license = \"Apache-2.0\""));
    let licence = read("LICENSE");
    assert!(
        licence.contains("Apache License\n                           Version 2.0, January 2004")
    );
    assert!(licence.contains("END OF TERMS AND CONDITIONS"));
}

// Regression: the ConfigMap had no `[remediation] new_owner`, so `idgraph plan` failed in
// the pod.
#[test]
fn the_configmap_is_a_valid_config_that_plans_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idgraph.toml");
    std::fs::write(&path, configmap_toml()).unwrap();
    let env = [("IDGRAPH_SCIM_TOKEN", "t")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into_iter()
        .collect();
    let settings = idgraph::config::load_with_env(&path, Some(env)).expect("a valid config");
    assert!(settings.new_owner.is_some(), "no [remediation] new_owner");
}

// Regression: the manifests named an image that was never published, the Deployment
// said scale tests were to come, and the systemd unit (and the runbook's systemd-run) would
// not start without the optional environment file.
#[test]
fn the_image_is_one_the_user_builds_and_the_unit_starts_without_its_environment_file() {
    let build = "docker build -f deploy/Dockerfile -t idgraph:local .";
    for (file, present, absent) in [
        ("README.md", build, "ghcr.io"),
        ("deploy/README.md", build, "ghcr.io"),
        (
            "deploy/kubernetes/deployment.yaml",
            "image: idgraph:local # set to your registry's image\n",
            "still to come",
        ),
        // kustomize's `images:` entry names the Deployment's image.
        (
            "deploy/kubernetes/kustomization.yaml",
            "- name: idgraph\n",
            "ghcr.io",
        ),
        (
            "deploy/systemd/idgraph.service",
            "\nEnvironmentFile=-/etc/idgraph/idgraph.env\n",
            "\nEnvironmentFile=/",
        ),
        (
            "deploy/RUNBOOK.md",
            "EnvironmentFile=-/etc/idgraph/idgraph.env",
            "EnvironmentFile=/",
        ),
    ] {
        let text = read(file);
        assert!(text.contains(present), "{file} lacks {present:?}");
        assert!(!text.contains(absent), "{file} still has {absent:?}");
    }
}

/// The port idgraph listens on by default: outside 9100–9999, the range the Prometheus
/// wiki's "default port allocations" gives to exporters and has filled (9187 is
/// postgres_exporter's, likely to run next to idgraph).
const PORT: &str = "10187";

// Regression: idgraph listened on 9187, postgres_exporter's port; the image and the
// Deployment only listened on all interfaces if the config said so; nothing restricted who
// may reach /metrics.
#[test]
fn the_container_listens_on_all_interfaces_at_a_port_of_its_own_reachable_from_monitoring_only() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains(&format!("IDGRAPH__HTTP__LISTEN=0.0.0.0:{PORT}")),
        "the image listens on all interfaces"
    );
    assert!(dockerfile.contains(&format!("EXPOSE {PORT}")));
    assert!(read("deploy/kubernetes/deployment.yaml").contains(&format!("containerPort: {PORT}")));
    assert!(read("deploy/kubernetes/service.yaml").contains(&format!("port: {PORT}")));
    assert!(configmap_toml().contains(&format!("listen = \"0.0.0.0:{PORT}\"")));
    assert!(read("config/demo.toml").contains(&format!("127.0.0.1:{PORT}")));
    for file in [
        "README.md",
        "deploy/README.md",
        "deploy/RUNBOOK.md",
        "deploy/Dockerfile",
    ] {
        assert!(!read(file).contains("9187"), "{file} still names 9187");
    }

    let policy = read("deploy/kubernetes/networkpolicy.yaml");
    for line in [
        "kind: NetworkPolicy",
        "    - Ingress",
        "kubernetes.io/metadata.name: monitoring",
        "port: http",
    ] {
        assert!(policy.contains(line), "the NetworkPolicy lacks {line:?}");
    }
    assert!(read("deploy/kubernetes/kustomization.yaml").contains("  - networkpolicy.yaml\n"));
}
