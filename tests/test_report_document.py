"""The report is a document: a title page that names what it was made from (the protocol's and the data's SHA-256),
numbered tables and figures in order, labels for the data's codes, text escaped, and an A4 PDF with numbered
pages made from the same HTML."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stroketrial.analysis.simulated_trial import simulate_trial
from stroketrial.protocol import resolve
from stroketrial.report import analyse, write_report
from stroketrial.report.html import Provenance, html_document
from stroketrial.report.pdf import PdfInBackground, write_pdf
from stroketrial.report.tables import table1

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Tree(HTMLParser):
    """The document read by the standard library's parser: every element closed in the order it was opened (a
    stray or missing end tag fails), with the text of each element kind that the tests read, in order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.captions: list[str] = []  # <caption> and <figcaption>, in document order
        self.headings: list[str] = []
        self.visible: list[str] = []  # text outside <style>, <title> and the title page's hashes
        self._text: dict[int, list[str]] = {}
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)
            self._text[len(self.stack)] = []

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert tag not in VOID, f"</{tag}>"
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        text = " ".join("".join(self._text.pop(len(self.stack))).split())
        self.stack.pop()
        if self.stack:
            self._text[len(self.stack)].append(f" {text} ")
        if tag in ("caption", "figcaption"):
            self.captions.append(text)
        elif tag in ("h1", "h2", "h3"):
            self.headings.append(text)

    def handle_data(self, data):
        if self.stack:
            self._text[len(self.stack)].append(data)
            if not {"style", "title", "code"} & set(self.stack):
                self.visible.append(data)


