"""End to end, as a person uses it: `malaria-cnn serve` running, its pages driven in headless Chromium
(Playwright, Debian's chromium). Create a slide, upload synthetic field photos and a broken file, watch
them screened, open the slide and a cell, review by keyboard with an undo, export the corrections, and
train the pipeline on the export with `dvc exp run`. Screenshots of each page go to test-output/.
"""

from __future__ import annotations

import json
import re
import urllib.request

import cv2
import pytest

from malaria_cnn.screening.synthetic_field import make_field

from browser import require_chromium
from conftest import ROOT
from serve.server import TOKEN, start
from serve.trains import assert_trains

pytestmark = pytest.mark.e2e
SHOTS = ROOT / "test-output"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
KEYS = {"parasitized": "p", "uninfected": "u"}
BROWSER_SLIDE_SEEDS = (0, 1, 2)  # photos of the slide made in the browser
API_SLIDE_SEEDS = (3, 4, 5)  # one photo each: the export needs a few slides to train on


SLOW_SLIDE_CREATION = """{
  const fetchNow = window.fetch;
  window.fetch = (url, init) => init && init.method === "POST" && String(url).endsWith("/api/slides")
    ? new Promise((wait) => setTimeout(wait, 1000)).then(() => fetchNow(url, init))
    : fetchNow(url, init);
}"""


def _png(rgb) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _truth(seed: int):
    return make_field(seed).cells


def _true_answer(box: list[int], truth) -> str:
    """The label of the labelled cell whose centre lies in the found cell's box ("not_cell" when none)."""
    x, y, w, h = box
    inside = [b for b in truth if x <= b.x + b.w / 2 <= x + w and y <= b.y + b.h / 2 <= y + h]
    if not inside:
        return "not_cell"
    return "parasitized" if inside[0].kind == "parasitized" else "uninfected"


