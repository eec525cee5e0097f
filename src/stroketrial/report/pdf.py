"""The report as a PDF: the HTML document (html.py) laid out on A4 pages by WeasyPrint.

The template's CSS paged media set the page: A4, "Page n of N" at the foot of each page, each major section
on a new page, no table row or figure split across pages. Nothing is fetched: the document's only resources
are its data: URIs, and any other URL stops the PDF. WeasyPrint needs Pango at run time (Debian:
libpango-1.0-0 and libpangoft2-1.0-0) and a font (fonts-dejavu-core).
"""

from __future__ import annotations

from pathlib import Path


def write_pdf(document: str, path: Path) -> None:
    """Write the HTML `document` to `path` as a PDF."""
    import weasyprint  # type: ignore[import-untyped]  # imported when used: it loads Pango

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    weasyprint.HTML(string=document, url_fetcher=fetcher).write_pdf(path)


def pdf_bytes(document: str) -> bytes:
    """The HTML `document` as PDF bytes, fetching nothing (as write_pdf)."""
    import weasyprint  # imported when used: it loads Pango (the ignore above covers this module)

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    return bytes(weasyprint.HTML(string=document, url_fetcher=fetcher).write_pdf())
