"""ASAP XML polygon annotations (the Camelyon16 format) and their rasterisation to masks.

The file looks like::

    <ASAP_Annotations>
      <Annotations>
        <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="_0" Color="#F4FA58">
          <Coordinates>
            <Coordinate Order="0" X="65456.5" Y="104352.3" />
            ...

Coordinates are level-0 pixels (x = column, y = row). In Camelyon16 the groups ``_0``, ``_1`` and
``Tumor`` outline tumour and ``_2`` outlines normal regions *inside* tumour (holes), which are
excluded. :func:`rasterise` fills the tumour polygons first and then clears the excluded ones.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoomin.errors import InputFileError

log = logging.getLogger(__name__)

TUMOUR_GROUPS = ("_0", "_1", "Tumor")
EXCLUDED_GROUPS = ("_2",)
POLYGON_TYPES = ("polygon", "spline", "rectangle", "pointset")


@dataclass(frozen=True)
class Polygon:
    """One annotation: its name, group, whether it is excluded (a hole), and (n, 2) x/y points."""

    name: str
    group: str
    excluded: bool
    points: np.ndarray  # float64 (n, 2): x, y in level-0 pixels

    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in level-0 pixels."""
        return (
            float(self.points[:, 0].min()),
            float(self.points[:, 1].min()),
            float(self.points[:, 0].max()),
            float(self.points[:, 1].max()),
        )


