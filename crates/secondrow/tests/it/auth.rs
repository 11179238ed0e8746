//! Access control of `secondrow server` through the real kfp.Client: an admin token (`--auth-token-file`),
//! namespace tokens from `secondrow tokens`, 401/403 with KFP's error JSON, revocation, and auth turning on
//! when the first token is created.

use serde_json::Value;

use crate::api::{kfp_script, last_json, Server};
use crate::support::*;

const ADMIN: &str = "admin-token-0123456789";

fn create_token(h: &Home, namespace: &str) -> String {
    let out = h.output(&["tokens", "create", "--namespace", namespace, "--name", "test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn tokens_json(h: &Home) -> Value {
    let out = h.output(&["tokens", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn revoke(h: &Home, id: &str) {
    let out = h.output(&["tokens", "revoke", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `GET path` with an optional bearer token: (HTTP status, body).
fn get(h: &Home, server: &Server, path: &str, token: Option<&str>) -> (i64, Value) {
    let mut args = vec!["status", server.url.as_str(), path];
    args.extend(token);
    let doc = last_json(&kfp_script(h, "auth.py", &args));
    (doc["status"].as_i64().unwrap(), doc["body"].clone())
}

// Tokens and namespaces on both metadata backends: `NAME::sqlite` and `NAME::postgres`.
per_backend!(api_auth_namespaces_with_kfp_client, api_auth_turns_on_with_the_first_token,);

fn api_auth_namespaces_with_kfp_client(h: &Home) {
    let bad = h.output(&["tokens", "create", "--namespace", "Not_A_Label"]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("namespace `Not_A_Label`"));
    let token_a = create_token(h, "ns-a");
    let token_b = create_token(h, "ns-b");
    let tokens = tokens_json(h);
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
    assert!(!tokens.to_string().contains(&token_a), "a token secret is listed");

    let admin_file = h.path().join("admin.token");
    std::fs::write(&admin_file, ADMIN).unwrap();
    let server = Server::start(h, &["--auth-token-file", admin_file.to_str().unwrap()]);
    kfp_script(h, "auth.py", &["namespaces", &server.url, h.path().to_str().unwrap(), ADMIN, &token_a, &token_b]);

    // A revoked token is refused from the next request on; the others keep working.
    let id_a = tokens.as_array().unwrap().iter().find(|t| t["namespace"] == "ns-a").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    revoke(h, &id_a);
    let (status, body) = get(h, &server, "/apis/v2beta1/runs", Some(&token_a));
    assert_eq!((status, &body["code"]), (401, &Value::from(16)), "{body}");
    assert_eq!(get(h, &server, "/apis/v2beta1/runs", Some(&token_b)).0, 200);
    assert_eq!(get(h, &server, "/apis/v2beta1/runs", Some(ADMIN)).0, 200);
    let listed = tokens_json(h);
    let revoked: Vec<_> = listed.as_array().unwrap().iter().filter(|t| t["revoked_at"].is_i64()).collect();
    assert_eq!(revoked.len(), 1, "{listed}");
    assert_eq!(revoked[0]["id"], id_a.as_str());
    assert_eq!(h.output(&["tokens", "revoke", "no-such-id"]).status.code(), Some(2));
}

fn api_auth_turns_on_with_the_first_token(h: &Home) {
    let short_file = h.path().join("short.token");
    std::fs::write(&short_file, "short").unwrap();
    let short = h.output(&["server", "--port", "0", "--auth-token-file", short_file.to_str().unwrap()]);
    assert_eq!(short.status.code(), Some(2), "{}", String::from_utf8_lossy(&short.stderr));

    let server = Server::start(h, &[]);
    assert_eq!(get(h, &server, "/apis/v2beta1/experiments", None).0, 200, "auth is off without tokens");
    let token = create_token(h, "team");
    let (status, body) = get(h, &server, "/apis/v2beta1/experiments", None);
    assert_eq!((status, &body["code"]), (401, &Value::from(16)), "{body}");
    assert_eq!(get(h, &server, "/apis/v2beta1/experiments", Some(&token)).0, 200);
    assert_eq!(get(h, &server, "/apis/v2beta1/healthz", None).0, 200);

    // Revoking the only token does not open the server again.
    revoke(h, tokens_json(h)[0]["id"].as_str().unwrap());
    assert_eq!(get(h, &server, "/apis/v2beta1/experiments", None).0, 401);
    assert_eq!(get(h, &server, "/apis/v2beta1/experiments", Some(&token)).0, 401);
}
