"""The report as a PDF: the HTML document (html.py) laid out on A4 pages by WeasyPrint.

The template's CSS paged media set the page: A4, "Page n of N" at the foot of each page, each major section
on a new page, no table row or figure split across pages. Nothing is fetched: the document's only resources
are its data: URIs, and any other URL stops the PDF. WeasyPrint needs Pango at run time (Debian:
libpango-1.0-0 and libpangoft2-1.0-0) and a font (fonts-dejavu-core).

`PdfInBackground` runs the same write_pdf in a second process (this file run as a script, so that it loads
WeasyPrint and nothing of stroketrial's analyses): it loads WeasyPrint while the report's figures are drawn and
lays out the pages while the rest of the folder is written, on the machine's other core.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
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


# runpy runs this file as __main__ without putting its folder on sys.path (html.py here would hide the stdlib's)
_CHILD = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


class PdfInBackground:
    """write_pdf(document, path) in a second process started now; `write` hands it the document, `wait` returns
    when the PDF is written and raises if it was not. Used as a context manager: leaving it early stops the
    process."""

    def __init__(self, path: Path):
        if importlib.util.find_spec("weasyprint") is None:  # as write_pdf would, before any work is done
            raise ModuleNotFoundError("No module named 'weasyprint'", name="weasyprint")
        self.path = path
        # written under a temporary name and put in place by wait(): a report that fails part way never leaves a
        # half-written report.pdf, nor an older one beside a new report.html
        self._part = path.with_name(path.name + ".part")
        # stderr to a file, not a pipe: a chatty WeasyPrint cannot block on a full one; closed by __exit__
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        # -P: the current folder is not put on the child's sys.path (a stray html.py there is not imported)
        self._process = subprocess.Popen([sys.executable, "-P", "-c", _CHILD, __file__, str(self._part)],
                                         stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=self._errors, env=dict(os.environ))

    def write(self, document: str) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(document.encode("utf-8"))
            self._process.stdin.close()
        except BrokenPipeError:  # the child ended early: wait() says why
            pass

    def wait(self) -> None:
        code = self._process.wait()
        self._errors.seek(0)
        errors = self._errors.read().decode("utf-8", "replace")
        self._errors.close()
        if code != 0:
            self._part.unlink(missing_ok=True)
            raise RuntimeError(f"writing {self.path} failed (exit code {code}):\n{errors[-4000:]}")
        os.replace(self._part, self.path)

    def __enter__(self) -> PdfInBackground:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the process if it still runs (the report failed before its document was ready)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._part.unlink(missing_ok=True)
        if not self._errors.closed:
            self._errors.close()


if __name__ == "__main__":
    import weasyprint  # noqa: F401  (loaded before the document arrives: the parent is still drawing figures)

    document = sys.stdin.buffer.read().decode("utf-8")
    if not document:  # the report stopped (or its process died) before its document was ready: no PDF
        sys.exit("no document was given")
    write_pdf(document, Path(sys.argv[-1]))
