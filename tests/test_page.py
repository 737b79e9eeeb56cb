"""The page cleaned before reading (serving/page.py): printed rules removed without the strokes
they cross, a form's boxes found (touching and apart), shade evened out, and what was removed
shown by --debug-dir."""

import cv2
import numpy as np
import pytest
from conftest import DATA, run_tool

from mnist_paddle.serving import light, strip
from mnist_paddle.serving import page as cleaning
from mnist_paddle.serving.preprocess import page_digit
from mnist_paddle.train import pages
from mnist_paddle.train.data import read_mnist


@pytest.fixture(scope="module")
def digits():
    images, labels = read_mnist(DATA, "test")
    return images, labels


def ink_of(image: np.ndarray, scale: float = 3.0) -> np.ndarray:
    """An MNIST digit as ink 0..1, cropped to it and enlarged."""
    ink = image.astype(np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)


def gray(page: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)


def test_a_rule_through_a_digit_goes_and_the_digit_stays():
    """A black rule across a black 1, a grey one along the page: the rules go, and the 1's
    stroke stays whole where the rules cross it (the pen writes over the print)."""
    page = np.full((120, 200), 240.0, np.float32)
    page[60:63, :] = 30.0  # a rule as dark as the pen, across the 1
    page[90:92, :] = 150.0  # a pale rule
    page[20:100, 98:104] = 30.0  # a 1: a vertical stroke
    cleaned = cleaning.clean(page)
    assert (cleaned.gray[61, :80] > 200).all() and (cleaned.gray[91, :80] > 200).all()
    assert (cleaned.gray[20:100, 100] < 100).all()  # the 1 is whole, crossing included
    assert cleaned.removed[61, :80].all() and not cleaned.removed[40, 100]


def test_a_blurred_rule_on_a_small_page_goes():
    """A 2-px rule photographed out of focus is 5-6 px wide at half its darkness: on a page of
    76 rows, more than RULE_THICKNESS of it, still a rule (a digit's bar is wider than that)."""
    page = np.full((76, 94), 235.0, np.float32)
    page[41:43, :] = 60.0  # the rule, then the blur of the photo
    page[15:65, 45:49] = 40.0  # a 1 across it
    page = cv2.GaussianBlur(page, (0, 0), 2.0)
    cleaned = cleaning.clean(page)
    assert cleaned.removed[42, :30].all() and (cleaned.gray[42, :30] > 200).all()
    assert (cleaned.gray[20:60, 47] < 128).all()  # the 1 is whole


def test_printed_bars_in_line_across_a_tight_crop_stay():
    """A printed `777` cropped to its ink: the 7s' bars line up across the small page, each
    as thick as a blurred rule on it, but with gaps between them: no rule, nothing removed."""
    page = np.full((44, 96), 235.0, np.float32)
    for left in (0, 33, 66):
        page[2:8, left : left + 27] = 40.0  # the bar, 6 px thick, 6 px to the next one
        for y in range(8, 42):  # the stem, down to the left
            x = left + 24 - (y - 8) * 18 // 34
            page[y, x - 2 : x + 3] = 40.0
    page = cv2.GaussianBlur(page, (0, 0), 1.0)
    cleaned = cleaning.clean(page)
    assert not cleaned.removed.any()
    assert (cleaned.gray[5, [10, 45, 80]] < 100).all()  # every bar is there


def test_strokes_either_side_of_a_pale_rule_are_not_joined():
    """A 1 that ends just before a grey margin and a 3 that starts just after it: the margin
    goes, and between them there is paper, not a bar that makes the two one digit."""
    page = np.full((150, 200), 240.0, np.float32)
    page[:, 99:102] = 160.0  # the margin, down the whole page
    page[40:110, 92:97] = 40.0  # the 1, left of it
    page[40:110, 104:109] = 40.0  # the 3's left tips, right of it
    cleaned = cleaning.clean(page).gray
    assert (cleaned[40:110, 99:102] > 200).all()
    assert (cleaned[40:110, 94] < 100).all() and (cleaned[40:110, 106] < 100).all()


