//! Discovery endpoints, and the client requests of issue 6 over HTTP.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_scim_error, json_of};
use scimd::HttpSettings;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Where scimd knowingly differs from the §8.7.1 listing, and why.
const DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        USER_URN,
        "addresses.primary",
        "RFC 7643 §4.1.2 gives addresses a 'primary' sub-attribute; §8.7.1 omits it; clients send it",
    ),
    (
        GROUP_URN,
        "displayName",
        "RFC 7643 §4.2 says displayName is REQUIRED; §8.7.1 marks it required=false",
    ),
    (
        GROUP_URN,
        "members.display",
        "the display name of a member as the client sends it (Okta does, and RFC 7644 §3.5.2.1's example), immutable like the other member sub-attributes",
    ),
];

fn flatten(attributes: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    for a in attributes.as_array().unwrap() {
        let path = format!("{prefix}{}", a["name"].as_str().unwrap());
        if let Some(subs) = a.get("subAttributes") {
            flatten(subs, &format!("{path}."), out);
        }
        out.insert(path, a.clone());
    }
}

fn compare_with_rfc(urn: &str, schema: &Value) -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc7643/schemas_8_7_1.json");
    let rfc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let want = rfc[urn].as_object().unwrap();
    let mut got = BTreeMap::new();
    flatten(&schema["attributes"], "", &mut got);
    let deviates = |path: &str| DEVIATIONS.iter().any(|(u, p, _)| *u == urn && *p == path);
    let mut problems = Vec::new();
    for (path, chars) in want {
        let Some(ours) = got.get(path) else {
            problems.push(format!("{urn} {path}: missing"));
            continue;
        };
        for (key, rfc_value) in chars.as_object().unwrap() {
            let our_value = ours
                .get(key)
                .cloned()
                .unwrap_or(if key == "canonicalValues" {
                    json!([])
                } else {
                    Value::Null
                });
            if &our_value != rfc_value && !deviates(path) {
                problems.push(format!(
                    "{urn} {path}.{key}: ours {our_value}, RFC {rfc_value}"
                ));
            }
        }
    }
    for path in got.keys() {
        if !want.contains_key(path) && !deviates(path) {
            problems.push(format!("{urn} {path}: not in RFC 7643 §8.7.1"));
        }
    }
    problems
}

