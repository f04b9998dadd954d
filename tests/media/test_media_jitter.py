"""Receive statistics and the jitter buffer, driven by simulated packet arrivals."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from media.jitter import JitterBuffer, Playout
from media.stats import DISCARD, ReceiveStats

# -- receive statistics (RFC 3550 A.1 / A.8) ---------------------------------------------------


def test_sequence_wrap_extends_the_sequence_number() -> None:
    stats = ReceiveStats(8000)
    seqs = [65533, 65534, 65535, 0, 1, 2]
    ext = [stats.update(1, s, 160 * i, 0.02 * i) for i, s in enumerate(seqs)]
    assert ext == [65533, 65534, 65535, 65536, 65537, 65538]
    assert stats.lost == 0 and stats.received == 6


def test_loss_reordering_and_duplicates_are_counted() -> None:
    stats = ReceiveStats(8000)
    order = [0, 1, 3, 2, 2, 6, 7]  # 4 and 5 lost, 2 late (reordered) then duplicated
    results = [stats.update(9, s, 160 * s, 0.02 * i) for i, s in enumerate(order)]
    assert results == [0, 1, 3, 2, DISCARD, 6, 7]
    assert stats.reordered == 1
    assert stats.duplicates == 1
    assert stats.lost == 2
    assert stats.expected == 8


def test_jitter_estimate_follows_interarrival_variation() -> None:
    steady = ReceiveStats(8000)
    for i in range(200):
        steady.update(1, i, 160 * i, 0.02 * i)
    assert steady.jitter_seconds < 1e-6
    rng = random.Random(3)
    jittery = ReceiveStats(8000)
    for i in range(2000):
        jittery.update(1, i, 160 * i, 0.02 * i + rng.uniform(0, 0.01))
    # uniform 0..10 ms arrival noise: mean |D| is 10/3 ms (the estimate is a 1/16 EWMA)
    assert 0.002 < jittery.jitter_seconds < 0.006


def test_new_ssrc_takes_over_after_probation() -> None:
    stats = ReceiveStats(8000)
    for i in range(5):
        stats.update(100, i, 160 * i, 0.02 * i)
    assert stats.update(200, 5000, 0, 0.2) == DISCARD  # one stray packet: not yet
    assert stats.foreign == 1
    ext = stats.update(200, 5001, 160, 0.22)
    assert ext == 5001 and stats.restarted and stats.ssrc == 200 and stats.ssrc_changes == 1
    assert stats.update(100, 5, 800, 0.24) == DISCARD  # the old source is now foreign


def test_far_jump_needs_two_sequential_packets() -> None:
    stats = ReceiveStats(8000)
    for i in range(10):
        stats.update(1, i, 160 * i, 0.02 * i)
    assert stats.update(1, 40000, 0, 0.3) == DISCARD
    ext = stats.update(1, 40001, 160, 0.32)
    assert ext != DISCARD and stats.restarted


def test_report_block_fraction_lost() -> None:
    stats = ReceiveStats(8000)
    for s in [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]:  # 3 lost of 11
        stats.update(5, s, 160 * s, 0.02 * s)
    block = stats.report_block()
    assert block.cumulative_lost == 1 and block.fraction_lost == (1 << 8) // 11
    assert block.highest_sequence == 10 and block.ssrc == 5


# -- jitter buffer -----------------------------------------------------------------------------


def payload(seq: int) -> bytes:
    return seq.to_bytes(4, "big")


def test_plays_in_order_and_reorders_within_depth() -> None:
    jb = JitterBuffer(min_target=2)
    for seq in (0, 2, 1, 3):
        jb.put(seq, payload(seq))
    played = [jb.pop() for _ in range(4)]
    assert played == [(Playout.PLAY, payload(s)) for s in range(4)]


def test_loss_is_concealed_and_late_packets_dropped() -> None:
    jb = JitterBuffer(min_target=1)
    jb.put(0, payload(0))
    jb.put(2, payload(2))
    assert jb.pop() == (Playout.PLAY, payload(0))
    assert jb.pop() == (Playout.LOST, None)
    assert jb.pop() == (Playout.PLAY, payload(2))
    assert not jb.put(1, payload(1))  # arrived after its slot
    assert jb.late == 1 and jb.lost == 1


def test_duplicates_dropped() -> None:
    jb = JitterBuffer()
    assert jb.put(5, payload(5))
    assert not jb.put(5, payload(5))
    assert jb.duplicates == 1


def test_a_late_packet_after_an_underrun_is_not_concealed_twice() -> None:
    jb = JitterBuffer(min_target=1)
    jb.put(0, payload(0))
    assert jb.pop()[0] == Playout.PLAY
    assert jb.pop()[0] == Playout.UNDERRUN  # 1 missing: conceal, hold
    jb.put(2, payload(2))  # 1 never comes; 2 does
    assert jb.pop() == (Playout.PLAY, payload(2))  # the held slot was 1's: no second conceal
    assert jb.lost == 1 and jb.underruns == 1


def test_idle_after_the_sender_stops_then_restarts() -> None:
    jb = JitterBuffer(min_target=1, idle_after=3)
    jb.put(0, payload(0))
    jb.pop()
    kinds = [jb.pop()[0] for _ in range(4)]
    assert kinds == [Playout.UNDERRUN, Playout.UNDERRUN, Playout.IDLE, Playout.IDLE]
    jb.put(50, payload(50))
    assert jb.pop() == (Playout.PLAY, payload(50))


def test_far_jump_restarts_the_buffer() -> None:
    jb = JitterBuffer(capacity=20, max_target=5)
    jb.put(0, payload(0))
    jb.pop()
    jb.put(500, payload(500))
    assert jb.resets == 1
    assert jb.pop() == (Playout.PLAY, payload(500))


def test_target_adapts_to_jitter() -> None:
    jb = JitterBuffer(min_target=1, max_target=8)
    jb.set_jitter(0.0)
    assert jb.target == 1
    jb.set_jitter(1.0)  # one frame of measured jitter
    assert jb.target == 4
    jb.set_jitter(50.0)
    assert jb.target == 8


def simulate(
    clock_ratio: float,
    seconds: float,
    *,
    jitter_ms: float = 0.0,
    loss: float = 0.0,
    talking: bool = False,
    seed: int = 1,
) -> tuple[JitterBuffer, list[int], int]:
    """A sender whose clock runs ``clock_ratio`` times ours, through a noisy network.

    Returns the buffer, its depth after every pop, and how many frames played.
    """
    rng = random.Random(seed)
    stats = ReceiveStats(8000)
    jb = JitterBuffer(min_target=1, max_target=10)
    arrivals = []
    for seq in range(int(seconds / 0.02 * clock_ratio)):
        if rng.random() < loss:
            continue
        sent = seq * 0.02 / clock_ratio
        arrivals.append((sent + 0.005 + rng.uniform(0, jitter_ms / 1000), seq))
    arrivals.sort()
    depths, played, at = [], 0, 0
    for tick in range(int(seconds / 0.02)):
        now = tick * 0.02
        while at < len(arrivals) and arrivals[at][0] <= now:
            arrival, seq = arrivals[at]
            ext = stats.update(1, seq, seq * 160, arrival)
            if ext != DISCARD:
                jb.put(ext, payload(seq))
            at += 1
        jb.set_jitter(stats.jitter / 160)
        kind, _ = jb.pop(may_drop=not talking)
        played += kind == Playout.PLAY
        depths.append(jb.depth)
    return jb, depths, played


def test_fast_sender_clock_drift_stays_bounded() -> None:
    jb, depths, _ = simulate(1.01, 120.0, jitter_ms=8.0)
    # 1 % fast for two minutes is 60 extra frames; the buffer sheds them
    assert max(depths[500:]) <= jb.max_target + 2
    assert jb.drift_drops >= 50


def test_fast_sender_while_talking_still_bounded() -> None:
    jb, depths, _ = simulate(1.01, 120.0, talking=True)
    # forced drops even though the leg never falls silent: the delay stops growing
    assert max(depths[3000:]) <= 4
    assert jb.drift_drops >= 50


def test_slow_sender_clock_drift_conceals_and_stays_bounded() -> None:
    jb, depths, played = simulate(0.99, 60.0, jitter_ms=4.0)
    assert max(depths) <= jb.max_target + 2
    assert jb.underruns >= 20  # a frame short every ~2 s is concealed
    assert played >= 0.98 * 60 / 0.02 * 0.99


def test_loss_and_jitter_counted() -> None:
    jb, depths, _ = simulate(1.0, 20.0, jitter_ms=30.0, loss=0.05, seed=4)
    assert jb.lost > 0
    assert jb.target > 1  # 30 ms of jitter raised the target depth
    assert max(depths) <= jb.capacity


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 400)), max_size=300))
def test_any_sequence_of_puts_and_pops_stays_within_capacity(ops: list[tuple[bool, int]]) -> None:
    jb = JitterBuffer(capacity=30, max_target=10)
    for is_put, seq in ops:
        if is_put:
            jb.put(seq, payload(seq))
        else:
            kind, data = jb.pop(may_drop=seq % 2 == 0)
            assert (data is not None) == (kind == Playout.PLAY)
        assert jb.held <= jb.capacity
