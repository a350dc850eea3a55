"""Mail logins: the SASL mechanisms, the provider presets, the kept OAuth sign-in and its
refresh (against the loopback stand-in provider of tests/servers), throttling answers."""

from __future__ import annotations

import base64
import json
import stat
import time

import pytest
from servers.oauth_provider import OAuthProvider

from agentdesk import config
from agentdesk.channels.email import imap, oauth, sasl
from agentdesk.errors import ConfigError
from agentdesk.sync import credentials

MAILBOX = "[[mailbox]]\nname = 'support'\naddress = 'support@contoso.example'\nusername = 'support@contoso.example'\n"


def test_the_mechanism_is_the_configured_one_else_a_password_first():
    assert sasl.choose("oauthbearer", {"PLAIN"}, login_command=True) == "oauthbearer"
    assert sasl.choose("", {"PLAIN", "XOAUTH2"}, login_command=True) == "login"
    assert sasl.choose("", {"XOAUTH2", "PLAIN"}, login_command=False) == "plain"
    assert sasl.choose("", {"XOAUTH2", "OAUTHBEARER"}, login_command=False) == "xoauth2"
    assert sasl.choose("", {"OAUTHBEARER"}, login_command=False) == "oauthbearer"


def test_initial_responses_are_the_formats_servers_expect():
    assert sasl.initial_response("plain", "ann", "pw") == "\0ann\0pw"
    assert sasl.initial_response("xoauth2", "ann@x", "tok") == "user=ann@x\x01auth=Bearer tok\x01\x01"
    assert (
        sasl.initial_response("oauthbearer", "a,b=c", "tok", host="h", port=993)
        == "n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01auth=Bearer tok\x01\x01"
    )
    respond = sasl.responder("xoauth2", "ann", "tok")
    assert respond(None).startswith("user=ann")
    # The server's error challenge is answered empty, so it ends the exchange with NO / 535.
    assert respond(b'{"status":"401"}') == ""


def test_a_provider_presets_servers_and_mechanism_and_a_written_key_wins():
    settings = config.parse(MAILBOX + "provider = 'microsoft365'\n")
    mailbox = settings.mailbox[0]
    assert (mailbox.host, mailbox.port, mailbox.tls, mailbox.auth) == ("outlook.office365.com", 993, "ssl", "xoauth2")
    smtp = mailbox.smtp
    assert (smtp.host, smtp.port, smtp.tls, smtp.auth, smtp.username) == (
        "smtp.office365.com",
        587,
        "starttls",
        "xoauth2",
        "support@contoso.example",
    )
    gmail = config.parse(MAILBOX + "provider = 'gmail'\nport = 1993\n[mailbox.smtp]\nport = 2465\n").mailbox[0]
    assert (gmail.host, gmail.port, gmail.smtp.host, gmail.smtp.port) == (
        "imap.gmail.com",
        1993,
        "smtp.gmail.com",
        2465,
    )
    # The address is the login unless the mailbox says otherwise (a shared mailbox, say).
    bare = config.parse("[[mailbox]]\nname = 'sales'\naddress = 'sales@contoso.example'\nprovider = 'microsoft365'\n")
    assert (bare.mailbox[0].username, bare.mailbox[0].smtp.username) == ("sales@contoso.example",) * 2


def test_without_a_provider_the_host_is_still_required_and_auth_is_checked():
    with pytest.raises(ConfigError, match=r"mailbox\[0\] \(support\)\.host: required key is missing"):
        config.parse(MAILBOX)
    with pytest.raises(ConfigError, match=r"mailbox\[0\]\.auth: expected one of .*'xoauth2'"):
        config.parse(MAILBOX + "host = 'h'\nauth = 'gssapi'\n")
    with pytest.raises(ConfigError, match=r"mailbox\[0\]\.provider: expected one of"):
        config.parse(MAILBOX + "provider = 'yahoo'\n")


@pytest.fixture
def provider():
    server = OAuthProvider(key=b"k" * 32, lifetime=3600)
    server.start()
    yield server
    server.stop()


def _signed_in_mailbox(provider, store, *, expires_in: float) -> config.MailboxSettings:
    mailbox = config.parse(
        MAILBOX + f"provider = 'microsoft365'\noauth_client_id = '{provider.client_id}'\n"
        f"oauth_device_url = '{provider.device_url}'\noauth_token_url = '{provider.token_url}'\n"
    ).mailbox[0]
    refresh = "rt-initial"
    provider.refresh_tokens[refresh] = "support"
    store.save(
        "support",
        credentials.SignIn(
            provider="microsoft365",
            username="support",
            account="support@x",
            refresh_token=refresh,
            access_token="old-token",
            expires_at=time.time() + expires_in,
        ),
    )
    return mailbox


