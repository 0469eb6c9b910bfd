"""``synthetic_camelyon16``: Camelyon16-like whole slides that the package draws, built as Camelyon16 is.

Its "download" *generates* the raw folder (:mod:`zoomin.data.synthetic.slides`) in Camelyon16's
raw layout -- ``images/{normal,tumor,test}_###.tif`` pyramidal JPEG TIFFs, ``annotations/*.xml``
ASAP outlines of the metastases, ``evaluation/reference.csv`` and ``checksums.md5`` -- and its
construction *is* Camelyon16's (:func:`zoomin.data.sources.camelyon16.construct`). So the
workflow's download rule (with its ``.complete`` marker), the construction checkpoint, the per-slide
caches and the views treat the stand-in exactly as they treat the real slides.

The download options (the dataset's ``download:`` block) are the slide counts, the ``seed``, the
parallel ``workers`` and the drawing parameters of
:class:`~zoomin.data.synthetic.slide_layout.SlideParams`; docs/synthetic.md describes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomin.data.sources import Source, camelyon16

NAME = "synthetic_camelyon16"


def download(
    raw_dir: str | Path,
    *,
    seed: int = 0,
    n_normal: int = 16,
    n_tumour: int = 16,
    n_test_normal: int = 8,
    n_test_tumour: int = 8,
    workers: int = 1,
    **drawing: Any,
) -> Path:
    """Draw the raw folder: ``n_normal`` + ``n_tumour`` training slides and ``n_test_normal`` +
    ``n_test_tumour`` test slides; ``drawing`` sets fields of
    :class:`~zoomin.data.synthetic.slide_layout.SlideParams` (size, tissue, regions...)."""
    from zoomin.data.synthetic.slide_layout import SlideParams
    from zoomin.data.synthetic.slides import write_raw_folder

    write_raw_folder(
        raw_dir, SlideParams.from_options(drawing, "download"), seed=seed, n_normal=n_normal, n_tumour=n_tumour,
        n_test_normal=n_test_normal, n_test_tumour=n_test_tumour, workers=workers,
    )
    return Path(raw_dir)


SOURCE = Source(NAME, "slide", camelyon16.construct, download)
