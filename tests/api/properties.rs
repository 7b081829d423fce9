//! Property tests: arbitrary input never panics the parser or the PATCH
//! engine, and whatever the engine accepts is a valid resource.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use scimd::scim::compat::Quirks;
use scimd::scim::filter::{parse_filter, parse_path};
use scimd::scim::patch;
use scimd::scim::resource;
use scimd::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const PATHS: &[&str] = &[
    "userName",
    "title",
    "active",
    "nickName",
    "name",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.primary",
    "emails[type eq \"work\"]",
    "emails[type eq \"work\"].value",
    "emails[value co \"@\" or primary eq true].type",
    "emails[not (type eq \"home\")]",
    "phoneNumbers",
    "phoneNumbers[type eq \"mobile\"].value",
    "addresses[type eq \"work\"].locality",
    "entitlements",
    "roles",
    "x509Certificates",
    "externalId",
    "id",
    "meta",
    "meta.created",
    "groups",
    "password",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.department",
    "urn:ietf:params:scim:schemas:core:2.0:User:name.middleName",
    "displayName",
    "members",
    "members[value eq \"a\"]",
    "emails[",
    "emails]",
    "name[givenName eq \"x\"]",
    "nosuch",
    "",
];

const KEYS: &[&str] = &[
    "value",
    "type",
    "primary",
    "display",
    "givenName",
    "familyName",
    "active",
    "title",
    "emails",
    "name",
    "id",
    "userName",
    "displayName",
    "members",
    "$ref",
    "schemas",
    "department",
    "manager",
    ENT,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "name.givenName",
    "emails[type eq \"work\"].value",
    "Operations",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(Value::from),
        prop::sample::select(vec![
            "x",
            "True",
            "false",
            "",
            "work",
            "home",
            "a@b.c",
            "2011-05-13T04:42:34Z",
            "a"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "add", "Add", "replace", "Replace", "remove", "REMOVE", "update",
        ]),
        prop::option::of(prop_oneof![
            prop::sample::select(PATHS).prop_map(str::to_owned),
            "[a-z.\\[\\]\" ]{0,16}"
        ]),
        prop::option::of(json_value()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = Map::new();
            o.insert("op".into(), Value::from(op));
            if let Some(p) = path {
                o.insert("path".into(), Value::from(p));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            Value::Object(o)
        })
}

fn base_user() -> Map<String, Value> {
    resource::normalize(
        &USER_RESOURCE,
        json!({
            "userName": "bjensen", "name": {"givenName": "B"}, "title": "t",
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}],
            ENT: {"department": "d", "manager": {"value": "m"}}
        }),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn patch_never_panics_and_results_validate(ops in prop::collection::vec(operation(), 1..5), group in any::<bool>()) {
        let (rt, doc) = if group {
            (&GROUP_RESOURCE, resource::normalize(&GROUP_RESOURCE, json!({"displayName": "g", "members": [{"value": "a"}]})).unwrap())
        } else {
            (&USER_RESOURCE, base_user())
        };
        let body = json!({"schemas": [patch::PATCH_OP_URN], "Operations": ops});
        let mut quirks = Quirks::default();
        let result = patch::parse_request(body, &mut quirks)
            .and_then(|ops| patch::apply(rt, "the-id", &doc, &ops, &mut quirks));
        match result {
            Ok(new) => {
                let again = resource::normalize(rt, Value::Object(new.clone()));
                prop_assert_eq!(again.as_ref().ok(), Some(&new), "the result is a valid, canonical document");
            }
            Err(e) => prop_assert!(e.status == 400, "{}", e),
        }
    }

    #[test]
    fn parsers_never_panic(input in "\\PC{0,64}") {
        let _ = parse_filter(&input);
        let _ = parse_path(&input);
    }

    #[test]
    fn filter_rendering_round_trips(input in "[a-zA-Z.:\\[\\]()\" 0-9]{0,48}|(not \\()?(userName|emails\\[type|name\\.givenName|active) (eq|ne|co|sw|gt|pr|le) (\"[a-z]{0,4}\"|true|null|-?[0-9]{1,3}(\\.[0-9])?)(\\]|\\))? (and|or) title pr") {
        if let Ok(f) = parse_filter(&input) {
            let rendered = f.to_string();
            prop_assert_eq!(parse_filter(&rendered).ok(), Some(f), "{} -> {}", input, rendered);
        }
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let deep = format!("{}userName pr{}", "(".repeat(3000), ")".repeat(3000));
    assert!(parse_filter(&deep).is_err());
    let nots = format!("{}userName pr{}", "not (".repeat(1000), ")".repeat(1000));
    assert!(parse_filter(&nots).is_err());
    let long = format!("userName eq \"{}\"", "a".repeat(100_000));
    assert!(parse_filter(&long).is_err());
}
