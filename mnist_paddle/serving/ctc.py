"""What the line model's steps say: CTC decoding into digits, each with the steps that read it.

The line model gives, every STRIDE columns of a strip, the probability of "blank" (class 0) and
of each digit d (class d + 1). A reading is a path through the steps; the digits are the path's
classes with repeats merged and blanks dropped, so many paths give the same digits.

1. `decode`: the greedy path (the likeliest class at each step): fast, and each digit has its
   steps for free;
2. `beam_search`: the readings likeliest summed over all their paths (a prefix beam search),
   likeliest first: it reads a digit that no single step is sure of, or two alike with no clear
   blank between, and says how much of the beam each holds (a runner-up reading with a digit
   more or less takes the rest);
3. `candidates`: the readings worth weighing, likeliest first: the beam's and, when the strip
   was also read otherwise (shifted, enlarged: strip.views), each of those readings' greedy
   digits, ranked by their likelihood under all the readings together (`log_likelihood`,
   summed), those within MARGIN of the likeliest (numbers.py weighs them with the digit
   model); `placed` gives a reading's digits their steps: the greedy path's when the two
   agree (nearly always), else those of its likeliest path (`align`, Viterbi);
4. `digit_probs`: each digit's probabilities of the ten digits, its most at its steps in every
   reading (in the others, where `placed` puts it), their geometric mean over the readings;
5. `unread`: the most a digit is given at a step away from every digit read (one missed);
   `missed_digits`: a piece of the strip's ink as tall as a digit under none of the digits
   read is one (mostly a thin 1 pressed against its neighbour); `digit_columns`: the strip's
   columns each digit read owns;
6. `alone`: the probability that the steps read one digit and nothing else, for each digit (a
   lone digit's second opinion: inference.Recognizer).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mnist_paddle.serving.strip import STRIDE, Strip

BLANK = 0  # the line model's class 0; digit d is class d + 1
BEAM = 10  # prefixes the beam search keeps
UNLIKELY = 1e-4  # a digit this unlikely at a step is not followed there (nothing a beam keeps)
# readings less likely than the likeliest by this many nats (a factor of 150) are no
# candidates (docs/numbers.md)
MARGIN = 5.0


class Digit(NamedTuple):
    digit: int
    prob: float  # the line model's: the highest probability its steps give it
    steps: tuple[int, int]  # the first and last step that read it

    @property
    def centre(self) -> float:
        """The strip column at the middle of its steps."""
        return STRIDE * ((self.steps[0] + self.steps[1]) / 2 + 0.5)


class Candidate(NamedTuple):
    digits: list[int]
    score: float  # its log-likelihood summed over the readings (0 when it is the only one)
    share: float  # its share of the beam of the strip as made


def candidates(probs: np.ndarray, others: Sequence[np.ndarray] = ()) -> list[Candidate]:
    """The readings of (T, 11) step probabilities worth weighing, likeliest first: the beam's
    within MARGIN of its best and, from `others` (the step probabilities of the same strip read
    otherwise), their greedy digits; scored by `log_likelihood` summed over all the readings,
    those within MARGIN of the best score. Each has its share of this reading's beam: the
    beam's best its own, another the best's times its likelihood against the best's here (when
    lower)."""
    ranked = beam_search(probs)
    first = ranked[0][1]
    likely = [digits for digits, share in ranked if share >= first * math.exp(-MARGIN)]
    found = list(dict.fromkeys([*likely, *(_greedy(other) for other in others)]))
    if len(found) == 1:
        return [Candidate(list(found[0]), 0.0, first)]
    scores = np.array([log_likelihoods(view, found) for view in [probs, *others]]).T.tolist()
    best = max(sum(s) for s in scores)
    kept = [
        Candidate(list(c), sum(s), first * math.exp(min(0.0, s[0] - scores[0][0])))
        for c, s in zip(found, scores)
        if sum(s) >= best - MARGIN
    ]
    return sorted(kept, key=lambda c: -c.score)  # stable: the beam's best first on a tie


def placed(probs: np.ndarray, digits: list[int]) -> list[Digit]:
    """`digits`, each with its steps in the (T, 11) step probabilities: the greedy path's when
    it spells them (the likeliest path of all is theirs then), else their likeliest path's."""
    greedy = decode(probs)
    return greedy if digits == [d.digit for d in greedy] else align(probs, digits)


def _greedy(probs: np.ndarray) -> tuple[int, ...]:
    """The digits of the greedy path through (T, 11) step probabilities."""
    return tuple(d.digit for d in decode(probs))


def decode(probs: np.ndarray) -> list[Digit]:
    """Greedy CTC decoding of (T, 11) step probabilities."""
    best = probs.argmax(axis=1)
    digits: list[Digit] = []
    for t, c in enumerate(best):
        if c == BLANK:
            continue
        if t and best[t - 1] == c:  # the same digit, still
            last = digits[-1]
            digits[-1] = Digit(last.digit, max(last.prob, float(probs[t, c])), (last.steps[0], t))
        else:
            digits.append(Digit(int(c) - 1, float(probs[t, c]), (t, t)))
    return digits


