#!/usr/bin/env python3
"""Draw durable throughput against concurrency as an SVG, from the CSV that
`CONCURRENCY_CSV=FILE cargo bench --bench throughput -- --only concurrency` writes.

    python3 benches/plot_concurrency.py FILE.csv docs/concurrency.svg

Plain SVG from the standard library, so CI and a fresh machine need nothing installed.
The x axis is log2 of the writers; the y axis is linear, from zero.
"""

import csv
import math
import sys

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 250, 40, 60
SERIES = [
    ("chargeledger", "chargeledger (event, indexes, projection; group commit)", "#1f77b4"),
    ("raw_sled_each_durable", "raw sled, each writer insert + flush + fdatasync", "#ff7f0e"),
    ("raw_sled_grouped", "raw sled, one flush + fdatasync per N inserts", "#2ca02c"),
]


def nice_ceiling(value):
    """The next round number above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_concurrency.py INPUT.csv OUTPUT.svg")
    with open(sys.argv[1], newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        sys.exit(f"{sys.argv[1]} holds no measurements")
    writers = [int(row["writers"]) for row in rows]
    top = nice_ceiling(max(float(row[key]) for row in rows for key, _, _ in SERIES))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    low, high = math.log2(min(writers)), math.log2(max(writers))

    def x_of(count):
        return LEFT + plot_width * (math.log2(count) - low) / max(high - low, 1)

    def y_of(rate):
        return TOP + plot_height * (1 - rate / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">Durable appends per second against concurrent writers</text>',
    ]
    for tick in range(6):
        rate = top * tick / 5
        y = y_of(rate)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_width}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{rate:,.0f}</text>')
    for count in writers:
        x = x_of(count)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_height}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_height + 18}" text-anchor="middle">{count}</text>')
    parts.append(
        f'<text x="{LEFT + plot_width / 2}" y="{HEIGHT - 18}" text-anchor="middle">concurrent writers</text>'
    )
    parts.append(
        f'<text x="18" y="{TOP + plot_height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + plot_height / 2})">durable appends / s</text>'
    )
    for index, (key, label, colour) in enumerate(SERIES):
        points = " ".join(f"{x_of(int(row['writers'])):.1f},{y_of(float(row[key])):.1f}" for row in rows)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for row in rows:
            parts.append(
                f'<circle cx="{x_of(int(row["writers"])):.1f}" cy="{y_of(float(row[key])):.1f}" r="3" fill="{colour}"/>'
            )
        legend_y = TOP + 10 + index * 44
        legend_x = WIDTH - RIGHT + 12
        parts.append(f'<rect x="{legend_x}" y="{legend_y - 9}" width="12" height="12" fill="{colour}"/>')
        words, line = label.split(), ""
        lines = []
        for word in words:
            if len(line) + len(word) > 28:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        for offset, text in enumerate(lines):
            parts.append(f'<text x="{legend_x + 18}" y="{legend_y + 1 + offset * 14}">{text}</text>')
    parts.append("</svg>")
    with open(sys.argv[2], "w") as handle:
        handle.write("\n".join(parts) + "\n")
    print(f"wrote {sys.argv[2]} from {len(rows)} measurements")


if __name__ == "__main__":
    main()
