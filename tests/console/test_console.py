"""The operator console in a real browser: headless Chromium (Debian's package) driven by
Playwright, against a real `rms serve` on a free loopback port, with a local receiver standing in
for the client's endpoint. Run by scripts/console-test (which builds rms, installs Chromium and
the venv); it sets:

    RMS_BIN                  the rms binary
    CHROMIUM                 the browser executable
    RMS_CONSOLE_SCREENSHOTS  where the screenshots go (docs/console with --update-screenshots)

The tests share one server and run in file order: the onboarding flow first (it leaves the
secrets it saw created in SEEN), then the security tests. Nothing is sent anywhere but 127.0.0.1.
"""

import html.parser
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "clickpost"
ADMIN_TOKEN = "console-test-admin-token-" + os.urandom(8).hex()
# Times for the browser to see what the server did (the dispatcher retries every second here).
SOON = 30_000  # ms
# Secrets the flow saw created, for the test that no page shows them again.
SEEN = {"admin_token": ADMIN_TOKEN}
# An AWB is carrier input: this one would run script if a page did not escape it.
HTML_AWB = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

# Never through a proxy: every request here is to 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None):
    """(status, headers, text) of a request, without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


# ---- the client's endpoint -------------------------------------------------------------------


class Receiver:
    """A client endpoint on 127.0.0.1: records each request, answers 200 or (failing) 500."""

    def __init__(self):
        self.requests = []
        self.failing = False
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode(),
                    }
                )
                status = 500 if receiver.failing else 200
                answer = b'{"received":false}' if receiver.failing else b'{"received":true,"by":"test receiver"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, awb):
        """The pushes whose body is an event of this AWB (test pushes included)."""
        found = []
        for r in self.requests:
            try:
                body = json.loads(r["body"])
            except ValueError:
                continue
            if body.get("awb") == awb:
                found.append((r, body))
        return found

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def server():
    """`rms serve` with an admin token, on a free port, over a fresh database."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="rms-console-"))
    config = work / "rms.toml"
    config.write_text(
        f"""
allow_private_targets = true
admin_token = "{ADMIN_TOKEN}"
[dispatch]
timeout = "2s"
retry_schedule = ["1s"]
max_attempts = 8
"""
    )
    process = None
    base = None
    log_path = None
    for _ in range(3):
        port = free_port()
        log_path = work / f"serve-{port}.log"
        process = subprocess.Popen(
            [os.environ["RMS_BIN"], "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
             "--database", str(work / "rms.db")],
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),
            env={**os.environ, "RUST_LOG": "info"},
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                OPENER.open(f"{base}/admin/health", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        if process.poll() is None:
            break
    assert process.poll() is None, f"rms serve did not start: {log_path.read_text()}"
    yield base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if os.environ.get("RMS_CONSOLE_KEEP") is None:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        # Debian's Chromium, never a browser of Playwright's own download. As root (CI) the
        # sandbox cannot start.
        b = p.chromium.launch(executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    page.set_default_timeout(SOON)
    problems = []

    # Nothing a page runs may open a dialog, except the console's own confirmations.
    def dialog(d):
        if d.type != "confirm":
            problems.append(f"a {d.type} dialog: {d.message}")
        d.accept()

    page.on("dialog", dialog)
    # Script errors and CSP violations. (Chromium also logs each page answered 4xx, such as the
    # refused forms this test sends on purpose: those are not problems.)
    page.on(
        "console",
        lambda m: problems.append(m.text)
        if m.type == "error" and not m.text.startswith("Failed to load resource")
        else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    assert not problems, f"the browser reported: {problems}"
    context.close()


def shot(page, name):
    directory = pathlib.Path(os.environ["RMS_CONSOLE_SCREENSHOTS"])
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def admin_api(server, method, path, body=None):
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    if body is not None:
        headers["content-type"] = "application/json"
        body = json.dumps(body)
    status, _, text = call(method, f"{server}{path}", body, headers)
    return status, (json.loads(text) if text else None)


def post_as_carrier(url, key, body):
    status, _, text = call("POST", url, body, {"webhook_key": key, "content-type": "application/json"})
    return status, json.loads(text)


def reload_until(page, locator, timeout=SOON):
    """Reloads the page until `locator` is on it (what a person does waiting for a delivery)."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        if page.locator(locator).count() > 0:
            return page.locator(locator)
        assert time.monotonic() < deadline, f"{locator} never showed on {page.url}"
        time.sleep(0.5)
        page.reload()


# ---- the onboarding flow ---------------------------------------------------------------------


def test_onboarding_a_carrier_and_a_client_end_to_end(page, server, receiver):
    started = time.monotonic()

    # Signing in: the console needs the admin token.
    page.goto(f"{server}/console")
    expect(page).to_have_url(f"{server}/console/sign-in")
    page.fill("#token", "not-the-token-at-all")
    page.click("button:has-text('Sign in')")
    expect(page.locator(".flash.failed")).to_contain_text("not the token")
    shot(page, "sign-in")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(f"{server}/console")

    # A tenant, and a Clickpost key generated by RMS: shown once.
    page.fill("#new-tenant", "acme")
    page.click("button:has-text('Create tenant')")
    expect(page).to_have_url(f"{server}/console/tenants/acme")
    page.select_option("#key-carrier", "clickpost")
    page.click("button:has-text('Add key')")
    key = page.locator("#shown-secret").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", key), key
    SEEN["clickpost_key"] = key
    page.reload()
    assert key not in page.content(), "a generated key is shown once"

    # The set-up card: the notify URL (through its Copy button), where the key goes, and the
    # indicator waiting for the carrier.
    card = page.locator("#setup-clickpost")
    expect(card.locator(".signal")).to_contain_text("Waiting for the carrier's test")
    expect(card).to_contain_text("webhook_key")
    card.locator("button.copy").click()
    notify_url = page.evaluate("navigator.clipboard.readText()")
    assert notify_url == f"{server}/rms/in/api/clickpost/notify"

    # The carrier's test body, as Clickpost's test webhook posts it: the card turns "received"
    # by itself (the script polls the indicator; no reload).
    status, answer = post_as_carrier(notify_url, key, (FIXTURES / "seed_test_webhook_data.json").read_bytes())
    assert status == 200, answer
    expect(card.locator(".signal.received")).to_contain_text("key matched", timeout=10_000)
    shot(page, "carrier-setup")

    # A real event, before the client's endpoint is configured: it waits in the queue.
    status, answer = post_as_carrier(notify_url, key, (FIXTURES / "delivered_selected_captured.json").read_bytes())
    assert status == 200 and answer["status"] == "accepted", answer

    # The Push Config. A refused field is shown at the field, in the admin API's words.
    page.click("nav.tenant >> text=Push Config")
    page.fill("#url", "ftp://client.example/hook")
    page.click("button:has-text('Save Push Config')")
    shown = page.locator("#error-url").inner_text()
    status, api = admin_api(server, "PUT", "/admin/tenants/acme/push", {"url": "ftp://client.example/hook"})
    assert status == 400 and shown == api["error"], (shown, api)
    header_value = "client-token-" + os.urandom(6).hex()
    SEEN["header_value"] = header_value
    page.fill("#url", receiver.url)
    page.fill("input[name=header_name] >> nth=0", "X-Client-Token")
    page.fill("input[name=header_value] >> nth=0", header_value)
    page.check("input[name=statuses][value=DELIVERED]")
    page.check("input[name=statuses][value=RTO_DELIVERED]")
    page.check("input[name=signing_secret][value=generate]")
    page.click("button:has-text('Save Push Config')")
    expect(page.locator(".flash.ok")).to_contain_text("Push Config saved")
    secret = page.locator("#shown-secret").inner_text().strip()
    assert secret.startswith("whsec_"), secret
    SEEN["signing_secret"] = secret
    status, view = admin_api(server, "GET", "/admin/tenants/acme/push")
    assert view["headers"] == ["X-Client-Token"] and view["statuses"] == ["DELIVERED", "RTO_DELIVERED"], view
    assert view["signing_secret"] is True

    # The test push: to the local receiver, with the header; the answer's status, latency and
    # first bytes on the page.
    page.select_option("#test-status", "DELIVERED")
    page.click("button:has-text('Send test push')")
    result = page.locator(".flash").first
    expect(result).to_contain_text("Test push delivered: HTTP 200 in")
    expect(result.locator("pre.detail")).to_contain_text('{"received":true')
    shot(page, "push-config")
    (test_push, sample), = receiver.events("TEST-DELIVERED")
    assert test_push["headers"].get("x-client-token") == header_value
    assert test_push["headers"].get("webhook-signature", "").startswith("v1,")

    # The waiting event goes out at its next retry: Deliveries shows it with its attempt.
    page.click("nav.tenant >> text=Deliveries")
    page.fill("#awb", "81125552141")
    page.click("button:has-text('Show its timeline')")
    reload_until(page, "li.attempt .outcome.delivered")
    event = page.locator("li.event").first
    expect(event.locator(".status")).to_have_text("DELIVERED")
    expect(event.locator("li.attempt").last).to_contain_text("HTTP 200")
    shot(page, "deliveries")
    assert len(receiver.events("81125552141")) == 1

    # The client's endpoint fails: an event (its AWB holds HTML) is retried until dead-lettered.
    receiver.failing = True
    body = json.loads((FIXTURES / "delivered_selected_captured.json").read_text())
    body["waybill"] = HTML_AWB
    body["timestamp"] = "2023-02-08T10:00:00Z"
    body["additional"]["latest_status"]["timestamp"] = "2023-02-08T10:00:00Z"
    status, answer = post_as_carrier(notify_url, key, json.dumps(body))
    assert status == 200 and answer["status"] == "accepted", answer
    page.click("header.top >> text=Dead letters")
    row = reload_until(page, "table.dead-letters tbody tr", timeout=60_000)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("max attempts")
    shot(page, "dead-letters")

    # Its timeline shows the AWB as text, every failed attempt (the last, the eighth, a dead
    # letter), and ran nothing.
    page.goto(f"{server}/console/tenants/acme/deliveries?" + urllib.parse.urlencode({"awb": HTML_AWB}))
    expect(page.locator("code.awb").first).to_have_text(HTML_AWB)
    expect(page.locator("li.attempt .outcome.retry")).to_have_count(7)
    expect(page.locator("li.attempt .outcome.dead_letter")).to_have_count(1)
    expect(page.locator("li.attempt").first).to_contain_text("HTTP 500")
    assert page.evaluate("window.__pwned") is None

    # The endpoint is fixed: redrive the dead letter from the page, with its progress, and it is
    # delivered.
    receiver.failing = False
    page.click("header.top >> text=Dead letters")
    page.check("table.dead-letters tbody input[name=ids]")
    page.click("button:has-text('Redrive selected')")
    expect(page.locator("#job-outcome")).to_contain_text("1 dead letter(s) put back")
    expect(page.locator("#job-outcome progress")).to_have_attribute("value", "1")
    shot(page, "redrive")
    page.goto(f"{server}/console/tenants/acme/deliveries?" + urllib.parse.urlencode({"awb": HTML_AWB}))
    reload_until(page, "li.attempt .outcome.delivered")
    assert len([b for _, b in receiver.events(HTML_AWB)]) >= 1

    # A replay of an AWB, with its progress: pushed once more.
    page.fill("#awb", "81125552141")
    page.click("button:has-text('Show its timeline')")
    page.click("button:has-text('Replay these 1 event(s)')")
    expect(page.locator("#job-outcome")).to_contain_text("1 event(s) queued again")
    deadline = time.monotonic() + SOON / 1000
    while len(receiver.events("81125552141")) < 2:
        assert time.monotonic() < deadline, "the replayed event never arrived"
        time.sleep(0.2)

    # The overview: Clickpost wired, the queue, and the last 24 hours' chart.
    page.click("header.top >> text=Overview")
    row = page.locator("table.overview tbody tr", has_text="acme")
    expect(row.locator(".wired.ok")).to_have_count(1)
    expect(row.locator("svg.chart rect.delivered").first).to_be_visible()
    expect(row.locator("svg.chart rect.failed").first).to_be_visible()
    shot(page, "overview")

    print(f"\nonboarding flow: {time.monotonic() - started:.1f}s")


# ---- security ----------------------------------------------------------------------------------


def session(server):
    """A signed-in session over plain HTTP: (cookie header, CSRF token)."""
    status, headers, text = call("GET", f"{server}/console/sign-in")
    sign_in_cookie = headers["set-cookie"].split(";")[0]
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)
    status, headers, _ = call(
        "POST", f"{server}/console/sign-in",
        urllib.parse.urlencode({"csrf": token, "token": ADMIN_TOKEN}),
        {"cookie": sign_in_cookie, "content-type": "application/x-www-form-urlencoded"},
    )
    assert status == 303, status
    cookie = next(c for c in headers.get_all("set-cookie") if c.startswith("rms_console=")).split(";")[0]
    status, _, text = call("GET", f"{server}/console", headers={"cookie": cookie})
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)
    return cookie, csrf


def state(server):
    """Everything a console form could change, through the admin API."""
    return {
        "tenants": admin_api(server, "GET", "/admin/tenants")[1],
        "keys": admin_api(server, "GET", "/admin/tenants/victim/keys")[1],
        "push": admin_api(server, "GET", "/admin/tenants/victim/push")[1],
        "dead": admin_api(server, "GET", "/admin/dead-letters")[1],
    }


def test_every_state_change_without_a_session_or_its_csrf_token_is_refused(server):
    assert admin_api(server, "POST", "/admin/tenants", {"id": "victim"})[0] == 201
    status, added = admin_api(server, "POST", "/admin/tenants/victim/keys/shipway", {"key": "victim-shipway-key-0001"})
    assert status == 201
    admin_api(server, "PUT", "/admin/tenants/victim/push", {"url": "http://127.0.0.1:9/hook"})
    forms = {
        "/console/tenants": {"id": "forged", "include_source": "on"},
        "/console/tenants/victim/enabled": {"enabled": "false"},
        "/console/tenants/victim/keys": {"carrier": "clickpost", "key": "forged-key-0123456789"},
        f"/console/tenants/victim/keys/shipway/{added['key_id']}/revoke": {},
        "/console/tenants/victim/push": {"url": "http://127.0.0.1:9/forged", "enabled": "on"},
        "/console/tenants/victim/push/test": {"status": "DELIVERED"},
        "/console/tenants/victim/replay": {"awb": "81125552141"},
        "/console/dead-letters/redrive": {"which": "all"},
        "/console/sign-out": {},
    }
    cookie, csrf = session(server)
    before = state(server)
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    for path, fields in forms.items():
        attempts = {
            "no session": ({**fields, "csrf": csrf}, {}),
            "no CSRF token": (fields, {"cookie": cookie}),
            "a wrong CSRF token": ({**fields, "csrf": "0" * 64}, {"cookie": cookie}),
            "another site's form": ({**fields, "csrf": csrf}, {"cookie": cookie, "origin": "https://evil.example"}),
        }
        for why, (body, headers) in attempts.items():
            status, _, text = call("POST", f"{server}{path}", urllib.parse.urlencode(body), {**form_type, **headers})
            assert status == 403, f"{path} with {why}: {status} {text[:200]}"
    assert state(server) == before, "a refused form changed something"
    # The sign-in form has its own token: a forged sign-in is refused too.
    status, _, _ = call("POST", f"{server}/console/sign-in", urllib.parse.urlencode({"token": ADMIN_TOKEN}), form_type)
    assert status == 403
    # And the same form with the session's token is taken: the refusals were the token's doing.
    status, headers, _ = call(
        "POST", f"{server}/console/tenants/victim/enabled",
        urllib.parse.urlencode({"enabled": "false", "csrf": csrf}), {**form_type, "cookie": cookie},
    )
    assert status == 303 and admin_api(server, "GET", "/admin/tenants/victim")[1]["enabled"] is False


def test_pages_need_a_session(server):
    for path in ["/console", "/console/tenants/acme", "/console/tenants/acme/push",
                 "/console/tenants/acme/deliveries?awb=81125552141", "/console/dead-letters",
                 "/console/tenants/acme/carriers/clickpost/status"]:
        status, headers, text = call("GET", f"{server}{path}")
        assert status == 303 and headers["location"] == "/console/sign-in", path
        status, headers, text = call("GET", f"{server}{path}", headers={"cookie": "rms_console=" + "ab" * 32})
        assert status == 303, f"{path}: a made-up session"
    # The admin token is typed on the sign-in page; a link holding it signs nobody in.
    status, headers, _ = call("GET", f"{server}/console/sign-in?token={ADMIN_TOKEN}")
    assert status == 200
    assert not any(c.startswith("rms_console=") for c in headers.get_all("set-cookie") or [])


class Inline(html.parser.HTMLParser):
    """Finds what the CSP would block: inline scripts, style attributes and elements, and event
    handler attributes."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        names = [name for name, _ in attrs]
        if tag == "script" and "src" not in names:
            self.found.append("an inline <script>")
        if tag == "style":
            self.found.append("a <style> element")
        for name in names:
            if name == "style" or name.startswith("on"):
                self.found.append(f"a {name} attribute on <{tag}>")


def test_no_page_shows_a_secret_after_it_was_created_and_none_runs_inline_script(server):
    assert {"clickpost_key", "header_value", "signing_secret"} <= SEEN.keys(), "the flow ran first"
    cookie, _ = session(server)
    pages = ["/console", "/console/tenants/acme", "/console/tenants/acme/push",
             "/console/tenants/acme/deliveries", "/console/tenants/acme/deliveries?awb=81125552141",
             "/console/tenants/acme/deliveries?" + urllib.parse.urlencode({"awb": HTML_AWB}),
             "/console/dead-letters", "/console/dead-letters?tenant=acme",
             "/console/tenants/acme/carriers/clickpost/status", "/console/sign-in",
             "/console/assets/console.js", "/console/assets/console.css"]
    for path in pages:
        status, headers, text = call("GET", f"{server}{path}", headers={"cookie": cookie})
        assert status == 200, f"{path}: {status}"
        for name, secret in SEEN.items():
            assert secret not in text, f"{path} shows the {name}"
        if headers.get_content_type() == "text/html":
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
            assert headers["cache-control"] == "no-store"
            inline = Inline()
            inline.feed(text)
            assert not inline.found, f"{path}: {inline.found}"
            assert "<script>window.__pwned" not in text
    status, _, text = call("GET", f"{server}/console/tenants/acme/deliveries?" + urllib.parse.urlencode({"awb": HTML_AWB}), headers={"cookie": cookie})
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