def test_the_sign_in_file_is_owner_only_and_a_fresh_token_is_not_refreshed(provider, tmp_path):
    store = credentials.TokenStore(tmp_path / "data", use_keyring=False)
    mailbox = _signed_in_mailbox(provider, store, expires_in=3000)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert credentials.access_token(mailbox, store=store) == "old-token"
    assert provider.refreshes == 0


def test_a_token_near_its_expiry_is_refreshed_and_the_rotated_refresh_token_kept(provider, tmp_path):
    store = credentials.TokenStore(tmp_path, use_keyring=False)
    mailbox = _signed_in_mailbox(provider, store, expires_in=credentials.REFRESH_MARGIN_SECONDS - 10)
    token = credentials.access_token(mailbox, store=store)
    assert token != "old-token" and provider.refreshes == 1
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "support"
    kept = store.load("support")
    assert kept.refresh_token != "rt-initial" and kept.access_token == token
    assert kept.expires_at > time.time() + 3000
    # The next one within its lifetime uses the kept token.
    assert credentials.access_token(mailbox, store=store) == token and provider.refreshes == 1


def test_a_revoked_sign_in_is_one_line_naming_the_command_and_is_remembered(provider, tmp_path):
    store = credentials.TokenStore(tmp_path, use_keyring=False)
    mailbox = _signed_in_mailbox(provider, store, expires_in=0)
    provider.revoke_all()
    with pytest.raises(oauth.SignInRevoked) as raised:
        credentials.access_token(mailbox, store=store)
    message = str(raised.value)
    assert "\n" not in message and message.endswith("run `agentdesk oauth login support`")
    assert "invalid_grant" in message
    requests = len(provider.requests)
    with pytest.raises(oauth.SignInRevoked):  # without asking the provider again
        credentials.access_token(mailbox, store=store)
    assert len(provider.requests) == requests


def test_device_flow_polls_until_approved_and_slows_down_when_asked(provider):
    endpoints = oauth.endpoints_for(
        "microsoft365", client_id=provider.client_id, device_url=provider.device_url, token_url=provider.token_url
    )
    code = oauth.start_device_flow(endpoints)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) == 3:
            provider.approve(code.user_code, "ann")

    token = oauth.poll_for_token(endpoints, code, sleep=sleep)
    assert waits == [1, 1, 1] and token.refresh_token and token.account == "ann@example.test"
    denied = oauth.start_device_flow(endpoints)
    provider.deny(denied.user_code)
    with pytest.raises(oauth.OAuthError, match="declined"):
        oauth.poll_for_token(endpoints, denied, sleep=lambda _: None)


def test_endpoints_must_be_https_unless_on_this_machine():
    endpoints = oauth.endpoints_for("gmail", client_id="c", device_url="http://auth.example.com/device")
    with pytest.raises(oauth.OAuthError, match="must be https"):
        oauth.start_device_flow(endpoints)
    assert (
        oauth.endpoints_for("microsoft365", client_id="c", tenant="contoso.example").token_url
        == "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
    )


@pytest.mark.parametrize(
    "answer",
    [
        "[THROTTLED] Request is throttled. Suggested Backoff Time: 12000 milliseconds",
        "[UNAVAILABLE] Temporary System Error",
        "Too many simultaneous connections. (Failure)",
        "Server Unavailable. 15",
    ],
)
def test_throttling_answers_are_recognised(answer):
    assert imap.is_throttling(answer)


def test_ordinary_refusals_are_not_throttling():
    assert not imap.is_throttling("[AUTHENTICATIONFAILED] Authentication failed.")
    assert not imap.is_throttling("Mailbox doesn't exist: Archive")


def test_the_sign_in_goes_to_the_keyring_when_there_is_one(tmp_path, monkeypatch):
    class Keyring:  # a backend with a working store (Secret Service, Keychain)
        entries: dict = {}

        def get_password(self, service, name):
            return self.entries.get((service, name))

        def set_password(self, service, name, value):
            self.entries[(service, name)] = value

        def delete_password(self, service, name):
            self.entries.pop((service, name), None)

        def get_keyring(self):
            return self

    monkeypatch.setattr(credentials, "_keyring", lambda: Keyring())
    store = credentials.TokenStore(tmp_path)
    sign_in = credentials.SignIn(provider="gmail", username="a", account="a@x", refresh_token="rt")
    store.save("support", sign_in)
    assert not store.path.exists()  # nothing on disk
    assert json.loads(Keyring.entries[(credentials.KEYRING_SERVICE, "support")])["refresh_token"] == "rt"
    assert store.load("support") == sign_in and store.where().startswith("the system keyring")
    store.forget("support")
    assert store.load("support") is None


