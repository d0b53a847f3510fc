"""Memory model: peak and sustained bandwidth from each type's timing, against the anchors."""
import pytest

from tritforge.errors import TritforgeError
from tritforge.sim.boards import get_board
from tritforge.sim.memory import MEMORY_TYPES, MemorySystem, memory_type


def test_every_type_parameter_has_a_source():
    for t in MEMORY_TYPES.values():
        fields = {"burst_length", "trfc_ns", "trefi_ns", "trp_ns", "trcd_ns", "trrd_ns", "tfaw_ns",
                  "turnaround_ns", "burst_gap_ns", "interleaved"}
        assert fields <= set(t.sources), t.name
        assert all(s.strip() for s in t.sources.values())


def test_ddr4_kv260_by_hand():
    m = get_board("kv260").memory_system()
    assert m.peak_gbs == pytest.approx(19.2)
    assert m.refresh_fraction() == pytest.approx(350 / 7800)
    assert m.row_overhead_ns() == 0.0                 # 8 KB rows take 427 ns > tFAW/4 = 7.5 ns
    assert m.efficiency() == pytest.approx(1 - 350 / 7800)


def test_hbm2_u280_reproduces_shuhai():
    m = get_board("u280").memory_system()
    assert m.peak_gbs == pytest.approx(460.8)
    # Shuhai (arXiv 2005.04324): up to 425 GB/s of 460 = 92.4 %
    assert m.efficiency() == pytest.approx(425 / 460, abs=0.02)
    assert m.sustained_gbs == pytest.approx(m.peak_gbs * (1 - 260 / 3900))


def test_sdram_pays_every_row_and_writes_turn_the_bus():
    m = get_board("ulx3s").memory_system()
    assert m.row_overhead_ns() == pytest.approx(30.0)
    t_row = 1024 / 0.2e9 * 1e9
    assert m.efficiency() == pytest.approx(t_row / (t_row + 30) * (1 - 60 / 7812.5))
    b = m.breakdown_s(1e6, 1e4, 3)
    assert b["turnaround"] == pytest.approx(2 * 3 * 10e-9)
    assert b["total"] == pytest.approx(sum(v for k, v in b.items() if k != "total"))


def test_activate_rate_limit_shows_for_small_rows():
    m = MemorySystem(type="ddr4", data_rate_mts=3200, bus_bits=64, channels=1, row_bytes=64,
                     capacity_bytes=1 << 30, background_w=0.1)
    t_row = 64 / (3200e6 * 8) * 1e9                   # 2.5 ns of data per row
    assert m.row_overhead_ns() == pytest.approx(30 / 4 - t_row)
    assert m.efficiency() < 0.5


def test_errors():
    with pytest.raises(TritforgeError, match="unknown memory type"):
        memory_type("ddr9")
    with pytest.raises(TritforgeError, match="unknown memory type"):
        MemorySystem(type="rambus", data_rate_mts=1, bus_bits=1, channels=1, row_bytes=1, capacity_bytes=1,
                     background_w=0)
    with pytest.raises(TritforgeError, match="negative"):
        get_board("kv260").memory_system().transfer_s(-1)
