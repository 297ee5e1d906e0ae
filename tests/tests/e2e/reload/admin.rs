//! The admin endpoint: hidden unless configured, its secret, its report.

use bytes::Bytes;
use hookbox_tests::{Proto, Reply, TenantSpec, TestServer, fresh_sample, login_conflict_wasm};
use hyper::Method;
use serde_json::Value;

use super::echo_tenant;

async fn admin_post(server: &TestServer, secret: Option<&str>) -> Reply {
    let client = server.client();
    let mut conn = client.connect(Proto::H1).await;
    let mut req = client.request(Method::POST, "/admin/reload", Bytes::new());
    if let Some(s) = secret {
        req.headers_mut()
            .insert("authorization", s.parse().unwrap());
    }
    conn.send(req).await
}

#[tokio::test]
async fn admin_endpoint_is_hidden_unless_configured_and_needs_its_secret() {
    let server = TestServer::start(&[echo_tenant("acme")]).await;
    let reply = admin_post(&server, Some("anything")).await;
    assert_eq!(reply.status, 404);
    assert!(!String::from_utf8_lossy(&reply.body).contains("admin"));
    server.stop().await.unwrap();

    let server = TestServer::builder()
        .tenant(echo_tenant("acme"))
        .admin_secret("admin-secret")
        .start()
        .await;
    assert_eq!(admin_post(&server, Some("secret-acme")).await.status, 401);
    assert_eq!(admin_post(&server, None).await.status, 401);

    server.rewrite_tenants(&[
        echo_tenant("acme"),
        TenantSpec::new("beta", login_conflict_wasm()),
    ]);
    let reply = admin_post(&server, Some("admin-secret")).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let report: Value = reply.json();
    assert_eq!(report["applied"], true, "{report}");
    let changes: Vec<(String, String)> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("acme".into(), "unchanged".into()),
            ("beta".into(), "added".into())
        ]
    );
    let reply = server
        .client()
        .hook("beta", "secret-beta", &fresh_sample())
        .await;
    assert_eq!(reply.status, 200);

    let client = server.client();
    let mut conn = client.connect(Proto::H1).await;
    let mut get = client.request(Method::GET, "/admin/reload", Bytes::new());
    get.headers_mut()
        .insert("authorization", "admin-secret".parse().unwrap());
    assert_eq!(conn.send(get).await.status, 405);
    server.stop().await.unwrap();
}