both_backends! {
    async fn schemas_match_rfc7643_attribute_by_attribute(app) {
        let (status, list) = json_of(app.req(Method::GET, "/Schemas").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
        let ids: Vec<&str> = list["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [USER_URN, ENT_URN, GROUP_URN]);
        let mut problems = Vec::new();
        for urn in [USER_URN, ENT_URN, GROUP_URN] {
            let (status, schema) = json_of(app.req(Method::GET, &format!("/Schemas/{urn}")).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{schema}");
            assert_eq!(schema["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:Schema");
            assert_eq!(schema["meta"]["location"], format!("{}/Schemas/{urn}", app.base));
            problems.extend(compare_with_rfc(urn, &schema));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        let (status, same) = json_of(app.req(Method::GET, &format!("/Schemas/{}", USER_URN.to_uppercase())).send().await.unwrap()).await;
        assert_eq!((status, same["id"].as_str()), (StatusCode::OK, Some(USER_URN)));
    }

    async fn resource_types_and_service_provider_config(app) {
        let (status, list) = json_of(app.req(Method::GET, "/ResourceTypes").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["totalResults"], 2);
        let (status, user) = json_of(app.req(Method::GET, "/ResourceTypes/User").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(user["endpoint"], "/Users");
        assert_eq!(user["schema"], USER_URN);
        assert_eq!(user["schemaExtensions"], json!([{"schema": ENT_URN, "required": false}]));
        assert_eq!(list["Resources"][0], user);
        let (status, group) = json_of(app.req(Method::GET, "/ResourceTypes/Group").send().await.unwrap()).await;
        assert_eq!((status, group["endpoint"].as_str(), group["schema"].as_str()), (StatusCode::OK, Some("/Groups"), Some(GROUP_URN)));
        let (status, spc) = json_of(app.req(Method::GET, "/ServiceProviderConfig").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(spc["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig");
        assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
        for (path, status) in [("/Schemas/urn:example:nope", 404), ("/ResourceTypes/Widget", 404)] {
            let (s, body) = json_of(app.req(Method::GET, path).send().await.unwrap()).await;
            assert_scim_error(s, &body, status, None);
        }
        for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes", &format!("/Schemas/{USER_URN}") as &str, "/ResourceTypes/User"] {
            let resp = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} needs a key");
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let (s, body) = json_of(app.req(method.clone(), path).json(&json!({})).send().await.unwrap()).await;
                assert_scim_error(s, &body, 405, None);
            }
        }
    }

    async fn entra_post_with_nulls_and_bare_manager(app) {
        let manager = app.create_user(json!({"userName": "boss@contoso.com"})).await;
        let mid = manager["id"].as_str().unwrap();
        // Entra ID's create request, with the nulls some mappings produce.
        let body = format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1","active":true,"title":null,"addresses":null,"emails":[{{"primary":true,"type":"work","value":"Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}}],"meta":{{"resourceType":"User"}},"name":{{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"}},"roles":[],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{{"department":null,"manager":"{mid}"}}}}"#);
        let resp = app.req(Method::POST, "/Users").header("content-type", "application/scim+json").body(body).send().await.unwrap();
        let (status, user) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        assert!(user.get("title").is_none() && user.get("addresses").is_none() && user.get("roles").is_none());
        assert_eq!(user[ENT_URN], json!({"manager": {"value": mid}}));
        // The same shapes in a PUT.
        let put = json!({"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1", "nickName": null, ENT_URN: {"manager": mid, "department": "Sales"}});
        let (status, user) = json_of(app.send_json(Method::PUT, &format!("/Users/{}", user["id"].as_str().unwrap()), &put).await).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user[ENT_URN], json!({"manager": {"value": mid}, "department": "Sales"}));
        let (status, nulled) = json_of(app.send_json(Method::POST, "/Users", &json!({"userName": "n", ENT_URN: {"manager": null}})).await).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(nulled.get(ENT_URN).is_none());
        assert_eq!(nulled["schemas"], json!([USER_URN]));
    }
}

/// Every capability `/ServiceProviderConfig` advertises is real.
#[tokio::test]
async fn advertised_capabilities_are_real() {
    let settings = HttpSettings {
        max_results: 3,
        ..HttpSettings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
    let (_, spc) = json_of(
        app.req(Method::GET, "/ServiceProviderConfig")
            .send()
            .await
            .unwrap(),
    )
    .await;
    for name in ["b", "c", "a", "d"] {
        app.create_user(json!({"userName": name})).await;
    }
    // filter (with maxResults): filtering works and count is clamped.
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 3}));
    let (_, found) = json_of(
        app.req(Method::GET, "/Users?filter=userName%20eq%20%22c%22")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    let (_, clamped) = json_of(
        app.req(Method::GET, "/Users?count=50")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            clamped["totalResults"].as_u64(),
            clamped["itemsPerPage"].as_u64()
        ),
        (Some(4), Some(3))
    );
    // sort
    assert_eq!(spc["sort"]["supported"], true);
    let (_, sorted) = json_of(
        app.req(
            Method::GET,
            "/Users?sortBy=userName&sortOrder=descending&count=3",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let names: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d", "c", "b"]);
    // etag: a stale If-Match is refused.
    assert_eq!(spc["etag"]["supported"], true);
    let user = app.create_user(json!({"userName": "e"})).await;
    let resp = app
        .req(
            Method::PUT,
            &format!("/Users/{}", user["id"].as_str().unwrap()),
        )
        .header("if-match", "W/\"42\"")
        .json(&json!({"userName": "e2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    // patch
    assert_eq!(spc["patch"]["supported"], true);
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "title", "value": "t"}]});
    let resp = app
        .req(
            Method::PATCH,
            &format!("/Users/{}", user["id"].as_str().unwrap()),
        )
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // bulk and changePassword are not offered, and indeed not there.
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(
        app.req(Method::POST, "/Bulk")
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(spc["changePassword"]["supported"], false);
}

/// The Group schema (served once Groups exist) already matches §8.7.1.
#[test]
fn group_schema_matches_rfc7643() {
    let schema =
        scimd::scim::discovery::schema_json(&scimd::scim::schema::GROUP_SCHEMA, "http://x/scim/v2");
    let problems = compare_with_rfc(GROUP_URN, &schema);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
