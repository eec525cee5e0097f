"""A site's sealed emergency envelopes as a printable document (templates/envelopes.html; pdf.py makes the PDF).

One page per envelope: the outside label (trial, site, stratum, envelope number, check code, when to open it)
above the inside sheet (the allocation), both carrying the envelope's number and check code so a sheet put in
another envelope shows. The cover page lists the envelopes by number and stratum, never what they hold: it
travels with the envelopes. Each making of the document is counted and printed on every page, so a re-print is
visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import __version__
from .html import _environment


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


def envelope_set_html(document: EnvelopeSetDocument) -> str:
    return _environment().get_template("envelopes.html").render(d=document, version=__version__)


def envelope_set_pdf(document: EnvelopeSetDocument) -> bytes:
    """The envelope set as PDF bytes (WeasyPrint, nothing fetched)."""
    from .pdf import pdf_bytes

    return pdf_bytes(envelope_set_html(document))
