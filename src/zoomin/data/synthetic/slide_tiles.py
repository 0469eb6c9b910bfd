"""The pixels of a synthetic slide, one TIFF tile at a time, from a bank of texture tiles.

A slide of 32,768 x 32,768 px cannot be drawn nucleus by nucleus in the time a CPU default has, so
its tissue is a mosaic: a :class:`TextureBank` holds ``bank_size`` tiles of each texture (drawn once
per bank with :mod:`zoomin.data.synthetic.histology`), each usable in 8 orientations, and every
level-0 tile of the slide takes one of them per texture (seeded per slide). The textures:

* ``stroma`` -- pink tissue, fibres, fat vacuoles, scattered plain nuclei;
* ``follicle`` -- a purple tint packed with plain nuclei (``nucleus_spacing`` apart);
* ``tumour`` -- the same tint, nuclei of the same size, shape, spacing and mean colour, but with the
  one-pixel chromatin checkerboard of the stand-ins' deciding nuclei: any downscaling by two or more
  erases the difference, so metastases and follicles look alike at every pyramid level but 0.

A tile is glass where no polygon of the layout reaches it, one texture where it lies wholly inside
that texture's polygons, and otherwise composed: glass, stroma inside the sections, follicle and
tumour inside their regions (the polygons rasterised over the tile by
:func:`zoomin.data.asap_xml.rasterise`, the same rule that makes the constructed masks). Level k
is built from the bank's own box-filtered pyramids, so it equals level 0 box-filtered by 2^k up to
the polygon edges, which are rasterised at each level's own resolution.

Level-0 tiles wholly inside one texture are written as the bank's pre-encoded JPEG bytes, glass as
one shared tile: only the tiles on an outline, and the (4x fewer per level) tiles of the reduced
levels, are encoded per slide. Tiles are abbreviated JPEG streams that share one JPEGTables tag
per level, as scanners write them (a 256 px glass tile is then 1 kB instead of 1.6 kB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import imagecodecs
import numpy as np

from zoomin.data.asap_xml import rasterise
from zoomin.data.synthetic import histology
from zoomin.data.synthetic.drawing import to_uint8
from zoomin.data.synthetic.slide_layout import SlideLayout, SlideParams

GLASS = np.array([238, 236, 240], dtype=np.uint8)
KINDS = ("stroma", "follicle", "tumour")  # painted in this order: later kinds cover earlier ones
ORIENTATIONS = 8
REGION_TINT = np.array([176.0, 120.0, 178.0], dtype=np.float32)
_BANK_STREAM = 0xB4A1


def _split_jpeg(stream: bytes) -> tuple[bytes, bytes]:
    """A JPEG stream as (its quantisation and Huffman tables, the stream without them or APP markers)."""
    tables, rest, i = [], [b"\xff\xd8"], 2
    while True:
        marker = stream[i + 1]
        length = int.from_bytes(stream[i + 2 : i + 4], "big")
        segment = stream[i : i + 2 + length]
        if marker == 0xDA:  # start of scan: the entropy-coded data follows, up to EOI
            rest.append(stream[i:])
            break
        if marker in (0xDB, 0xC4):
            tables.append(segment)
        elif not 0xE0 <= marker <= 0xEF:
            rest.append(segment)
        i += 2 + length
    return b"\xff\xd8" + b"".join(tables) + b"\xff\xd9", b"".join(rest)


@lru_cache(maxsize=8)
def jpeg_tables(quality: int) -> bytes:
    """The JPEGTables of every tile of ``quality`` (libjpeg's standard Huffman tables, one
    quantisation per quality), written once per TIFF level instead of once per tile, as scanners do."""
    return _split_jpeg(_encode(np.zeros((16, 16, 3), dtype=np.uint8), quality))[0]


def _encode(pixels: np.ndarray, quality: int) -> bytes:
    return imagecodecs.jpeg8_encode(
        np.ascontiguousarray(pixels), level=quality, subsampling=(2, 2), colorspace="RGB", outcolorspace="YCBCR"
    )


def jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """One RGB tile as the abbreviated JPEG stream a TIFF tile holds next to :func:`jpeg_tables`
    (YCbCr, 4:2:0, as tifffile writes JPEG tiles)."""
    tables, stream = _split_jpeg(_encode(pixels, quality))
    if tables != jpeg_tables(quality):
        raise RuntimeError("the JPEG encoder wrote tables other than the shared ones")  # pragma: no cover
    return stream


def orient(tile: np.ndarray, orientation: int) -> np.ndarray:
    """``tile`` in one of its 8 orientations (4 rotations, mirrored or not)."""
    if orientation >= 4:
        tile = tile[:, ::-1]
    return np.rot90(tile, orientation % 4)


def box_pyramid(canvas: np.ndarray, levels: int) -> list[np.ndarray]:
    """``canvas`` (float, side a power of two) box-filtered by 1, 2, 4, ... as uint8."""
    pyramid, current = [], canvas.astype(np.float32)
    for _ in range(levels):
        pyramid.append(to_uint8(current))
        side = current.shape[0] // 2
        current = current.reshape(side, 2, side, 2, 3).mean(axis=(1, 3))
    return pyramid


def draw_texture(rng: np.random.Generator, kind: str, side: int, spacing: float) -> np.ndarray:
    """One ``side`` x ``side`` float canvas of texture ``kind`` (see the module docstring)."""
    canvas = histology.tissue(rng, side, side)
    if kind == "stroma":
        for _ in range(int(rng.poisson(30 * side * side / 1e6))):
            y, x = rng.uniform(0, side, 2)
            histology.paint_disk(canvas, y, x, rng.uniform(6, 22), histology.LUMEN, opacity=0.9)
        count = int(rng.poisson(5e-4 * side * side))
        histology.paint_nuclei(canvas, rng, rng.uniform(0, side, (count, 2)), textured=False)
        return canvas
    canvas *= 0.55
    canvas += 0.45 * REGION_TINT
    steps = np.arange(spacing / 2, side, spacing)
    grid = np.stack(np.meshgrid(steps, steps, indexing="ij"), axis=-1).reshape(-1, 2)
    grid += rng.uniform(-1.5, 1.5, grid.shape)
    histology.paint_nuclei(canvas, rng, grid, textured=kind == "tumour")
    return canvas


@dataclass
class TextureBank:
    """``bank_size`` texture tiles per kind with their box pyramids, and their encoded level-0 bytes."""

    params: SlideParams
    pyramids: dict[str, list[list[np.ndarray]]]  # kind -> tile -> level -> (side >> level)^2 x 3
    _stacks: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    _encoded: dict[tuple[str, int], bytes] = field(default_factory=dict)
    _glass: bytes | None = None

    @classmethod
    def draw(cls, seed: int, group: int, params: SlideParams) -> TextureBank:
        """The bank of slide group ``group`` (e.g. training vs test slides) of a raw folder drawn from ``seed``."""
        levels = len(params.levels())
        pyramids = {}
        for code, kind in enumerate(KINDS):
            tiles = []
            for index in range(params.bank_size):
                rng = np.random.default_rng([_BANK_STREAM, seed, group, code, index])
                tiles.append(box_pyramid(draw_texture(rng, kind, params.tile, params.nucleus_spacing), levels))
            pyramids[kind] = tiles
        return cls(params, pyramids)

    @property
    def variants(self) -> int:
        return self.params.bank_size * ORIENTATIONS

    def pixels(self, kind: str, variant: int, level: int) -> np.ndarray:
        """Tile ``variant`` (bank tile, orientation) of ``kind`` at ``level``."""
        tile, orientation = divmod(int(variant), ORIENTATIONS)
        return orient(self.pyramids[kind][tile][level], orientation)

    def stack(self, kind: str, level: int) -> np.ndarray:
        """Every variant of ``kind`` at ``level`` as one ``(variants, s, s, 3)`` array (built once;
        a few MB per level above 0), so a mosaic is one indexing operation."""
        key = (kind, level)
        if key not in self._stacks:
            self._stacks[key] = np.stack([self.pixels(kind, v, level) for v in range(self.variants)])
        return self._stacks[key]

    def encoded(self, kind: str, variant: int) -> bytes:
        """The JPEG bytes of a level-0 tile wholly of ``kind`` (encoded once per bank)."""
        key = (kind, int(variant))
        if key not in self._encoded:
            self._encoded[key] = jpeg(self.pixels(kind, variant, 0), self.params.quality)
        return self._encoded[key]

    def glass(self) -> bytes:
        if self._glass is None:
            side = self.params.tile
            self._glass = jpeg(np.broadcast_to(GLASS, (side, side, 3)), self.params.quality)
        return self._glass


@dataclass(frozen=True)
class LevelPlan:
    """Per tile of one level: which texture fills it whole (index into KINDS, -1 glass) or
    whether it must be composed (``mixed``)."""

    level: int
    kind: np.ndarray  # int8 (rows, cols)
    mixed: np.ndarray  # bool (rows, cols)


class SlideTiles:
    """The tiles of one slide: its layout, its texture choice per level-0 cell and the bank."""

    def __init__(self, bank: TextureBank, layout: SlideLayout, variants: np.ndarray):
        self.bank = bank
        self.params = bank.params
        self.layout = layout
        self.variants = variants
        self.layers = [layout.sections, layout.follicles, layout.tumours]  # in KINDS order
        self.bounds = [np.array([p.bounds() for p in layer]).reshape(-1, 4) for layer in self.layers]

    def plan(self, level: int, shape: tuple[int, int]) -> LevelPlan:
        """Classify the ``shape`` (rows, cols) tiles of ``level``: a tile crossed by an outline (or by
        the bounding box of one of its edges, a safe over-estimate) is mixed; any other tile is wholly
        inside or wholly outside each layer, which its corners tell."""
        rows, cols = shape
        side = float(self.params.tile << level)  # level-0 px per tile
        kind = np.full((rows, cols), -1, dtype=np.int8)
        mixed = np.zeros((rows, cols), dtype=bool)
        for code, polygons in enumerate(self.layers):
            if not polygons:
                continue
            # pixel (i, j) of this raster is centred on tile corner (i, j)
            corners = rasterise(polygons, rows + 1, cols + 1, downsample=side, top=-side / 2, left=-side / 2)
            inside = corners[:-1, :-1] & corners[1:, :-1] & corners[:-1, 1:] & corners[1:, 1:]
            kind[inside] = code
            for polygon in polygons:
                start, end = polygon.points, np.roll(polygon.points, -1, axis=0)
                low = np.floor(np.minimum(start, end) / side).astype(np.int64)
                high = np.floor(np.maximum(start, end) / side).astype(np.int64)
                for (x0, y0), (x1, y1) in zip(low, high):
                    mixed[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
        return LevelPlan(level, kind, mixed)

    def mosaic(self, kind: str, level: int, row: int, col: int) -> np.ndarray:
        """The texture ``kind`` over tile (row, col) of ``level``: its 2^level x 2^level level-0
        cells' bank tiles, each reduced to ``tile >> level`` px; glass past the slide's edge."""
        if level == 0:
            return self.bank.pixels(kind, self.variants[row, col], 0)
        side, factor = self.params.tile, 1 << level
        cell = side >> level
        cells = self.variants[row * factor : (row + 1) * factor, col * factor : (col + 1) * factor]
        rows, cols = cells.shape
        blocks = self.bank.stack(kind, level)[cells]  # (rows, cols, cell, cell, 3)
        out = np.empty((side, side, 3), dtype=np.uint8)
        out[...] = GLASS
        out[: rows * cell, : cols * cell] = blocks.transpose(0, 2, 1, 3, 4).reshape(rows * cell, cols * cell, 3)
        return out

    def compose(self, level: int, row: int, col: int) -> np.ndarray:
        """The pixels of tile (row, col) of ``level``: glass, then each layer's texture inside its polygons."""
        side = self.params.tile
        down = float(1 << level)
        top, left, extent = row * side * down, col * side * down, side * down
        out = np.empty((side, side, 3), dtype=np.uint8)
        out[...] = GLASS
        for kind, polygons, bounds in zip(KINDS, self.layers, self.bounds):
            near = (bounds[:, 2] >= left) & (bounds[:, 0] < left + extent)
            near &= (bounds[:, 3] >= top) & (bounds[:, 1] < top + extent)
            if not near.any():
                continue
            chosen = [polygon for polygon, keep in zip(polygons, near) if keep]
            mask = rasterise(chosen, side, side, downsample=down, top=top, left=left)
            if mask.any():
                np.copyto(out, self.mosaic(kind, level, row, col), where=mask[:, :, None])
        return out

    def tile_bytes(self, plan: LevelPlan, row: int, col: int) -> bytes:
        """The JPEG bytes of one tile, reusing the bank's bytes where a level-0 tile is one plain texture."""
        kind = int(plan.kind[row, col])
        quality = self.params.quality
        if plan.mixed[row, col]:
            return jpeg(self.compose(plan.level, row, col), quality)
        if kind < 0:
            return self.bank.glass()
        if plan.level == 0:
            return self.bank.encoded(KINDS[kind], self.variants[row, col])
        return jpeg(self.mosaic(KINDS[kind], plan.level, row, col), quality)
