"""Bad input, round 3: the rows of the neighbour filter's far points (run by ``test_bad_input_round3.py``)."""

from __future__ import annotations

from test_bad_input import Case  # noqa: F401 (the rows are Cases)

ROWS: list[Case] = []