def beam_search(probs: np.ndarray, width: int = BEAM) -> list[tuple[tuple[int, ...], float]]:
    """The readings (digits) of (T, 11) step probabilities, each one's probability summed over
    its paths, keeping the `width` likeliest prefixes from step to step: those kept at the end,
    likeliest first, each with its share of the probability of them all."""
    # prefix -> [its probability with the path ending in blank, ending in its last digit]
    beams: dict[tuple, list[float]] = {(): [1.0, 0.0]}
    for p in probs.tolist():  # Python floats: a step's few sums cost less than numpy's calls
        likely = [(c, q) for c, q in enumerate(p) if c != BLANK and q > UNLIKELY]
        if not likely:  # a blank step: every prefix stays, none grows
            stay = [(prefix, (blank + last) * p[BLANK]) for prefix, (blank, last) in beams.items()]
            stay.sort(key=lambda item: -item[1])
            total = sum(q for _, q in stay) or 1.0
            beams = {prefix: [q / total, 0.0] for prefix, q in stay}
            continue
        grown: defaultdict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for prefix, (blank, last) in beams.items():
            grown[prefix][0] += (blank + last) * p[BLANK]
            end = prefix[-1] if prefix else None
            for c, q in likely:
                if c == end:
                    grown[prefix][1] += last * q  # the same digit, still
                    grown[prefix + (c,)][1] += blank * q  # the same again, after a blank
                else:
                    grown[prefix + (c,)][1] += (blank + last) * q
        kept = sorted(grown.items(), key=lambda item: -sum(item[1]))[:width]
        total = sum(sum(v) for _, v in kept) or 1.0  # rescaled: long strips underflow otherwise
        beams = {prefix: [b / total, d / total] for prefix, (b, d) in kept}
    shares = [(tuple(c - 1 for c in prefix), sum(v)) for prefix, v in beams.items()]
    return sorted(shares, key=lambda reading: -reading[1])  # stable: the first on a tie


def log_likelihood(probs: np.ndarray, digits) -> float:
    """The log-probability of `digits` summed over all their paths through the (T, 11) steps
    (CTC's forward pass over the states blank, digit, blank, digit, ..., blank)."""
    return float(log_likelihoods(probs, [digits])[0])


def log_likelihoods(probs: np.ndarray, readings: Sequence) -> np.ndarray:
    """`log_likelihood` of each of `readings` (digit sequences) through the same (T, 11) steps,
    their forward passes side by side: (len(readings),)."""
    lengths = np.array([len(digits) for digits in readings])
    log_p, skip = _states(probs, readings)
    score = np.full(skip.shape, -np.inf)
    score[:, :2] = log_p[0, :, :2]
    skips = skip[:, 2:]
    for t in range(1, len(probs)):  # slices, not np.r_: a step's few small sums cost less
        step = score.copy()
        step[:, 1:] = np.logaddexp(score[:, 1:], score[:, :-1])
        step[:, 2:] = np.where(skips, np.logaddexp(step[:, 2:], score[:, :-2]), step[:, 2:])
        score = step + log_p[t]
    rows = np.arange(len(readings))
    last_digit = np.where(lengths > 0, score[rows, np.maximum(2 * lengths - 1, 0)], -np.inf)
    return np.logaddexp(score[rows, 2 * lengths], last_digit)  # ending on a blank or a digit


