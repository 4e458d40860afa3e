//! Property-based fuzzing of every parser that reads files a stranger may
//! have written: manifests, signature files, registry indexes, lock files,
//! policies, keys and `NAME@VERSION` specs. Each must return an error, never
//! panic, on any input.
//!
//! Inputs are arbitrary bytes, valid documents with random byte edits
//! (flips, cuts, insertions), and random JSON trees that reuse the real
//! field names. The number of cases per parser is `PF_FUZZ_CASES`, by
//! default 100,000 (each parser's run takes seconds), so every test run is
//! the fuzzing run the registry issue asks for.

use pf_manifest::{Digest, Manifest, PluginKind, RequestedLimits, Source, FORMAT};
use pf_registry::index::{parse_spec, Entry, Index};
use pf_registry::keys::{PublicKey, SecretKey, SignatureFile};
use pf_registry::lock::Lock;
use pf_registry::policy::Policy;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn cases() -> u32 {
    std::env::var("PF_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn manifest() -> Vec<u8> {
    Manifest {
        format: FORMAT,
        name: "l1_filter".into(),
        version: "0.2.1".parse().unwrap(),
        kind: PluginKind::Learner,
        contract: "0.1.0".parse().unwrap(),
        component: Digest([3; 32]),
        description: "L1-norm filter pruning".into(),
        authors: vec!["Ada <ada@example.org>".into()],
        license: Some("MIT".into()),
        source: Some(Source {
            url: "https://example.org".into(),
            revision: Some("v1".into()),
        }),
        params_schema: serde_json::json!({"type":"object","properties":{"ratio":{"type":"number","minimum":0,"maximum":0.9}}}),
        limits: RequestedLimits {
            memory_mib: Some(64),
            fuel_millions: Some(100),
            tensors: None,
        },
    }
    .to_json()
}

fn signatures() -> Vec<u8> {
    let key = SecretKey::from_seed([9; 32]);
    let mut f = SignatureFile::default();
    f.add(key.sign("alice", &manifest(), &Digest([3; 32])));
    f.to_json()
}

fn index() -> Vec<u8> {
    let mut versions = BTreeMap::new();
    versions.insert(
        "0.2.1".to_string(),
        Entry {
            kind: PluginKind::Learner,
            component: Digest([1; 32]),
            manifest: Digest([2; 32]),
            signatures: Digest([3; 32]),
            published: "2026-11-30T00:00:00Z".into(),
        },
    );
    let mut plugins = BTreeMap::new();
    plugins.insert("l1_filter".to_string(), versions);
    serde_json::to_vec_pretty(&Index { format: 1, plugins }).unwrap()
}

fn lock() -> Vec<u8> {
    format!(
        "{{\"format\":1,\"plugins\":{{\"tpe\":\"{}\"}}}}",
        Digest([4; 32])
    )
    .into_bytes()
}

const POLICY: &str = r#"
audit_log = "audit.jsonl"
[signatures]
required = true
allow_unsigned_flag = false
[[publishers]]
name = "pf-team"
key = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
[worlds]
learner = "^0.1"
[limits]
max_memory_mib = 512
max_trials = 200
"#;

/// A valid document with up to eight random edits.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec((0..3u8, 0..len.max(1), any::<u8>()), 0..8).prop_map(move |edits| {
        let mut doc = base.clone();
        for (op, at, byte) in edits {
            let at = at.min(doc.len());
            match op {
                0 if at < doc.len() => doc[at] = byte,
                1 => doc.truncate(at),
                _ => doc.insert(at, byte),
            }
        }
        doc
    })
}

/// Random JSON that reuses the documents' field names, so that parsers get
/// past the first brace.
fn json_tree() -> impl Strategy<Value = serde_json::Value> {
    let names = prop::sample::select(vec![
        "format",
        "name",
        "version",
        "kind",
        "contract",
        "component",
        "description",
        "authors",
        "license",
        "source",
        "url",
        "revision",
        "params_schema",
        "limits",
        "memory_mib",
        "fuel_millions",
        "tensors",
        "signatures",
        "signer",
        "key",
        "manifest",
        "signature",
        "plugins",
        "published",
        "0.1.0",
        "learner",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,80}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(Digest([5; 32]).to_string())),
        Just(serde_json::Value::from(1)),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(names.clone(), inner, 0..8).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn any_input(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated(base),
        json_tree().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifest_parser_never_panics(doc in any_input(manifest())) {
        if let Ok(m) = Manifest::from_json(&doc) {
            // Whatever parses must survive a round trip unchanged.
            prop_assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn signature_file_parser_never_panics(doc in any_input(signatures())) {
        if let Ok(f) = SignatureFile::from_json(&doc) {
            for s in &f.signatures {
                let _ = s.verify(&manifest(), &Digest([3; 32]));
            }
        }
    }

    #[test]
    fn index_parser_never_panics(doc in any_input(index())) {
        if let Ok(i) = Index::from_json(&doc) {
            let _ = i.find("l1_filter", None);
        }
    }

    #[test]
    fn lock_parser_never_panics(doc in any_input(lock())) {
        let _ = Lock::from_json(&doc);
    }

    #[test]
    fn policy_parser_never_panics(doc in any_input(POLICY.as_bytes().to_vec())) {
        if let Ok(text) = std::str::from_utf8(&doc) {
            let _ = Policy::from_toml(text, None);
        }
    }

    #[test]
    fn key_and_spec_parsers_never_panic(s in ".{0,140}") {
        let _ = s.parse::<PublicKey>();
        let _ = s.parse::<Digest>();
        let _ = parse_spec(&s);
        let _ = format!("ed25519:{s}").parse::<PublicKey>();
    }
}
