"""ScanComplete's interleaved groups and coarse-to-fine hierarchy (lessons.coarse_to_fine): the groups tile
the grid in 2 x 2 x 2 blocks with no neighbour in a voxel's own group, the counts of predicted neighbours
match the closed form and do not depend on the order in total, and the states and open voxels of each level
follow from hand-made grids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pcfilter_lib.lessons import coarse_to_fine as c2f


def test_groups_are_index_parities_and_every_block_holds_each_group_once():
    groups = c2f.interleaved_groups((4, 6, 8))
    i, j, k = np.indices((4, 6, 8))
    assert np.array_equal(groups, 4 * (i % 2) + 2 * (j % 2) + k % 2)
    blocks = groups.reshape(2, 2, 3, 2, 4, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    assert all(sorted(block) == list(range(8)) for block in blocks)
    assert np.unique(c2f.interleaved_groups((5, 5))).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("shape", [(5, 5, 5), (4, 7), (3, 3, 3, 3)])
def test_no_cell_has_a_neighbour_in_its_own_group(shape):
    assert c2f.neighbours_in_group(c2f.interleaved_groups(shape)).max() == 0


def test_a_coarser_split_leaves_neighbours_in_a_group():
    i, j, k = np.indices((6, 6, 6))
    by_plane = k % 2  # two groups, alternate planes: neighbours within a plane share a group
    assert c2f.neighbours_in_group(by_plane)[2, 2, 2] == 8


def _closed_form(ndim: int, order) -> list[int]:
    """Group h is a neighbour of group g at 2^(axes where their parities differ) offsets."""
    return [sum(2 ** bin(g ^ h).count("1") for h in order[:n]) for n, g in enumerate(order)]


@pytest.mark.parametrize("ndim", [2, 3])
def test_predicted_neighbours_match_the_closed_form(ndim):
    groups = c2f.interleaved_groups((6,) * ndim)
    counts = c2f.predicted_neighbours(groups)
    assert list(counts.values()) == _closed_form(ndim, list(range(2 ** ndim)))
    assert counts[0] == 0 and counts[2 ** ndim - 1] == 3 ** ndim - 1
    if ndim == 3:
        assert list(counts.values()) == [0, 2, 6, 8, 18, 20, 24, 26]


def test_the_order_changes_the_counts_but_not_their_sum():
    groups = c2f.interleaved_groups((5, 5, 5))
    totals = set()
    for order in [list(range(8)), [7, 6, 5, 4, 3, 2, 1, 0], [0, 7, 3, 4, 1, 6, 2, 5]]:
        counts = c2f.predicted_neighbours(groups, order)
        assert list(counts) == order
        assert list(counts.values()) == _closed_form(3, order)
        totals.add(sum(counts.values()))
    assert totals == {8 * 26 // 2}  # each pair of neighbours counted once, by the later voxel


def test_predicted_neighbours_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        c2f.predicted_neighbours(c2f.interleaved_groups((2, 4, 4)))
    with pytest.raises(ValueError, match="order"):
        c2f.predicted_neighbours(c2f.interleaved_groups((4, 4, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match="different numbers"):
        c2f.predicted_neighbours(np.random.default_rng(0).integers(0, 3, (5, 5, 5)))


def test_cell_states_and_refinement_on_a_hand_made_grid():
    occupancy = np.zeros((8, 8, 8), bool)
    occupancy[:4, :4, :4] = True  # one full octant
    occupancy[6, 6, 6] = True  # one lone voxel
    states = c2f.cell_states(occupancy, 4)
    assert states[0, 0, 0] == c2f.FULL and states[1, 1, 1] == c2f.MIXED
    assert np.count_nonzero(states == c2f.EMPTY) == 6
    rows = c2f.refinement(occupancy, 3)
    assert [r["side"] for r in rows] == [2, 4, 8]
    assert [r["voxels"] for r in rows] == [8, 64, 512]
    # level 1: only the lone voxel's octant is mixed; level 2: only its 2 x 2 x 2 cell
    assert [r["open"] for r in rows] == [8, 8, 8]


def test_refinement_counts_on_a_sphere_shrink_towards_the_surface():
    centre = (np.arange(32) - 15.5)
    x, y, z = np.meshgrid(centre, centre, centre, indexing="ij")
    sphere = x ** 2 + y ** 2 + z ** 2 <= 12.0 ** 2
    rows = c2f.refinement(sphere, 3)
    shares = [r["open"] / r["voxels"] for r in rows]
    assert shares[0] == 1.0 and shares[1] > shares[2] > 0
    for level, row in enumerate(rows[1:], start=1):  # open voxels = 8 per mixed parent cell
        factor = 2 ** (3 - level)
        assert row["open"] == 8 * np.count_nonzero(c2f.cell_states(sphere, factor) == c2f.MIXED)
    # a mixed cell of the finest level's parents straddles the sphere's surface
    states = c2f.cell_states(sphere, 2)
    for i, j, k in itertools.islice(zip(*np.nonzero(states == c2f.MIXED), strict=True), 50):
        assert abs(np.sqrt((2 * i - 15) ** 2 + (2 * j - 15) ** 2 + (2 * k - 15) ** 2) - 12.0) < 2.0


def test_refinement_refuses_sides_that_do_not_divide():
    with pytest.raises(ValueError, match="multiples"):
        c2f.refinement(np.zeros((12, 12, 12), bool), 4)
    with pytest.raises(ValueError, match="at least one level"):
        c2f.refinement(np.zeros((8, 8, 8), bool), 0)
