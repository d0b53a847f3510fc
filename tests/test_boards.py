"""Board presets: the required boards, their figures, lookup errors, their HwConfig."""
import pytest

from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim.boards import BOARDS, DEFAULT_BOARD, Board, get_board
from tritforge.sim.energy import EnergyTable


def test_required_presets_and_their_figures():
    assert {"kv260", "u280", "ulx3s", "icebreaker"} <= set(BOARDS)
    kv, u, ulx, ice = (get_board(n) for n in ("kv260", "u280", "ulx3s", "icebreaker"))
    assert (kv.bandwidth_gbs, kv.memory) == (19.2, "ddr4")
    assert (u.bandwidth_gbs, u.memory) == (460.0, "hbm2")
    assert (ulx.memory, ulx.memory_bytes) == ("sdram", 32 * 2**20)
    assert ice.memory == "spi-flash" and ice.memory_bytes == 16 * 2**20


def test_every_board_is_documented_and_priced():
    table = EnergyTable.load(None)
    for b in BOARDS.values():
        assert isinstance(b, Board) and b.source.strip() and b.notes.strip() and b.title.strip()
        assert b.clock_mhz > 0 and b.bandwidth_gbs > 0 and b.memory_bytes > 0
        assert table.memory_pj_per_bit(b.memory) > 0          # memory type is in the default table
        assert b.to_dict()["name"] == b.name


@pytest.mark.parametrize("name", sorted(BOARDS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_board_hwconfig(name, depth):
    b = get_board(name)
    hw = b.hwconfig(depth)
    assert isinstance(hw, HwConfig)
    assert (hw.depth, hw.rows, hw.vectors, hw.clock_mhz) == (depth, b.rows, b.vectors, b.clock_mhz)
    assert b.hwconfig(depth, vectors=1).vectors == 1
    assert b.hwconfig(depth, max_in_features=32768).max_in_features == 32768


def test_arrays_keep_up_with_their_memory_at_d2():
    # R x beat bytes / T x clock >= bandwidth: the memory, not the array, binds at d = 2
    for name in ("kv260", "u280", "ulx3s", "icebreaker"):
        b = get_board(name)
        assert b.weight_rate_gbs(2) >= b.bandwidth_gbs, name
    u = get_board("u280")
    assert u.weight_rate_gbs(2) == pytest.approx(256 * 7 * 300e6 / 1e9)


def test_lookup_is_case_insensitive_and_has_a_default():
    assert get_board("U280") is BOARDS["u280"]
    assert get_board(" kv260 ") is BOARDS["kv260"]
    assert get_board("default") is BOARDS[DEFAULT_BOARD]


@pytest.mark.parametrize("name", ["zcu104", "", "u28"])
def test_unknown_board(name):
    with pytest.raises(TritforgeError, match="unknown preset") as exc:
        get_board(name)
    assert "u280" in str(exc.value) and "\n" not in str(exc.value)


def test_board_name_must_be_a_string():
    with pytest.raises(TritforgeError, match="expected a name"):
        get_board(None)


def test_boards_are_frozen():
    with pytest.raises(Exception):
        get_board("u280").rows = 1
