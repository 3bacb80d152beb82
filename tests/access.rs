//! Access tokens end to end: made with the real `signalboard token` command beside a running server,
//! presented the way each kind of client sends them, and the dashboard's sign-in and headers.

mod common;

use common::TestServer;
use serde_json::Value;
use std::time::Duration;

const T0_NS: i64 = 1_795_687_200_000_000_000;

/// Runs `signalboard token ARGS…` on the server's database; returns its standard output. Awaited,
/// not blocked on: the server runs on the test's own thread, and a transaction it is in the middle
/// of must be able to finish while the command waits for the database.
async fn token_command(server: &TestServer, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .arg("token")
        .args(args)
        .arg("--database-url")
        .arg(format!("sqlite://{}", server.database.display()))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "token {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn create(server: &TestServer, name: &str, scope: &str) -> String {
    let out = token_command(server, &["create", "--name", name, "--scope", scope]).await;
    out.trim().to_owned()
}

/// Waits out the server's reload of the stored tokens (at most a second).
async fn reloaded() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

fn line(signal: &str) -> String {
    format!("{signal} v=1 {T0_NS}")
}

#[tokio::test]
async fn once_a_token_exists_every_api_needs_one_of_the_right_scope() {
    let server = TestServer::start().await;
    let client = &server.client;
    assert_eq!(
        status(client.get(server.url("/api/signals"))).await,
        200,
        "open at first"
    );
    let reader = create(&server, "dashboard", "read").await;
    let writer = create(&server, "telegraf", "write").await;
    let admin = create(&server, "ops", "admin").await;
    assert!(reader.starts_with("sb_") && reader != writer);
    reloaded().await;

    // Reads.
    let signals = server.url("/api/signals");
    let refused = client.get(&signals).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    assert_eq!(status(client.get(&signals).bearer_auth(&reader)).await, 200);
    assert_eq!(status(client.get(&signals).bearer_auth(&admin)).await, 200);
    assert_eq!(status(client.get(&signals).bearer_auth(&writer)).await, 403);
    assert_eq!(
        status(client.get(&signals).bearer_auth("sb_guess")).await,
        401
    );

    // Writes, as InfluxDB v2 clients and Telegraf (Token), v1 clients (p= or basic auth) send them.
    let v2 = server.url("/api/v2/write");
    let token = |t: &str| format!("Token {t}");
    let write = |url: &str, signal: &str| client.post(url).body(line(signal));
    let refused = write(&v2, "none").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // In InfluxDB's shape, so its clients' exceptions say why.
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("access token"), "{message}");
    assert_eq!(
        status(write(&v2, "read").header("authorization", token(&reader))).await,
        403
    );
    assert_eq!(
        status(write(&v2, "v2").header("authorization", token(&writer))).await,
        204
    );
    assert_eq!(
        status(write(&v2, "admin").header("authorization", token(&admin))).await,
        204
    );
    let v1 = server.url(&format!("/write?db=x&u=telegraf&p={writer}"));
    assert_eq!(status(write(&v1, "v1")).await, 204);
    let basic = write(&server.url("/write"), "basic").basic_auth("telegraf", Some(&writer));
    assert_eq!(status(basic).await, 204);

    // Alert rules make the server call URLs: only admin tokens change them; readers list them.
    let rules = server.url("/api/alerts");
    let rule = r#"{"name":"r","signal":"a","condition":{"kind":"above","threshold":1}}"#;
    let create = |t: &str| client.post(&rules).body(rule).bearer_auth(t);
    assert_eq!(status(create(&reader)).await, 403);
    assert_eq!(status(create(&writer)).await, 403);
    assert_eq!(status(create(&admin)).await, 201);
    assert_eq!(status(client.get(&rules).bearer_auth(&reader)).await, 200);
    assert_eq!(status(client.get(&rules)).await, 401);
    let annotation = r#"{"time":1795690000000,"text":"deploy"}"#;
    let annotate = |t: &str| {
        client
            .post(server.url("/api/annotations"))
            .body(annotation)
            .bearer_auth(t)
    };
    assert_eq!(status(annotate(&reader)).await, 403);
    assert_eq!(status(annotate(&writer)).await, 201);

    // The page sends a person to sign in; /healthz stays open for load balancers.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/signin");
    assert_eq!(status(client.get(server.url("/healthz"))).await, 200);

    let (_, listed) = server.get_as("/api/signals", &reader).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["admin.v", "basic.v", "v1.v", "v2.v"],
        "only allowed writes stored"
    );

    // Listing shows names and scopes, never a token; a revoked token is refused within a second.
    let list = token_command(&server, &["list"]).await;
    assert!(
        list.contains("telegraf\twrite") && list.contains("dashboard\tread"),
        "{list}"
    );
    assert!(!list.contains(&writer[3..]) && !list.contains(&reader[3..]));
    token_command(&server, &["revoke", "telegraf"]).await;
    reloaded().await;
    assert_eq!(
        status(write(&v2, "late").header("authorization", token(&writer))).await,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_that_writes_too_fast_hears_when_to_come_back() {
    let server = TestServer::start_with(|s| s.limits.token_write_rate = 5).await;
    let writer = create(&server, "burst", "write").await;
    reloaded().await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = server
            .client
            .post(server.url("/api/v2/write"))
            .header("authorization", format!("Token {writer}"))
            .body(line(&format!("s{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("token-write-rate"));
        }
    }
    assert_eq!(&statuses[..5], [204; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_dashboard_signs_in_with_a_read_token_into_a_strict_http_only_cookie() {
    let server = TestServer::start().await;
    let reader = create(&server, "viewer", "read").await;
    let writer = create(&server, "producer", "write").await;
    reloaded().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |token: &str| {
        client
            .post(server.url("/signin"))
            .form(&[("token", token)])
            .send()
    };
    let page = client.get(server.url("/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"token\""));
    assert_eq!(sign_in("sb_wrong").await.unwrap().status(), 401);
    assert_eq!(sign_in(&writer).await.unwrap().status(), 403);
    let signed = sign_in(&reader).await.unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "signalboard_token=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    // The cookie opens the page, the history API and the live feed.
    let page = client
        .get(server.url("/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let history = client
        .get(server.url("/api/telemetry"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), 200);
    let live = |cookie: Option<&str>| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{}/api/live", server.addr),
            )
            .unwrap();
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };
    assert!(live(Some(&pair)).await.is_ok());
    assert!(live(None).await.is_err(), "the live feed needs a token too");
    server.stop().await;
}

#[tokio::test]
async fn every_page_carries_a_policy_that_allows_its_webassembly_and_nothing_inline_but_its_own() {
    let server = TestServer::start().await;
    let page = server.client.get(server.url("/")).send().await.unwrap();
    let header = |name: &str| {
        page.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let policy = header("content-security-policy");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
    assert!(
        !policy.contains("'unsafe-eval'") && !policy.contains("script-src 'self' 'unsafe-inline'")
    );
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_owned();
    let html = page.text().await.unwrap();
    let inline = html.matches("<script").count();
    assert!(inline > 0);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        inline,
        "every inline script carries this response's nonce"
    );
    // Another response, another nonce.
    let again = server.client.get(server.url("/")).send().await.unwrap();
    let other = again.headers()["content-security-policy"].to_str().unwrap();
    assert!(!other.contains(&nonce));
    // JSON answers get the headers too.
    let api = server
        .client
        .get(server.url("/api/signals"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    server.stop().await;
}

#[tokio::test]
async fn serving_beyond_loopback_without_a_token_refuses_to_start_unless_told_no_auth() {
    use signalboard::config::{ServeArgs, Settings};

    let dir = tempfile::tempdir().unwrap();
    let settings = |no_auth: bool| {
        let args = ServeArgs {
            database_url: Some(format!("sqlite://{}", dir.path().join("open.db").display())),
            config: "Leptos.toml".into(),
            no_auth,
            ..ServeArgs::default()
        };
        Settings::load(&args).unwrap()
    };
    // Bound on every interface, and never connected to: the server must refuse before serving.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let error = signalboard::server::serve(listener, settings(false), std::future::ready(()))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("token create") && message.contains("--no-auth"),
        "{message}"
    );
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    signalboard::server::serve(listener, settings(true), std::future::ready(()))
        .await
        .unwrap();
}
