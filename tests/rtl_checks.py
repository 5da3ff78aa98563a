"""What every RTL run's report must show (shared by the tests that simulate the RTL)."""


def check_report(report, expect_flags=None):
    """No timeout, bit-exact, the golden's flags, and the counters the schedule implies."""
    assert not report["timeout"], report
    assert report["bit_exact"], (report["mismatches"], report["first_mismatches"])
    assert report["flags_match"], (report["error_flags"], report["expected_error_flags"])
    if expect_flags is not None:
        assert report["error_flags"] == expect_flags
    c, want = report["counters"], report["expected_counters"]
    for name in ("instructions", "tiles", "mem_lines_written", "config_tag"):
        assert c[name] == want[name], (name, c[name], want[name])
    lo, hi = want["mem_lines_read"]
    assert lo <= c["mem_lines_read"] <= hi, (c["mem_lines_read"], want["mem_lines_read"])