def _states(probs: np.ndarray, readings: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """The path states of each of `readings` (blank, digit, blank, digit, ..., blank): each
    step's log probability of each reading's states, (T, readings, S), and which states a path
    may reach by skipping the blank before them (between two different digits), (readings, S).
    The shorter readings' states are padded after their last blank with impossible ones, which
    no path of theirs can reach."""
    lengths = np.array([len(digits) for digits in readings])
    states = np.zeros((len(readings), 2 * lengths.max(initial=0) + 1), int)
    for row, digits in zip(states, readings):
        row[1 : 2 * len(digits) : 2] = np.asarray(digits, int) + 1
    skip = np.zeros(states.shape, bool)
    skip[:, 3::2] = states[:, 3::2] != states[:, 1:-2:2]
    log_p = np.log(np.maximum(probs[:, states], 1e-30))
    log_p[:, np.arange(states.shape[1]) > 2 * lengths[:, None]] = -np.inf
    return log_p, skip


def align(probs: np.ndarray, digits: list[int]) -> list[Digit]:
    """`digits`, each with its steps on their likeliest path through the (T, 11) steps (Viterbi
    over the states blank, digit, blank, digit, ..., blank)."""
    if not digits:
        return []
    log_p, skip = _states(probs, [digits])
    log_p, skip = log_p[:, 0], skip[0]
    states = len(skip)
    score = np.full(states, -np.inf)
    score[:2] = log_p[0, :2]
    moves = np.zeros((len(probs), states), int)  # how far back each state came from
    options = np.full((3, states), -np.inf)  # stay, step on from the state before, skip a blank
    for t in range(1, len(probs)):
        options[0], options[1, 1:] = score, score[:-1]
        options[2, 2:] = np.where(skip[2:], score[:-2], -np.inf)
        moves[t] = options.argmax(axis=0)
        score = options.max(axis=0) + log_p[t]
    state = states - 1 if states == 1 or score[-1] >= score[-2] else states - 2
    path = [state]
    for t in range(len(probs) - 1, 0, -1):
        state -= moves[t, state]
        path.append(state)
    path = np.array(path[::-1])
    read = []
    for k, digit in enumerate(digits):
        steps = np.flatnonzero(path == 2 * k + 1)
        prob = float(probs[steps, digit + 1].max())
        read.append(Digit(digit, prob, (int(steps[0]), int(steps[-1]))))
    return read


def span_probs(probs: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """The most the (T, 11) step probabilities give each digit in each span [first, end) of
    steps: (len(spans), 10)."""
    return np.array([probs[first:end, 1:].max(axis=0) for first, end in spans]).reshape(-1, 10)


def digit_probs(readings: Sequence[np.ndarray], read: list[Digit]) -> np.ndarray:
    """The line model's probabilities of the ten digits for each digit of `read`, (len(read),
    10), summing to 1: the geometric mean over `readings` (the (T, 11) steps `read` came from,
    then the same strip read otherwise) of its most at its steps in each; `read` gives its steps
    in the first, `placed` in the others."""
    digits = [d.digit for d in read]
    logs = []
    for k, probs in enumerate(readings):
        spans = [(d.steps[0], d.steps[1] + 1) for d in (read if k == 0 else placed(probs, digits))]
        logs.append(np.log(np.maximum(span_probs(probs, spans), 1e-30)))
    mean = np.exp(np.mean(logs, axis=0))
    return mean / mean.sum(axis=1, keepdims=True)


def alone(probs: np.ndarray) -> np.ndarray:
    """The probability that the (T, 11) step probabilities read digit d alone, summed over
    its paths (blanks, d at one step or more, blanks), for each of the ten digits: (10,).
    exp(log_likelihood(probs, [d])) for each d, the ten at once: 0.02 ms a strip of a digit
    against 0.46 ms for ten forward passes."""
    blank, digits = probs[:, BLANK].astype(np.float64), probs[:, 1:].astype(np.float64)
    before, inside, after = blank[0], digits[0], np.zeros(10)  # paths before d, in it, past it
    for t in range(1, len(probs)):
        inside, after = (before + inside) * digits[t], (inside + after) * blank[t]
        before = before * blank[t]
    return inside + after


def unread(read: list[Digit], steps: np.ndarray) -> float:
    """The highest probability of any digit at the (T, 11) `steps` more than one step away
    from every digit `read` (0 when there is no such step)."""
    near = np.zeros(len(steps), bool)
    for d in read:
        near[max(0, d.steps[0] - 1) : d.steps[1] + 2] = True
    return float(1 - steps[~near, BLANK].min()) if not near.all() else 0.0


def missed_digits(read: list[Digit], steps: np.ndarray, strip: Strip) -> list[Digit]:
    """`read` (decoded from the (T, 11) `steps`) with a digit added, in its place, for each
    piece of ink as tall as a digit (Strip.digit_pieces) whose columns hold none of the digits'
    centres: the likeliest digit over those of the piece's steps that read no digit, unless it
    is the digit read next to the piece (then the piece is that digit's, its centre outside)."""
    taken = np.zeros(len(steps), bool)
    for d in read:
        taken[d.steps[0] : d.steps[1] + 1] = True
    added = []
    for lo, hi in strip.digit_pieces():
        if any(lo <= d.centre < hi for d in read):
            continue
        first = int(lo // STRIDE)
        last = max(first, int(min(len(steps), -(-hi // STRIDE))) - 1)
        own = np.arange(first, last + 1)
        free = own[~taken[own]]  # the piece's steps that read no digit, if any
        probs = steps[free if len(free) else own, 1:].max(axis=0)
        beside = [d.digit for d in read if d.centre < lo][-1:]
        beside += [d.digit for d in read if d.centre >= hi][:1]
        if int(probs.argmax()) not in beside:
            added.append(Digit(int(probs.argmax()), float(probs.max()), (first, last)))
    return sorted(read + added, key=lambda d: sum(d.steps)) if added else read


def digit_columns(digits: list[Digit], width: int) -> list[tuple[float, float]]:
    """The strip columns of each digit: from half-way to its left neighbour to half-way to its
    right one (the strip's ends for the first and last)."""
    centres = [d.centre for d in digits]
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [float(width)]
    return list(zip(bounds, bounds[1:]))
