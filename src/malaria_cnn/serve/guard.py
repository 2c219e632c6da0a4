"""Every security check of `serve`, in one ASGI middleware that runs before any route: the host a request
names, its token, where a request that changes something comes from, and the bytes of its body.

- Bound to loopback, a request must name a loopback host (no page reaches the app through a DNS name it
  controls).
- With a token, every request carries it: `Authorization: Bearer <token>`, or the cookie a visit to a
  page with `?token=` sets. Tokens are compared as bytes, in constant time.
- A request that changes state (any method but GET, HEAD and OPTIONS, and the export, which writes a file)
  must come from the server's own pages: its `Origin` is the server's own and its `Sec-Fetch-Site`, when
  sent, is `same-origin`. A request with neither header (not a browser's) must carry the token in its
  `Authorization` header. This holds on loopback too, with or without a token: another site, or another
  app on another port of 127.0.0.1, cannot act through the reviewer's browser.
- A body is counted as it arrives, chunked or not: past `max_body` bytes the request is refused (413).
- Any unexpected error becomes one line of JSON naming the log file with its traceback.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from malaria_cnn.core.errors import log_internal

COOKIE = "malaria_cnn_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATE_CHANGING_GETS = {"/api/export"}  # writes a zip into the workspace: checked whatever its method
NEEDS_TOKEN = ("this server needs its token: open the address it printed (with ?token=...), "
               "or send 'Authorization: Bearer <token>'")
FOREIGN = ("refused: a request that changes something must come from this server's own pages "
           "(Origin {origin}), not from {given}")
NO_ORIGIN = ("refused: a request that changes something must come from this server's own pages (an Origin "
             "header) or carry 'Authorization: Bearer <token>'")


class BodyTooLarge(Exception):
    """A request body past its limit, counted as it arrived."""


@dataclass(frozen=True)
class Policy:
    token: str | None = None
    loopback_only: bool = True  # requests must name a loopback host (the server listens on one)
    max_upload_body: int = 64 << 20  # bytes of an upload's body (its files and their multipart framing)
    max_body: int = 1 << 20  # bytes of any other request's body


def host_of(header: str) -> str:
    """The host a request names, without its port ("[::1]:8000" -> "[::1]")."""
    return header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]


def same_bytes(given: str, token: str) -> bool:
    """Whether `given` is the token, compared as UTF-8 bytes in constant time (any text, never an error)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


def changes_state(method: str, path: str) -> bool:
    return method not in SAFE_METHODS or path in STATE_CHANGING_GETS


class Guard:
    """The ASGI middleware: `app` wrapped in the checks of `policy` (see the module's docstring)."""

    def __init__(self, app, policy: Policy, upload_path=lambda path: False):
        """`upload_path(path)`: whether a request to `path` may carry an upload's body."""
        self.app, self.policy, self.upload_path = app, policy, upload_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            return await _send(send, *refusal)
        p = self.policy
        if self.upload_path(scope["path"]):
            receive = _counted(receive, p.max_upload_body, headers)
        else:  # a small body: read whole here, within its bound, then handed on
            try:
                receive = await _buffered(_counted(receive, p.max_body, headers))
            except BodyTooLarge as exc:
                return await _send(send, 413, str(exc))
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _send(send, 413, str(exc))
        except Exception as exc:  # an internal error: one line, the traceback in a log file
            where = log_internal(exc)
            if not started:
                await _send(send, 500, f"internal error ({type(exc).__name__}); details in {where}")

    def refusal(self, scope, headers: dict) -> tuple | None:
        """(status, message[, extra headers]) when the request is refused; None when it may go on."""
        p, method, path = self.policy, scope["method"], scope["path"]
        host = host_of(headers.get("host", ""))
        if p.loopback_only and host not in LOOPBACK_HOSTS:
            return 421, f"this server answers on 127.0.0.1 only, not on the host {host or '(none)'}"
        bearer = _bearer(headers)
        if p.token:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if given and method == "GET" and not path.startswith("/api/"):
                if not same_bytes(given[0], p.token):
                    return 401, "wrong token"
                cookie = f"{COOKIE}={p.token}; HttpOnly; SameSite=Strict; Path=/"
                return 303, "", [(b"location", path.encode()), (b"set-cookie", cookie.encode())]
            sent = bearer if bearer is not None else _cookie(headers, COOKIE)
            if not same_bytes(sent, p.token):
                return 401, NEEDS_TOKEN
        if changes_state(method, path):
            return self._foreign(scope, headers, bearer is not None and p.token is not None)
        return None

    @staticmethod
    def _foreign(scope, headers: dict, token_in_header: bool) -> tuple | None:
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        if origin is not None and origin != own:
            return 403, FOREIGN.format(origin=own, given=origin)
        if site is not None and site not in ("same-origin", "none"):
            return 403, FOREIGN.format(origin=own, given=f"a {site} page")
        if origin is None and site is None and not token_in_header:
            return 403, NO_ORIGIN
        return None


def _bearer(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _cookie(headers: dict, name: str) -> str:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _counted(receive, limit: int, headers: dict):
    """`receive` that raises BodyTooLarge once more than `limit` bytes of body arrived (or are announced); an
    upload's route meets it as it reads the stream, and the guard replies 413."""
    announced = int(headers.get("content-length") or 0) if headers.get("content-length", "").isdigit() else 0
    seen = 0

    def too_large(size: int) -> BodyTooLarge:
        return BodyTooLarge(f"the upload is larger than {limit / (1 << 20):,.0f} MB: send fewer or smaller files "
                            f"at once ({size / (1 << 20):,.0f} MB sent)")

    async def receive_counted():
        nonlocal seen
        if announced > limit:
            raise too_large(announced)
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(seen)
        return message

    return receive_counted


async def _buffered(receive):
    """`receive` of a body read whole now (a disconnect stays a disconnect)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return _replay([message], receive)
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _replay(messages: list[dict], receive):
    """These messages, then whatever `receive` gives (a response listens for the client's disconnect)."""
    async def replayed():
        return messages.pop(0) if messages else await receive()
    return replayed


async def _send(send, status: int, message: str, extra: list | None = None) -> None:
    body = b"" if status == 303 else json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
