//! Security tests on the public API of `shared`: the pusher's SSRF guard (every refused address
//! class, literal and resolved, and redirects never followed) and header injection through
//! configured header values (refused by `PushHeaders`, the one validation of the admin API and
//! `rms.toml`, and at push time).
//!
//! The pusher half needs the `push` feature (on in `cargo test --workspace`; alone:
//! `cargo test -p shared --features push --test it security::`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;

use shared::push::{InvalidPushField, PushHeaders};

fn headers(name: &str, value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_owned(), value.to_owned())])
}

#[test]
fn header_values_with_cr_lf_or_nul_are_refused_by_the_admin_validation() {
    for value in [
        "Bearer a\r\nX-Injected: 1",
        "Bearer a\nX-Injected: 1",
        "Bearer a\rX-Injected: 1",
        "Bearer a\0b",
        "a\u{7f}b",
    ] {
        let InvalidPushField { field, message } =
            &PushHeaders::parse(&headers("Authorization", value)).unwrap_err();
        assert_eq!(field, "headers.Authorization");
        assert!(message.contains("control character"), "{message}");
        assert!(
            !message.contains("Bearer"),
            "the refused value is not echoed: {message}"
        );
    }
    // A tab is legal in a header value.
    assert!(PushHeaders::parse(&headers("Authorization", "Bearer\ta")).is_ok());
}

#[test]
fn header_names_that_could_split_or_smuggle_are_refused() {
    for name in [
        "X-A\r\nX-B",
        "X-A: b",
        "X A",
        "",
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "webhook-signature",
    ] {
        assert!(
            PushHeaders::parse(&headers(name, "v")).is_err(),
            "{name:?} should be refused"
        );
    }
}

#[cfg(feature = "push")]
mod pusher {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use shared::adapters::push::{check_url, forbidden, HttpPusher, TargetPolicy};
    use shared::ports::{PushRequest, PushResult, Pusher};
    use url::Url;

    const DENY: TargetPolicy = TargetPolicy {
        allow_private: false,
        allow_http: true,
    };
    const ALLOW: TargetPolicy = TargetPolicy {
        allow_private: true,
        allow_http: true,
    };

    fn request(url: &str, headers: Vec<(String, String)>) -> PushRequest {
        PushRequest {
            url: url.to_owned(),
            headers,
            body: b"{}".to_vec(),
            timeout: Duration::from_secs(3),
        }
    }

    async fn refused(pusher: &HttpPusher, url: &str) -> String {
        match pusher.push(&request(url, vec![])).await {
            PushResult::Refused { reason } => reason,
            other => panic!("{url} must be refused before any connection, got {other:?}"),
        }
    }

