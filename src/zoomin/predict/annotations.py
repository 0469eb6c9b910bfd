"""One image's attention and sampled regions as annotations: GeoJSON for QuPath, XML for ASAP.

Everything is in level-0 (full-resolution) pixel coordinates, x to the right and y down, origin at
the top-left corner: QuPath's and ASAP's convention. Polygons are clipped to the image, so every
coordinate lies inside it.

GeoJSON (:func:`geojson_collection`, a ``FeatureCollection`` QuPath >= 0.4 imports by drag and
drop or File > Import objects):

* one ``tile`` object per stage-1 cell (Zoom-In's tiles; ATS's view positions, merged into blocks
  when there are more than :data:`MAX_CELLS`), unclassified, with the measurements ``attention``
  (its share of the stage-1 attention ``a``), ``draws`` (how many of the N draws fell in it) and
  ``opened`` (1 if its stage-2 view was read);
* one ``annotation`` per sampled sub-tile, the square the model read at full resolution,
  classified as the image's predicted class, with the measurements ``draw`` (its order),
  ``tile attention a``, ``sub-tile attention b`` and ``a*b`` (the probability of drawing it).

QuPath reads ``properties.objectType``, ``properties.classification`` (``name``, ``color``),
``properties.measurements`` (a list of ``{name, value}``, which every QuPath version reads),
``properties.name`` and ``properties.isLocked``; other GeoJSON readers see plain polygons.

ASAP XML (:func:`asap_xml`): the sampled sub-tiles in the group ``sub-tiles: <class>`` and the
opened tiles in the group ``opened tiles``, named with their attention.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoomin.image_access import patch_corner
from zoomin.models.output import Attention, AttentionMap

MAX_CELLS = 10_000  # stage-1 cells written as tiles; finer maps are merged into blocks
PALETTE = [  # one colour per class (matplotlib's tab10), as QuPath's [r, g, b]
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
TILE_GROUP = "opened tiles"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in level-0 pixels, clipped to the image."""

    top: float
    left: float
    bottom: float
    right: float

    def ring(self) -> list[list[float]]:
        """Closed exterior ring ``[[x, y], ...]`` (first point repeated last)."""
        corners = [(self.left, self.top), (self.right, self.top), (self.right, self.bottom), (self.left, self.bottom)]
        return [[float(x), float(y)] for x, y in corners + corners[:1]]


def clipped_box(top: float, left: float, height: float, width: float, size: tuple[int, int]) -> Box | None:
    """The box clipped to an image of ``size`` (``(height, width)``); ``None`` if nothing is left."""
    bottom, right = min(top + height, size[0]), min(left + width, size[1])
    top, left = max(top, 0.0), max(left, 0.0)
    if bottom <= top or right <= left:
        return None
    return Box(top, left, bottom, right)


@dataclass(frozen=True)
class Cell:
    """A stage-1 cell (or a block of them) with its attention, draws and whether it was opened."""

    row: int
    col: int
    box: Box
    attention: float
    draws: int
    opened: bool


@dataclass(frozen=True)
class SubTile:
    """A sampled sub-tile: its draw order, box and attention values (``None`` where not known)."""

    order: int
    box: Box
    tile_attention: float | None
    subtile_attention: float | None


def stage1_cells(attention: Attention, max_cells: int | None = None) -> list[Cell]:
    """The stage-1 cells inside the image, merged ``f`` x ``f`` (summing attention and draws) when
    there are more than ``max_cells`` (default :data:`MAX_CELLS`)."""
    max_cells = MAX_CELLS if max_cells is None else max_cells
    amap = attention.stage1
    probs = np.asarray(amap.probs, dtype=np.float64)
    counts = np.zeros_like(probs) if attention.counts is None else np.asarray(attention.counts, dtype=np.float64)
    opened = np.zeros(probs.shape, dtype=bool)
    for cell in attention.stage2:
        opened[divmod(int(cell), probs.shape[1])] = True
    factor = max(1, math.ceil(math.sqrt(probs.size / max_cells)))
    if factor > 1:
        probs, counts = _merge(probs, factor, np.sum), _merge(counts, factor, np.sum)
        opened = _merge(opened, factor, np.any)
    cell_h, cell_w = amap.cell[0] * factor, amap.cell[1] * factor
    cells = []
    for row, col in np.ndindex(probs.shape):
        top, left = amap.origin[0] + row * cell_h, amap.origin[1] + col * cell_w
        box = clipped_box(top, left, cell_h, cell_w, attention.image_size)
        if box is not None:
            draws = int(round(counts[row, col]))
            cells.append(Cell(row, col, box, float(probs[row, col]), draws, bool(opened[row, col])))
    return cells


