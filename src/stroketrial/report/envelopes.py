"""A site's sealed emergency envelopes as a printable document (templates/envelopes.html; pdf.py makes the PDF).

One page per envelope: the outside label (trial, site, stratum, envelope number, check code, when to open it)
above the inside sheet (the allocation), both carrying the envelope's number and check code so a sheet put in
another envelope shows. The cover page lists the envelopes by number and stratum, never what they hold: it
travels with the envelopes. Each making of the document is counted and printed on every page, so a re-print is
visible.

The document is in the language of the block it is made in (`i18n.use`: the page offers English or Simplified
Chinese for a site's set); its wording is in locale/zh_Hans/documents.po, and a Chinese document is set in a CJK
font (WenQuanYi Micro Hei or Noto Sans CJK SC after DejaVu Sans, which has no Chinese).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from markupsafe import Markup

from .. import __version__, i18n
from .html import _environment

FONTS = Markup('"DejaVu Sans", "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif')


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/documents.po); it is translated where it is printed."""
    return message


# What the document itself says (templates/envelopes.html, whose `_()` reads these from the catalogs), and the
# service's words it prints (service.envelopes, which words them in the print's language): listed here so that
# the catalog checks find them.
WORDS = (
    _("%(trial)s emergency envelopes, site %(site)s"), _("site %(site)s"), _("envelope set %(set)s"),
    _("print %(n)s"), _("%(trial)s: sealed emergency envelopes"), _("Site"), _("Envelope set"),
    _("%(set)s: %(n)s envelopes, %(method)s"), _("Made"), _("%(when)s by %(name)s"), _("This print"),
    _("print %(n)s of this set, %(when)s"), _(": a re-print; destroy every earlier print of this set"),
    _("For the unblinded pharmacist or the trial admin who prepares the envelopes: cut each page on the dashed "
      "line, fold the inside sheet so the allocation cannot be read through the envelope, seal it in an opaque "
      "envelope and stick the outside label on it. The envelope number and check code are printed on both "
      "halves: a sheet in the wrong envelope shows. This cover lists no allocation and no check code, and may be "
      "kept with the envelopes."),
    _("Envelope"), _("Stratum"), _("check code"), _("emergency randomization"), _("set %(set)s"),
    _("Envelope %(label)s"), _("Stratum:"), _("Open envelopes of this stratum in number order, one per patient."),
    _("Open only when the platform cannot be reached."),
    _("cut here: the lower half goes inside the envelope, folded"), _("inside envelope %(label)s"),
    _("stratum %(stratum)s"), _("Patient"), _("Opened at (date, time)"), _("Opened by"),
    _("When the link returns, record envelope %(label)s with its check code, the patient and the time it was "
      "opened on the platform (the trial's emergency envelopes page)."),
)
SERVICE_WORDS = (
    _("the trial's permuted blocks, per stratum"),
    _("the protocol's fallback: a stratified permuted-block list per site"),
    _("all patients"),
)


@dataclass(frozen=True)
class EnvelopeSheet:
    label: str  # 'S1-004'
    stratum: str  # as people read it
    check_code: str
    allocation: str  # the arm's name, or 'kit 123456'
    treatment: str  # what the arm is, in words (its description), or the kit's instruction


@dataclass(frozen=True)
class EnvelopeSetDocument:
    acronym: str
    title: str
    registry_id: str
    site: str
    site_name: str
    set_id: int
    method: str  # in words
    made_by: str
    made_at: str
    printed_at: str
    print_number: int
    procedure: str
    envelopes: Sequence[EnvelopeSheet]


def _i18n_environment() -> jinja2.Environment:
    environment = _environment()
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return environment


def _page_of() -> tuple[str, str, str]:
    """The words around the page counters of the footer ("Page ", " of ", ""), as CSS `content` takes them."""
    words = i18n.gettext("Page {page} of {pages}")
    before, _page, rest = words.partition("{page}")
    between, _pages, after = rest.partition("{pages}")
    return before, between, after


def envelope_set_html(document: EnvelopeSetDocument) -> str:
    """The set as HTML, in the current language (`i18n.use`)."""
    return _i18n_environment().get_template("envelopes.html").render(
        d=document, version=__version__, lang_tag=i18n.TAGS[i18n.current()], fonts=FONTS,
        page_of=_page_of())


def envelope_set_pdf(document: EnvelopeSetDocument) -> bytes:
    """The envelope set as PDF bytes (WeasyPrint, nothing fetched)."""
    from .pdf import pdf_bytes

    return pdf_bytes(envelope_set_html(document))
