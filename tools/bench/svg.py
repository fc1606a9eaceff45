"""Minimal SVG charts for the benchmark report: grouped bars and x/y lines, linear or log axes.
Standard library only; the output is plain SVG 1.1 that browsers and GitHub render."""

import math
from xml.sax.saxutils import escape

PALETTE = ['#1f77b4', '#d62728', '#ff7f0e', '#2ca02c', '#7f7f7f', '#9467bd', '#8c564b', '#17becf']
FONT = 'font-family="Helvetica, Arial, sans-serif"'


def fmt_num(v):
    if v == 0:
        return '0'
    a = abs(v)
    if a >= 1e6:
        s = '%g' % (v / 1e6)
        return s + 'M'
    if a >= 1e3:
        return '%gk' % (v / 1e3)
    if a >= 1:
        return '%g' % v
    return ('%.4f' % v).rstrip('0').rstrip('.')


class Axis:
    def __init__(self, lo, hi, log, pix_lo, pix_hi):
        if log:
            lo = max(lo, 1e-12)
            hi = max(hi, lo * 1.0001)
            self.lo = 10 ** math.floor(math.log10(lo))
            self.hi = 10 ** math.ceil(math.log10(hi))
        else:
            span = (hi - lo) or 1.0
            step = nice_step(span / 5)
            self.lo = math.floor(lo / step) * step
            self.hi = math.ceil(hi / step) * step
            self.step = step
        self.log = log
        self.pix_lo, self.pix_hi = pix_lo, pix_hi

    def __call__(self, v):
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return self.pix_lo + f * (self.pix_hi - self.pix_lo)

    def ticks(self):
        if self.log:
            out = []
            a, b = round(math.log10(self.lo)), round(math.log10(self.hi))
            mults = (1, 2, 5) if b - a <= 3 else (1,)
            for e in range(a, b + 1):
                for m in mults:
                    v = m * 10 ** e
                    if self.lo <= v <= self.hi * 1.0001:
                        out.append(v)
            return out
        n = int(round((self.hi - self.lo) / self.step))
        return [self.lo + i * self.step for i in range(n + 1)]


def nice_step(raw):
    e = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= raw:
            return m * e
    return 10 * e


class Canvas:
    def __init__(self, width, height):
        self.w, self.h = width, height
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor='middle', extra=''):
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" %s %s>%s</text>'
                 % (x, y, size, anchor, FONT, extra, escape(str(s))))

    def line(self, x1, y1, x2, y2, color='#000', width=1, dash=None):
        d = ' stroke-dasharray="%s"' % dash if dash else ''
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"%s/>'
                 % (x1, y1, x2, y2, color, width, d))

    def rect(self, x, y, w, h, color, title=None):
        t = '<title>%s</title>' % escape(title) if title else ''
        self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">%s</rect>'
                 % (x, y, w, max(h, 0), color, t))

    def save(self, path):
        with open(path, 'w') as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">\n'
                    % (self.w, self.h, self.w, self.h))
            f.write('<rect width="100%" height="100%" fill="white"/>\n')
            f.write('\n'.join(self.parts))
            f.write('\n</svg>\n')


def _frame(c, title, left, top, right, bottom, xlabel, ylabel):
    c.text(c.w / 2, 22, title, size=15, extra='font-weight="bold"')
    c.line(left, bottom, right, bottom)
    c.line(left, top, left, bottom)
    if xlabel:
        c.text((left + right) / 2, c.h - 12, xlabel, size=12)
    if ylabel:
        c.text(16, (top + bottom) / 2, ylabel, size=12,
               extra='transform="rotate(-90 16 %.1f)"' % ((top + bottom) / 2))


def _y_grid(c, ax, left, right, ticks=None):
    for t, label in (ticks if ticks is not None else [(t, fmt_num(t)) for t in ax.ticks()]):
        y = ax(t)
        c.line(left, y, right, y, color='#e0e0e0')
        c.text(left - 6, y + 4, label, size=11, anchor='end')


