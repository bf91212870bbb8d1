//! The operator console over HTTP, as a browser would use it (forms, cookies, redirects):
//! `rms console --stack` on the AWS stack (DynamoDB and SQS on the `moto_server` that
//! `scripts/test` starts), signed in with its one-time link; and `rms serve`'s console without an
//! admin token, open on loopback names only. The browser test (scripts/console-test) covers the
//! pages in Chromium against `rms serve`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use reqwest::redirect::Policy;
use reqwest::{header, StatusCode};
use shared::Carrier;

/// A browser's worth of state: the session cookie, and the CSRF token of the last page.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

/// (status, Location, body) of an answer.
type Answer = (StatusCode, Option<String>, String);

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: None,
            csrf: None,
        }
    }

    async fn answer(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.cookie {
            Some(cookie) => request.header(header::COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some(value) = pair.strip_prefix("rms_console=") {
                self.cookie = (!value.is_empty()).then(|| pair.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        if let Some(token) = text
            .split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            self.csrf = Some(token.to_owned());
        }
        (status, location, text)
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.base));
        self.answer(request).await
    }

    /// Posts a form with this session's CSRF token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone().unwrap();
        fields.push(("csrf", &csrf));
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(&fields));
        self.answer(request).await
    }

    /// Follows a 303 (the answer to every form).
    async fn follow(&mut self, answer: Answer) -> Answer {
        assert_eq!(answer.0, StatusCode::SEE_OTHER, "{}", answer.2);
        let location = answer.1.unwrap();
        self.get(&location).await
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// `rms console`, killed when dropped.
struct Console {
    child: Child,
    link: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const API_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod";

fn console_on(stack: &integration_tests::Stack) -> Console {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["console", "--stack", "--api-url", API_URL])
        .env("AWS_ENDPOINT_URL", integration_tests::moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env("RMS_CONFIG_TABLE", &stack.config_table)
        .env("RMS_EVENTS_TABLE", &stack.events_table)
        .env("RMS_QUEUE_URL", &stack.queue_url)
        .env("RMS_DLQ_URL", &stack.dlq_url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let link = loop {
        let line = lines
            .next()
            .expect("rms console printed no sign-in link")
            .unwrap();
        if let Some(at) = line.find("http://127.0.0.1:") {
            break line[at..].trim().to_owned();
        }
    };
    Console { child, link }
}

/// The `(base, path)` of a URL on 127.0.0.1.
fn split(link: &str) -> (String, String) {
    let at = link["http://".len()..].find('/').unwrap() + "http://".len();
    (link[..at].to_owned(), link[at..].to_owned())
}

#[tokio::test]
async fn rms_console_acts_on_the_stack_after_its_one_time_sign_in() {
    integration_tests::needs!(moto);
    let stack = integration_tests::Stack::create().await;
    let console = console_on(&stack);
    let (base, sign_in) = split(&console.link);
    assert!(sign_in.starts_with("/console/sign-in?token="), "{sign_in}");
    let mut browser = Browser::new(&base);

    // Nothing without the link; the link signs in once.
    let (status, location, _) = browser.get("/console").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/sign-in"))
    );
    let (status, location, _) = browser.get(&sign_in).await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console"))
    );
    assert!(browser.cookie.is_some());
    let mut stranger = Browser::new(&base);
    let (status, _, page) = stranger.get(&sign_in).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("used already"), "{page}");
    assert!(stranger.cookie.is_none());

    // A tenant, in the stack's config table.
    let (_, _, overview) = browser.get("/console").await;
    assert!(overview.contains("No tenant yet"), "{overview}");
    let created = browser.post("/console/tenants", &[("id", "acme")]).await;
    assert_eq!(created.1.as_deref(), Some("/console/tenants/acme"));
    let (_, _, tenant) = browser.follow(created).await;
    assert!(tenant.contains("Tenant acme created"), "{tenant}");
    // The set-up cards give the stack's notify URLs.
    for carrier in Carrier::ALL {
        let url = format!("{API_URL}{}", carrier.spec().notify_path);
        assert!(tenant.contains(&url), "{url} not on the page");
    }

    // A generated Clickpost key: shown once, and the stack's ingest takes it.
    let added = browser
        .post("/console/tenants/acme/keys", &[("carrier", "clickpost")])
        .await;
    let (_, _, shown) = browser.follow(added).await;
    let key = shown
        .split(r#"id="shown-secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(key.len(), 48, "{shown}");
    let (_, _, again) = browser.get("/console/tenants/acme").await;
    assert!(!again.contains(&key), "a generated key is shown once");
    let status = "/console/tenants/acme/carriers/clickpost/status";
    assert!(browser
        .get(status)
        .await
        .2
        .contains("Waiting for the carrier"));
    let body = common::fixture("clickpost/delivered_selected_captured.json");
    // As the notify function takes it (the same HTTP edge and ingest, on the stack's tables).
    let (parts, ()) = axum::http::Request::post(Carrier::Clickpost.spec().notify_path)
        .header("webhook_key", &key)
        .body(())
        .unwrap()
        .into_parts();
    let answer = shared::http::handle(
        &stack.ingest(),
        Carrier::Clickpost,
        &parts,
        &body,
        chrono::Utc::now(),
    )
    .await;
    assert_eq!(answer.status(), 200, "{}", answer.body());
    assert!(browser.get(status).await.2.contains("key matched"));

    // The Push Config: the stack's rules (https, public targets), at the field.
    let refused = browser
        .post(
            "/console/tenants/acme/push",
            &[("url", "http://127.0.0.1:9/hook"), ("enabled", "on")],
        )
        .await;
    assert_eq!(refused.0, StatusCode::BAD_REQUEST);
    assert!(
        refused.2.contains("url: an http:// URL is not allowed"),
        "{}",
        refused.2
    );
    let saved = browser
        .post(
            "/console/tenants/acme/push",
            &[
                ("url", "https://client.example/hook"),
                ("header_name", "X-Client-Token"),
                ("header_value", "stack-header-secret"),
                ("statuses", "DELIVERED"),
                ("timeout_ms", "5000"),
                ("enabled", "on"),
                ("delivery", "every"),
            ],
        )
        .await;
    let (_, _, push) = browser.follow(saved).await;
    assert!(push.contains("Push Config saved"), "{push}");
    assert!(push.contains("X-Client-Token") && !push.contains("stack-header-secret"));

    // Deliveries by AWB and by range, on the events table: the event waits, nothing attempted.
    let (status, _, deliveries) = browser
        .get("/console/tenants/acme/deliveries?awb=81125552141")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        deliveries.contains("0 event(s), 0 attempt(s)"),
        "{deliveries}"
    );
    assert_eq!(
        browser.get("/console/tenants/acme/deliveries").await.0,
        StatusCode::OK
    );

    // The queue's message, dead-lettered as the dispatcher does it: the overview counts it, the
    // dead letters page lists it, and a redrive puts it back on the events queue.
    let (_, _, overview) = browser.get("/console").await;
    assert!(
        overview.contains("<strong>1</strong> waiting"),
        "{overview}"
    );
    let queued = stack.drain(&stack.queue_url).await;
    assert_eq!(queued.len(), 1);
    let mut send = stack
        .sqs
        .send_message()
        .queue_url(&stack.dlq_url)
        .message_body(queued[0].body.to_string());
    let text = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    for (name, value) in &queued[0].attributes {
        send = send.message_attributes(name, text(value));
    }
    send.message_attributes("dead_letter_reason", text("the endpoint answered 410"))
        .send()
        .await
        .unwrap();
    stack
        .sqs
        .delete_message()
        .queue_url(&stack.queue_url)
        .receipt_handle(&queued[0].receipt_handle)
        .send()
        .await
        .unwrap();
    let (_, _, overview) = browser.get("/console").await;
    assert!(
        overview.contains("<strong>1</strong> dead letters"),
        "{overview}"
    );
    let (_, _, dead) = browser.get("/console/dead-letters?tenant=acme").await;
    assert!(dead.contains("the endpoint answered 410"), "{dead}");
    let id = dead
        .split(r#"name="ids" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // Without the token, refused; with it, a job.
    let forged = browser
        .http
        .post(format!("{base}/console/dead-letters/redrive"))
        .header(header::COOKIE, browser.cookie.clone().unwrap())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("ids", &id), ("which", "selected")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let started = browser
        .post(
            "/console/dead-letters/redrive",
            &[("ids", &id), ("which", "selected"), ("tenant", "acme")],
        )
        .await;
    let job = started.1.clone().unwrap();
    assert!(job.starts_with("/console/jobs/"), "{job}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, page) = browser.get(&job).await;
        if page.contains("1 dead letter(s) put back") {
            break;
        }
        assert!(!page.contains("Failed:"), "{page}");
        assert!(
            Instant::now() < deadline,
            "the redrive never finished: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stack.drain(&stack.queue_url).await.len(), 1);
    let (_, _, dead) = browser.get("/console/dead-letters").await;
    assert!(dead.contains("No dead letters"), "{dead}");
    // Another session cannot see the job.
    assert_eq!(stranger.get(&job).await.0, StatusCode::SEE_OTHER);

    // Signed out: the session is gone.
    let out = browser.post("/console/sign-out", &[]).await;
    assert_eq!(out.1.as_deref(), Some("/console/sign-in"));
    assert_eq!(browser.get("/console").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn rms_serve_without_an_admin_token_opens_its_console_to_loopback_names_only() {
    let dir = common::scratch_dir("console-open");
    let config = format!(
        "database = \"{}\"\nallow_private_targets = true\n",
        dir.join("rms.db").display()
    );
    let server = common::Server::start(&dir, &config).await;
    let mut browser = Browser::new(&server.base);
    // A session is opened for the first page, with its CSRF token; forms need the token.
    let (status, _, page) = browser.get("/console").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(browser.cookie.is_some() && browser.csrf.is_some());
    assert!(!page.contains("Sign out"), "no sign-in, so no sign-out");
    assert_eq!(
        browser.get("/console/sign-in").await.1.as_deref(),
        Some("/console")
    );
    let created = browser.post("/console/tenants", &[("id", "acme")]).await;
    assert_eq!(created.1.as_deref(), Some("/console/tenants/acme"));
    let forged = Browser::new(&server.base)
        .http
        .post(format!("{}/console/tenants", server.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(&[("id", "forged")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // The notify URL is the address the console was reached at.
    let (_, _, tenant) = browser.get("/console/tenants/acme").await;
    assert!(tenant.contains(&format!("{}/rms/in/api/clickpost/notify", server.base)));
    // A page asked for by another name (a DNS-rebinding page's) is refused.
    let rebound = browser
        .http
        .get(format!("{}/console", server.base))
        .header(header::HOST, "rebind.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    // The admin API and the notify paths still answer JSON; the console answers HTML.
    let missing = browser.get("/console/no-such-page").await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    assert!(missing.2.starts_with("<!DOCTYPE html>"), "{}", missing.2);
    let (status, _, json) = browser.get("/admin/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json.starts_with('{'), "{json}");
}
