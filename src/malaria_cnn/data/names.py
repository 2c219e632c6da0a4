"""File names as text that can be written anywhere."""

import codecs

codecs.register_error("percent", lambda e: ("".join(f"%{b:02X}" for b in e.object[e.start:e.end]), e.end))


def safe_name(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (old Windows and camera exports; Python keeps
    them as surrogates) become %XX, so the name can be written to a CSV or an archive and still be told apart."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "percent")
