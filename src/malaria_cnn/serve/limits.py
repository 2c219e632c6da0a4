"""What an upload may be: kept apart from the upload code, so the command's parser shows the defaults
without loading any image library."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    max_upload_mb: int = 64  # one file: a photo, or a zip of photos
    max_files: int = 100  # files in one request
    max_photos_per_slide: int = 2000
    max_pixels: int | None = None  # a photo's pixels; None: as `screen` (screening/screen.py MAX_PIXELS)

    def as_dict(self) -> dict:
        return {"max_upload_mb": self.max_upload_mb, "max_files": self.max_files,
                "max_photos_per_slide": self.max_photos_per_slide, "max_pixels": self.max_pixels}