def test_a_stroke_along_a_pale_rule_keeps_its_darkness():
    """A bar written along a grey rule, over nearly half of it (ink lets through a share of the
    light: 1/6 here, on the paper as on the rule): the bar comes out as dark on the rule as it
    is on the paper, and the rest of the rule goes."""
    paper, rule, ink = 240.0, 150.0 / 240.0, 1.0 / 6.0
    page = np.full((120, 200), paper, np.float32)
    page[60:63, :] *= rule
    page[60:63, 40:130] *= ink  # the bar, lying on the rule
    page[20:60, 40:43] *= ink  # a stroke down to it, on the paper
    cleaned = cleaning.clean(page).gray
    assert np.abs(cleaned[60:63, 45:125] - paper * ink).max() < 15  # 40 on the paper
    assert (cleaned[61, 150:] > 200).all()


def test_a_stroke_along_a_dark_rule_keeps_its_ink():
    """A bold stroke written nearly along a rule as dark as the pen, the photo a little blurred:
    where it lies over the rule, its ink on the rule's soft edges is joined across the rule, so
    the stroke has no gap; above and below it the rule goes."""
    page = np.full((160, 200), 235.0, np.float32)
    page[:, 98:103] = 35.0  # the rule, down the page
    for y in range(20, 141):  # the stroke, 9 px wide, 1 px across the page every 10 down
        x = round(100 + (y - 80) / 10)
        page[y, x - 4 : x + 5] = 35.0
    cleaned = cleaning.clean(cv2.GaussianBlur(page, (0, 0), 1.2)).gray
    centre = [cleaned[y, round(100 + (y - 80) / 10)] for y in range(20, 141)]
    assert max(centre) < 160  # 216, the paper's, over 10 rows when the edges were left out
    assert (cleaned[:15, 90:110] > 200).all() and (cleaned[145:, 90:110] > 200).all()


def test_a_dense_grid_is_found_though_it_passes_for_the_papers_grain():
    """A pale grid of squares 14 px a side covers over a third of the page: measured as before
    any rule is known, the paper's grain takes it in. The grid goes all the same, the 1 stays."""
    page = np.full((120, 160), 215.0, np.float32)
    for k in range(4, 160, 14):
        page[:, k : k + 3] = 175.0
    for k in range(4, 120, 14):
        page[k : k + 3, :] = 175.0
    page[30:90, 78:84] = 40.0  # a 1
    page = cv2.GaussianBlur(page, (0, 0), 1.2) + np.random.default_rng(0).normal(0, 3, page.shape)
    cleaned = cleaning.clean(np.clip(page, 0, 255).astype(np.float32)).gray
    dark = np.median(cleaned) - cleaned > 25
    assert not dark[:, :70].any() and not dark[:, 92:].any()
    assert (cleaned[32:88, 81] < 100).all()


def test_a_rules_soft_edges_are_not_joined_across_it():
    """A blank squared page (this one's rules have soft edges that are not all part of the rule)
    is left with next to no dark pixels: the edges are not strokes joined across the rules."""
    page = gray(pages.squared(np.zeros((60, 40), np.float32), 60.0, np.random.default_rng(7)))
    cleaned = cleaning.clean(page).gray
    assert np.count_nonzero(np.median(cleaned) - cleaned > 25) < 20  # 26 when they were joined


def test_rules_run_across_the_page_or_off_its_edge():
    """A line across the page is a rule, and so is one the page cuts off (from its edge, half
    the length is enough); a long stroke inside the page is not."""
    marks = np.zeros((60, 200), np.uint8)
    marks[10, :] = 1  # across
    marks[30, :110] = 1  # from the left edge, past half the page
    marks[50, 40:160] = 1  # inside: 60% of the page
    darkness = marks.astype(np.float32) * 100
    across, down = cleaning.find_rules(marks, darkness)
    assert across[10].all() and across[30, :110].all()
    assert not across[50].any() and not down.any()


def test_a_blank_ruled_page_has_no_digit():
    rng = np.random.default_rng(0)
    blank = pages.ruled(np.zeros((60, 40), np.float32), 60.0, rng)
    digit, cleaned = page_digit(gray(blank))
    assert digit is None
    assert cleaned.removed.any()  # the rules were there, and went


def test_squared_paper_leaves_the_digit(digits):
    images, labels = digits
    rng = np.random.default_rng(1)
    page = pages.squared(ink_of(images[0]), 60.0, rng)  # a 7
    cleaned = cleaning.clean(gray(page))
    assert cleaned.removed.sum() > 0.02 * page.shape[0] * page.shape[1]  # the grid went
    assert not cleaned.cells  # a grid is no form
    marks = (cleaned.gray < 128).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(marks)
    assert stats[1:, cv2.CC_STAT_HEIGHT].max() < 0.5 * page.shape[0]  # no rule left across