def pdf_pages(out: Path) -> list[str]:
    """The text of each page of out/report.pdf, whitespace collapsed. Poppler's pdftotext reads the PDF file where
    it is installed (in the order the PDF draws its text: a table row cell by cell); without it, WeasyPrint lays
    out out/report.html again and its text boxes are read page by page (margin boxes included)."""
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(out / "report.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
        pages = text.split("\f")
        if pages and not pages[-1].strip():
            pages.pop()
    else:
        import weasyprint
        from weasyprint.formatting_structure import boxes

        document = weasyprint.HTML(string=(out / "report.html").read_text()).render()
        pages = [" ".join(b.text for b in page._page_box.descendants() if isinstance(b, boxes.TextBox))
                 for page in document.pages]
    return [" ".join(page.split()) for page in pages]


@pytest.fixture(scope="module")
def trial():
    protocol = resolve("amass-2")
    sim = simulate_trial(protocol, 140, 5, 1.5)
    return protocol, sim, analyse(protocol, sim.data, sim.long, funnel=sim.funnel, imputations=3, bootstrap=30)


@pytest.fixture(scope="module")
def report(trial, tmp_path_factory):
    _, sim, analysis = trial
    out = tmp_path_factory.mktemp("document")
    write_report(analysis, out, sim.data)
    return out


def test_tables_and_figures_are_numbered_in_the_order_they_appear(report):
    tree = Tree((report / "report.html").read_text())
    tables = [c for c in tree.captions if c.startswith("Table ")]
    figures = [c for c in tree.captions if c.startswith("Figure ")]
    assert len(tables) + len(figures) == len(tree.captions)
    assert [int(re.match(r"Table (\d+)\. ", c).group(1)) for c in tables] == list(range(1, len(tables) + 1))
    assert [int(re.match(r"Figure (\d+)\. ", c).group(1)) for c in figures] == [1, 2, 3]
    # one numbered caption for each table: Table 1, a table for each endpoint with results, subgroups, safety
    results = json.loads((report / "results.json").read_text())
    with_results = [s["title"] for s in results["sections"] if s["results"]]
    assert len(with_results) >= 4 and [t for t, _ in tree.tags].count("table") == len(tables)
    assert len(tables) == 1 + len(with_results) + 1 + 1
    assert tables[0].startswith("Table 1. Baseline characteristics")
    for number, title in enumerate(with_results, start=2):
        assert tables[number - 1].startswith(f"Table {number}. {title}")
        assert tree.headings.index(title) < tree.headings.index("Subgroups")
    assert tables[-2].startswith(f"Table {len(tables) - 1}. Common odds ratio")
    assert tables[-1].startswith(f"Table {len(tables)}. Safety events")
    assert figures[0].startswith("Figure 1. Flow of patients") and "CONSORT" in figures[0]
    assert figures[1].startswith("Figure 2. Modified Rankin Scale")
    assert figures[2].startswith("Figure 3. Common odds ratio")
    # the figures in that order, each an embedded PNG: nothing to fetch, no script
    images = [a for t, a in tree.tags if t == "img"]
    assert [a["alt"].split(".")[0] for a in images] == ["Figure 1", "Figure 2", "Figure 3"]
    for a in images:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not {"script", "link", "iframe", "object"} & {t for t, _ in tree.tags}
    assert all(a["href"].startswith("#") for t, a in tree.tags if t == "a")
    # the title page lists every table and figure by its caption, in the same order
    listing = re.search(r'<ol class="listing">(.*?)</ol>', (report / "report.html").read_text(), re.S).group(1)
    assert [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in re.findall(r"<li>(.*?)</li>", listing, re.S)
            ] == tables + figures
    # the results tables as before: analysis, measure, estimate, 95% CI, p, n, method
    thead = re.findall(r"<thead><tr>(.*?)</tr></thead>", (report / "report.html").read_text())
    assert thead[1] == "".join(f"<th>{c}</th>" for c in ("analysis", "measure", "estimate", "95% CI", "p", "n",
                                                         "method"))


def test_the_title_page_names_the_protocol_and_the_data_by_their_sha256(trial, report):
    protocol, sim, analysis = trial
    text = " ".join(" ".join(Tree((report / "report.html").read_text()).visible).split())
    title_page = text[:text.index("Tables and figures")]
    data_sha = hashlib.sha256(sim.data.to_csv(index=False).encode("utf-8")).hexdigest()
    assert data_sha == hashlib.sha256((report / "dataset.csv").read_bytes()).hexdigest()
    protocol_sha = hashlib.sha256(protocol.model_dump_json().encode("utf-8")).hexdigest()
    html = (report / "report.html").read_text()
    assert f'data sha256 <code class="hash">{data_sha}</code>' in html
    assert f'protocol sha256 <code class="hash">{protocol_sha}</code>' in html
    assert f"dataset.csv beside this report: the dataset analysed, {len(sim.data)} rows" in title_page
    assert "protocol carries no version number" in title_page
    for fact in ("AMASS-2", protocol.title, protocol.registry_id, f"n = {len(sim.data)}",
                 "intention to treat: all randomized patients", dt.date.today().isoformat(), "stroketrial 0.1.0"):
        assert fact in title_page, fact
    per_arm = sim.data["arm"].value_counts()
    for arm in protocol.arms:
        assert f"{arm.name} ({arm.role}), {per_arm[arm.id]} randomized" in title_page
    # without the dataset the report hashes the results it wrote, and says so
    out = report.parent / "no-dataset"
    write_report(analysis, out)
    page = (out / "report.html").read_text()
    assert f'data sha256 <code class="hash">{hashlib.sha256((out / "results.json").read_bytes()).hexdigest()}' in page
    assert "The dataset was not given to the report writer" in page and not (out / "dataset.csv").exists()


def test_labels_not_codes_on_screen(trial, report):
    protocol, sim, _ = trial
    tree = Tree((report / "report.html").read_text())
    text = " ".join(" ".join(tree.visible).split())
    body = text[text.index("Flow of patients"):]  # after the title page (its file names: seeds/..., dataset.csv)
    codes = sorted({c for c in sim.data.columns if "_" in c} | {"tandem_ica_m1", "mrs_90d_0_2"})
    assert [c for c in codes if re.search(rf"(?<![\w/.]){re.escape(c)}\b", body)] == []
    page = (report / "report.html").read_text()
    for arm in protocol.arms:  # the arms by the protocol's names, in Table 1 and the safety table
        assert f"<th>{arm.name} (n={int((sim.data['arm'] == arm.id).sum())})</th>" in page
        assert f"<th>{arm.name}</th>" in page
    assert "adjusted for age, NIHSS, ASPECTS" in body and "MCA M1" in body


def test_the_document_escapes_what_it_prints(trial):
    protocol, _, analysis = trial
    arms = [arm.model_copy(update={"name": f"<script>alert('{arm.id}')</script>"}) for arm in protocol.arms]
    hostile = protocol.model_copy(update={"title": "Albumin <img src=x onerror=alert(1)> & co", "arms": arms})
    sections = [dataclasses.replace(analysis.sections[0], notes=["<b>not bold</b>"]), *analysis.sections[1:]]
    evil = dataclasses.replace(analysis, protocol=hostile, sections=sections)
    page = html_document(evil, {}, Provenance("a" * 64, "<i>protocol</i>", "b" * 64, "<i>data</i>"))
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "Albumin &lt;img src=x onerror=alert(1)&gt; &amp; co" in page
    assert "&lt;script&gt;alert(&#39;albumin&#39;)&lt;/script&gt;" in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "&lt;i&gt;protocol&lt;/i&gt;" in page
    Tree(page)  # still one well-formed document


def test_the_pdf_is_the_document_on_numbered_a4_pages(trial, report):
    protocol, sim, _ = trial
    pdf = (report / "report.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF")
    pages = pdf_pages(report)
    n = len(pages)
    assert n > 1
    # WeasyPrint lays out the HTML on as many A4 pages (210 x 297 mm, in CSS pixels of 1/96 inch)
    import weasyprint

    laid_out = weasyprint.HTML(string=(report / "report.html").read_text()).render().pages
    assert len(laid_out) == n
    assert all((page.width, page.height) == pytest.approx((210 / 25.4 * 96, 297 / 25.4 * 96)) for page in laid_out)
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {n}" in page, number
    # the title page is page 1 (the hashes on it), each major section starts a page, the captions in order
    data_sha = hashlib.sha256(sim.data.to_csv(index=False).encode("utf-8")).hexdigest()
    assert data_sha in pages[0] and protocol.title in pages[0]
    for heading in ("Flow of patients (CONSORT)", "Baseline characteristics", "Results", "Subgroups"):
        # a page that starts with the heading, and names the section at its top (a margin box, read last)
        assert any(p.startswith(f"{heading} ") and f"{protocol.acronym} trial report {heading} Page" in p
                   for p in pages[1:]), heading
    body = " ".join(pages[1:])
    assert body.index(" Safety Table ") < body.index(" Methods Population: ")  # the short sections follow on
    captions = re.findall(r"(Table|Figure) (\d+)\. ", body)
    assert [int(k) for t, k in captions if t == "Table"] == list(range(1, len([t for t, _ in captions
                                                                              if t == "Table"]) + 1))
    assert [int(k) for t, k in captions if t == "Figure"] == [1, 2, 3]
    # Table 1 is in it, cell by cell, with the arms' names
    per_arm = sim.data["arm"].value_counts()
    names = {arm.id: arm.name for arm in protocol.arms}
    assert (f"characteristic {names['albumin']} (n={per_arm['albumin']}) {names['control']} "
            f"(n={per_arm['control']})") in body


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="reads the PDF's own text with Poppler's pdftotext")
def test_the_pdf_draws_the_figures_from_their_svg(trial, report):
    """report.html embeds each figure's PNG; report.pdf the same document with the SVG beside it, drawn as vectors:
    the figures' words are text in the PDF, not pixels (issue 23: no 300-dpi image decoded and compressed again)."""
    html = (report / "report.html").read_text()
    assert "data:image/svg+xml" not in html
    body = " ".join(pdf_pages(report))
    assert "Assessed for eligibility (n = " in body and "Randomized (n = " in body  # the CONSORT figure's boxes
    assert "OR (95% CI)" in body  # the forest plot's column heading


