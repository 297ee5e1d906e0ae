//! The reference plugin answering Okta's requests through the real host.

use hookbox_tests::{
    Proto, TenantSpec, TestServer, fresh_event_id, fresh_sample, login_conflict_wasm,
    sample_request,
};
use serde_json::{Value, json};

fn tenant() -> TenantSpec {
    TenantSpec::new("acme", login_conflict_wasm())
}

async fn server() -> (TestServer, TenantSpec) {
    let t = tenant();
    (TestServer::start(std::slice::from_ref(&t)).await, t)
}

/// The sample request with its app-user names replaced.
/// A new person (their own `externalId`, so their own claims) in a new
/// request (its own `eventId`, so never a retry's stored answer).
fn with_names(first: Value, middle: Value, last: Value, login: &str) -> Value {
    let mut r = fresh_sample();
    let p = &mut r["data"]["appUser"]["profile"];
    p["externalId"] = json!(fresh_event_id());
    p["firstName"] = first;
    p["middleName"] = middle;
    p["lastName"] = last;
    r["data"]["user"]["profile"]["login"] = json!(login);
    r
}

/// What an email local part may hold here: dot-separated atoms of a-z, 0-9 and '-'.
fn assert_valid_login(login: &str) {
    let (local, domain) = login
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("no @ in {login}"));
    assert!(!domain.is_empty(), "{login}");
    assert!(!local.is_empty() && local.len() <= 64, "{login}");
    assert!(
        !local.starts_with('.') && !local.ends_with('.') && !local.contains(".."),
        "{login}"
    );
    assert!(
        local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
        "{login}"
    );
}