@pytest.mark.parametrize("apart", [False, True])
def test_a_forms_boxes_are_found_touching_or_apart(digits, apart):
    images, _ = digits
    rng = np.random.default_rng(2)
    page = pages.boxes([ink_of(images[k]) for k in range(4)], 60.0, rng, apart)
    cleaned = cleaning.clean(gray(page))
    assert len(cleaned.cells) == 4
    xs = [x for x, _, _, _ in cleaned.cells]
    assert xs == sorted(xs)
    widths = [w for _, _, w, _ in cleaned.cells]
    assert max(widths) < 1.5 * min(widths)  # four cells alike
    ink_columns = [
        np.flatnonzero((255 - gray(page))[:, x : x + w].max(axis=0) > 100).size
        for x, _, w, _ in cleaned.cells
    ]
    assert all(ink_columns)  # each cell holds its digit


def box_page(tick: int = 0, stem: int = 0, bar: bool = False) -> np.ndarray:
    """A page with one printed box 80 px wide and tall (walls 2 px) holding a short bar; with
    `tick`, a stroke's end that long stuck on the box's right wall outside it; with `stem`, a
    stroke that wide down the box's whole height, touching its top and bottom walls; with
    `bar`, a stroke across the box from wall to wall (a bold 7's)."""
    page = np.full((160, 200), 235.0, np.float32)
    cv2.rectangle(page, (60, 40), (140, 120), 60.0, 2)
    page[65:95, 97:103] = 30.0  # a 1 inside
    page[78:80, 141 : 141 + tick] = 60.0
    if stem:
        page[40:121, 100 - stem // 2 : 100 + stem // 2] = 30.0
    if bar:
        page[58:64, 60:141] = 30.0
    return page


def test_a_box_with_a_stroke_stuck_on_outside_is_found():
    """A speck or a stroke's end stuck on a box's wall outside it widens the printed piece; the
    box's walls are still found (measured along the box, not along the piece)."""
    assert len(cleaning.clean(box_page()).cells) == 1
    cells = cleaning.clean(box_page(tick=10)).cells
    assert len(cells) == 1 and 55 <= cells[0][0] <= 65 and 75 <= cells[0][2] <= 85


def test_a_stroke_down_or_across_a_whole_box_is_no_wall():
    """A bold stroke that touches a box's top and bottom walls runs down its whole height, as a
    wall between two cells would; with no room for a cell on either side of it, it is the
    digit's: the box is one cell. So is a box with a stroke across it from wall to wall."""
    cells = cleaning.clean(box_page(stem=36)).cells
    assert len(cells) == 1 and 75 <= cells[0][2] <= 85
    cells = cleaning.clean(box_page(bar=True)).cells
    assert len(cells) == 1 and cells[0][1] < 40 and cells[0][1] + cells[0][3] > 120


def test_walls_with_no_room_for_a_digit_are_no_box():
    """A narrow 0 drawn with straight sides is walled all round like a box, but too narrow to
    hold a digit: it is no box, and nothing of it is removed."""
    page = np.full((160, 200), 235.0, np.float32)
    cv2.rectangle(page, (90, 40), (110, 120), 30.0, 3)
    cleaned = cleaning.clean(page)
    assert not cleaned.cells and not cleaned.removed.any()
    assert cleaned.gray[80, 90] < 100


def test_touching_bold_digits_closed_like_a_box_are_no_box():
    """Two touching digits of a bold face, small on their page, can close all round like a box
    with a wall between them (a bold italic 21); their sides are as thick as their strokes, a
    third of their height, where a printed box's walls are thin lines: no box, nothing
    removed."""
    page = np.full((56, 134), 235.0, np.float32)
    cv2.rectangle(page, (40, 18), (100, 36), 40.0, 2)  # tops and bottoms, 19 px tall
    for left in (40, 68, 94):  # the sides and the strokes where the digits meet, 7 px thick
        page[18:37, left : left + 7] = 40.0
    cleaned = cleaning.clean(page)
    assert not cleaned.cells and not cleaned.removed.any()
    thin = np.full((56, 134), 235.0, np.float32)  # the same outline in thin lines: two boxes
    cv2.rectangle(thin, (40, 18), (100, 36), 40.0, 2)
    thin[18:37, 70:72] = 40.0
    assert len(cleaning.clean(thin).cells) == 2


def test_ink_outside_the_boxes_found_is_told(digits):
    """A form whose boxes were all found holds all its ink; with a box missed, its digit lies
    outside the rest (the number reader then reads the page as a line)."""
    images, _ = digits
    rng = np.random.default_rng(2)
    page = gray(pages.boxes([ink_of(images[k]) for k in range(4)], 60.0, rng, True))
    cleaned = cleaning.clean(page)
    _, mask, scale = strip.find_ink(cleaned.gray)
    cells = cleaned.cells
    assert len(cells) == 4 and not strip.ink_outside(mask, scale, cells)
    assert strip.ink_outside(mask, scale, cells[:3])


def test_a_single_box_is_read_from_its_inside(digits):
    images, labels = digits
    rng = np.random.default_rng(5)
    page = pages.boxes([ink_of(images[1])], 60.0, rng)  # a 2
    plain = np.pad(ink_of(images[1]), 30)
    digit, cleaned = page_digit(gray(page))
    alone, _ = page_digit(255 - 255 * plain)
    assert len(cleaned.cells) == 1
    assert np.abs(digit - alone).mean() < 20  # the box's walls are not in what the model sees


def test_shade_is_evened_out():
    """A shadow's edge across a page with one dark stroke: after the cleaning the paper on both
    sides is alike, and the stroke is the only dark thing."""
    page = np.full((150, 200), 230.0, np.float32)
    page[:, 120:] *= 0.45  # a shadow over the right part
    page[40:110, 60:66] -= 180  # a stroke in the light
    page[40:110, 150:156] = page[40:110, 150:156] * 0.25  # and one in the shadow
    cleaned = cleaning.clean(np.clip(page, 0, 255)).gray
    light, shade = cleaned[10:30, 10:100], cleaned[10:30, 140:190]
    assert abs(light.mean() - shade.mean()) < 15
    assert cleaned[70, 63] < 100 and cleaned[70, 153] < 100
    dark = cleaned < 128
    assert dark[:, 110:130].sum() < 10  # the shadow's edge is no stroke


def test_a_bold_filled_loop_is_no_shade():
    """A blot of ink inside an evenly lit page (a bold digit's loop, filled) is wider than the
    closing: the paper does not reach the page's edge darker, so the page is left as it is,
    while a shadow over a corner, as small, is still divided out."""
    page = np.full((112, 112), 240.0, np.float32)
    cv2.circle(page, (56, 70), 16, 20.0, -1)  # the filled loop
    page[20:30, 30:90] = 20.0  # and a bar
    flat, shaded = light.flatten(page)
    assert np.array_equal(flat, page) and not shaded
    in_shade = page.copy()
    in_shade[80:, 80:] *= 0.5  # a shadow over the corner
    flat, shaded = light.flatten(in_shade)
    assert flat[100, 100] > 200 and shaded
    # on a page smaller than the coarse copy the loop is as wide as the usual closing, which
    # divides it out; read as a single digit, the wider closing closes it and leaves the page
    small = cv2.resize(page, (48, 48), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(light.flatten(small)[0], small)
    assert np.array_equal(light.flatten(small, wide=True)[0], small)


def test_a_bold_digit_cropped_close_keeps_its_strokes():
    """A bold 1 in a close crop, 14 px of a 48-px page, with the light falling off across it:
    wider than the usual closing, the stroke was taken for shade and divided out to its rims.
    A shadow's band along the crop's edge, narrower than the wide closing, is shade all the
    same."""
    page = np.full((60, 48), 220.0, np.float32)
    page[6:54, 17:31] = 30.0
    falling = page * np.linspace(1.0, 0.6, 48, dtype=np.float32)
    flat = cleaning.clean(falling, one_digit=True).gray
    assert flat[30, 24] < 60  # the stroke's middle
    assert abs(flat[30, 3] - flat[30, 44]) < 10  # the paper evened out either side
    assert cleaning.clean(falling).gray[30, 24] > 150  # hollowed: a number's page keeps that
    banded = page.copy()
    banded[:, 42:] *= 0.5  # the band, 6 px wide
    flat, _ = light.flatten(banded, wide=True)
    assert flat[30, 45] > 200 and flat[30, 24] < 60


def _board_lit_in_its_middle() -> np.ndarray:
    """A dark board lit by a spot in its middle, with two chalk strokes (columns 60-65, 134-139)."""
    ys, xs = np.mgrid[0:120, 0:200].astype(np.float32)
    page = 50.0 + 90.0 * np.exp(-(((xs - 100) / 60) ** 2) - ((ys - 60) / 40) ** 2)
    page[20:100, 60:66] = page[20:100, 134:140] = 235.0  # chalk strokes
    return page


def test_a_board_lit_in_its_middle_is_flattened():
    """Chalk on a board lit by a spot in its middle: the board's ground, seen as paper, is
    darker only inside the page, which for dark ink would be a filled loop; under light ink it
    is light all the same, and is evened out."""
    flat, _ = light.flatten(_board_lit_in_its_middle())
    assert abs(flat[60, 100] - flat[5, 5]) < 40  # 89 when the spot was taken for a loop
    assert flat[60, 63] < 60 and flat[60, 137] < 60


def test_a_bold_digit_cropped_close_in_a_shadow_is_no_chalk():
    """A bold dark 8 filling its crop, most of the crop in shadow: its strokes are most of their
    neighbourhoods, so the paper in its loops looked like light strokes and the digit was turned
    over (strokes 215, loops 150). Its border is paper, shaded or lit, and the ink lies below
    both; the chalk above stays chalk when it is a single digit too."""
    page = np.full((96, 84), 220.0, np.float32)
    page[:, :50] = 105.0  # the shadow
    cv2.ellipse(page, (42, 28), (17, 16), 0, 0, 360, 40.0, 15)  # the 8's loops, 15 px strokes
    cv2.ellipse(page, (42, 66), (21, 20), 0, 0, 360, 40.0, 15)
    flat, _ = light.flatten(cv2.GaussianBlur(page, (0, 0), 1.5), wide=True)
    paper = flat[5, 80]
    assert flat[5, 3] > 0.9 * paper and flat[28, 42] > 0.9 * paper  # shaded paper, a loop
    assert flat[66, 21] < 0.5 * paper and flat[66, 63] < 0.5 * paper  # strokes, shaded and lit
    flat, _ = light.flatten(_board_lit_in_its_middle(), wide=True)
    assert flat[60, 63] < 60 and flat[60, 137] < 60


def test_light_ink_on_an_evenly_lit_dark_ground_is_turned_over():
    page = np.full((100, 100), 20.0, np.float32)
    page[20:80, 45:52] = 230.0
    cleaned = cleaning.clean(page).gray
    assert cleaned[50, 48] < 60 and cleaned[5, 5] > 200


def test_a_grid_along_the_border_does_not_turn_the_page_over():
    """A squared page cut along its grid lines has dark print all round its border; the paper
    is still the light ground (the page's median is, not the border's)."""
    page = np.full((120, 120), 225.0, np.float32)
    for k in range(0, 120, 24):
        page[k : k + 2, :] = page[:, k : k + 2] = 90.0  # the grid, from the page's edge
    page[-2:, :] = page[:, -2:] = 90.0
    page[40:80, 58:63] = 20.0  # a 1
    cleaned = cleaning.clean(page).gray
    assert cleaned[60, 60] < 60 and cleaned[12, 12] > 200
    assert (cleaned[0, 10:110] > 200).all()  # the grid went


def test_quantiles_are_numpys():
    values = np.random.default_rng(0).normal(size=(37, 23)).astype(np.float32)
    qs = [0.0, 0.02, 0.5, 0.98, 1.0]
    assert np.allclose(light.quantiles(values, qs), np.quantile(values, qs), atol=1e-6)


def test_debug_dir_shows_the_cleaned_page(exported, digits, tmp_path):
    images, _ = digits
    ink = np.pad(ink_of(images[0]), 40)
    page = 235 - 200 * ink
    page[::45] = 60  # dark rules every 45 px
    path = tmp_path / "ruled.png"
    cv2.imwrite(str(path), page.clip(0, 255).astype(np.uint8))
    result = run_tool("deploy/infer.py", "--model-dir", str(exported), "--debug-dir",
                      str(tmp_path / "seen"), str(path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(tmp_path / "seen" / "0000_ruled_page.png"))
    page = cv2.imread(str(path))
    assert picture.shape[0] == page.shape[0] and picture.shape[1] == 2 * page.shape[1] + 8
    before = picture[:, : page.shape[1]]
    red = (before[..., 2] > 200) & (before[..., 0] < 50) & (before[..., 1] < 50)
    assert red.any()  # what was removed, in red on the input
