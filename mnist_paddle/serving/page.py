"""The page cleaned before any digit is looked for: what paper, print and light add to the ink.

People write digits on ruled and squared paper, into the printed boxes of a form, and photograph
pages with a shadow across them. `clean` takes those away, for single digits and numbers alike:

1. uneven light (`light.flatten`): the paper's brightness is estimated locally (the page with
   its strokes closed over, at a coarse scale) and divided out, so a shadow's edge is no stroke;
2. a form's boxes (forms.find_boxes): pieces of print that close into a rectangle, or a comb of
   them (walls across the whole height between its top and bottom edges); each box is a cell,
   its content read as one digit, and the printed walls go;
3. printed rules (`find_rules`): straight, thin lines across (almost) the whole page, in any
   colour: a ruled page's lines, a squared page's grid, a margin (a grid so dense that it
   passes for the paper's grain is looked for again, each row's and column's level taken
   out). They are removed where they run alone; a stroke over a paler rule keeps the darkness
   it has on the paper (ink lets through a share of the light that reaches it); where a stroke
   crosses a rule nearly as dark as itself (two thirds or more), the ink just above and below
   the rule (on its soft edges too, but for a form's walls), within its thickness, is joined
   across it (strokes either side of a paler rule are left apart).

The result is a gray page, dark ink on a light ground, that the rest of the reader takes as a
photo of digits on plain paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from mnist_paddle.serving.forms import BOX_SIZE, find_boxes, runs
from mnist_paddle.serving.light import flatten, quantiles

RULE_LENGTH = 0.85  # a rule runs across at least this share of the page
RULE_THICKNESS = 0.06  # ... and is no thicker than this share of the page's other side, or
MIN_RULE_THICKNESS = 6.0  # px: a thin rule photographed out of focus (on a small page), unbroken
DETECT = 256  # px: print is looked for on a copy whose shorter side is at most this
MIN_GRAIN = 2.0  # gray levels: marks are 4 grains darker than the paper and at least 4 x this;
# above it, a page with no print found is looked at again (a dense grid may be the "grain")


@dataclass
class Page:
    """A cleaned page: `gray` (dark ink on a light ground, the image's size), the form's
    `cells` [(x, y, w, h)] left to right (none on a page without boxes), the `removed`
    mask of what was taken away as print, and whether the light was uneven and evened out
    (`shaded`)."""

    gray: np.ndarray
    cells: list[tuple[int, int, int, int]] = field(default_factory=list)
    removed: np.ndarray | None = None
    shaded: bool = False


def clean(gray: np.ndarray, one_digit: bool = False) -> Page:
    """The page in `gray` (H, W) gray levels 0..255, with uneven light, boxes and rules taken
    away (see the module's docstring); `one_digit`: the page holds a single digit, which may
    fill a close crop (`light.flatten`)."""
    flat, shaded = flatten(gray, wide=one_digit)
    if min(flat.shape) < 3 * BOX_SIZE:
        return Page(flat, [], np.zeros(flat.shape, np.uint8), shaded)
    (paper,) = quantiles(flat[:: _step(flat), :: _step(flat)], [0.5])
    darkness = np.clip(paper - flat, 0, 255)
    # print is found on a copy no larger than it needs (a rule stays a rule at half the size)
    scale = min(1.0, DETECT / min(flat.shape))
    small = darkness
    if scale < 1:
        small = cv2.resize(darkness, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(small, (0, 0), 1.0)
    grain = _grain(smooth)
    marks = _marks(smooth, grain)
    (walls_across, walls_down), cells = find_boxes(marks)
    across, down = find_rules(marks & ~(walls_across | walls_down), small)
    if grain > MIN_GRAIN and not (cells or across.any() or down.any()):
        # nothing printed stood out of the paper's grain: unless a dense grid passed for it
        marks = _marks(smooth, _grain(smooth, lines_out=True))
        across, down = find_rules(marks, small)
    # a box's walls go as rules go: what is darker than them, or crosses them, stays
    across, down = (
        _full_size(m, darkness.shape) for m in (across | walls_across, down | walls_down)
    )
    cells = [tuple(round(v / scale) for v in cell) for cell in cells]
    print_mask = (across | down) > 0
    if not print_mask.any():  # nothing printed: the flattened page as it is
        return Page(flat, cells, np.zeros(flat.shape, np.uint8), shaded)
    walls = _full_size(walls_across | walls_down, darkness.shape)
    kept = _without_rules(darkness, across, down, paper, walls)
    cleaned = flat.copy()  # only the print changes
    cleaned[print_mask] = paper - kept[print_mask]
    removed = print_mask & (darkness > 0) & (kept < 0.5 * darkness)
    return Page(cleaned, cells, removed.astype(np.uint8), shaded)


def _step(image: np.ndarray) -> int:
    """A stride that leaves about 10,000 of an image's pixels: enough for the paper's median."""
    return max(1, int(np.sqrt(image.size / 10_000)))


def _full_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask found on the smaller copy, at the page's size (a pixel wider, so that a rule's
    edges are in it)."""
    if mask.shape == shape:
        return mask
    big = cv2.resize(mask, shape[::-1], interpolation=cv2.INTER_NEAREST)
    return cv2.dilate(big, np.ones((3, 3), np.uint8))


def _grain(smooth: np.ndarray, lines_out: bool = False) -> float:
    """The paper's own grain in `smooth` (the darkness, slightly blurred): the median distance
    from the median. With `lines_out`, each row's and each column's own level is taken out
    first: a dense grid covers half the page, and would pass for grain."""
    sample = smooth[:: _step(smooth), :: _step(smooth)]
    if lines_out:
        sample = sample - np.median(sample, axis=1, keepdims=True)
        sample = sample - np.median(sample, axis=0, keepdims=True)
    (middle,) = quantiles(sample, [0.5])
    (grain,) = quantiles(np.abs(sample - middle), [0.5])
    return grain


def _marks(smooth: np.ndarray, grain: float) -> np.ndarray:
    """uint8 mask of everything darker than the paper by more than its `grain`: strokes and
    print alike, the faint print of a pale rule included."""
    return (smooth > max(4.0 * MIN_GRAIN, 4.0 * grain)).astype(np.uint8)


def find_rules(marks: np.ndarray, darkness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 masks of the straight thin lines that run across (almost) the whole page: the
    horizontal ones, and the vertical ones. Thin: at half its darkest, a rule is no thicker
    than RULE_THICKNESS of the page (a digit's bar, drawn across a crop, is thicker), or than
    MIN_RULE_THICKNESS when it is unbroken: printed digits' bars in line across a tight crop
    (the tops of `77`, the feet of `22`) are as thick on a small page, with gaps between them."""
    height, width = marks.shape
    found = []
    for along, across, vertical in ((width, height, False), (height, width, True)):
        length = max(3, int(RULE_LENGTH * along))
        # bridge a pale line's small gaps first, then keep only what runs that long
        bridge = (1, 5) if not vertical else (5, 1)
        lines = cv2.morphologyEx(marks, cv2.MORPH_CLOSE, np.ones(bridge, np.uint8))
        lines = _long_runs(lines.T, length).T if vertical else _long_runs(lines, length)
        if not lines.any():  # no rule
            found.append(np.zeros_like(marks))
            continue
        lines = np.ascontiguousarray(lines)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
        rules = np.zeros(count, bool)
        for line in range(1, count):
            x, y, w, h, _ = stats[line]
            box = np.s_[y : y + h, x : x + w]
            profile = darkness[box].mean(axis=0 if vertical else 1)  # across the line
            thickness = np.count_nonzero(profile >= 0.5 * profile.max())
            # thin for the page, or by the floor and then unbroken: marks all along it
            rules[line] = thickness <= RULE_THICKNESS * across or (
                thickness <= MIN_RULE_THICKNESS
                and ((labels[box] == line) & (marks[box] > 0)).any(axis=1 if vertical else 0).all()
            )
        found.append((rules[labels] & (marks > 0)).astype(np.uint8))
    return found[0], found[1]


def _long_runs(marks: np.ndarray, length: int) -> np.ndarray:
    """The runs of marks along the rows of `marks` (uint8) at least `length` long, or half that
    from the page's edge (the page may cut a rule off), on a page with a row of `length` marks;
    only rows with enough marks are looked at."""
    out = np.zeros_like(marks)
    counts = np.count_nonzero(marks, axis=1)
    if counts.max() < length:  # no row holds a rule
        return out
    rows = np.flatnonzero(counts >= (length + 1) // 2)
    edges = np.diff(np.pad(marks[rows] > 0, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    starts, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)  # row by row, in order
    for (k, start), (_, end) in zip(starts, ends):
        at_edge = start == 0 or end == marks.shape[1]
        if end - start >= (length + 1) // 2 if at_edge else end - start >= length:
            out[rows[k], start:end] = 1
    return out


def _without_rules(
    darkness: np.ndarray, across: np.ndarray, down: np.ndarray, paper: float, walls: np.ndarray
) -> np.ndarray:
    """`darkness` (below the `paper`'s level) with the rules' own darkness taken off: on a
    rule, what is darker than the rule is a stroke and stays (a pen over a pale rule), as dark
    as it is on the paper; where a stroke crosses a rule nearly as dark as itself, the stroke
    is joined across it from both sides. `across` and `down` hold a form's `walls` too."""
    rules = [(mask, axis) for mask, axis in ((across, 1), (down, 0)) if mask.any()]
    levels = [_rule_level(darkness, mask, axis) for mask, axis in rules]
    out = _taken_off(darkness, [mask for mask, _ in rules], levels, paper)
    # the strokes either side: the rules' soft edges (a pixel each side) with their own
    # darkness taken off too, so that a stroke's ink on a rule's edge is ink to join from (a
    # bold stroke along a margin) and the edges themselves are not; but nothing on a wall or
    # the pixel next to it: a photographed wall is not quite straight, its edges' level along
    # it is no level, and what it leaves of them would be joined into lines in the boxes
    edges = [_widened(mask, axis) for mask, axis in rules]
    edge_levels = [_rule_level(darkness, edge, axis) for edge, (_, axis) in zip(edges, rules)]
    strokes = _taken_off(darkness, edges, edge_levels, paper).astype(np.float32)
    strokes[cv2.dilate(walls, np.ones((3, 3), np.uint8)) > 0] = 0
    for (mask, axis), level in zip(rules, levels):
        horizontal = axis == 1
        length = 2 * round(_thickness(mask, horizontal)) + 3  # across the rule and a little
        kernel = np.ones((length, 1) if horizontal else (1, length), np.uint8)
        joined = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, kernel)  # both sides' ink, if any
        # only a rule at least two thirds as dark as the strokes hides one crossing it: over a
        # paler one a crossing stroke is there already (above), and strokes that end either
        # side of it (a 1 before a 3 across a margin) must not be joined
        hides = (mask > 0) & (3 * level >= 2 * joined)
        out = np.where(hides, np.maximum(out, joined), out)
    return out


def _taken_off(darkness: np.ndarray, masks: list, levels: list, paper: float) -> np.ndarray:
    """`darkness` with each rule's own darkness (`levels`) taken off on its mask: ink lets
    through a share of the light that reaches it, so over a rule that passes (paper - level)
    of the paper's, a stroke's darkness d becomes level + d (1 - level / paper)."""
    out = darkness.copy()
    for mask, level in zip(masks, levels):
        on = mask > 0
        level = np.broadcast_to(level, out.shape)[on]
        out[on] = np.maximum(out[on] - level, 0) * (paper / np.maximum(paper - level, 1.0))
    return out


def _widened(mask: np.ndarray, axis: int) -> np.ndarray:
    """Rules (horizontal ones for `axis` 1) a pixel thicker on each side."""
    return cv2.dilate(mask, np.ones((3, 1) if axis == 1 else (1, 3), np.uint8))


def _rule_level(darkness: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """A rule's own darkness in each row (`axis` 1; each column for rules down the page, `axis`
    0), as an array that broadcasts against the page: the median of the rule's pixels there,
    which the strokes crossing it do not move (their mean did)."""
    lines = darkness if axis == 1 else darkness.T
    on = (mask if axis == 1 else mask.T) > 0
    level = np.zeros(lines.shape[0], np.float32)
    rows = np.flatnonzero(on.any(axis=1))
    if rows.size:  # each row's median over its rule pixels: the rest sorted past them
        ordered = np.sort(np.where(on[rows], lines[rows], np.inf), axis=1).astype(np.float64)
        middle = 0.5 * (np.count_nonzero(on[rows], axis=1) - 1)
        below, above = np.floor(middle).astype(int), np.ceil(middle).astype(int)
        low, high = (ordered[np.arange(rows.size), k] for k in (below, above))
        level[rows] = low + (high - low) * (middle - below)
    return level[:, None] if axis == 1 else level[None, :]


def _thickness(mask: np.ndarray, horizontal: bool) -> float:
    """The typical thickness in pixels of the rules in `mask` (rows for horizontal ones)."""
    bands = runs(np.flatnonzero(mask.any(axis=1 if horizontal else 0)))
    return float(np.median([b - a for a, b in bands])) if bands else 1.0