#[tokio::test]
async fn sample_request_gets_a_new_login_with_the_conflicting_domain() {
    let (server, t) = server().await;
    let reply = server
        .client()
        .hook("acme", t.secret(), &sample_request())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    // No middle name in the sample: first.last plus the hashed suffix of externalId "user221".
    assert_eq!(
        body["commands"],
        json!([{"type": "com.okta.user.profile.update", "value": {"login": "sally2.admin2.272ed9@clouditude.net"}}])
    );
    let plugin = server.tenant("acme").plugin().short_digest().to_owned();
    assert_eq!(
        body["debugContext"]["hookboxPlugin"],
        json!(plugin),
        "the answer names the plugin version"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn middle_name_is_infixed() {
    let (server, t) = server().await;
    let req = with_names(
        json!("George"),
        json!("Alexander"),
        json!("Smith"),
        "george.smith@example.com",
    );
    let reply = server.client().hook("acme", t.secret(), &req).await;
    assert_eq!(
        reply.new_login().as_deref(),
        Some("george.alexander.smith@example.com")
    );
}

#[tokio::test]
async fn same_request_same_answer_and_retries_agree() {
    let (server, t) = server().await;
    let client = server.client();
    let first = client.hook("acme", t.secret(), &sample_request()).await;
    let second = client.hook("acme", t.secret(), &sample_request()).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, second.body);
}

#[tokio::test]
async fn no_conflict_means_no_commands() {
    let (server, t) = server().await;
    let mut req = sample_request();
    req["data"]["context"]["conflicts"] = json!([]);
    let reply = server.client().hook("acme", t.secret(), &req).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert!(body.get("commands").is_none(), "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn edge_names_always_give_a_valid_distinct_login() {
    let (server, t) = server().await;
    let client = server.client();
    let cases = [
        (
            json!("Mary Ann"),
            json!("O'Neil"),
            json!("Smith-Jones"),
            Some("mary-ann.oneil.smith-jones@example.com"),
        ),
        (
            json!("José"),
            json!("Ñandú"),
            json!("Müller"),
            Some("jose.nandu.muller@example.com"),
        ),
        (json!("Иван"), json!("Петрович"), json!("Иванов"), None),
        (json!("王"), json!(""), json!("小明"), None),
        (json!(""), json!(null), json!(""), None),
        (json!(null), json!(null), json!(null), None),
        (json!(42), json!(["x"]), json!({"a": 1}), None),
        (json!("Ann"), json!("   "), json!("Lee"), None),
        (
            json!("A".repeat(80)),
            json!("B".repeat(80)),
            json!("C".repeat(80)),
            None,
        ),
    ];
    for (first, middle, last, expected) in cases {
        let desc = format!("{first} {middle} {last}");
        let req = with_names(first, middle, last, "taken.user@example.com");
        let reply = client.hook("acme", t.secret(), &req).await;
        assert_eq!(reply.status, 200, "{desc}");
        let login = reply
            .new_login()
            .unwrap_or_else(|| panic!("{desc}: no login in {}", reply.json()));
        assert_valid_login(&login);
        assert!(login.ends_with("@example.com"), "{desc}: {login}");
        assert_ne!(login, "taken.user@example.com", "{desc}");
        if let Some(expected) = expected {
            assert_eq!(login, expected, "{desc}");
        }
    }
}

#[tokio::test]
async fn two_people_with_the_same_name_get_different_logins() {
    let (server, t) = server().await;
    let client = server.client();
    let mut a = with_names(
        json!("John"),
        json!(null),
        json!("Smith"),
        "john.smith@example.com",
    );
    let mut b = a.clone();
    a["data"]["appUser"]["profile"]["externalId"] = json!("u-1");
    b["data"]["appUser"]["profile"]["externalId"] = json!("u-2");
    let la = client
        .hook("acme", t.secret(), &a)
        .await
        .new_login()
        .unwrap();
    let lb = client
        .hook("acme", t.secret(), &b)
        .await
        .new_login()
        .unwrap();
    assert_ne!(la, lb);
    assert!(
        la.starts_with("john.smith.") && lb.starts_with("john.smith."),
        "{la} {lb}"
    );
}

#[tokio::test]
async fn settings_choose_the_name_attributes() {
    let t = tenant().setting("middle_name_attribute", "secondName");
    let server = TestServer::start(std::slice::from_ref(&t)).await;
    let mut req = with_names(
        json!("George"),
        json!("Ignored"),
        json!("Smith"),
        "george.smith@example.com",
    );
    req["data"]["appUser"]["profile"]["secondName"] = json!("Alexander");
    let reply = server.client().hook("acme", t.secret(), &req).await;
    assert_eq!(
        reply.new_login().as_deref(),
        Some("george.alexander.smith@example.com")
    );
}

#[tokio::test]
async fn missing_login_is_an_okta_error_not_a_crash() {
    let (server, t) = server().await;
    let mut req = sample_request();
    req["data"]["user"]["profile"]
        .as_object_mut()
        .unwrap()
        .remove("login");
    let reply = server.client().hook("acme", t.secret(), &req).await;
    assert_eq!(reply.status, 200);
    let summary = reply.error_summary().unwrap();
    assert!(summary.starts_with("login-conflict:"), "{summary}");
    assert!(reply.json().get("commands").is_none());
}

#[tokio::test]
async fn auth_missing_wrong_or_other_tenants_secret_is_401_and_rotation_works() {
    let a = TenantSpec::new("a", login_conflict_wasm()).secrets(&["old-a", "new-a"]);
    let b = TenantSpec::new("b", login_conflict_wasm()).header("X-Hook-Secret");
    let server = TestServer::start(&[a.clone(), b.clone()]).await;
    let client = server.client();
    let body = sample_request().to_string();
    type Header<'a> = Option<(&'a str, &'a str)>;
    let cases: [(&str, Header, u16); 7] = [
        ("a", None, 401),
        ("a", Some(("authorization", "wrong")), 401),
        ("a", Some(("authorization", b.secret())), 401),
        ("a", Some(("authorization", "old-a")), 200),
        ("a", Some(("authorization", "new-a")), 200),
        ("b", Some(("authorization", b.secret())), 401),
        ("b", Some(("x-hook-secret", b.secret())), 200),
    ];
    for (tenant, auth, status) in cases {
        let mut conn = client.connect(Proto::H1).await;
        let reply = conn
            .send(client.hook_request(tenant, auth, body.clone()))
            .await;
        assert_eq!(reply.status, status, "{tenant} {auth:?}");
        if status == 401 {
            assert_eq!(
                reply.error_summary().as_deref(),
                Some("missing or invalid credentials")
            );
        }
    }
}

#[tokio::test]
async fn http2_and_keep_alive_serve_many_requests_per_connection() {
    let (server, t) = server().await;
    let client = server.client();
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = client.connect(proto).await;
        for _ in 0..3 {
            let req = client.hook_request(
                "acme",
                Some(("authorization", t.secret())),
                sample_request().to_string(),
            );
            let reply = conn.send(req).await;
            assert_eq!(reply.status, 200, "{proto:?}");
            assert_eq!(
                reply.new_login().as_deref(),
                Some("sally2.admin2.272ed9@clouditude.net")
            );
        }
    }
}
