"""A form's boxes on a page (page.clean calls `find_boxes`): pieces of print that close into a
rectangle, or a comb of touching boxes, each box a cell whose content is one digit."""

from __future__ import annotations

import cv2
import numpy as np

WALL = 0.93  # a box's walls are printed along this share of their length (a digit's widest
# row inside a box, with the two walls it spans between, covers less)
BOX_SIZE = 12  # px: the smallest box
TILT = 0.05  # a box's walls may drift this share of their length off the axis (about 3 degrees)
THIN = 0.2  # a box's side walls are printed lines, at most this share of its height thick (two
# touching digits of a bold face pass for a box with sides a third of its height: docs/pages.md)


def find_boxes(marks: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], list]:
    """The printed walls of a form's boxes (uint8 masks: those along, those across the row)
    and the cells [(x, y, w, h)] they make, left to right, each reaching into its walls (a
    digit written over a wall is still in its cell). A form's boxes: a piece of print walled on
    all four sides (what sticks out a little, a speck or a stroke's end, left out), with
    exactly one wall along the top and one along the bottom (a squared page's grid has more; a
    single box may have a stroke across it too), its sides thin lines (THIN), split into cells
    by the walls that run down its whole height (`_walls`: not a stroke)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(marks, connectivity=8)
    height, width = marks.shape
    walls_across, walls_down = np.zeros_like(marks), np.zeros_like(marks)
    cells = []
    for piece in range(1, count):
        x, y, w, h, _ = stats[piece]
        if min(w, h) < BOX_SIZE or min(x, y) == 0 or x + w == width or y + h == height:
            continue  # too small, or on the page's edge: rules run off it, a form's boxes do not
        mine = labels[y : y + h, x : x + w] == piece
        edge = max(2, round(0.1 * min(w, h)))
        # a wall a few degrees off the axis drifts over this many rows (columns, for one down)
        drift_rows, drift_columns = max(3, round(TILT * w)), max(3, round(TILT * h))
        if not _framed(mine, edge + drift_rows, edge + drift_columns):
            continue
        tall = cv2.dilate(mine.astype(np.uint8), np.ones((drift_rows, 1), np.uint8))
        wide = cv2.dilate(mine.astype(np.uint8), np.ones((1, drift_columns), np.uint8))
        # the box lies between its outermost walls (rows and columns half covered, at least):
        # a speck or a stroke's end stuck on outside it (`edge` at most) would dilute the
        # walls' share
        rows = np.flatnonzero(tall.mean(axis=1) >= 0.5)
        columns = np.flatnonzero(wide.mean(axis=0) >= 0.5)
        if not len(rows) or not len(columns):
            continue
        top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
        if max(top, h - bottom, left, w - right) > edge:
            continue
        mine, tall, wide = (a[top:bottom, left:right] for a in (mine, tall, wide))
        x, y, h, w = x + left, y + top, bottom - top, right - left
        # its walls: the rows (columns) it covers along WALL of the box once thickened along them
        across = runs(np.flatnonzero(tall.mean(axis=1) >= WALL))
        down = runs(np.flatnonzero(wide.mean(axis=0) >= WALL))
        walled = (
            len(across) >= 2
            and across[0][0] <= edge
            and across[-1][1] >= h - edge
            and len(down) >= 2
            and down[0][0] <= edge
            and down[-1][1] >= w - edge
        )
        if not walled:
            continue
        down = _walls(down, h)
        if any(end - start - (drift_columns - 1) > THIN * h for start, end in (down[0], down[-1])):
            continue  # sides as thick as a bold digit's strokes: touching digits, not a box
        if len(across) > 2:  # a third wall along: a stroke across one box, or a grid
            if len(down) > 2:
                continue
            across = [across[0], across[-1]]
        mine_cells = [
            _cell(down, across, left, right, x, y, marks.shape)
            for (_, left), (right, _) in zip(down, down[1:])
            if right - left >= 0.3 * h  # a cell, not the gap between two walls
        ]
        if not mine_cells:  # walls with no room for a digit between them: no box
            continue
        cells += mine_cells
        for wall, bands, row in ((walls_across, across, True), (walls_down, down, False)):
            band = np.zeros_like(mine)
            for a, b in bands:
                if row:
                    band[a:b] = True
                else:
                    band[:, a:b] = True
            wall[y : y + h, x : x + w] |= (mine & band).astype(np.uint8)
    return (walls_across, walls_down), sorted(cells)


def _walls(down: list[tuple[int, int]], height: int) -> list[tuple[int, int]]:
    """The walls among the runs `down` (columns of a piece `height` tall that are dark down
    its height), without the strokes that run down a box's whole height: a run with less than
    half the height to the next run on both sides splits a cell, it does not end one."""
    walls, narrow = [down[0]], 0.5 * height
    for i in range(1, len(down) - 1):
        if not (down[i][0] - walls[-1][1] < narrow and down[i + 1][0] - down[i][1] < narrow):
            walls.append(down[i])
    return walls + [down[-1]]


def _framed(piece: np.ndarray, rows: int, columns: int) -> bool:
    """Whether a piece (bool mask) may be walled: its first and last `rows` rows cover most of
    its width, and its first and last `columns` columns most of its height (a quick test
    before the walls are looked for: most pieces are strokes). Most: WALL of the box, which
    a speck or a stroke's end stuck on outside may widen by a tenth on each side."""
    return all(
        band.any(axis=axis).mean() >= 0.8 * WALL
        for band, axis in (
            (piece[:rows], 0),
            (piece[-rows:], 0),
            (piece[:, :columns], 1),
            (piece[:, -columns:], 1),
        )
    )


def _cell(down, across, left: int, right: int, x: int, y: int, shape) -> tuple[int, ...]:
    """The cell between walls ending at `left` and starting at `right` (columns of the piece at
    x, y): out to the middle of its side walls, and past its top and bottom walls by a fifth of
    its height, where a digit's stroke may reach."""
    wall_left = next(a for a, b in down if b == left)
    wall_right = next(b for a, b in down if a == right)
    lo, hi = x + (wall_left + left) // 2, x + (right + wall_right) // 2
    top, bottom = across[0][0], across[1][1]
    reach = (bottom - top) // 5
    top, bottom = max(0, y + top - reach), min(shape[0], y + bottom + reach)
    return (int(lo), int(top), int(hi - lo), int(bottom - top))


def runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs of sorted `indices` as [start, end) pairs."""
    if not len(indices):
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    ends = np.concatenate([indices[breaks] + 1, [indices[-1] + 1]])
    return list(zip(starts.tolist(), ends.tolist()))