def read_asap_xml(
    path: str | Path,
    tumour_groups: Sequence[str] = TUMOUR_GROUPS,
    excluded_groups: Sequence[str] = EXCLUDED_GROUPS,
) -> list[Polygon]:
    """Parse an ASAP XML file into polygons; raise :class:`InputFileError` naming the file if malformed.

    Annotations of a group that is neither a tumour nor an excluded group are refused (pass the
    group names your annotations use), since silently dropping or keeping them would change labels.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise InputFileError(path, "annotation file not found") from None
    except (ET.ParseError, OSError) as error:
        raise InputFileError(path, f"not a readable ASAP XML file ({error})") from None
    if root.tag != "ASAP_Annotations":
        raise InputFileError(path, f"root element is <{root.tag}>, expected <ASAP_Annotations>")
    polygons: list[Polygon] = []
    for index, element in enumerate(root.iter("Annotation")):
        name = element.get("Name") or f"#{index}"
        where = f"annotation '{name}'"
        kind = (element.get("Type") or "").lower()
        if kind not in POLYGON_TYPES:
            raise InputFileError(path, f"{where} has Type={element.get('Type')!r}, expected a polygon")
        group = element.get("PartOfGroup") or ""
        if group in tumour_groups:
            excluded = False
        elif group in excluded_groups:
            excluded = True
        else:
            raise InputFileError(
                path,
                f"{where} belongs to group {group!r}, which is neither a tumour group "
                f"{list(tumour_groups)} nor an excluded group {list(excluded_groups)}",
            )
        points = _coordinates(path, where, element)
        polygons.append(Polygon(name=name, group=group, excluded=excluded, points=points))
    return polygons


def _coordinates(path: Path, where: str, element: ET.Element) -> np.ndarray:
    rows = []
    for coord in element.iter("Coordinate"):
        try:
            order = int(float(coord.get("Order", len(rows))))
            x, y = float(coord.get("X", "nan")), float(coord.get("Y", "nan"))
        except ValueError:
            raise InputFileError(path, f"{where} has a coordinate that is not a number") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputFileError(path, f"{where} has a coordinate without valid X/Y")
        rows.append((order, x, y))
    if len(rows) < 3:
        raise InputFileError(path, f"{where} has {len(rows)} coordinates; a polygon needs at least 3")
    rows.sort(key=lambda row: row[0])
    return np.array([(x, y) for _, x, y in rows], dtype=np.float64)


def check_inside(
    path: str | Path,
    polygons: Iterable[Polygon],
    width: int,
    height: int,
    tolerance: float = 0.01,
) -> None:
    """Raise :class:`InputFileError` naming the file and annotation if a polygon leaves the slide.

    ``tolerance`` is a fraction of the slide's side that vertices may overshoot (annotation tools
    let a click land just past the border); anything further means the XML belongs to another slide.
    """
    slack_x, slack_y = tolerance * width, tolerance * height
    for polygon in polygons:
        x0, y0, x1, y1 = polygon.bounds()
        if x0 < -slack_x or y0 < -slack_y or x1 > width + slack_x or y1 > height + slack_y:
            raise InputFileError(
                path,
                f"annotation '{polygon.name}' spans x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f}, "
                f"outside the {width}x{height} slide (wrong slide for this annotation file?)",
            )


def rasterise(
    polygons: Sequence[Polygon],
    height: int,
    width: int,
    downsample: float | tuple[float, float] = 1.0,
    top: float = 0.0,
    left: float = 0.0,
    outline: bool = False,
) -> np.ndarray:
    """Boolean mask (``height`` x ``width``) of the tumour polygons, holes cleared.

    Pixel (i, j) of the mask covers level-0 pixels ``[top + i*downsample, top + (i+1)*downsample)``
    (and likewise for columns), so the same function rasterises a whole slide level (``top = left
    = 0``, ``downsample`` of the level) or any window of it. A pixel is inside a polygon when its
    centre is (even-odd rule, scan-line fill; exact, no boundary thickening). ``outline=True`` also
    marks the pixel under every tumour vertex, so a lesion smaller than one mask pixel still shows.
    ``downsample`` may be one number or ``(along_y, along_x)`` for levels of odd-sized slides.
    """
    down_y, down_x = downsample if isinstance(downsample, tuple) else (downsample, downsample)
    mask = np.zeros((int(height), int(width)), dtype=bool)
    ordered = [p for p in polygons if not p.excluded] + [p for p in polygons if p.excluded]
    for polygon in ordered:
        xs = (polygon.points[:, 0] - left) / down_x
        ys = (polygon.points[:, 1] - top) / down_y
        if outline and not polygon.excluded:
            rows, cols = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
            keep = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
            mask[rows[keep], cols[keep]] = True
        inside = _fill(xs, ys, mask.shape)
        if inside is None:
            continue
        (r0, c0), region = inside
        window = mask[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]]
        if polygon.excluded:
            window &= ~region
        else:
            window |= region
    return mask


def _fill(
    xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]
) -> tuple[tuple[int, int], np.ndarray] | None:
    """Scan-line fill of one polygon (mask-pixel coordinates) clipped to ``shape``.

    Returns the top-left corner and the boolean block of the polygon's bounding box, or ``None``
    when the polygon covers no pixel centre inside ``shape``.
    """
    height, width = shape
    r0 = max(int(np.ceil(ys.min() - 0.5)), 0)
    r1 = min(int(np.ceil(ys.max() - 0.5)), height)  # exclusive
    c0 = max(int(np.ceil(xs.min() - 0.5)), 0)
    c1 = min(int(np.ceil(xs.max() - 0.5)), width)
    if r1 <= r0 or c1 <= c0:
        return None
    x1, y1 = xs, ys
    x2, y2 = np.roll(xs, -1), np.roll(ys, -1)
    row_lists, x_lists = [], []
    for ax, ay, bx, by in zip(x1, y1, x2, y2):
        if ay == by:
            continue
        low, high = min(ay, by), max(ay, by)
        first = max(int(np.ceil(low - 0.5)), r0)
        last = min(int(np.ceil(high - 0.5)), r1)  # exclusive: centre < high
        if last <= first:
            continue
        rows = np.arange(first, last)
        centres = rows + 0.5
        row_lists.append(rows)
        x_lists.append(ax + (centres - ay) * (bx - ax) / (by - ay))
    if not row_lists:
        return None
    rows = np.concatenate(row_lists)
    crossings = np.concatenate(x_lists)
    order = np.lexsort((crossings, rows))
    rows, crossings = rows[order], crossings[order]
    # Even-odd rule: crossings of one row pair up (enter, leave) in x order.
    diff = np.zeros((r1 - r0, c1 - c0 + 1), dtype=np.int32)
    starts = np.clip(np.ceil(crossings[0::2] - 0.5).astype(np.int64), c0, c1) - c0
    ends = np.clip(np.ceil(crossings[1::2] - 0.5).astype(np.int64), c0, c1) - c0
    pair_rows = rows[0::2] - r0
    np.add.at(diff, (pair_rows, starts), 1)
    np.add.at(diff, (pair_rows, ends), -1)
    return (r0, c0), np.cumsum(diff, axis=1)[:, :-1] > 0
