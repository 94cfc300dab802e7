//! Finding the images in an admitted object.
//!
//! The pod spec is at `spec` for a Pod, at
//! `spec.jobTemplate.spec.template.spec` for a CronJob, and at
//! `spec.template.spec` for every other object (Deployment, ReplicaSet,
//! StatefulSet, DaemonSet, Job, ReplicationController, and any custom
//! resource with a pod template). Within it, every field the kubelet pulls
//! an image for is read: `containers[].image`, `initContainers[].image`,
//! `ephemeralContainers[].image` and `volumes[].image.reference` (image
//! volumes, Kubernetes' `ImageVolume` feature). An object without a pod spec
//! has nothing to verify.

use serde_json::Value;

/// Which list of the pod spec an image is named in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `containers`.
    Container,
    /// `initContainers`.
    Init,
    /// `ephemeralContainers`.
    Ephemeral,
    /// `volumes[].image.reference`: an image volume, pulled and mounted by
    /// the kubelet like a container image.
    Volume,
}

impl ContainerKind {
    /// The pod spec field name.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
            ContainerKind::Volume => "volumes",
        }
    }

    const CONTAINERS: [ContainerKind; 3] = [
        ContainerKind::Container,
        ContainerKind::Init,
        ContainerKind::Ephemeral,
    ];
}

/// One place an image is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    /// The image as written.
    pub image: String,
    /// The JSON Pointer of the field naming the image (`.../image`, or
    /// `.../image/reference` for a volume), for the patch.
    pub pointer: String,
    /// Which container list it is in.
    pub container_kind: ContainerKind,
}

/// The images of an object, and what else verification needs from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// Every image site, in order: containers, initContainers,
    /// ephemeralContainers, volumes, each by index.
    pub sites: Vec<ImageSite>,
    /// The names of the pod spec's `imagePullSecrets`.
    pub pull_secrets: Vec<String>,
    /// The JSON Pointer of the pod spec, if the object has one.
    pub pod_spec_pointer: Option<String>,
}

impl Extraction {
    /// The distinct images, in first-seen order, each with the list it is
    /// first named in. Linear in the number of sites (a hash set), so a
    /// review naming very many images costs no quadratic work before the
    /// image limit is applied.
    pub fn unique_images(&self) -> Vec<(&str, ContainerKind)> {
        let mut seen = std::collections::HashSet::with_capacity(self.sites.len());
        self.sites
            .iter()
            .filter(|site| seen.insert(site.image.as_str()))
            .map(|site| (site.image.as_str(), site.container_kind))
            .collect()
    }
}

/// The object is shaped wrongly where a pod spec should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pod spec: {pointer} {problem}")]
pub struct ExtractError {
    /// Where.
    pub pointer: String,
    /// What is wrong.
    pub problem: &'static str,
}

/// The JSON Pointer of the pod spec for an object of `kind`.
pub(crate) fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        // The legacy EphemeralContainers kind (Kubernetes 1.16-1.21) carries
        // the list at the top level.
        "EphemeralContainers" => "",
        _ => "/spec/template/spec",
    }
}

/// Extracts the images of `object`, an object of `kind`.
pub fn extract(kind: &str, object: &Value) -> Result<Extraction, ExtractError> {
    let pointer = pod_spec_pointer(kind);
    let spec = if pointer.is_empty() {
        Some(object)
    } else {
        object.pointer(pointer)
    };
    let Some(spec) = spec else {
        return Ok(Extraction::default());
    };
    if spec.is_null() {
        return Ok(Extraction::default());
    }
    let Some(spec) = spec.as_object() else {
        return Err(ExtractError {
            pointer: pointer.to_string(),
            problem: "is not an object",
        });
    };
    let mut out = Extraction {
        pod_spec_pointer: Some(pointer.to_string()),
        ..Default::default()
    };
    for container_kind in ContainerKind::CONTAINERS {
        let field = container_kind.field();
        let list_pointer = format!("{pointer}/{field}");
        let list = match spec.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(ExtractError {
                    pointer: list_pointer,
                    problem: "is not a list",
                });
            }
        };
        for (i, container) in list.iter().enumerate() {
            let Some(container) = container.as_object() else {
                return Err(ExtractError {
                    pointer: format!("{list_pointer}/{i}"),
                    problem: "is not an object",
                });
            };
            match container.get("image") {
                // A container without an image runs nothing we could verify;
                // the API server rejects it anyway.
                None | Some(Value::Null) => {}
                Some(Value::String(image)) => out.sites.push(ImageSite {
                    image: image.clone(),
                    pointer: format!("{list_pointer}/{i}/image"),
                    container_kind,
                }),
                Some(_) => {
                    return Err(ExtractError {
                        pointer: format!("{list_pointer}/{i}/image"),
                        problem: "is not a string",
                    });
                }
            }
        }
    }
    extract_volumes(spec, pointer, &mut out.sites)?;
    if let Some(Value::Array(secrets)) = spec.get("imagePullSecrets") {
        out.pull_secrets = secrets
            .iter()
            .filter_map(|s| s.get("name")?.as_str().map(str::to_string))
            .collect();
    }
    Ok(out)
}