def test_one_idle_command_lasts_less_than_exchange_allows():
    calls = []

    class Connection:
        def idle(self, timeout):
            calls.append(timeout)

        def response(self, code):
            return code, [None]

    idler = imap.Idler.__new__(imap.Idler)
    idler.conn, idler._closed, idler.server = Connection(), False, None
    idler.wait(3600)
    assert calls == [imap.IDLE_RENEW_SECONDS] and imap.IDLE_RENEW_SECONDS < 29 * 60


def test_threads_asking_at_once_share_one_refresh(provider, tmp_path):
    import threading

    store = credentials.TokenStore(tmp_path, use_keyring=False)
    mailbox = _signed_in_mailbox(provider, store, expires_in=0)
    tokens, errors = [], []

    def ask():
        try:
            tokens.append(credentials.access_token(mailbox, store=store))
        except Exception as error:  # a second refresh with the rotated-away token would be refused
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and len(set(tokens)) == 1 and provider.refreshes == 1


def test_a_scope_the_provider_will_not_grant_a_device_is_one_line(tmp_path):
    """Google refuses https://mail.google.com/ to most device-flow clients (docs/email.md)."""
    from agentdesk.app import oauth as sign_in

    google = OAuthProvider(key=b"k" * 32, device_scopes={"email", "profile", "openid"})
    google.start()
    try:
        settings = config.parse(
            MAILBOX + f"provider = 'gmail'\noauth_client_id = '{google.client_id}'\n"
            f"oauth_device_url = '{google.device_url}'\noauth_token_url = '{google.token_url}'\n"
        )
        with pytest.raises(oauth.OAuthError) as raised:
            sign_in.login(
                settings,
                "support",
                show_code=lambda code: None,
                store=credentials.TokenStore(tmp_path, use_keyring=False),
            )
    finally:
        google.stop()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("gmail refused to start the sign-in: invalid_scope: ")
    assert "https://mail.google.com/" in message and message.endswith('(docs/email.md, "Signing in")')


class _Connection:
    """What _mechanism and _log_in see of imaplib: the capabilities, and which command it was asked for."""

    def __init__(self, *capabilities):
        self.capabilities = capabilities
        self.done = []

    def login(self, user, password):
        self.done.append(("LOGIN", user, password))

    def authenticate(self, mechanism, respond):
        self.done.append(("AUTHENTICATE", mechanism, respond(b""), respond(b"")))


@pytest.mark.parametrize(
    ("capabilities", "auth", "expected"),
    [
        (("IMAP4REV1", "AUTH=PLAIN"), "", ("LOGIN", "ann", "pw")),
        (("IMAP4REV1", "LOGINDISABLED", "AUTH=PLAIN"), "", ("AUTHENTICATE", "PLAIN", "\0ann\0pw", "")),
        (("IMAP4REV1", "LOGINDISABLED", "AUTH=LOGIN"), "", ("AUTHENTICATE", "LOGIN", "ann", "pw")),
        (
            ("IMAP4REV1", "AUTH=XOAUTH2"),
            "xoauth2",
            ("AUTHENTICATE", "XOAUTH2", "user=ann\x01auth=Bearer pw\x01\x01", ""),
        ),
    ],
)
def test_imap_logs_in_as_configured_or_as_the_server_allows(capabilities, auth, expected):
    connection = _Connection(*capabilities)
    server = imap.ServerSettings(name="s", host="h", port=993, tls="ssl", username="ann", auth=auth)
    mechanism = imap._mechanism(connection, server)
    imap._log_in(connection, server, "pw", mechanism)
    assert connection.done == [expected]
    # The mechanism a refusal names is the one that was sent, chosen or configured.
    assert mechanism.upper() == (expected[0] if expected[0] == "LOGIN" else expected[1])


def test_an_endless_answer_from_an_endpoint_is_refused_after_a_bounded_read():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Flood(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(64):  # 4 MiB, more than any token answer
                    self.wfile.write(b" " * 65536)
            except OSError:
                pass  # the client stopped reading

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/token"
        endpoints = oauth.endpoints_for("gmail", client_id="c", device_url=url, token_url=url)
        with pytest.raises(oauth.OAuthError, match="more than 1024 KiB") as raised:
            oauth.refresh(endpoints, "rt")
        assert "\n" not in str(raised.value)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"not json"])
def test_an_id_token_that_is_not_a_claims_object_names_no_account(payload):
    id_token = "h." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".s"
    assert oauth._account(id_token) == ""


def test_the_sign_in_file_is_never_written_through_a_leftover_or_a_link(provider, tmp_path):
    import os

    store = credentials.TokenStore(tmp_path / "data", use_keyring=False)
    store.directory.mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    (store.directory / f".{credentials.TOKEN_FILE}.{os.getpid()}").symlink_to(elsewhere)
    _signed_in_mailbox(provider, store, expires_in=3000)
    assert elsewhere.read_text() == "" and stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600 and not store.path.is_symlink()
    assert store.load("support").refresh_token == "rt-initial"
