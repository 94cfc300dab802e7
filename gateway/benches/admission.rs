//! AdmissionReview parsing and image extraction: a 1-container Pod and a
//! 10-container Deployment (with init containers).

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_gateway::{extract, parse_review};
use serde_json::json;
use std::hint::black_box;

fn review(kind: &str, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    }))
    .unwrap()
}

fn containers(n: usize, prefix: &str) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            json!({
                "name": format!("{prefix}{i}"),
                "image": format!("registry.example.com/team/app{i}:1.{i}"),
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "A", "value": "b"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pod = review(
        "Pod",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}},
               "spec": {"containers": containers(1, "c")}}),
    );
    let deployment = review(
        "Deployment",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}},
                                     "spec": {"initContainers": containers(2, "i"), "containers": containers(10, "c")}}}}),
    );
    for (name, body) in [
        ("pod_1_container", &pod),
        ("deployment_10_containers", &deployment),
    ] {
        c.bench_function(&format!("parse_and_extract/{name}"), |b| {
            b.iter(|| {
                let request = parse_review(black_box(body)).unwrap();
                let object = request.object.as_ref().unwrap();
                let ex = extract(&request.kind.kind, object).unwrap();
                black_box(ex.unique_images().len())
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
