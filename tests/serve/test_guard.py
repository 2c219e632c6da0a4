"""The security checks of serve/guard.py on the real app (in process, no worker): another origin cannot change
anything, with or without a token; the token is compared as bytes; an upload's body is counted as it arrives."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from malaria_cnn.serve.app import COOKIE, Settings, create_app
from malaria_cnn.serve.limits import UploadLimits

OWN = "http://127.0.0.1:8000"
TOKEN = "a-token-of-sixteen-chars"
FOREIGN = ({"Origin": "http://127.0.0.1:9000"}, {"Origin": "https://attacker.example"}, {"Origin": "null"},
           {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}, {})


def app_client(tmp_path: Path, scoring, **kw) -> TestClient:
    s = Settings(tmp_path / "ws", scoring, Path("model.keras"), "f" * 64, start_worker=False, **kw)
    return TestClient(create_app(s), base_url=OWN, raise_server_exceptions=False)


def attempts(c: TestClient, slide_id: int, headers: dict) -> dict:
    """Every state-changing request a page elsewhere would try: (status, error) of each."""
    out = {"new slide": c.post("/api/slides", json={"name": "forged"}, headers=headers),
           "upload": c.post(f"/api/slides/{slide_id}/photos", files=[("files", ("x.png", b"\x89PNG", "image/png"))],
                            headers=headers),
           "answer": c.put("/api/cells/1/answer", json={"answer": "skip"}, headers=headers),
           "undo": c.post(f"/api/slides/{slide_id}/undo", headers=headers),
           "export": c.post("/api/export", headers=headers)}
    return {k: (r.status_code, r.json().get("error", "") if "json" in r.headers["content-type"] else "")
            for k, r in out.items()}


@pytest.mark.parametrize("token", [None, TOKEN])
def test_no_other_origin_can_change_anything_with_or_without_a_token(tmp_path, scoring, token):
    with app_client(tmp_path, scoring, token=token) as c:
        if token:  # the reviewer opened the printed address: the browser holds the cookie for every port
            c.get(f"/?token={token}", follow_redirects=False)
            c.cookies.set(COOKIE, token)
        slide_id = c.post("/api/slides", json={"name": "real"}, headers={"Origin": OWN}).json()["id"]
        for headers in FOREIGN:
            for what, (status, error) in attempts(c, slide_id, headers).items():
                assert status == 403 and error.startswith("refused: a request that changes something"), (headers, what)
        assert [r["name"] for r in c.get("/api/slides").json()["slides"]] == ["real"]  # the workspace unchanged
        assert not (tmp_path / "ws" / "exports").exists()
        assert c.get("/api/slides/1").status_code == 200  # reading stays open to the reviewer's own pages
        same = attempts(c, slide_id, {"Origin": OWN, "Sec-Fetch-Site": "same-origin"})
        assert same["undo"][0] == 200 and same["export"][0] == 200 and same["new slide"][0] == 201


def test_a_client_that_is_no_browser_sends_the_token_in_its_header(tmp_path, scoring):
    with app_client(tmp_path, scoring, token=TOKEN) as c:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/api/slides", json={"name": "by script"}, headers=bearer).status_code == 201
        c.cookies.set(COOKIE, TOKEN)
        assert c.post("/api/slides", json={"name": "cookie only"}).status_code == 403
        assert c.post("/api/slides", json={"name": "x"}, headers={**bearer, "Origin": "http://127.0.0.1:9000"}
                      ).status_code == 403


def test_a_wrong_or_non_ascii_token_is_refused_with_401_never_500(tmp_path, scoring):
    with app_client(tmp_path, scoring, token=TOKEN) as c:
        assert c.get("/?token=%C3%A9t%C3%A9-%E2%9C%93-wrong-wrong", follow_redirects=False).status_code == 401
        assert c.get("/api/slides", headers={"Authorization": "Bearer été-wrong-wrong-wrong".encode()}
                     ).status_code == 401
        c.cookies.set(COOKIE, "%C3%A9" * 20)
        assert c.get("/api/slides").status_code == 401
        assert c.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303


def test_a_chunked_body_past_the_limit_is_refused_as_it_arrives(tmp_path, scoring):
    limits = UploadLimits(max_upload_mb=1, max_files=1)
    with app_client(tmp_path, scoring, limits=limits) as c:
        slide_id = c.post("/api/slides", json={"name": "chunked"}, headers={"Origin": OWN}).json()["id"]
        boundary = "b0undary"
        sent = []

        def body():  # no Content-Length: sent chunked, 4 MB of one photo's bytes
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
                   f"Content-Type: image/png\r\n\r\n").encode()
            for _ in range(64):
                sent.append(1)
                yield b"\0" * (64 << 10)
            yield f"\r\n--{boundary}--\r\n".encode()

        r = c.post(f"/api/slides/{slide_id}/photos", content=body(), headers={
            "Origin": OWN, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and "larger than 2 MB" in r.json()["error"]
        assert c.get(f"/api/slides/{slide_id}").json()["photos_total"] == 0
        assert not list((tmp_path / "ws" / "tmp").iterdir())
        big = c.post("/api/slides", content=b"{" + b" " * (2 << 20) + b"}",
                     headers={"Origin": OWN, "Content-Type": "application/json"})
        assert big.status_code == 413


def test_with_a_token_every_request_needs_it_and_a_visit_with_it_sets_a_cookie(tmp_path, scoring):
    with app_client(tmp_path, scoring, token=TOKEN) as c:
        assert c.get("/api/slides").status_code == 401
        assert c.get("/api/slides", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert c.get("/api/slides", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/static/serve.css").status_code == 401
        visit = c.get(f"/?token={TOKEN}", follow_redirects=False)
        assert visit.status_code == 303 and visit.headers["location"] == "/"
        assert f"{COOKIE}={TOKEN}" in visit.headers["set-cookie"] and "samesite=strict" in visit.headers["set-cookie"].lower()
        assert c.get("/api/slides", cookies={COOKIE: TOKEN}).status_code == 200


def test_on_loopback_a_request_naming_another_host_is_refused(tmp_path, scoring):
    with app_client(tmp_path, scoring) as c:
        assert c.get("/api/status", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/api/status", headers={"host": "[::1]:8000"}).status_code == 200
        r = c.get("/api/status", headers={"host": "attacker.example:8000"})
        assert r.status_code == 421 and "attacker.example" in r.json()["error"]
