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
    assert (u.bandwidth_gbs, u.memory) == (460.8, "hbm2")           # 32 pseudo-channels x 14.4 GB/s
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
    assert get_board("kv260").weight_rate_gbs(2) >= get_board("kv260").sustained_gbs


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


# --- board files -------------------------------------------------------------------------

from tritforge.sim.boards import board_names, load_board, boards_folder  # noqa: E402


def test_every_bundled_board_is_a_file_with_sources():
    assert set(board_names()) == set(BOARDS)
    for n in board_names():
        b = load_board(n)
        assert b.path.endswith(f"{n}.toml") and b.sources
        assert all(isinstance(v, str) and v.strip() for v in b.sources.values())
        assert "memory.type" in b.sources and "static_w" in b.sources
        assert b.static_w >= 0 and b.memory_system().background_w >= 0


def _kv260_text():
    return boards_folder().joinpath("kv260.toml").read_text()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("static_w = 3.5\n", ""), "static_w: missing"),
    (lambda s: s.replace("static_w = 3.5", "static_w = -1.0"), "static_w: expected a value >= 0.*, got -1.0"),
    (lambda s: s.replace('type = "ddr4"', 'type = "ddr9"'), "memory.type: expected 'ddr4'.*got \"ddr9\""),
    (lambda s: s.replace("rows_source =", "# rows_source ="), "figure 'rows' has no source"),
    (lambda s: s.replace("data_rate_mts = 2400", "data_rate_mts = 0"), "memory.data_rate_mts: expected a value > 0.*, got 0"),
    (lambda s: s.replace("rows = 16", "rows = 512"), "describe a larger array as 'engines'"),
    (lambda s: s.replace("[memory]", "[memoir]"), "memory: missing"),
    (lambda s: s + "\nbogus = 1\n", "bogus: unknown field"),
    (lambda s: s.replace('name = "kv260"', 'name = "kv260'), "not valid TOML"),
    (lambda s: s.replace("type_source =", "# type_source ="), "memory: figure 'type' has no source"),
    (lambda s: s.replace("[memory]", '[source]\nrowz = "x"\n\n[memory]'), "\\[source\\].rowz: not a figure"),
    (lambda s: s.replace("max_in_features = ", "max_in_features = 17 #"), "max_in_features: expected a multiple of 16"),
    (lambda s: s.replace("rows = 16", "rows = 16.0"), "rows: expected an integer, got 16.0"),
    (lambda s: s.replace("static_w_source = ", 'static_w_source = " " #'), "static_w_source: expected a non-empty"),
    # the [host] table (the file's last): a host-side lm_head's figures
    (lambda s: s.replace("cores_source =", "# cores_source ="), "host: figure 'cores' has no source"),
    (lambda s: s.replace("macs_per_cycle = 2.0", "macs_per_cycle = -2.0"), "host.macs_per_cycle: expected a value > 0"),
    (lambda s: s.replace("cores = 4\n", ""), "host.cores: missing"),
    (lambda s: s + "read_gbs = 3.0\n", "host: figure 'read_gbs' has no source"),
    (lambda s: s + "read_gbs = -3.0\nread_gbs_source = \"x\"\n", "host.read_gbs: expected a value > 0"),
])
def test_bad_board_files(tmp_path, capsys, edit, message):
    p = tmp_path / "board.toml"
    p.write_text(edit(_kv260_text()))
    with pytest.raises(TritforgeError, match=message) as exc:
        load_board(str(p))
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)
    from tritforge.cli import main
    assert main(["estimate", "--model-config", "smollm2-135m", "--board", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(p) in err


def test_board_file_with_engines_lifts_the_row_cap(tmp_path):
    p = tmp_path / "big.toml"
    p.write_text(_kv260_text().replace('name = "kv260"', 'name = "big"').replace("engines = 1", "engines = 4"))
    b = load_board(str(p))
    assert b.engines == 4 and b.total_rows == 64 and get_board(str(p)).name == "big"
    assert b.weight_rate_gbs(2) == pytest.approx(4 * load_board("kv260").weight_rate_gbs(2))


def test_source_table_works_too(tmp_path):
    text = _kv260_text().replace("static_w_source =", "# static_w_source =")
    text = text.replace("[memory]", '[source]\nstatic_w = "a whole-table source"\n\n[memory]')
    p = tmp_path / "b.toml"
    p.write_text(text)
    assert load_board(str(p)).sources["static_w"] == "a whole-table source"
