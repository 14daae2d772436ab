"""Bad input, round 3: the cluster that never answers, headers that lie about their counts, and
results that were silently wrong. The rows live beside this file by area (``bad_input_round3_*.py``)
and run as the earlier rounds' rows do (``test_bad_input.check_case``): one clear line and nothing
written on failure, the right result on success."""

from __future__ import annotations

import bad_input_round3_cluster
import bad_input_round3_commands
import bad_input_round3_formats
import bad_input_round3_neighbours
import pytest
from test_bad_input import check_case

ROWS = (bad_input_round3_cluster.ROWS + bad_input_round3_formats.ROWS + bad_input_round3_commands.ROWS
        + bad_input_round3_neighbours.ROWS)


@pytest.mark.parametrize("case", ROWS, ids=[case.name for case in ROWS])
def test_bad_input_round3(case, tmp_path):
    check_case(case, tmp_path)