def _legend(c, items, x, y):
    for i, (name, color, dash) in enumerate(items):
        yy = y + 18 * i
        if dash is None:
            c.rect(x, yy - 9, 12, 12, color)
        else:
            c.line(x, yy - 3, x + 22, yy - 3, color=color, width=2.5, dash=dash or None)
        c.text(x + 28, yy + 2, name, size=12, anchor='start')


def bar_chart(path, title, groups, series, values, ylabel, xlabel=None, log=True, note=None,
              colors=None):
    """groups: x labels; series: names; values[s][g]: number or None (drawn as 'n/a')."""
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    width, height = 900, 460
    left, right, top, bottom = 80, width - 230, 45, height - 70
    c = Canvas(width, height)
    nums = [v for row in values for v in row if v is not None and v > 0]
    lo = min(nums) if nums else 1
    hi = max(nums) if nums else 10
    ax = Axis(lo if log else 0, hi, log, bottom, top)
    _frame(c, title, left, top, right, bottom, xlabel, ylabel)
    _y_grid(c, ax, left, right)
    gw = (right - left) / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(series))
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        c.text(left + gi * gw + gw / 2, bottom + 18, g, size=12)
        for si, s in enumerate(series):
            v = values[si][gi]
            x = gx + si * bw
            color = colors[si]
            if v is None or v <= 0:
                c.text(x + bw / 2, bottom - 4, 'n/a', size=9, extra='fill="#999"')
                continue
            y = ax(v)
            c.rect(x, y, bw - 1, bottom - y, color, title='%s, %s: %s' % (s, g, fmt_num(v)))
    _legend(c, [(s, colors[i], None) for i, s in enumerate(series)], right + 20, top + 10)
    if note:
        c.text(left, height - 30, note, size=10, anchor='start', extra='fill="#555"')
    c.save(path)


def line_chart(path, title, lines, xlabel, ylabel, logx=False, logy=False, xticks=None,
               ylim=None, yticks=None, note=None):
    """lines: dicts with name, points [(x, y)], and optional color, dash ('' = solid) and dots
    (False: no marker at each point, for dense lines; default True).
    xticks: values; yticks: (value, label) pairs replacing the automatic ones."""
    width, height = 900, 460
    left, right, top, bottom = 80, width - 250, 45, height - 70
    c = Canvas(width, height)
    xs = [p[0] for l in lines for p in l['points']]
    ys = [p[1] for l in lines for p in l['points']]
    if not xs:
        xs, ys = [1, 10], [1, 10]
    ax = Axis(min(xs), max(xs), logx, left, right)
    if ylim:
        ay = Axis(ylim[0], ylim[1], logy, bottom, top)
    else:
        ay = Axis(min(ys) if logy else min(0, min(ys)), max(ys), logy, bottom, top)
    _frame(c, title, left, top, right, bottom, xlabel, ylabel)
    _y_grid(c, ay, left, right, yticks)
    for t in (xticks if xticks is not None else ax.ticks()):
        x = ax(t)
        c.line(x, top, x, bottom, color='#eeeeee')
        c.text(x, bottom + 18, fmt_num(t), size=11)
    legend = []
    for i, l in enumerate(lines):
        color = l.get('color') or PALETTE[i % len(PALETTE)]
        dash = l.get('dash', '')
        pts = [(ax(x), ay(y)) for x, y in l['points']]
        if len(pts) > 1:
            d = ' stroke-dasharray="%s"' % dash if dash else ''
            c.add('<polyline fill="none" stroke="%s" stroke-width="2.2"%s points="%s"/>'
                  % (color, d, ' '.join('%.1f,%.1f' % p for p in pts)))
        for (px, py), (x, y) in (zip(pts, l['points']) if l.get('dots', True) else ()):
            c.add('<circle cx="%.1f" cy="%.1f" r="3.2" fill="%s"><title>%s: %s, %s</title></circle>'
                  % (px, py, color, escape(l['name']), fmt_num(x), fmt_num(y)))
        legend.append((l['name'], color, dash))
    _legend(c, legend, right + 20, top + 10)
    if note:
        c.text(left, height - 30, note, size=10, anchor='start', extra='fill="#555"')
    c.save(path)
