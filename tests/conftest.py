"""pytest configuration shared by all tests."""

# tests/cocotb/<unit>/test_*.py are cocotb test modules: they run inside the simulator, started
# by tests/test_cocotb_*.py through cocotb_tools.runner, never collected by pytest itself.
collect_ignore_glob = ["cocotb/*/test_*.py"]
