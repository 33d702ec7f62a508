//! The Kubernetes manifests under `deploy/`: every document read into its
//! k8s-openapi type and written back must equal what was read (k8s-openapi
//! ignores unknown fields, so a misspelt key shows up as a difference), and
//! the deployment's invariants hold. No cluster runs here; this is the
//! offline check.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every document of a YAML file, as JSON values.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// Paths where `a` and `b` differ.
fn diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{at}.{k}"), v, w, out),
                    None => out.push(format!("{at}.{k} (unknown field, or dropped)")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{at}.{k} (added)"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}[{i}]"), v, w, out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} != {b}")),
        _ => {}
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut d = Vec::new();
    diff("", v, &back, &mut d);
    if d.is_empty() {
        Ok(typed)
    } else {
        Err(d.join("\n"))
    }
}

#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    accounts: Vec<ServiceAccount>,
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    daemon_sets: Vec<DaemonSet>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
}

fn load(files: &[&str]) -> Manifests {
    let mut m = Manifests::default();
    let mut errors = Vec::new();
    for f in files {
        for (i, v) in documents(f).iter().enumerate() {
            let kind = v["kind"].as_str().unwrap_or_default();
            let r = match kind {
                "Namespace" => round_trip(v).map(|x| m.namespaces.push(x)),
                "ServiceAccount" => round_trip(v).map(|x| m.accounts.push(x)),
                "ClusterRole" => round_trip(v).map(|x| m.roles.push(x)),
                "ClusterRoleBinding" => round_trip(v).map(|x| m.bindings.push(x)),
                "ConfigMap" => round_trip(v).map(|x| m.config_maps.push(x)),
                "DaemonSet" => round_trip(v).map(|x| m.daemon_sets.push(x)),
                "Deployment" => round_trip(v).map(|x| m.deployments.push(x)),
                "Service" => round_trip(v).map(|x| m.services.push(x)),
                other => Err(format!("unexpected kind {other:?}")),
            };
            if let Err(e) = r {
                errors.push(format!("{f} document {i} ({kind}):\n{e}"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    m
}

fn service<'a>(m: &'a Manifests, ns: &str, name: &str) -> &'a Service {
    m.services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no Service {ns}/{name}"))
}

fn has_port_name(c: &Container, name: &str) -> bool {
    c.ports
        .iter()
        .flatten()
        .any(|p| p.name.as_deref() == Some(name))
}

#[test]
fn manifests_round_trip_and_hold_their_invariants() {
    let m = load(&["switchyard.yaml", "hello-world.yaml"]);

    // RBAC: list/watch on endpointslices and services, nothing more.
    let role = &m.roles[0];
    let mut granted = Vec::new();
    for r in role.rules.iter().flatten() {
        for res in r.resources.iter().flatten() {
            for verb in &r.verbs {
                granted.push(format!("{res}:{verb}"));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "endpointslices:get",
            "endpointslices:list",
            "endpointslices:watch",
            "services:get",
            "services:list",
            "services:watch"
        ]
    );
    let binding = &m.bindings[0];
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    let ds = &m.daemon_sets[0];
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let sa = pod.service_account_name.as_deref().unwrap();
    assert!(binding.subjects.iter().flatten().any(|s| s.name == sa));
    assert!(
        m.accounts
            .iter()
            .any(|a| a.metadata.name.as_deref() == Some(sa))
    );

    // The DaemonSet: downward API, probes, resources, security.
    assert!(
        pod.host_network != Some(true),
        "the design uses pod IPs, not the host network"
    );
    let c = &pod.containers[0];
    let env = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(env("NODE_NAME").as_deref(), Some("spec.nodeName"));
    assert_eq!(env("POD_IP").as_deref(), Some("status.podIP"));
    assert_eq!(env("HOST_IP").as_deref(), Some("status.hostIP"));
    assert!(
        c.ports.iter().flatten().all(|p| p.host_port.is_none()),
        "no host ports"
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let g = p.as_ref().unwrap().http_get.as_ref().unwrap();
        let port = match &g.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
        };
        assert!(
            has_port_name(c, &port),
            "probe port {port} is not a container port"
        );
        g.path.clone().unwrap()
    };
    assert_eq!(probe_path(&c.readiness_probe), "/ready");
    assert_eq!(probe_path(&c.startup_probe), "/ready");
    assert_eq!(
        probe_path(&c.liveness_probe),
        "/live",
        "liveness must not follow the API server"
    );
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.requests, res.limits, "Guaranteed QoS");
    assert!(res.limits.as_ref().unwrap().contains_key("cpu"));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert!(sc.privileged != Some(true));
    assert!(sc.seccomp_profile.is_some());

    // The config the DaemonSet mounts is valid, and what it names exists.
    let args = c.args.clone().unwrap();
    let cfg_path = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|v| cfg_path.starts_with(&v.mount_path))
        .expect("the config file's volume is mounted");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm_name = volume.config_map.as_ref().unwrap().name.clone();
    let cm = m
        .config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(cm_name.as_str()))
        .unwrap();
    let file = cfg_path.rsplit('/').next().unwrap();
    let config = cm.data.as_ref().unwrap().get(file).expect("config key");
    let tmp = crate::support::TempFile::new("yaml", config);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check-config", tmp.path()])
        .env("NODE_NAME", "node-a")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every router listens on a declared container port.
    // In-process, the localnode transformer is given the node NODE_NAME
    // would have supplied.
    let with_node: String = config
        .lines()
        .flat_map(|l| {
            let mut out = vec![l.to_owned()];
            if l.trim() == "- kind: io.l5d.k8s.localnode" {
                let indent = l.len() - l.trim_start().len() + 2;
                out.push(format!("{}node: node-a", " ".repeat(indent)));
            }
            out
        })
        .map(|l| l + "\n")
        .collect();
    let cfg = switchyard::config::Config::from_yaml(&with_node).unwrap();
    for r in &cfg.routers {
        for s in &r.servers {
            let port = i32::from(s.addr.port());
            assert!(
                c.ports.iter().flatten().any(|p| p.container_port == port),
                "router {} listens on {port}, which the container does not declare",
                r.label
            );
        }
        // The peer table of the daemonset transformer is a real Service port.
        for t in &r.transformers {
            if let switchyard::config::Transformer::DaemonSet { peers, .. } = t {
                // /#/io.l5d.k8s/<ns>/<port>/<service>
                let shown = peers.show();
                let p: Vec<&str> = shown.split('/').collect();
                assert_eq!(p.len(), 6, "{shown}");
                let (ns, port, name) = (p[3], p[4], p[5]);
                let svc = service(&m, ns, name);
                let ports = svc.spec.as_ref().unwrap().ports.clone().unwrap_or_default();
                assert!(
                    ports.iter().any(|sp| sp.name.as_deref() == Some(port)),
                    "{shown}: no port {port}"
                );
                assert_eq!(
                    svc.spec.as_ref().unwrap().selector,
                    ds.spec
                        .as_ref()
                        .unwrap()
                        .template
                        .metadata
                        .as_ref()
                        .unwrap()
                        .labels,
                    "the peer Service must select the DaemonSet's pods"
                );
            }
        }
    }
    // Apps reach their own node's proxy.
    assert_eq!(
        service(&m, "switchyard", "switchyard")
            .spec
            .as_ref()
            .unwrap()
            .internal_traffic_policy
            .as_deref(),
        Some("Local")
    );

    // The apps: every Service the dtabs name has a port named http, and
    // every Deployment's pods run as the restricted profile asks.
    for name in ["hello", "world-v1", "world-v2"] {
        let s = service(&m, "default", name);
        assert!(
            s.spec
                .as_ref()
                .unwrap()
                .ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some("http"))
        );
        assert!(config.contains("/#/io.l5d.k8s/default/http"));
    }
    for d in &m.deployments {
        let c = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{:?}",
            d.metadata.name
        );
        assert!(has_port_name(c, "http"));
    }
}

#[test]
fn a_misspelt_field_is_caught() {
    let v: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetport": 8080}]}
    });
    let e = round_trip::<Service>(&v).unwrap_err();
    assert!(e.contains(".spec.ports[0].targetport"), "{e}");
}

#[test]
fn the_seccomp_profile_allows_io_uring() {
    let text =
        std::fs::read_to_string(deploy_dir().join("seccomp/switchyard-io-uring.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
    let denied: Vec<&str> = v["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["names"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
        })
        .collect();
    for s in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(!denied.contains(&s), "{s} is denied");
    }
    for s in ["mount", "bpf", "ptrace", "kexec_load", "unshare"] {
        assert!(denied.contains(&s), "{s} is allowed");
    }
}