def _merge(values: np.ndarray, factor: int, reduce: Any) -> np.ndarray:
    rows, cols = -(-values.shape[0] // factor), -(-values.shape[1] // factor)
    padded = np.zeros((rows * factor, cols * factor), dtype=values.dtype)
    padded[: values.shape[0], : values.shape[1]] = values
    return reduce(padded.reshape(rows, factor, cols, factor), axis=(1, 3))


def map_value(amap: AttentionMap, y: float, x: float) -> float | None:
    """The probability of the cell of ``amap`` holding the full-resolution point ``(y, x)``."""
    row = math.floor((y - amap.origin[0]) / amap.cell[0])
    col = math.floor((x - amap.origin[1]) / amap.cell[1])
    rows, cols = amap.shape
    if not (0 <= row < rows and 0 <= col < cols):
        return None
    return float(amap.probs[row, col])


def sampled_subtiles(attention: Attention) -> list[SubTile]:
    """The sampled regions as the boxes the model read (clipped), with their attention values."""
    sampled = attention.sampled
    if sampled is None:
        return []
    centres = np.asarray(sampled.centres, dtype=np.float64).reshape(-1, 2)
    cells = None if sampled.cells is None else np.asarray(sampled.cells).reshape(-1)
    out = []
    for order, (cy, cx) in enumerate(centres):
        top, left = patch_corner(cy, sampled.size), patch_corner(cx, sampled.size)
        box = clipped_box(top, left, sampled.size, sampled.size, attention.image_size)
        if box is None:
            continue
        a = map_value(attention.stage1, cy, cx)
        b = None
        if cells is not None and int(cells[order]) in attention.stage2:
            b = map_value(attention.stage2[int(cells[order])], cy, cx)
        out.append(SubTile(order, box, a, b))
    return out


def class_colour(classes: Sequence[str], name: str) -> tuple[int, int, int]:
    return PALETTE[list(classes).index(name) % len(PALETTE)] if name in classes else PALETTE[0]


def _measurements(values: dict[str, float | None]) -> list[dict[str, float]]:
    return [{"name": name, "value": float(value)} for name, value in values.items() if value is not None]


def geojson_collection(attention: Attention, predicted: str, classes: Sequence[str]) -> dict[str, Any]:
    """The GeoJSON ``FeatureCollection`` of one image (module docstring)."""
    features: list[dict[str, Any]] = []
    two_stage = attention.counts is not None
    for cell in stage1_cells(attention):
        values: dict[str, float | None] = {"attention": cell.attention}
        if two_stage:
            values.update(draws=cell.draws, opened=float(cell.opened))
        features.append(
            _feature(
                cell.box,
                {"objectType": "tile", "name": f"tile {cell.row},{cell.col}", "isLocked": True,
                 "measurements": _measurements(values)},
            )
        )
    colour = class_colour(classes, predicted)
    for subtile in sampled_subtiles(attention):
        joint = None
        if subtile.tile_attention is not None and subtile.subtile_attention is not None:
            joint = subtile.tile_attention * subtile.subtile_attention
        values = {
            "draw": float(subtile.order),
            "tile attention a" if two_stage else "attention": subtile.tile_attention,
            "sub-tile attention b": subtile.subtile_attention,
            "a*b": joint,
        }
        features.append(
            _feature(
                subtile.box,
                {"objectType": "annotation", "name": f"sub-tile {subtile.order}",
                 "classification": {"name": predicted, "color": list(colour)},
                 "measurements": _measurements(values)},
            )
        )
    return {"type": "FeatureCollection", "features": features}


def _feature(box: Box, properties: dict[str, Any]) -> dict[str, Any]:
    # no "id": QuPath takes a feature id for the object's UUID (or, before v0.4, for its type)
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [box.ring()]},
        "properties": properties,
    }


def asap_xml(attention: Attention, predicted: str, classes: Sequence[str]) -> str:
    """ASAP's XML with the sampled sub-tiles and the opened tiles (module docstring)."""
    root = ET.Element("ASAP_Annotations")
    annotations = ET.SubElement(root, "Annotations")
    subtile_group = f"sub-tiles: {predicted}"
    subtile_colour = "#{:02x}{:02x}{:02x}".format(*class_colour(classes, predicted))
    tile_colour = "#f4fa58"
    for subtile in sampled_subtiles(attention):
        name = f"sub-tile {subtile.order}"
        if subtile.tile_attention is not None and subtile.subtile_attention is not None:
            name += f" (a*b {subtile.tile_attention * subtile.subtile_attention:.3g})"
        _asap_polygon(annotations, name, subtile_group, subtile_colour, subtile.box)
    opened = [cell for cell in stage1_cells(attention) if cell.opened]
    for cell in opened:
        name = f"tile {cell.row},{cell.col} (a {cell.attention:.3g}, {cell.draws} draws)"
        _asap_polygon(annotations, name, TILE_GROUP, tile_colour, cell.box)
    groups = ET.SubElement(root, "AnnotationGroups")
    for group, colour in ((subtile_group, subtile_colour), (TILE_GROUP, tile_colour)):
        element = ET.SubElement(groups, "Group", Name=group, PartOfGroup="None", Color=colour)
        ET.SubElement(element, "Attributes")
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _asap_polygon(parent: ET.Element, name: str, group: str, colour: str, box: Box) -> None:
    element = ET.SubElement(parent, "Annotation", Name=name, Type="Polygon", PartOfGroup=group, Color=colour)
    coordinates = ET.SubElement(element, "Coordinates")
    for order, (x, y) in enumerate(box.ring()[:-1]):  # ASAP closes polygons itself
        ET.SubElement(coordinates, "Coordinate", Order=str(order), X=f"{x:.12g}", Y=f"{y:.12g}")
