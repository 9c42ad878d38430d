"""The console's charts: inline SVG drawn on the server (no script, no CDN), each with a
table of its numbers for screen readers.
"""

from __future__ import annotations

from markupsafe import Markup, escape

_W, _H, _L, _R, _T, _B = 640, 220, 48, 14, 14, 34


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value and top % 4 == 0:
            return top
    return ((value + 3) // 4) * 4


def _axes(chart_id: str, title: str, n: int, top: int, labels: list[str]) -> list[str]:
    pw, ph = _W - _L - _R, _H - _T - _B
    chart_id = escape(chart_id)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="{chart_id}-t" id="{chart_id}" font-family="system-ui,sans-serif" '
        f'font-size="11">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
    ]
    for i in range(5):
        value = top * i // 4
        y = _T + ph - ph * i / 4
        out.append(
            f'<line x1="{_L}" y1="{y:.1f}" x2="{_W - _R}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{_L - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">{value}</text>'
        )
    out.append(f'<line x1="{_L}" y1="{_T + ph}" x2="{_W - _R}" y2="{_T + ph}" stroke="#6b7280"/>')
    if n:
        picks = sorted({round(i * (n - 1) / 5) for i in range(6)}) if n > 6 else range(n)
        slot = pw / n
        for i in picks:
            x, anchor = _L + (i + 0.5) * slot, "middle"
            if n > 1 and i == 0:
                x, anchor = _L + 0.5 * slot - min(slot / 2, 4), "start"
            elif n > 1 and i == n - 1:
                x, anchor = _W - _R, "end"
            out.append(
                f'<text x="{x:.1f}" y="{_H - 12}" text-anchor="{anchor}" fill="#4b5563">'
                f"{escape(labels[i])}</text>"
            )
    return out


def stacked_bars_svg(
    chart_id: str, title: str, labels: list[str], stacks: list[tuple[str, str, list[int]]]
) -> Markup:
    """Stacked bars, one per bucket; `stacks` = (name, colour, values) bottom to top."""
    n = len(labels)
    totals = [sum(s[2][i] for s in stacks) for i in range(n)]
    top = _nice_max(max(totals, default=0))
    pw, ph = _W - _L - _R, _H - _T - _B
    out = _axes(chart_id, title, n, top, labels)
    width = max(1.0, pw / max(n, 1) * 0.7)
    for i in range(n):
        base = 0
        x = _L + (i + 0.5) * pw / n - width / 2
        for name, colour, values in stacks:
            v = values[i]
            if v:
                y = _T + ph - ph * (base + v) / top
                h = ph * v / top
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
                    f'fill="{escape(colour)}">'
                    f"<title>{escape(labels[i])}: {escape(name)} {v}</title></rect>"
                )
            base += v
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it is escaped; the rest numbers


def lines_svg(
    chart_id: str, title: str, labels: list[str], series: list[tuple[str, str, str, list[int]]]
) -> Markup:
    """One line per series: (name, colour, dash pattern, values)."""
    n = len(labels)
    top = _nice_max(max((max(s[3], default=0) for s in series), default=0))
    pw, ph = _W - _L - _R, _H - _T - _B
    out = _axes(chart_id, title, n, top, labels)
    for name, colour, dash, values in series:
        points = [
            (_L + (i + 0.5) * pw / max(n, 1), _T + ph - ph * v / top) for i, v in enumerate(values)
        ]
        if not points:
            continue
        dash_attr = f' stroke-dasharray="{escape(dash)}"' if dash else ""
        out.append(
            f'<polyline fill="none" stroke="{escape(colour)}" stroke-width="2"{dash_attr} points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            + f'"><title>{escape(name)}</title></polyline>'
        )
        if n <= 62:
            for (x, y), v in zip(points, values, strict=True):
                if v:
                    out.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{escape(colour)}">'
                        f"<title>{escape(name)} {v}</title></circle>"
                    )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it is escaped; the rest numbers
