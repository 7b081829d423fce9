//! `/Users`: create, read, list, replace, delete (RFC 7644 §3.3–§3.6).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{assert_scim_error, json_of};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A user with every core attribute of RFC 7643 §4.1 and the enterprise extension.
fn full_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": "ext-701984",
        "userName": user_name,
        "name": {
            "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
            "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [{
            "type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
            "region": "CA", "postalCode": "91608", "country": "US",
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 US", "primary": true
        }],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
        "userType": "Employee",
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "entitlements": [{"value": "Assistant Regional Manager", "type": "WindowsAzureActiveDirectoryRole", "primary": true}],
        "roles": [{"value": "student"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENTERPRISE_URN: {
            "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
            "division": "Theme Park", "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
}

/// What the server must hand back: the input less password and readOnly parts.
fn expected_attributes(input: &Value) -> Value {
    let mut v = input.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("password");
    o[ENTERPRISE_URN]["manager"]
        .as_object_mut()
        .unwrap()
        .remove("displayName");
    v
}

fn strip_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("id");
    o.remove("meta");
    v
}

both_backends! {
    async fn create_returns_201_with_location_etag_and_the_full_resource(app) {
        let resp = app.send_json(Method::POST, "/Users", &full_user("bjensen")).await;
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap();
        assert_eq!(location, format!("{}/Users/{id}", app.base));
        assert_eq!(etag, "W/\"1\"");
        assert_eq!(body["meta"]["location"], location.as_str());
        assert_eq!(body["meta"]["resourceType"], "User");
        assert_eq!(body["meta"]["version"], etag.as_str());
        assert_eq!(body["meta"]["created"], body["meta"]["lastModified"]);
        assert!(body["meta"]["created"].as_str().unwrap().ends_with('Z'));
        assert_eq!(strip_server_fields(&body), expected_attributes(&full_user("bjensen")));
        assert!(body.get("password").is_none());

        let (status, fetched) = app.get_user(id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(fetched, body);
    }

    async fn schemas_lists_the_extension_only_when_its_attributes_are_present(app) {
        let plain = app.create_user(json!({"schemas": [USER_URN, ENTERPRISE_URN], "userName": "plain"})).await;
        assert_eq!(plain["schemas"], json!([USER_URN]));
        let ext = app.create_user(json!({"userName": "ext", ENTERPRISE_URN: {"department": "Sales"}})).await;
        assert_eq!(ext["schemas"], json!([USER_URN, ENTERPRISE_URN]));
    }

    async fn username_is_unique_case_insensitively(app) {
        app.create_user(json!({"schemas": [USER_URN], "userName": "Alice"})).await;
        let (status, body) = json_of(app.send_json(Method::POST, "/Users", &json!({"userName": "aLICE"})).await).await;
        assert_scim_error(status, &body, 409, Some("uniqueness"));
    }

    async fn invalid_bodies_get_400_invalid_value(app) {
        for body in [
            json!({"schemas": [USER_URN]}),
            json!({"userName": ""}),
            json!({"userName": 42}),
            json!({"userName": "x", "active": "maybe"}),
            json!({"userName": "x", "emails": "x@example.com"}),
            json!({"userName": "x", "name": ["Barbara"]}),
            json!({"userName": "x", "password": false}),
            json!({"userName": "x", "schemas": ["urn:example:not-supported"]}),
        ] {
            let (status, err) = json_of(app.send_json(Method::POST, "/Users", &body).await).await;
            assert_scim_error(status, &err, 400, Some("invalidValue"));
        }
        let (_, list) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(list["totalResults"], 0, "nothing was stored");
    }

    async fn unknown_attributes_are_ignored_not_stored(app) {
        let user = app.create_user(json!({"userName": "u", "favouriteColour": "blue", "name": {"nick": "x", "givenName": "U"}})).await;
        assert!(user.get("favouriteColour").is_none());
        assert_eq!(user["name"], json!({"givenName": "U"}));
    }

    async fn attribute_names_are_case_insensitive(app) {
        let user = app.create_user(json!({"USERNAME": "casey", "Name": {"GIVENNAME": "Casey"}, "ACTIVE": false})).await;
        assert_eq!(user["userName"], "casey");
        assert_eq!(user["name"]["givenName"], "Casey");
        assert_eq!(user["active"], false);
    }

    async fn get_unknown_or_malformed_id_is_404(app) {
        for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
            let (status, body) = app.get_user(&id).await;
            assert_scim_error(status, &body, 404, None);
        }
    }

    async fn list_pages_in_a_stable_order(app) {
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(app.create_user(json!({"userName": format!("user{i}")})).await["id"].as_str().unwrap().to_owned());
        }
        let (status, page) = json_of(app.req(Method::GET, "/Users?startIndex=3&count=2").send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
        assert_eq!(page["totalResults"], 7);
        assert_eq!(page["itemsPerPage"], 2);
        assert_eq!(page["startIndex"], 3);
        let got: Vec<&str> = page["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(got, [ids[2].as_str(), ids[3].as_str()]);

        // Walk every page: each user exactly once, in creation order.
        let mut seen = Vec::new();
        for start in [1, 4, 7] {
            let (_, page) = json_of(app.req(Method::GET, &format!("/Users?startIndex={start}&count=3")).send().await.unwrap()).await;
            seen.extend(page["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        }
        assert_eq!(seen, ids);

        let (_, totals) = json_of(app.req(Method::GET, "/Users?count=0").send().await.unwrap()).await;
        assert_eq!((totals["totalResults"].as_u64(), totals["itemsPerPage"].as_u64()), (Some(7), Some(0)));
        let (_, lenient) = json_of(app.req(Method::GET, "/Users?startindex=0&COUNT=5&aadOptscim062020").send().await.unwrap()).await;
        assert_eq!((lenient["startIndex"].as_u64(), lenient["itemsPerPage"].as_u64()), (Some(1), Some(5)));
        let (status, err) = json_of(app.req(Method::GET, "/Users?count=many").send().await.unwrap()).await;
        assert_scim_error(status, &err, 400, Some("invalidValue"));
    }

    async fn replace_ignores_read_only_attributes_and_bumps_the_version(app) {
        let created = app.create_user(full_user("bjensen")).await;
        let id = created["id"].as_str().unwrap();
        let mut body = full_user("bjensen");
        body["id"] = json!("00000000-0000-0000-0000-000000000000");
        body["meta"] = json!({"version": "W/\"99\"", "created": "2000-01-01T00:00:00Z", "resourceType": "Group"});
        body["groups"] = json!([{"value": "g1"}]);
        body["title"] = json!("Chief Guide");
        let resp = app.send_json(Method::PUT, &format!("/Users/{id}"), &body).await;
        let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
        let (status, put) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{put}");
        assert_eq!(put["id"], id);
        assert_eq!(etag, "W/\"2\"");
        assert_eq!(put["meta"]["version"], "W/\"2\"");
        assert_eq!(put["meta"]["created"], created["meta"]["created"]);
        assert_eq!(put["meta"]["resourceType"], "User");
        assert_eq!(put["title"], "Chief Guide");
        assert!(put.get("groups").is_none());
        let (_, fetched) = app.get_user(id).await;
        assert_eq!(fetched, put);
        let (status, _) = app.get_user("00000000-0000-0000-0000-000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn replace_replaces_the_whole_resource(app) {
        let created = app.create_user(full_user("bjensen")).await;
        let id = created["id"].as_str().unwrap();
        let (status, put) = json_of(app.send_json(Method::PUT, &format!("/Users/{id}"), &json!({"userName": "bjensen", "active": false})).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(strip_server_fields(&put), json!({"schemas": [USER_URN], "userName": "bjensen", "active": false}));
    }

    async fn unchanged_replace_keeps_the_version(app) {
        let created = app.create_user(json!({"userName": "same", "title": "x"})).await;
        let id = created["id"].as_str().unwrap();
        let (status, put) = json_of(app.send_json(Method::PUT, &format!("/Users/{id}"), &json!({"title": "x", "userName": "same", "password": "p"})).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(put["meta"]["version"], "W/\"1\"");
        assert_eq!(put["meta"]["lastModified"], created["meta"]["lastModified"]);
    }

    async fn seed_put_body_from_the_reference_page_works(app) {
        // ../shared/reference/000_4e9ff0f9a6df256d.txt, verbatim: note `userId`.
        let created = app.create_user(json!({"userName": "string"})).await;
        let id = created["id"].as_str().unwrap();
        let seed = r#"{
  "userId": "string",
  "displayName": "string",
  "emails": [
    {
      "value": "string",
      "primary": true,
      "type": "string"
    }
  ],
  "active": true,
  "name": {
    "givenName": "string",
    "familyName": "string",
    "middleName": "string"
  },
  "userName": "string",
  "title": "string"
}"#;
        let resp = app
            .req(Method::PUT, &format!("/Users/{id}"))
            .header("content-type", "application/json")
            .body(seed)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id);
        assert_eq!(body["displayName"], "string");
        assert_eq!(body["emails"], json!([{"value": "string", "primary": true, "type": "string"}]));
        assert_eq!(body["name"], json!({"givenName": "string", "familyName": "string", "middleName": "string"}));
        assert_eq!(body["active"], true);
        assert!(body.get("userId").is_none());
    }

    async fn replace_onto_a_taken_username_is_409_and_changes_nothing(app) {
        app.create_user(json!({"userName": "taken"})).await;
        let other = app.create_user(json!({"userName": "other", "title": "keep"})).await;
        let id = other["id"].as_str().unwrap();
        let (status, body) = json_of(app.send_json(Method::PUT, &format!("/Users/{id}"), &json!({"userName": "TAKEN"})).await).await;
        assert_scim_error(status, &body, 409, Some("uniqueness"));
        let (_, after) = app.get_user(id).await;
        assert_eq!(after, other);
    }

    async fn replace_honours_if_match(app) {
        let user = app.create_user(json!({"userName": "v"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let put = |tag: &'static str, title: &'static str| {
            app.req(Method::PUT, &path)
                .header("if-match", tag)
                .header("content-type", "application/scim+json")
                .body(json!({"userName": "v", "title": title}).to_string())
                .send()
        };
        let (status, body) = json_of(put("W/\"7\"", "a").await.unwrap()).await;
        assert_scim_error(status, &body, 412, None);
        let (status, body) = json_of(put("W/\"1\"", "b").await.unwrap()).await;
        assert_eq!((status, body["meta"]["version"].as_str()), (StatusCode::OK, Some("W/\"2\"")));
        let (status, _) = json_of(put("*", "c").await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = json_of(put("W/\"2\"", "d").await.unwrap()).await;
        assert_scim_error(status, &body, 412, None);
        let (_, after) = app.get_user(user["id"].as_str().unwrap()).await;
        assert_eq!(after["title"], "c");
    }

    async fn replace_of_a_missing_user_is_404(app) {
        let path = format!("/Users/{}", uuid::Uuid::now_v7());
        let (status, body) = json_of(app.send_json(Method::PUT, &path, &json!({"userName": "x"})).await).await;
        assert_scim_error(status, &body, 404, None);
        let (_, list) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        assert_eq!(list["totalResults"], 0, "PUT never creates");
    }

    async fn delete_returns_204_then_404(app) {
        let user = app.create_user(json!({"userName": "gone"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let resp = app.req(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(resp.text().await.unwrap().is_empty());
        let (status, body) = json_of(app.req(Method::GET, &path).send().await.unwrap()).await;
        assert_scim_error(status, &body, 404, None);
        let (status, body) = json_of(app.req(Method::DELETE, &path).send().await.unwrap()).await;
        assert_scim_error(status, &body, 404, None);
        // The userName is free again.
        app.create_user(json!({"userName": "gone"})).await;
    }

    async fn delete_honours_if_match(app) {
        let user = app.create_user(json!({"userName": "cond"})).await;
        let path = format!("/Users/{}", user["id"].as_str().unwrap());
        let (status, body) = json_of(app.req(Method::DELETE, &path).header("if-match", "W/\"5\"").send().await.unwrap()).await;
        assert_scim_error(status, &body, 412, None);
        let resp = app.req(Method::DELETE, &path).header("if-match", "W/\"1\"").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }

    async fn password_is_never_returned(app) {
        let user = app.create_user(json!({"userName": "pw", "password": "hunter2hunter2"})).await;
        let id = user["id"].as_str().unwrap();
        let (_, put) = json_of(app.send_json(Method::PUT, &format!("/Users/{id}"), &json!({"userName": "pw", "password": "n3w-secret"})).await).await;
        let (_, got) = app.get_user(id).await;
        let (_, list) = json_of(app.req(Method::GET, "/Users").send().await.unwrap()).await;
        for body in [&user, &put, &got, &list] {
            let text = body.to_string();
            assert!(!text.contains("password") && !text.contains("hunter2") && !text.contains("n3w-secret"), "{text}");
        }
    }

    async fn projection_applies_to_every_resource_response(app) {
        let keys = |v: &Value| -> Vec<String> { let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect(); k.sort(); k };
        let resp = app.req(Method::POST, "/Users?attributes=userName").json(&full_user("proj")).send().await.unwrap();
        let (status, created) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(keys(&created), ["id", "schemas", "userName"]);
        let id = created["id"].as_str().unwrap();

        let (_, got) = json_of(app.req(Method::GET, &format!("/Users/{id}?excludedAttributes=emails,meta,{ENTERPRISE_URN}:manager")).send().await.unwrap()).await;
        assert!(got.get("emails").is_none() && got.get("meta").is_none());
        assert_eq!(got["id"], id);
        assert_eq!(got[ENTERPRISE_URN]["department"], "Tour Operations");
        assert!(got[ENTERPRISE_URN].get("manager").is_none());

        let (_, list) = json_of(app.req(Method::GET, "/Users?Attributes=name.givenName").send().await.unwrap()).await;
        assert_eq!(list["Resources"][0], json!({"schemas": created["schemas"], "id": id, "name": {"givenName": "Barbara"}}));

        let resp = app.req(Method::PUT, &format!("/Users/{id}?attributes=title")).json(&full_user("proj")).send().await.unwrap();
        let (status, put) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(keys(&put), ["id", "schemas", "title"]);

        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "New"}]});
        let resp = app.req(Method::PATCH, &format!("/Users/{id}?attributes=title,meta.version")).json(&patch).send().await.unwrap();
        let (status, patched) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(patched["title"], "New");
        assert_eq!(patched["meta"], json!({"version": "W/\"2\""}), "the PUT of an equal body kept version 1");
        assert!(patched.get("userName").is_none());
    }

    async fn public_url_comes_from_the_host_header(app) {
        let resp = app
            .req(Method::POST, "/Users")
            .header("host", "scim.example.com")
            .header("x-forwarded-proto", "https")
            .json(&json!({"userName": "h"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body["meta"]["location"].as_str().unwrap().starts_with("https://scim.example.com/scim/v2/Users/"), "{body}");
    }
}

mod configured_public_url {
    use super::*;
    use crate::helpers::{Backend, TestApp};
    use scimd::HttpSettings;

    #[tokio::test]
    async fn location_uses_scimd_public_url() {
        let settings = HttpSettings {
            public_url: Some("https://id.example.com/tenant-x/".to_owned()),
            ..HttpSettings::default()
        };
        let app = TestApp::spawn_with(Backend::Sqlite, settings).await;
        let resp = app
            .send_json(Method::POST, "/Users", &json!({"userName": "p"}))
            .await;
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let (_, body) = json_of(resp).await;
        let id = body["id"].as_str().unwrap();
        assert_eq!(
            location,
            format!("https://id.example.com/tenant-x/scim/v2/Users/{id}")
        );
        assert_eq!(body["meta"]["location"], location.as_str());
    }
}

// A read with the default projection is written around the stored
// document's text; any other projection renders the parsed document. Both
// must give the same resource, alone and in every kind of list.
both_backends! {
    async fn reads_around_the_stored_text_equal_the_parsed_rendering(app) {
        let full = app.create_user(full_user("bjensen")).await;
        let bare = app.create_user(json!({"schemas": [USER_URN], "userName": "bare"})).await;
        let quoted = app.create_user(json!({"userName": "q\"uote\\d \u{e9}\u{1F600}",
            "displayName": "line\nbreak\ttab"})).await;
        let resp = app.send_json(Method::POST, "/Groups",
            &json!({"displayName": "Tour Guides", "members": [{"value": full["id"]}]})).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        // A projection that names nothing: the same attributes, parsed.
        let parsed = "excludedAttributes=nothingByThisName";
        for user in [&full, &bare, &quoted] {
            let id = user["id"].as_str().unwrap();
            let (status, text) = json_of(app.req(Method::GET, &format!("/Users/{id}")).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            let (_, other) = json_of(app.req(Method::GET, &format!("/Users/{id}?{parsed}")).send().await.unwrap()).await;
            assert_eq!(text, other);
            assert_eq!(text["id"], user["id"]);
            assert_eq!(text["meta"], user["meta"]);
        }
        let (_, full_read) = app.get_user(full["id"].as_str().unwrap()).await;
        assert_eq!(full_read["groups"][0]["display"], "Tour Guides");
        assert_eq!(strip_server_fields(&{
            let mut v = full_read.clone();
            v.as_object_mut().unwrap().remove("groups");
            v
        }), expected_attributes(&full_user("bjensen")));
        for list in ["/Users", "/Users?filter=userName%20eq%20%22bare%22", "/Users?count=0",
                     "/Users?filter=userName%20eq%20%22nobody%22", "/Users?count=2&startIndex=2",
                     "/Users?cursor&count=2", "/Users?sortBy=userName&sortOrder=descending"] {
            let sep = if list.contains('?') { '&' } else { '?' };
            let (status, text) = json_of(app.req(Method::GET, list).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{list}: {text}");
            let (_, other) = json_of(app.req(Method::GET, &format!("{list}{sep}{parsed}")).send().await.unwrap()).await;
            assert_eq!(text, other, "{list}");
        }
        // .search takes the same path.
        let resp = app.send_json(Method::POST, "/Users/.search", &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "userName sw \"b\""})).await;
        let (status, body) = json_of(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["totalResults"], 2);
        assert_eq!(body["Resources"].as_array().unwrap().len(), 2);
    }
}
