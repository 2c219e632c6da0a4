"""Write report/page.html, the page `dvc plots show` fills (see .dvc/config), with Vega inlined.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it shows nothing. This
page carries them (BSD-3-Clause, licences kept in the page), plus a banner that lists any script
or image error instead of leaving a blank space. Run it only to change the page or the versions:

    python report/build_page.py

The versions are the ones DVC's renderer writes its plots for; each tarball is checked against
the npm registry's sha512 before use.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

PACKAGES = [  # (name, version, file in the tarball, sha512 integrity from the registry)
    ("vega", "5.20.2", "package/build/vega.min.js",
     "qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    ("vega-lite", "5.2.0", "package/build/vega-lite.min.js",
     "Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    ("vega-embed", "6.18.2", "package/build/vega-embed.min.js",
     "wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
]
REGISTRY = "https://registry.npmjs.org"
PAGE = Path(__file__).with_name("page.html")

HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>malaria-cnn: evaluation</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin-bottom: 0.2em; }
  p.lead { margin-top: 0; color: #555; max-width: 60em; }
  #page-errors { display: none; background: #fde8e8; border: 1px solid #c33; padding: 0.6em 1em; margin: 1em 0; }
  #page-errors.shown { display: block; }
  body > div[id] { display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }
  img { max-width: 100%; }
</style>
"""

BODY = """</head>
<body>
<h1>malaria-cnn: evaluation</h1>
<p class="lead">Test split at the threshold chosen on out-of-fold predictions (Parasitized is the positive
class), training curves, the most confident mistakes and Grad-CAM overlays. The metrics with their
slide-bootstrap intervals: <code>dvc metrics show</code>.</p>
<div id="page-errors"><strong>Part of this page failed to render:</strong><ul></ul></div>
<script>
  window.pageErrors = [];
  function reportPageError(message) {
    window.pageErrors.push(String(message));
    var box = document.getElementById("page-errors");
    var item = document.createElement("li");
    item.textContent = String(message);
    box.querySelector("ul").appendChild(item);
    box.className = "shown";
  }
  window.addEventListener("error", function (e) {
    if (e.target && e.target.tagName === "IMG") {
      reportPageError("image not found: " + e.target.getAttribute("src"));
    } else {
      reportPageError(e.message || "script error");
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    reportPageError("plot failed: " + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });
  window.addEventListener("load", function () {
    document.querySelectorAll("img").forEach(function (img) {
      if (!img.complete || img.naturalWidth === 0) reportPageError("image did not load: " + img.getAttribute("src"));
    });
    document.body.setAttribute("data-loaded", "true");
  });
</script>
{plot_divs}
</body>
</html>
"""


def fetch(name: str, version: str, member: str, integrity: str) -> str:
    url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != integrity:
        raise SystemExit(f"error: {url} does not match its sha512 integrity")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        script = tar.extractfile(member).read().decode("utf-8")
        licence = tar.extractfile("package/LICENSE").read().decode("utf-8")
    return f"<!-- {name} {version}\n{licence.strip()}\n-->\n<script>\n{script}\n</script>\n"


def main() -> None:
    scripts = "".join(fetch(*p) for p in PACKAGES)
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in scripts:
            raise SystemExit(f"error: a vendored script contains DVC's placeholder {placeholder}")
    PAGE.write_text(HEAD + scripts + BODY, encoding="utf-8")
    print(f"wrote {PAGE} ({PAGE.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