    /// Every class, as a literal in the URL: refused by `check_url` and by the pusher, without a
    /// connection (the ports are ones nothing listens on, so a connection would show as
    /// `ConnectFailed`, not `Refused`).
    #[tokio::test]
    async fn every_private_class_is_refused_as_a_literal_url_host() {
        let pusher = HttpPusher::new(DENY).unwrap();
        for (host, kind) in [
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.0.1", "private"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("169.254.169.254", "link-local"),
            ("169.254.0.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("[::1]", "loopback"),
            ("[::]", "unspecified"),
            ("[fe80::1]", "link-local"),
            ("[febf::1]", "link-local"),
            ("[fc00::1]", "unique local"),
            ("[fd00:ec2::254]", "unique local"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::ffff:169.254.169.254]", "link-local"),
            ("[::ffff:10.0.0.1]", "private"),
            ("[64:ff9b::7f00:1]", "loopback"),
            ("[::127.0.0.1]", "loopback"),
            ("[::169.254.169.254]", "link-local"),
            ("[::10.0.0.1]", "private"),
            ("[64:ff9b:1::a00:1]", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.0.170", "IETF protocol assignment"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("[2001:db8::1]", "documentation"),
            ("[fec0::1]", "site-local"),
            // 6to4 carrying 127.0.0.1 and 169.254.169.254
            ("[2002:7f00:1::]", "loopback"),
            ("[2002:a9fe:a9fe::1]", "link-local"),
            // Teredo: client 10.0.0.1 (stored inverted), then server 192.168.0.1
            ("[2001:0:4136:e378::f5ff:fffe]", "private"),
            ("[2001:0:c0a8:1::f7f7:f7f7]", "private"),
        ] {
            let url = format!("http://{host}:9/hook");
            let reason = check_url(DENY, &Url::parse(&url).unwrap()).unwrap_err();
            assert!(reason.contains(kind), "{url}: {reason}");
            let reason = refused(&pusher, &url).await;
            assert!(
                reason.contains("private targets are not allowed"),
                "{url}: {reason}"
            );
            assert!(
                check_url(ALLOW, &Url::parse(&url).unwrap()).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn the_neighbours_of_each_class_are_allowed() {
        for ip in [
            "9.255.255.255",
            "11.0.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.255.255",
            "192.169.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "1.1.1.1",
            "2606:4700::1111",
            "fe00::1",
            "fbff::1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.1.255",
            "192.0.3.1",
            "223.255.255.255",
            "2001:db9::1",
            // 6to4 of 8.8.8.8; Teredo with a public server and the client 8.8.8.8
            "2002:808:808::1",
            "2001:0:4136:e378::f7f7:f7f7",
        ] {
            assert_eq!(forbidden(ip.parse().unwrap()), None, "{ip}");
        }
    }

    /// The URL parser (WHATWG) normalises decimal, hex, octal and short IPv4 forms into an IPv4
    /// host, so the literal check sees the real address.
    #[tokio::test]
    async fn decimal_hex_octal_and_short_ipv4_forms_are_normalised_then_refused() {
        let pusher = HttpPusher::new(DENY).unwrap();
        for (url, ip) in [
            ("http://2130706433:9/", "127.0.0.1"),
            ("http://0x7f.0.0.1:9/", "127.0.0.1"),
            ("http://0x7f000001:9/", "127.0.0.1"),
            ("http://0177.0.0.1:9/", "127.0.0.1"),
            ("http://127.1:9/", "127.0.0.1"),
            ("http://2852039166:9/", "169.254.169.254"),
            ("http://0xa9.0xfe.0xa9.0xfe:9/", "169.254.169.254"),
            ("http://012.0.0.1:9/", "10.0.0.1"),
        ] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(parsed.host_str(), Some(ip), "{url}");
            let reason = refused(&pusher, url).await;
            assert!(reason.starts_with(ip), "{url}: {reason}");
        }
    }

    /// `localhost` (in any case) is refused by name; any other name is checked after
    /// resolution, inside the client's resolver (`adapters/push.rs`
    /// `a_host_name_resolving_to_loopback_is_refused_with_its_address`).
    #[tokio::test]
    async fn host_names_of_this_machine_are_refused() {
        let pusher = HttpPusher::new(DENY).unwrap();
        for url in ["http://localhost:9/hook", "http://LocalHost:9/hook"] {
            let reason = refused(&pusher, url).await;
            assert!(reason.contains("loopback"), "{url}: {reason}");
        }
    }

    #[tokio::test]
    async fn https_only_policy_refuses_http_and_credentials_in_the_url() {
        let pusher = HttpPusher::new(TargetPolicy::default()).unwrap();
        assert!(refused(&pusher, "http://client.example/hook")
            .await
            .contains("http:// URL is not allowed"));
        assert!(refused(&pusher, "https://user:pw@client.example/hook")
            .await
            .contains("credentials"));
        assert!(refused(&pusher, "file:///etc/passwd")
            .await
            .contains("scheme file"));
    }

    /// A loopback receiver that answers every request with a 302 to `location` and counts the
    /// requests it got.
    fn redirecting_receiver(location: String) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (seen, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buffer = [0u8; 8192];
                let n = stream.read(&mut buffer).unwrap_or(0);
                let _ = seen.send(String::from_utf8_lossy(&buffer[..n]).into_owned());
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nmoved"
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        // The target of the redirect: a second loopback listener that must never be reached.
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let target_url = format!("http://{}/metadata", target.local_addr().unwrap());
        let (url, requests) = redirecting_receiver(target_url);
        let pusher = HttpPusher::new(ALLOW).unwrap();
        let result = pusher.push(&request(&url, vec![])).await;
        let PushResult::Answered {
            status,
            body_prefix,
            ..
        } = result
        else {
            panic!("the 302 itself is the answer: {result:?}");
        };
        assert_eq!(status, 302);
        assert_eq!(body_prefix, "moved");
        assert!(requests.recv_timeout(Duration::from_secs(1)).is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            target.accept().is_err(),
            "the redirect target was connected to"
        );
    }

    #[tokio::test]
    async fn header_values_with_cr_lf_or_nul_are_refused_at_push_time_without_echoing_them() {
        // A listener that would record anything sent to it.
        let (url, requests) = redirecting_receiver("http://127.0.0.1:9/".into());
        let pusher = HttpPusher::new(ALLOW).unwrap();
        for value in [
            "s3cret\r\nX-Injected: 1",
            "s3cret\nX-Injected: 1",
            "s3cret\0",
        ] {
            let result = pusher
                .push(&request(&url, vec![("X-Token".into(), value.into())]))
                .await;
            let PushResult::Refused { reason } = result else {
                panic!("{value:?} must be refused: {result:?}");
            };
            assert!(reason.contains("X-Token"), "{reason}");
            assert!(
                !reason.contains("s3cret"),
                "the value is not echoed: {reason}"
            );
        }
        for name in ["X-A\r\nX-B", "X A", "X:A"] {
            let result = pusher
                .push(&request(&url, vec![(name.into(), "v".into())]))
                .await;
            assert!(matches!(result, PushResult::Refused { .. }), "{name:?}");
        }
        assert!(
            requests.recv_timeout(Duration::from_millis(300)).is_err(),
            "nothing was sent"
        );
    }

    /// A TLS receiver whose certificate chains to no trusted root (self-signed here, as an
    /// attacker's or a misconfigured endpoint's would) gets no request: the handshake fails and
    /// the attempt is a connection failure naming the certificate. Served by `openssl s_server`.
    #[tokio::test]
    async fn an_https_receiver_with_an_untrusted_certificate_gets_nothing() {
        let dir = std::env::temp_dir().join(format!("rms-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed");
        assert!(made.status.success(), "{made:?}");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = std::process::Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it listens.
        let listening = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "openssl s_server did not start");

        let pusher = HttpPusher::new(ALLOW).unwrap();
        let result = pusher
            .push(&request(&format!("https://127.0.0.1:{port}/hook"), vec![]))
            .await;
        let _ = server.kill();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let PushResult::ConnectFailed { reason, .. } = result else {
            panic!("an untrusted certificate must fail the connection: {result:?}");
        };
        assert!(
            reason.to_lowercase().contains("certificate"),
            "the reason names the certificate: {reason}"
        );
    }
}
