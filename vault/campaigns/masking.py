"""k-anonymous counts for the marketing role: a count below k is shown as "< k".

Campaign forecasts and booking previews are read by marketers who must never single out
a customer (issue 21). Every count they see goes through `masked`; k is
`report_min_count` in policies/contact-pressure.toml (default 10). A count of 0 is also
masked: "nobody" is as telling as "one person" when filters are narrowed.
"""

from __future__ import annotations


def masked(count: int, k: int) -> int | str:
    """`count`, or "< k" when it is below k."""
    return count if count >= k else f"< {k}"