def test_the_pdf_fetches_nothing(tmp_path):
    import weasyprint

    for url in ("http://example.invalid/x.png", (tmp_path / "x.png").as_uri()):
        (tmp_path / "x.png").write_bytes(b"")
        with pytest.raises(weasyprint.urls.FatalURLFetchingError):
            write_pdf(f'<p>x</p><img src="{url}">', tmp_path / "x.pdf")


def test_the_pdf_written_in_a_second_process_is_write_pdfs(tmp_path):
    """report.pdf is laid out by PdfInBackground (issue 23): the same pages as write_pdf in this process, and a
    document that would fetch a URL stops it there too, named in the error."""
    document = "<h1>Results</h1>" + "".join(f"<p>row {i}</p>" for i in range(200))
    (tmp_path / "here").mkdir(), (tmp_path / "there").mkdir()
    write_pdf(document, tmp_path / "here" / "report.pdf")
    with PdfInBackground(tmp_path / "there" / "report.pdf") as pdf:
        pdf.write(document)
        pdf.wait()
    assert (tmp_path / "there" / "report.pdf").read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftotext"):  # page by page, the same text
        here, there = pdf_pages(tmp_path / "here"), pdf_pages(tmp_path / "there")
        assert here == there and len(here) > 1 and "row 199" in here[-1]
    with PdfInBackground(tmp_path / "fetch.pdf") as pdf:
        pdf.write('<p>x</p><img src="http://example.invalid/x.png">')
        with pytest.raises(RuntimeError, match="FatalURLFetchingError"):
            pdf.wait()
    assert not (tmp_path / "fetch.pdf").exists()


def test_table1_counts_missing_categories_as_it_counts_missing_numbers():
    data = pd.DataFrame({"arm": ["a", "b"] * 6,
                         "age": [70, 71, np.nan, 60, 65, 66, 80, 81, 55, np.nan, 59, 62],
                         "occlusion_site": ["m1", "tandem_ica_m1", None, "m1", "m2", "m1", None, None, "m1", "m1",
                                            "tandem_ica_m1", "m2"]})
    t1 = table1(data, "arm", ["a", "b"], ["age", "occlusion_site"]).set_index("characteristic")
    assert t1.loc["age, years, median (IQR)"].str.endswith(" [1 missing]").all()
    assert t1.loc["occlusion site, n (%)"].tolist() == ["[2 missing]", "[1 missing]"]
    # each level by its label, in the scale's order, as n (%) of the patients with the value recorded
    levels = [c for c in t1.index if c.startswith("    ")]
    assert levels == ["    tandem ICA+M1", "    MCA M1", "    MCA M2"]
    assert t1.loc["    MCA M1"].tolist() == ["2 (50.0)", "3 (60.0)"]
    assert t1.loc["    tandem ICA+M1"].tolist() == ["1 (25.0)", "1 (20.0)"]
