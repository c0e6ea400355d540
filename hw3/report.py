"""The homework report as a list of blocks, written both as Markdown and as a PDF.

``hw3/report_content.py`` decides what the report says; this module only lays it out. A report is
a list of :data:`Block` s (headings, paragraphs, code, tables, images and discussion
prompts), so the Markdown file and the PDF say the same thing. The PDF is drawn with
fpdf2 in matplotlib's DejaVu fonts (Unicode: arrows, ±, Greek letters).

In text, ``**bold**`` and ```code``` are the only markup; the PDF shows code in the
text font.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from hw3.common import atomic_path, markdown_table


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 1: the title; 2: a problem; 3: an item of it


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Code:
    """Monospaced text as it is: ``print(model)``'s output."""

    text: str


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence]


@dataclass(frozen=True)
class Image:
    path: Path
    title: str


@dataclass(frozen=True)
class Figures:
    """Images side by side (a t-SNE by class beside the same by domain)."""

    images: Sequence[Image]


@dataclass(frozen=True)
class Prompt:
    """A discussion question for the student to answer, with the measured facts an answer can draw on."""

    item: str  # "P1-6"
    question: str
    facts: Sequence[str] = field(default_factory=tuple)


Block = Union[Heading, Text, Code, Table, Image, Figures, Prompt]


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def to_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    """The report as Markdown; image paths are relative to ``out_dir`` (where the file goes)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            parts.append(block.text)
        elif isinstance(block, Code):
            parts.append("```\n" + block.text.rstrip("\n") + "\n```")
        elif isinstance(block, Table):
            parts.append(markdown_table(block.header, block.rows).rstrip("\n"))
        elif isinstance(block, Image):
            parts.append(_markdown_image(block, out_dir))
        elif isinstance(block, Figures):
            parts.append(" ".join(_markdown_image(image, out_dir) for image in block.images))
        elif isinstance(block, Prompt):
            lines = [f"> **{block.item}, to answer:** {block.question}", ">", "> *Measured in this run:*"]
            lines += [f"> - {fact}" for fact in block.facts]
            lines += [">", "> *Your answer:* ..."]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _markdown_image(image: Image, out_dir: Path) -> str:
    return (f"![{image.title}]({_relative(image.path, out_dir)})" if image.path.is_file()
            else f"*{image.title}: not drawn*")


def _relative(path: Path, out_dir: Path) -> str:
    try:
        return path.relative_to(out_dir).as_posix()
    except ValueError:
        return path.as_posix()


# ---------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------


def _fonts() -> dict[str, Path]:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {"": ttf / "DejaVuSans.ttf", "B": ttf / "DejaVuSans-Bold.ttf", "I": ttf / "DejaVuSans-Oblique.ttf",
            "mono": ttf / "DejaVuSansMono.ttf"}


def _plain(text: str) -> str:
    """Markdown text for fpdf2's markup: backticks dropped (``**bold**`` is kept)."""
    return re.sub(r"`([^`]*)`", r"\1", text)


def to_pdf(blocks: Sequence[Block], path: Path, title: str = "HW3 report") -> Path:
    """Draw the report into an A4 PDF at ``path``, atomically; each block is drawn by its type's function."""
    pdf = _new_pdf(title)
    width = pdf.epw  # the usable width, mm
    for block in blocks:
        _DRAW[type(block)](pdf, block, width)
    with atomic_path(path) as tmp:
        pdf.output(str(tmp))
    return path


def _new_pdf(title: str):
    """An A4 ``FPDF`` with the DejaVu fonts added and its first page open."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(True, margin=15)
    fonts = _fonts()
    for style in ("", "B", "I"):
        pdf.add_font("DejaVu", style, str(fonts[style]))
    pdf.add_font("DejaVuMono", "", str(fonts["mono"]))
    pdf.add_page()
    return pdf


def _text(pdf, width: float, body: str, size: float = 9.5, style: str = "") -> None:
    pdf.set_font("DejaVu", style, size)
    pdf.multi_cell(width, size * 0.5, _plain(body), markdown=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _draw_heading(pdf, block: Heading, width: float) -> None:
    size = {1: 16, 2: 13}.get(block.level, 11)
    if pdf.get_y() > pdf.h - 70:  # a heading is not left alone at a page's foot
        pdf.add_page()
    pdf.ln(2)
    _text(pdf, width, block.text, size, "B")


def _draw_text(pdf, block: Text, width: float) -> None:
    _text(pdf, width, block.text)


def _draw_code(pdf, block: Code, width: float) -> None:
    pdf.set_font("DejaVuMono", "", 6)
    pdf.multi_cell(width, 2.8, block.text.rstrip("\n"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _draw_table(pdf, block: Table, width: float) -> None:
    columns = len(block.header)
    pdf.set_font("DejaVu", "", 8 if columns <= 6 else 6.5)
    with pdf.table(text_align="LEFT", line_height=pdf.font_size * 1.6, first_row_as_headings=True) as table:
        for cells in [block.header, *block.rows]:
            row = table.row()
            for cell in cells:
                row.cell(_plain(str(cell)))
    pdf.ln(2)


def _draw_images(pdf, block: Union[Image, Figures], width: float) -> None:
    """One image, or several side by side under one caption; an absent file is named as not drawn."""
    images = [block] if isinstance(block, Image) else list(block.images)
    drawn = [image for image in images if image.path.is_file()]
    for image in images:
        if image not in drawn:
            _text(pdf, width, f"{image.title}: not drawn", style="I")
    if not drawn:
        return
    gap = 4.0
    slot = (min(width, 170.0) - gap * (len(drawn) - 1)) / len(drawn)
    sizes = [_image_size(image.path, slot, 95.0) for image in drawn]
    height = max(h for _, h in sizes)
    if pdf.get_y() + height + 8 > pdf.page_break_trigger:
        pdf.add_page()
    top, x = pdf.get_y(), pdf.l_margin + (width - sum(w for w, _ in sizes) - gap * (len(drawn) - 1)) / 2
    for image, (w, h) in zip(drawn, sizes):
        pdf.image(str(image.path), x=x, y=top, w=w, h=h)
        x += w + gap
    pdf.set_y(top + height + 1)
    pdf.set_font("DejaVu", "I", 8)
    pdf.multi_cell(width, 4, " | ".join(image.title for image in drawn), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _image_size(path: Path, max_w: float, max_h: float) -> tuple[float, float]:
    """The largest (width, height) in mm within ``max_w`` x ``max_h`` that keeps the image's aspect ratio."""
    from PIL import Image as PILImage

    with PILImage.open(path) as img:
        w_px, h_px = img.size
    w = min(max_w, max_h * w_px / h_px)
    return w, w * h_px / w_px


def _draw_prompt(pdf, block: Prompt, width: float) -> None:
    _text(pdf, width, f"**{block.item}, to answer:** {block.question}")
    _text(pdf, width, "Measured in this run:", 9, "I")
    for fact in block.facts:
        _text(pdf, width, f"• {fact}", 9)
    _text(pdf, width, "Your answer: ...", 9, "I")


_DRAW = {Heading: _draw_heading, Text: _draw_text, Code: _draw_code, Table: _draw_table, Image: _draw_images,
         Figures: _draw_images, Prompt: _draw_prompt}  # how to_pdf draws each type of Block
