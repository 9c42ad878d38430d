"""A total and the parts that add up to it are shown so that no masked part can be
recovered by subtracting the shown ones from the total (rules 1 and 2 of
`vault.campaigns.masking`)."""

from __future__ import annotations

from vault.campaigns.masking import HIDDEN, partition

K = 10


def _recoverable(total, parts) -> bool:
    """Whether exactly the unknown parts' sum is derivable and below k: total minus the
    shown parts, when at least one part is masked and the rest sum to less than k."""
    unknown = [v for v in parts.values() if not isinstance(v, int)]
    if not isinstance(total, int) or not unknown:
        return False
    rest = total - sum(v for v in parts.values() if isinstance(v, int))
    return 0 <= rest < K


def test_a_masked_reason_beside_shown_ones_hides_the_smallest_until_2k_are_out_of_sight():
    """audience 125 = 100 + 25 + 0 + 0: the zeros are "< 10", the 25 is hidden (0 + 25 >=
    20), the 100 stays a number; total minus shown is 25, not a count below k."""
    total, parts = partition(125, {"ok": 100, "basket": 25, "cap": 0, "quiet": 0}, K)
    assert (total, parts) == (125, {"ok": 100, "basket": HIDDEN, "cap": "< 10", "quiet": "< 10"})
    assert not _recoverable(total, parts)


def test_everyone_reachable_is_hidden_since_it_would_tell_the_other_reasons_are_zero():
    """audience 12, all reachable: showing 12 would prove the masked reasons are 0."""
    total, parts = partition(12, {"ok": 12, "basket": 0, "basis": 0}, K)
    assert (total, parts) == (12, {"ok": HIDDEN, "basket": "< 10", "basis": "< 10"})


def test_nothing_masked_shows_every_part_and_hide_hides_every_part_of_at_least_k():
    """No part below k: all numbers; `hide` (another rule) turns each of them into hidden
    but keeps "< k" for the small ones."""
    assert partition(50, {"a": 20, "b": 30}, K) == (50, {"a": 20, "b": 30})
    assert partition(50, {"a": 20, "b": 30}, K, hide=True) == (50, {"a": HIDDEN, "b": HIDDEN})
    assert partition(25, {"a": 20, "b": 5}, K, hide=True)[1] == {"a": HIDDEN, "b": "< 10"}


def test_no_split_of_a_small_audience_lets_a_masked_part_be_recovered():
    """Every split of audiences up to 40 into three parts: total minus the shown parts is
    never a count from 0 to k - 1 standing for masked parts."""
    for total in range(41):
        for a in range(total + 1):
            for b in range(total - a + 1):
                shown_total, parts = partition(total, {"a": a, "b": b, "c": total - a - b}, K)
                assert not _recoverable(shown_total, parts), (total, a, b, parts)