def _json(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, method=method, headers={"Content-Type": "application/json",
                                                                    "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait(page, server, condition: str, timeout: float = 60_000) -> None:
    """page.wait_for_function, failing with what the page shows (its rows, its error line) and the server's log."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=timeout)
    except PlaywrightTimeout:
        shown = page.evaluate("[...document.querySelectorAll('tr, #error')].map((e) => e.innerText).join('\\n')")
        page.screenshot(path=SHOTS / "serve-timeout.png", full_page=True)
        raise AssertionError(f"{condition} not true in {timeout / 1000:.0f} s; the page shows:\n{shown}\n"
                             f"{server.tail()}") from None


@pytest.fixture(scope="module")
def playwright_browser():
    chromium = require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield browser
        browser.close()


def test_a_person_screens_reviews_and_exports_a_slide_that_the_pipeline_trains_on(
        tmp_path, ruled_model_dir, playwright_browser):
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in BROWSER_SLIDE_SEEDS:
        (photos / f"field_{seed}.png").write_bytes(_png(make_field(seed).rgb))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a whole photo")
    SHOTS.mkdir(exist_ok=True)
    with start(tmp_path / "ws", ruled_model_dir) as server:
        page = playwright_browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "404" not in m.text else None)

        page.goto(server.address)  # the address `serve` prints, with its token: the browser keeps the cookie
        # New slide: name it, drop photos and a broken file, watch each photo screened. The slide's creation
        # is held back a second: files chosen before it exists wait for it, none is dropped.
        page.add_init_script(SLOW_SLIDE_CREATION)
        page.goto(server.url + "slides/new")
        page.get_by_label(re.compile("name", re.IGNORECASE)).first.fill("Ward 3 P17")
        page.get_by_role("button", name=re.compile("create", re.IGNORECASE)).click()
        page.locator("input[type=file]").set_input_files(sorted(photos.iterdir()))
        assert page.evaluate("document.getElementById('upload-section').hidden"), "the slide was created at once"
        _wait(page, server, "document.querySelectorAll('[data-photo-id][data-state=done]').length === 3")
        page.wait_for_function("document.querySelectorAll('[data-photo-id][data-state=failed]').length === 1")
        failed = page.locator("[data-photo-id][data-state=failed]")
        assert "broken.jpg" in failed.inner_text()
        assert "Traceback" not in page.content()
        page.wait_for_function("document.getElementById('summary') && "
                               "/\\d/.test(document.getElementById('summary').textContent)")
        page.screenshot(path=SHOTS / "serve-new-slide.png", full_page=True)
        slide_id = int(re.search(r"\d+", page.locator("a[href*='/review']").first.get_attribute("href")).group(0))

        # Slide: every photo with its cells outlined; a click on a cell shows its crop and probability
        page.goto(f"{server.url}slides/{slide_id}")
        page.wait_for_selector("svg polygon")
        api = _json(f"{server.url}api/slides/{slide_id}")
        assert page.locator("svg polygon").count() == api["cells_total"]
        page.locator("svg polygon").first.click()
        page.wait_for_selector("img[src*='/crop']")
        details = page.locator("[data-shown-cell-id]").inner_text()
        assert re.search(r"Found as\s*(red cell|uncertain object)", details) and "null" not in details, details
        page.screenshot(path=SHOTS / "serve-slide.png", full_page=True)

        # Review: answer every cell in doubt by keyboard, from the labelled truth of the synthetic fields
        truth = {}
        for p in api["photos"]:
            if p["state"] == "done":
                seed = int(re.search(r"field_(\d+)", p["name"]).group(1))
                for c in _json(f"{server.url}api/photos/{p['id']}")["cells"]:
                    truth[c["id"]] = _true_answer(c["box"], _truth(seed))
        page.goto(f"{server.url}slides/{slide_id}/review")
        page.wait_for_selector("[data-cell-id].current")
        flagged = page.locator("[data-cell-id]").count()
        assert flagged == _json(f"{server.url}api/slides/{slide_id}/review")["summary"]["review"]["flagged"] > 0
        shown = [float(t.split("p ")[1]) for t in page.locator("[data-cell-id] .tile-p").all_inner_texts()]
        assert shown == sorted(shown, reverse=True)  # the most likely parasite first
        page.wait_for_selector("img.context-img")  # the current cell among its neighbours, beside the model's input
        assert page.locator("img[src$='/input']").count() == 1
        page.wait_for_function("document.querySelector('img.context-img').complete")
        page.screenshot(path=SHOTS / "serve-review-cell.png", full_page=False)
        keys = {"parasitized": "p", "uninfected": "u", "not_cell": "n"}
        first = True
        for _ in range(flagged):
            current = int(page.locator("[data-cell-id].current").get_attribute("data-cell-id"))
            answer = truth[current]
            if first:  # a wrong answer, taken back at once
                wrong = "uninfected" if answer == "parasitized" else "parasitized"
                page.keyboard.press(keys[wrong])
                page.wait_for_function(f"document.querySelector('[data-cell-id=\"{current}\"]').dataset.answer "
                                       f"=== '{wrong}'")
                page.keyboard.press("z")
                page.wait_for_function(f"document.querySelector('[data-cell-id=\"{current}\"]').dataset.answer === ''")
                assert int(page.locator("[data-cell-id].current").get_attribute("data-cell-id")) == current
                first = False
            page.keyboard.press(keys[answer])
            page.wait_for_function(f"document.querySelector('[data-cell-id=\"{current}\"]').dataset.answer "
                                   f"=== '{answer}'")
        page.wait_for_function("/complete/i.test(document.getElementById('review-status').textContent + "
                               "document.getElementById('summary').textContent)")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=SHOTS / "serve-review.png", full_page=False)
        stored = _json(f"{server.url}api/slides/{slide_id}/review")
        assert {c["id"]: c["answer"] for c in stored["cells"]} == {c["id"]: truth[c["id"]] for c in stored["cells"]}
        assert stored["summary"]["review"]["complete"]
        # the slide's answer is the answer after review: infected once a parasite is confirmed, and the page says so
        found = any(truth[c["id"]] == "parasitized" for c in stored["cells"])
        assert stored["summary"]["answer"]["answer"] == ("infected" if found else stored["summary"]["answer"]["answer"])
        badge = page.locator("#slide-answer .badge").inner_text()
        assert badge == {"infected": "Infected", "refer": "Refer", "not infected": "Not infected"}[
            stored["summary"]["answer"]["answer"]]
        assert found == ("A parasite is confirmed" in page.locator("#review-status").inner_text())

        # a few more slides through the API, each answered from the truth, so the export can be split by slide
        for seed in API_SLIDE_SEEDS:
            other = server.create_slide(f"API slide {seed}")
            server.upload(other, [("files", (f"field_{seed}.png", _png(make_field(seed).rgb), "image/png"))])
            server.wait_screened(other)
            cells = {c["id"]: c for p in _json(f"{server.url}api/slides/{other}")["photos"]
                     for c in _json(f"{server.url}api/photos/{p['id']}")["cells"]}
            for c in cells.values():  # every cell, flagged or not: a person may answer any cell of a slide
                _json(f"{server.url}api/cells/{c['id']}/answer", "PUT", {"answer": _true_answer(c["box"], _truth(seed))})

        # Slides: every slide with its answer and review; export all of them
        page.goto(server.url)
        page.wait_for_selector(f"a[href='/slides/{slide_id}']")
        assert page.get_by_text("Ward 3 P17").count() >= 1
        page.screenshot(path=SHOTS / "serve-slides.png", full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile("export corrections", re.IGNORECASE)).first.click()
        exported = tmp_path / "corrections.zip"
        download.value.save_as(exported)
        assert not errors, errors
    metrics = assert_trains(exported, tmp_path)
    assert 0 <= metrics["sensitivity"] <= 1


ATTACK_PAGE = """<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="upload" method="post" enctype="multipart/form-data" target="sink" action="{server}api/slides/{slide}/photos">
  <input type="file" name="files" id="file"></form>
<form id="undo" method="post" target="sink" action="{server}api/slides/{slide}/undo"></form>
<form id="answer" method="post" target="sink" action="{server}api/cells/{cell}/answer">
  <input name="answer" value="parasitized"></form>
<form id="export" method="post" target="sink" action="{server}api/export"></form>
<script>
const server = "{server}";
function submitted(id) {{
  return new Promise((done) => {{
    const sink = document.getElementById("sink");
    sink.onload = () => done();
    document.getElementById(id).submit();
  }});
}}
async function attack() {{
  const photo = new File([new Uint8Array(1000)], "field.png", {{type: "image/png"}});
  const transfer = new DataTransfer();
  transfer.items.add(photo);
  document.getElementById("file").files = transfer.files;
  for (const id of ["upload", "undo", "answer", "export"]) await submitted(id);
  const form = new FormData();
  form.append("files", photo);
  const tries = [
    fetch(server + "api/slides/{slide}/photos", {{method: "POST", body: form, mode: "no-cors", credentials: "include"}}),
    fetch(server + "api/slides/{slide}/undo", {{method: "POST", mode: "no-cors", credentials: "include"}}),
    fetch(server + "api/export", {{method: "POST", mode: "no-cors", credentials: "include"}}),
    fetch(server + "api/export", {{mode: "no-cors", credentials: "include"}}),
    fetch(server + "api/cells/{cell}/answer", {{method: "PUT", credentials: "include",
      headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{answer: "parasitized"}})}}),
    fetch(server + "api/slides", {{method: "POST", mode: "no-cors", credentials: "include",
      headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{name: "forged"}})}}),
  ];
  await Promise.allSettled(tries);
  document.title = "done";
}}
attack();
</script></body></html>"""


def _workspace_state(server) -> dict:
    slides = _json(f"{server.url}api/slides")["slides"]
    answers = {c["id"]: c["answer"] for s in slides for c in _json(f"{server.url}api/slides/{s['id']}/review")["cells"]}
    exports = sorted(p.name for p in (server.workspace / "exports").glob("*")) if (server.workspace / "exports").exists() else []
    return {"slides": [(s["name"], s["photos_total"]) for s in slides], "answers": answers, "exports": exports}


@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "no-token"])
def test_a_page_of_another_origin_cannot_upload_undo_answer_or_export(tmp_path, ruled_model_dir, playwright_browser,
                                                                       token):
    import http.server
    import threading

    from serve.server import free_port

    with start(tmp_path / "ws", ruled_model_dir, token=token) as server:
        slide = server.create_slide("attacked")
        server.upload(slide, {"field.png": _png(make_field(0).rgb)})
        server.wait_screened(slide)
        cell = server.get(f"api/slides/{slide}/review")["cells"][0]["id"]
        server.answer(cell, "uninfected")
        before = _workspace_state(server)

        site = tmp_path / "attacker"
        site.mkdir()
        (site / "index.html").write_text(ATTACK_PAGE.format(server=server.url, slide=slide, cell=cell))
        port = free_port()
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(site), **k)  # noqa: E731
        attacker = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=attacker.serve_forever, daemon=True).start()
        try:
            context = playwright_browser.new_context()
            context.new_page().goto(server.address)  # the reviewer's browser: the token's cookie, when there is one
            page = context.new_page()  # another tab: a page of another app on this machine
            seen: list[tuple[str, int]] = []
            page.on("response", lambda r: seen.append((r.request.method, r.status, r.url))
                    if r.url.startswith(server.url) else None)
            page.goto(f"http://127.0.0.1:{port}/index.html")
            page.wait_for_function("document.title === 'done'", timeout=60_000)
            context.close()
        finally:
            attacker.shutdown()
        assert _workspace_state(server) == before
        refused = [status for method, status, url in seen]
        assert len(refused) >= 4 and set(refused) <= {403}, seen  # the forms' replies: refused by the origin check