/// Adds the image volumes of `spec` (at `pointer`): each
/// `volumes[i].image.reference`. Volumes of other types are skipped; a
/// `volumes` that is not a list, a volume that is not an object, or an
/// `image` source that is not an object or whose `reference` is not a string
/// is an error naming the place.
fn extract_volumes(
    spec: &serde_json::Map<String, Value>,
    pointer: &str,
    sites: &mut Vec<ImageSite>,
) -> Result<(), ExtractError> {
    let list_pointer = format!("{pointer}/volumes");
    let list = match spec.get("volumes") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ExtractError {
                pointer: list_pointer,
                problem: "is not a list",
            });
        }
    };
    for (i, volume) in list.iter().enumerate() {
        let Some(volume) = volume.as_object() else {
            return Err(ExtractError {
                pointer: format!("{list_pointer}/{i}"),
                problem: "is not an object",
            });
        };
        let source = match volume.get("image") {
            None | Some(Value::Null) => continue,
            Some(Value::Object(source)) => source,
            Some(_) => {
                return Err(ExtractError {
                    pointer: format!("{list_pointer}/{i}/image"),
                    problem: "is not an object",
                });
            }
        };
        let reference_pointer = format!("{list_pointer}/{i}/image/reference");
        match source.get("reference") {
            Some(Value::String(reference)) => sites.push(ImageSite {
                image: reference.clone(),
                pointer: reference_pointer,
                container_kind: ContainerKind::Volume,
            }),
            // As for a container without an image: nothing to pull here
            // (the API server rejects a Pod like this; a template may leave
            // it to be filled in later, and the Pod is verified then).
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(ExtractError {
                    pointer: reference_pointer,
                    problem: "is not a string",
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn images(kind: &str, object: Value) -> Vec<(String, String)> {
        extract(kind, &object)
            .unwrap()
            .sites
            .into_iter()
            .map(|s| (s.image, s.pointer))
            .collect()
    }

    #[test]
    fn pod_all_container_lists() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}],
            "ephemeralContainers": [{"name": "d", "image": "debug"}],
            "imagePullSecrets": [{"name": "regcred"}]
        }});
        assert_eq!(
            images("Pod", pod.clone()),
            vec![
                ("nginx".into(), "/spec/containers/0/image".into()),
                ("redis".into(), "/spec/containers/1/image".into()),
                ("busybox".into(), "/spec/initContainers/0/image".into()),
                ("debug".into(), "/spec/ephemeralContainers/0/image".into()),
            ]
        );
        assert_eq!(
            extract("Pod", &pod).unwrap().pull_secrets,
            vec!["regcred".to_string()]
        );
    }

    #[test]
    fn workload_kinds() {
        let tpl = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        for kind in [
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "ReplicationController",
            "MyCustomThing",
        ] {
            assert_eq!(
                images(kind, tpl.clone()),
                vec![("a".into(), "/spec/template/spec/containers/0/image".into())]
            );
        }
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "c"}]}}}}}});
        assert_eq!(
            images("CronJob", cron),
            vec![(
                "c".into(),
                "/spec/jobTemplate/spec/template/spec/containers/0/image".into()
            )]
        );
    }

    #[test]
    fn image_volumes_in_pods_and_templates() {
        let spec = json!({
            "containers": [{"image": "app:1"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "models", "image": {"reference": "models:2", "pullPolicy": "IfNotPresent"}},
                {"name": "later", "image": {"pullPolicy": "Always"}}
            ]
        });
        assert_eq!(
            images("Pod", json!({ "spec": spec })),
            vec![
                ("app:1".into(), "/spec/containers/0/image".into()),
                ("models:2".into(), "/spec/volumes/1/image/reference".into()),
            ]
        );
        let ex = extract("Deployment", &json!({"spec": {"template": {"spec": spec}}})).unwrap();
        assert_eq!(
            ex.sites[1].pointer,
            "/spec/template/spec/volumes/1/image/reference"
        );
        assert_eq!(ex.sites[1].container_kind, ContainerKind::Volume);
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}});
        assert_eq!(
            images("CronJob", cron)[1].1,
            "/spec/jobTemplate/spec/template/spec/volumes/1/image/reference"
        );
    }

    #[test]
    fn malformed_image_volumes() {
        let bad =
            |volumes: Value| extract("Pod", &json!({"spec": {"volumes": volumes}})).unwrap_err();
        assert_eq!(bad(json!({"image": {}})).pointer, "/spec/volumes");
        assert_eq!(bad(json!(["x"])).pointer, "/spec/volumes/0");
        assert_eq!(
            bad(json!([{"image": "evil:1"}])).pointer,
            "/spec/volumes/0/image"
        );
        let e = bad(json!([{"image": {"reference": ["evil:1"]}}]));
        assert_eq!(e.pointer, "/spec/volumes/0/image/reference");
        assert_eq!(
            e.to_string(),
            "malformed pod spec: /spec/volumes/0/image/reference is not a string"
        );
    }

    #[test]
    fn no_pod_spec_means_nothing() {
        assert!(images("ConfigMap", json!({"data": {"a": "b"}})).is_empty());
        assert!(images("Pod", json!({})).is_empty());
        assert!(images("Deployment", json!({"spec": {"replicas": 1}})).is_empty());
        assert!(
            extract("Service", &json!("string"))
                .unwrap()
                .sites
                .is_empty()
        );
    }

    #[test]
    fn malformed_specs() {
        let e = extract("Pod", &json!({"spec": {"containers": {"image": "x"}}})).unwrap_err();
        assert_eq!(e.pointer, "/spec/containers");
        let e = extract("Pod", &json!({"spec": {"containers": [{"image": 5}]}})).unwrap_err();
        assert_eq!(e.pointer, "/spec/containers/0/image");
        let e = extract("Pod", &json!({"spec": {"containers": ["x"]}})).unwrap_err();
        assert_eq!(e.pointer, "/spec/containers/0");
        let e = extract("Deployment", &json!({"spec": {"template": {"spec": 7}}})).unwrap_err();
        assert_eq!(e.pointer, "/spec/template/spec");
    }

    #[test]
    fn unique_images_keep_order() {
        let pod = json!({"spec": {"containers": [{"image": "b"}, {"image": "a"}, {"image": "b"}]}});
        let ex = extract("Pod", &pod).unwrap();
        assert_eq!(
            ex.unique_images(),
            vec![
                ("b", ContainerKind::Container),
                ("a", ContainerKind::Container)
            ]
        );
        assert_eq!(ex.sites.len(), 3);
    }

    /// Arbitrary JSON biased towards the keys extraction walks.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z:@/.]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let key = prop_oneof![
                Just("spec".to_string()),
                Just("template".to_string()),
                Just("jobTemplate".to_string()),
                Just("containers".to_string()),
                Just("initContainers".to_string()),
                Just("ephemeralContainers".to_string()),
                Just("image".to_string()),
                Just("imagePullSecrets".to_string()),
                Just("volumes".to_string()),
                Just("reference".to_string()),
                Just("name".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn extract_never_panics(v in arb_json(), kind in "(Pod|CronJob|Deployment|EphemeralContainers|X)") {
            if let Ok(ex) = extract(&kind, &v) {
                // Every site's pointer leads to the image string it names.
                for site in &ex.sites {
                    proptest::prop_assert_eq!(v.pointer(&site.pointer).and_then(Value::as_str), Some(site.image.as_str()));
                }
            }
        }
    }
}
