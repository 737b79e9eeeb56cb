"""The number stage's check (train/number_check.py): the numbers it reads, drawn as the
evaluation set draws its own, and the same record from one reading process or two."""

import numpy as np
from conftest import DATA

from mnist_paddle.train.data import read_mnist
from mnist_paddle.train.number_check import check_numbers, check_reader
from mnist_paddle.train.numbers import NumbersCheck


def test_handwritten_digits_are_drawn_as_often_as_the_validation_digits_hold_them():
    """A lost 1 is the most common way to misread a handwritten number, and MNIST holds more
    1s than 5s: the check draws its digits from the validation digits, as the evaluation set
    does from the test digits, not each digit evenly."""
    labels = np.array([1] * 90 + [5] * 10)
    numbers = check_numbers(NumbersCheck(numbers=50, handwritten=200, boxes=50), labels)
    assert [kind for kind, _, _ in numbers].count("handwritten") == 200
    written = [(digits, picks) for kind, digits, picks in numbers if kind != "typeset"]
    assert all(digits == [int(labels[k]) for k in picks] for digits, picks in written)
    ones = np.mean([d == 1 for digits, _ in written for d in digits])
    assert 0.85 < ones < 0.95, ones
    typeset = [d for kind, digits, _ in numbers if kind == "typeset" for d in digits]
    assert set(typeset) == set(range(10))


def test_two_reading_processes_give_the_record_one_gives(number_export):
    images, labels = (a[:300] for a in read_mnist(DATA, "train"))
    check = NumbersCheck(numbers=6, handwritten=12, boxes=6)
    one, two = (check_reader(number_export, images, labels, check, n) for n in (1, 2))
    assert one == two
    assert one["read"]["boxed_numbers"] == 6 and one["read"]["handwritten_numbers"] == 12
