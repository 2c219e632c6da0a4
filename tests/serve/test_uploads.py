"""Upload limits through the app (in process, no worker): too many files, too large a file, and uploads past
the slide's room, whatever mix of zips and photos, refused before anything is kept."""

from __future__ import annotations

import cv2

from malaria_cnn.serve.limits import UploadLimits
from serve.test_app import client, png, settings, zipped


def test_limits_refuse_too_many_files_and_too_large_ones(tmp_path, scoring, fields):
    s = settings(tmp_path, scoring, limits=UploadLimits(max_upload_mb=1, max_files=2, max_photos_per_slide=3),
                 start_worker=False)
    photo = png(next(iter(fields.values())).rgb)
    with client(s) as c:
        sid = c.post("/api/slides", json={"name": "limits"}).json()["id"]
        r = c.post(f"/api/slides/{sid}/photos", files=[("files", (f"{i}.png", photo, "image/png")) for i in range(3)])
        assert r.status_code == 413 and r.json()["error"] == "more than 2 files sent at once: send at most 2"
        big = c.post(f"/api/slides/{sid}/photos", files=[("files", ("big.png", photo + b"\0" * (1 << 20), "image/png"))])
        assert big.json()["photos"][0]["error"].startswith("file of 1.")
        assert "larger than the upload limit (1 MB)" in big.json()["photos"][0]["error"]
        small = png(cv2.resize(next(iter(fields.values())).rgb, (160, 120)))
        many = zipped({f"{i}.png": small for i in range(5)})
        r = c.post(f"/api/slides/{sid}/photos", files=[("files", ("many.zip", many, "application/zip"))])
        assert r.status_code == 413 and r.json()["error"] == ("the slide holds at most 3 photos: it has room for 2 "
                                                              "more, and this upload holds 5 photos")
        two = zipped({f"{i}.png": small for i in range(2)})  # a zip that fills the slide, then a photo past it
        r = c.post(f"/api/slides/{sid}/photos", files=[("files", ("two.zip", two, "application/zip")),
                                                       ("files", ("one.png", small, "image/png"))])
        assert r.status_code == 413 and "this upload holds 3 photos" in r.json()["error"]
        assert c.get(f"/api/slides/{sid}").json()["photos_total"] == 1  # nothing of either kept
        assert c.post(f"/api/slides/{sid}/photos", files=[("files", ("two.zip", two, "application/zip"))]).status_code == 200
        r = c.post(f"/api/slides/{sid}/photos", files=[("files", ("one.png", photo, "image/png"))])
        assert r.status_code == 413 and "at most 3 photos: it has room for 0 more" in r.json()["error"]
        assert c.get(f"/api/slides/{sid}").json()["photos_total"] == 3
        assert not list((s.workspace / "tmp").iterdir())  # no body kept
