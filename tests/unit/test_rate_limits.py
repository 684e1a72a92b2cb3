"""Rate limits (issue 11 item 7): the policy data, the token bucket and the in-process limiter, on a fake clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from adapters.local_rate_limiter import LocalRateLimiter
from gateway.bootstrap.reference import load_rate_limits
from gateway.domain.buckets import RateRefusal, TokenBucket
from gateway.domain.errors import ConfigError
from gateway.ports import RateLimiter
from gateway.settings import Settings, load_settings
from rules.limits import Limit, RateLimits, parse_rate_limits
from tests.fakes.world import SHANGHAI, FakeClock

CITY = """
[rate_limits]
psam = { rate = 2, burst = 3 }
institution = { rate = 10.5, burst = 4 }
[rate_limits.institutions.H1]
psam = { rate = 100, burst = 100 }
[rate_limits.institutions.P2]
institution = { rate = 1, burst = 1 }
"""


def fake() -> tuple[FakeClock, LocalRateLimiter]:
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI))
    limiter = LocalRateLimiter(parse_rate_limits(CITY), monotonic=lambda: clock.at.timestamp())
    return clock, limiter


_: RateLimiter = fake()[1]


class TestPolicy:
    def test_defaults_and_overrides(self):
        """A scope an institution does not override keeps the city default."""
        limits = parse_rate_limits(CITY)
        assert limits.psam_limit("H9") == Limit(2.0, 3)
        assert limits.institution_limit("H9") == Limit(10.5, 4)
        assert limits.psam_limit("H1") == Limit(100.0, 100)
        assert limits.institution_limit("H1") == Limit(10.5, 4)
        assert limits.psam_limit("P2") == Limit(2.0, 3)
        assert limits.institution_limit("P2") == Limit(1.0, 1)

    def test_a_scope_left_out_is_not_limited(self):
        """Only PSAMs limited: institutions are not."""
        limits = parse_rate_limits("[rate_limits]\npsam = { rate = 1, burst = 1 }\n")
        assert limits.institution_limit("H1") is None
        assert limits.any
        assert not RateLimits().any

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("x = 1", "a [rate_limits] table is required"),
            ("[limits]\n", "unknown table 'limits'"),
            ("[rate_limits]\npsam = 5\n", "rate_limits.psam: must be a table"),
            ("[rate_limits]\npsam = { rate = 0, burst = 1 }\n", "rate_limits.psam: rate must be"),
            ("[rate_limits]\npsam = { rate = -1, burst = 1 }\n", "rate must be"),
            ("[rate_limits]\npsam = { rate = nan, burst = 1 }\n", "rate must be"),
            ("[rate_limits]\npsam = { rate = inf, burst = 1 }\n", "rate must be"),
            ("[rate_limits]\npsam = { rate = '5', burst = 1 }\n", "rate must be a number"),
            ("[rate_limits]\npsam = { rate = true, burst = 1 }\n", "rate must be a number"),
            ("[rate_limits]\npsam = { rate = 5, burst = 0 }\n", "burst must be a whole number of requests, at least 1"),
            ("[rate_limits]\npsam = { rate = 5, burst = 2.5 }\n", "burst must be a whole number"),
            ("[rate_limits]\npsam = { rate = 5 }\n", "rate_limits.psam: burst is required"),
            ("[rate_limits]\npsam = { rate = 5, burst = 1, per = 's' }\n", "unknown field 'per'"),
            ("[rate_limits]\nterminal = { rate = 5, burst = 1 }\n", "unknown field 'terminal'"),
            ("[rate_limits.institutions.H1]\npsm = { rate = 5, burst = 1 }\n", "rate_limits.institutions.H1: unknown"),
            ("[rate_limits.institutions.H1]\n", "names neither psam nor institution"),
            ("[rate_limits]\ninstitutions = 3\n", "rate_limits.institutions: must be a table"),
            ("[rate_limits\n", "does not parse"),
        ],
    )
    def test_bad_input_is_named(self, text, expected):
        """Every bad field is refused with its place in the file and what was wrong."""
        with pytest.raises(ValueError, match=r"bad rate limits|does not parse") as exc:
            parse_rate_limits(text)
        assert expected in str(exc.value)

    def test_every_problem_at_once(self):
        """One error lists all the problems, not just the first."""
        with pytest.raises(ValueError, match="2 problem") as exc:
            parse_rate_limits("[rate_limits]\npsam = { rate = 0, burst = 1 }\ninstitution = { rate = 1, burst = 0 }\n")
        assert "psam" in str(exc.value)
        assert "institution" in str(exc.value)


class TestBucket:
    def test_burst_then_rate(self):
        """A full bucket admits its burst at once, then one request per 1/rate seconds."""
        b = TokenBucket.full(2.0, 3.0, now=0.0)
        assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert b.take(0.0) == pytest.approx(0.5)
        assert b.take(0.25) == pytest.approx(0.25)  # half a token refilled; nothing taken
        assert b.take(0.5) == 0.0
        assert b.take(0.5) == pytest.approx(0.5)

    def test_refill_stops_at_burst(self):
        """An idle bucket holds its burst, never more."""
        b = TokenBucket.full(10.0, 2.0, now=0.0)
        b.take(0.0)
        assert [b.take(100.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]

    def test_give_back_is_capped(self):
        """A token given back never raises a bucket above its burst."""
        b = TokenBucket.full(1.0, 2.0, now=0.0)
        b.give_back()
        assert b.tokens == 2.0
        b.take(0.0)
        b.give_back()
        assert b.tokens == 2.0

    def test_a_clock_going_back_refills_nothing(self):
        """Time that goes backwards (never, on a monotonic clock) neither refills nor breaks the bucket."""
        b = TokenBucket.full(1.0, 1.0, now=10.0)
        assert b.take(10.0) == 0.0
        assert b.take(5.0) == pytest.approx(1.0)

    def test_retry_after_is_whole_seconds(self):
        """Retry-After rounds up and is at least one second."""
        assert RateRefusal.after("psam", "P", 0.01).retry_after_s == 1
        assert RateRefusal.after("psam", "P", 1.2).retry_after_s == 2


class TestLimiter:
    def test_psam_over_its_limit(self):
        """The fourth request at once of one PSAM is refused, and says when to come back."""
        _clock, lim = fake()
        assert [lim.take("H9", "P1") for _ in range(3)] == [None, None, None]
        refused = lim.take("H9", "P1")
        assert refused == RateRefusal("psam", "P1", 1)
        assert lim.take("H9", "P2") is None  # another PSAM of the same institution has its own bucket

    def test_institution_over_its_limit_returns_the_psam_token(self):
        """An institution's empty bucket refuses all its PSAMs; the PSAM's token is not spent on a refusal."""
        clock, lim = fake()
        for p in ("A", "B", "C", "D"):
            assert lim.take("H9", p) is None
        refused = lim.take("H9", "E")
        assert refused is not None
        assert refused.scope == "institution"
        assert refused.key == "H9"
        clock.advance(1.0)  # 10.5 institution tokens come back; E's own bucket was never drawn
        assert [lim.take("H9", "E") for _ in range(3)] == [None, None, None]

    def test_give_back(self):
        """A request given back (a retry answered from the journal) leaves the buckets as they were."""
        _clock, lim = fake()
        for _ in range(3):
            assert lim.take("H9", "P1") is None
            lim.give_back("H9", "P1")
        assert [lim.take("H9", "P1") for _ in range(3)] == [None, None, None]

    def test_refills_with_time(self):
        """After the wait it named, a refused PSAM is admitted again."""
        clock, lim = fake()
        for _ in range(3):
            lim.take("H9", "P1")
        assert lim.take("H9", "P1") is not None
        clock.advance(0.5)
        assert lim.take("H9", "P1") is None

    def test_unlimited_institution(self):
        """With no limit for a scope the limiter admits everything of it."""
        lim = LocalRateLimiter(RateLimits(psam=None, institution=None))
        assert all(lim.take("H9", "P1") is None for _ in range(1000))

    def test_share_per_worker(self):
        """Each of N workers refills at rate/N but holds the whole burst (the host: rate x t + N x burst)."""
        clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI))
        limits = parse_rate_limits("[rate_limits]\npsam = { rate = 4, burst = 2 }\n")
        workers = [LocalRateLimiter(limits, share=4, monotonic=lambda: clock.at.timestamp()) for _ in range(4)]
        admitted = 0
        for _ in range(10):  # ten seconds: each worker offered far more than its share every 100 ms
            for _ in range(10):
                clock.advance(0.1)
                admitted += sum(w.take("H9", "P1") is None for w in workers for _ in range(5))
        assert admitted <= 4 * 10 + 4 * 2
        assert admitted >= 4 * 10 - 4

    def test_share_must_be_positive(self):
        """A share below one is a configuration bug, refused at once."""
        with pytest.raises(ValueError, match="share must be at least 1"):
            LocalRateLimiter(RateLimits(), share=0)


class TestStartup:
    def test_bad_file_refuses_to_start(self, tmp_path):
        """A bad rate limits file is a ConfigError (exit 2) naming the file and each bad field."""
        bad = tmp_path / "limits.toml"
        bad.write_text("[rate_limits]\npsam = { rate = 5, burst = -1 }\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"(?s)limits.toml: bad rate limits.*rate_limits.psam: burst must be"):
            load_rate_limits(Settings(rate_limits_file=str(bad)))

    def test_missing_file_refuses_to_start(self, tmp_path):
        """A rate limits file that cannot be read is named, with why."""
        with pytest.raises(ConfigError, match="cannot read: No such file"):
            load_rate_limits(Settings(rate_limits_file=str(tmp_path / "none.toml")))

    def test_none_configured(self, tmp_path):
        """No file, or a file that limits nothing: no limiter at all (the hot path skips it)."""
        assert load_rate_limits(Settings()) is None
        empty = tmp_path / "limits.toml"
        empty.write_text("[rate_limits]\n", encoding="utf-8")
        assert load_rate_limits(Settings(rate_limits_file=str(empty))) is None

    def test_settings(self):
        """ONECARD_MAX_IN_FLIGHT and ONECARD_RATE_LIMITS_FILE are read; a bound below 1 is refused."""
        s = load_settings(environ={"ONECARD_MAX_IN_FLIGHT": "64", "ONECARD_RATE_LIMITS_FILE": "/etc/limits.toml"})
        assert (s.max_in_flight, s.rate_limits_file) == (64, "/etc/limits.toml")
        with pytest.raises(ConfigError, match="max_in_flight, host_workers: must be at least 1"):
            load_settings(environ={"ONECARD_MAX_IN_FLIGHT": "0"})
        with pytest.raises(ConfigError, match="ONECARD_MAX_IN_FLIGHT"):
            load_settings(environ={"ONECARD_MAX_IN_FLIGHT": "many"})
