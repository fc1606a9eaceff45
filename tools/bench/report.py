"""Turns the benchmark's results (the dict that bench.py also saves as results.json) into
report.md and the SVG charts."""

import math
import os

import svg

ORDER = ['herd', 'ref', 'ref-seed', 'redis', 'null']       # the main table and the charts
RUN_ORDER = ['herd', 'herd-tls', 'ref', 'ref-seed', 'redis', 'null']   # every system that ran
COLORS = {'herd': '#1f77b4', 'ref': '#d62728', 'ref-seed': '#ff7f0e', 'redis': '#2ca02c',
          'null': '#7f7f7f', 'herd-tls': '#9467bd'}
SHORT = {'herd': 'C++ herd', 'ref': 'reference', 'ref-seed': 'ref. seed-style', 'redis': 'Redis',
         'null': 'herd-null', 'herd-tls': 'C++ herd, TLS peers'}
TLS_TARGET = 0.9            # the TLS herd keeps at least this share of the plaintext IAMAT throughput
OTHERS = ['ref', 'ref-seed', 'redis', 'null']


# ---------------------------------------------------------------------------------------------
# Getting figures out of the results.

def sysres(R, key):
    return R['systems'].get(key) or {}


def jget(rec, *path):
    """rec['json'][path...] or None."""
    if not rec:
        return None
    v = rec.get('json')
    for p in path:
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v


def tput(R, key, c, p):
    return jget(sysres(R, key).get('throughput', {}).get('%dx%d' % (c, p)), 'throughput')


def lat(rec, q):
    v = jget(rec, 'latency_us', q)
    return None if v is None else v / 1000.0  # ms


def prop_hop(R, key, hops, q):
    j = (sysres(R, key).get('propagation') or {}).get('json') or {}
    for h in j.get('by_hops', []):
        if h['hops'] == hops:
            return h.get(q)
    return None


def prop_missed(R, key, hops):
    return prop_hop(R, key, hops, 'missed')


def mem(R, key):
    return sysres(R, key).get('memory') or {}


def mem_entry_mb(R, key):
    m = mem(R, key)
    v = (m.get('rss_after_kb') or {}).get(m.get('entry'))
    return None if v is None else v / 1024.0


def mem_max_mb(R, key):
    vals = [v for v in (mem(R, key).get('rss_after_kb') or {}).values() if v]
    return max(vals) / 1024.0 if vals else None


def mem_growth_per_client(R, key):
    m = mem(R, key)
    e = m.get('entry')
    a, b = (m.get('rss_after_kb') or {}).get(e), (m.get('rss_before_kb') or {}).get(e)
    n = m.get('clients_reached')
    if not a or not b or not n:
        return None
    return (a - b) * 1024.0 / n


def idle(R, key):
    return sysres(R, key).get('idle') or {}


# ---------------------------------------------------------------------------------------------
# Formatting.

def f_rate(v):
    return '—' if v is None else '{:,.0f}/s'.format(v)


def f_ms(v):
    if v is None:
        return '—'
    return '%.3f ms' % v if v < 10 else '%.1f ms' % v


def f_mb(v):
    return '—' if v is None else '%.0f MB' % v


def f_int(v):
    return '—' if v is None else '{:,}'.format(int(v))


def f_ratio(r):
    if r is None:
        return ''
    if r >= 100:
        return '%.0f×' % r
    if r >= 10:
        return '%.1f×' % r
    return '%.2f×' % r


def ratio(herd, other, higher_better):
    if herd is None or other is None or herd <= 0 or other <= 0:
        return None
    return herd / other if higher_better else other / herd


# ---------------------------------------------------------------------------------------------
# The report.

def results_rows(R, scale):
    """(label, {system: (value, formatted)}, higher_better) rows of the main table."""
    rows = []

    def row(label, fn, fmt, higher_better, keys=ORDER, phase=None):
        vals = {}
        for k in keys:
            if k in R['systems'] and (phase is None or phase in R['systems'][k].get('phases', ())):
                v = fn(k)
                vals[k] = (v, fmt(v))
        rows.append((label, vals, higher_better))

    for c in scale['connections']:
        for p in scale['pipelines']:
            row('IAMAT throughput, %d conn%s, pipeline %d' % (c, '' if c == 1 else 's', p),
                lambda k, c=c, p=p: tput(R, k, c, p), f_rate, True)
    row('WHATSAT throughput, 50 conns (offline places)',
        lambda k: jget(sysres(R, k).get('whatsat'), 'throughput'), f_rate, True, phase='whatsat')
    row('open loop: rate (half of the pipeline-1 peak)',
        lambda k: (sysres(R, k).get('openloop') or {}).get('rate'), f_rate, True)
    for q, name in (('p50', 'p50'), ('p99', 'p99'), ('p99.9', 'p99.9')):
        row('open loop at half peak: latency %s' % name,
            lambda k, q=q: lat(sysres(R, k).get('openloop'), q), f_ms, False)
    hops = R['meta'].get('prop_hops', 3)
    for h in range(1, hops + 1):
        for q in ('p50_ms', 'p99_ms'):
            row('propagation at half peak, %d hop%s, %s' % (h, '' if h == 1 else 's', q[:3]),
                lambda k, h=h, q=q: prop_hop(R, k, h, q), f_ms, False, keys=['herd', 'ref', 'ref-seed'])
    row('idle connections held',
        lambda k: (idle(R, k).get('holder') or {}).get('held'), f_int, True, phase='idle')
    row('light load (%g/s) beside them: latency p99' % scale['idle_rate'],
        lambda k: lat(idle(R, k).get('load'), 'p99'), f_ms, False, phase='idle')
    row('distinct clients stored (of %s)' % f_int(scale['mem_clients']),
        lambda k: mem(R, k).get('clients_reached'), f_int, True, keys=['herd', 'ref', 'redis'])
    row('resident memory, entry server', lambda k: mem_entry_mb(R, k), f_mb, False,
        keys=['herd', 'ref', 'redis'])
    row('resident memory, largest server', lambda k: mem_max_mb(R, k), f_mb, False,
        keys=['herd', 'ref', 'redis'])
    row('entry server growth per client stored', lambda k: mem_growth_per_client(R, k),
        lambda v: '—' if v is None else '%.0f B' % v, False, keys=['herd', 'ref', 'redis'])
    return rows


def results_table(R, scale):
    present = [k for k in ORDER if k in R['systems']]
    head = ['scenario']
    for k in present:
        head.append(SHORT[k])
        if k != 'herd' and 'herd' in present:
            head.append('herd vs %s' % SHORT[k])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for label, vals, hb in results_rows(R, scale):
        cells = [label]
        hv = vals.get('herd', (None, ''))[0]
        for k in present:
            v, txt = vals.get(k, (None, '—'))
            cells.append(txt if k in vals else 'n/a')
            if k != 'herd' and 'herd' in present:
                cells.append(f_ratio(ratio(hv, v, hb)) if k in vals else '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def targets(R):
    """[(target text, figures text, MET/MISSED/NOT MEASURED)]."""
    out = []
    meta = R['meta']

    def verdict(ok):
        return 'NOT MEASURED' if ok is None else ('MET' if ok else 'MISSED')

    h50 = tput(R, 'herd', 50, 1)
    for key, need, what in (('ref', 10.0, 'the asyncio reference (same design)'),
                            ('ref-seed', 100.0, 'the reference in --seed-style'),
                            ('redis', 1.0, 'Redis GEOADD')):
        o = tput(R, key, 50, 1)
        r = ratio(h50, o, True)
        out.append(('IAMAT throughput, 50 conns, no pipelining, ≥ %g× %s' % (need, what),
                    'herd %s vs %s → %s' % (f_rate(h50), f_rate(o), f_ratio(r) or '—'),
                    verdict(None if r is None else r >= need)))
    h16, r16 = tput(R, 'herd', 50, 16), tput(R, 'redis', 50, 16)
    r = ratio(h16, r16, True)
    out.append(('IAMAT throughput, 50 conns, pipelining 16, ≥ 1.5× Redis GEOADD',
                'herd %s vs %s → %s' % (f_rate(h16), f_rate(r16), f_ratio(r) or '—'),
                verdict(None if r is None else r >= 1.5)))
    n50 = tput(R, 'null', 50, 1)
    r = ratio(h50, n50, True)
    gen = jget(sysres(R, 'null').get('throughput', {}).get('50x1'), 'cpu_percent')
    bound = ('; herd-null\'s figure is the generator\'s limit (generator CPU %.0f%%), its real '
             'ceiling is higher' % gen) if gen and gen >= 90 * meta['gen_threads'] else ''
    out.append(('≥ 80% of the do-nothing server\'s throughput at 50 conns, no pipelining',
                'herd %s vs herd-null %s → %s%s' % (f_rate(h50), f_rate(n50),
                                                    '—' if r is None else '%.0f%%' % (100 * r), bound),
                verdict(None if r is None else r >= 0.8)))
    hops = meta.get('prop_hops', 3)
    p99 = prop_hop(R, 'herd', hops, 'p99_ms')
    missed = prop_missed(R, 'herd', hops)
    rate = (sysres(R, 'herd').get('openloop') or {}).get('rate')
    out.append(('propagation to the farthest server (%d hops) p99 < 1 ms at half of peak load' % hops,
                '%s → %s: p99 %s, missed %s, under %s' % (
                    meta.get('prop_entry'), meta.get('prop_far'), f_ms(p99),
                    '—' if missed is None else missed, f_rate(rate)),
                verdict(None if p99 is None else (p99 < 1.0 and not missed))))
    m = mem(R, 'herd')
    mx = mem_max_mb(R, 'herd')
    reached, wanted = m.get('clients_reached'), m.get('clients_wanted')
    out.append(('%s distinct clients: ≤ 256 MB resident per server' % f_int(wanted or 1000000),
                'stored %s; largest server %s, entry %s' % (f_int(reached), f_mb(mx),
                                                           f_mb(mem_entry_mb(R, 'herd'))),
                verdict(None if mx is None else (mx <= 256 and reached == wanted))))
    hold = idle(R, 'herd').get('holder') or {}
    ip99 = lat(idle(R, 'herd').get('load'), 'p99')
    errs = jget(idle(R, 'herd').get('load'), 'errors', 'total')
    want = R['meta']['scale']['idle_connections']
    out.append(('%s idle connections held, light load still answered with p99 < 1 ms' % f_int(want),
                'held %s (still open at the end: %s), p99 %s, errors %s' % (
                    f_int(hold.get('held')), f_int(hold.get('still_open')), f_ms(ip99),
                    '—' if errs is None else errs),
                verdict(None if ip99 is None else (
                    ip99 < 1.0 and hold.get('held') == want and hold.get('still_open') == want
                    and not errs))))
    if 'herd-tls' in R['systems']:
        pl, tl, r, lo, hi = tls_pair(R, '50x1')
        out.append(('IAMAT over TLS peer links, 50 conns, no pipelining: ≥ %.0f%% of the plaintext '
                    'herd\'s throughput' % (100 * TLS_TARGET),
                    'TLS %s vs plaintext %s (means of interleaved runs) → %s%s' % (
                        f_rate(tl), f_rate(pl), '—' if r is None else '%.0f%%' % (100 * r),
                        '' if lo is None else ' (rounds: %.0f%%–%.0f%%)' % (100 * lo, 100 * hi)),
                    verdict(None if r is None else r >= TLS_TARGET)))
    for key in ('herd', 'ref'):
        rec = sysres(R, key).get('whatsat_sim')
        if rec is None:
            continue
        st = rec.get('steady') or {}
        hs = st.get('handshakes_per_s')
        out.append(('WHATSAT through the places simulator (%s): no TLS handshakes to the upstream in '
                    'steady state' % SHORT[key],
                    '%s handshakes/s over %s s (%s in all, during the ramp)' % (
                        '—' if hs is None else '%g' % hs, st.get('seconds', '—'),
                        st.get('handshakes_total', '—')) if hs is not None
                    else st.get('problem', 'not measured'),
                    verdict(None if hs is None else hs == 0)))
    return out


def whatsat_sim_table(R):
    """The WHATSAT-through-the-simulator runs, C++ herd beside the reference."""
    lines = ['| system | WHATSAT/s (replies arriving) | generator throughput | p50 | p99 | herd CPU (steady) | CPU per WHATSAT (steady) | '
             'CPU per WHATSAT (whole run) | simulator CPU (steady) | simulator requests/s (steady) | '
             'TLS handshakes/s (steady) | handshakes in all | failing places statuses |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    vals = {}
    for key in ('herd', 'ref'):
        rec = sysres(R, key).get('whatsat_sim')
        if rec is None:
            continue
        j = rec.get('json') or {}
        t = j.get('arrival_rate') or j.get('throughput') or 0
        per = (rec.get('cpu') or {}).get('proc_cpu_percent', {})
        whole = sum(per.values()) / 100.0 / t * 1e6 if t else None
        st = rec.get('steady') or {}
        steady = st.get('herd_cpu_us_per_whatsat')

        def pc(v):
            return '—' if v is None else '%.0f%%' % v

        def us(v):
            return '—' if v is None else '%.0f µs' % v
        vals[key] = (t, lat(rec, 'p50'), lat(rec, 'p99'), steady if steady is not None else whole,
                     st.get('requests_per_s'))
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            SHORT[key], (f_rate(j.get('arrival_rate')) if 'arrival_rate' in j else 'n/a (older herd-load)')
            if j else rec.get('problem', '—'), f_rate(j.get('throughput')), f_ms(lat(rec, 'p50')),
            f_ms(lat(rec, 'p99')), pc(st.get('herd_cpu_percent')), us(steady), us(whole),
            pc(st.get('sim_cpu_percent')), f_rate(st.get('requests_per_s')),
            st.get('handshakes_per_s', st.get('problem', '—')), st.get('handshakes_total', '—'),
            j.get('whatsat_status_not_ok', '—')))
    if 'herd' in vals and 'ref' in vals:
        h, r = vals['herd'], vals['ref']
        lines.append('| herd vs reference | %s | | %s | %s | | %s | | | %s | | | |' % (
            f_ratio(ratio(h[0], r[0], True)), f_ratio(ratio(h[1], r[1], False)),
            f_ratio(ratio(h[2], r[2], False)), f_ratio(ratio(h[3], r[3], False)),
            f_ratio(ratio(h[4], r[4], True))))
    return '\n'.join(lines)


def tls_pair(R, key):
    """(plaintext mean, TLS mean, TLS ÷ plaintext, lowest and highest ratio of one round) of the
    interleaved runs; Nones where something is missing."""
    runs = (sysres(R, 'herd-tls').get('tls_pairs') or {}).get(key) or {}
    pl = [jget(x, 'throughput') for x in runs.get('plain', [])]
    tl = [jget(x, 'throughput') for x in runs.get('tls', [])]
    if not pl or not tl or None in pl or None in tl:
        return None, None, None, None, None
    mp, mt = sum(pl) / len(pl), sum(tl) / len(tl)
    rounds = [t / p for p, t in zip(pl, tl) if p]
    return (mp, mt, ratio(mt, mp, True), min(rounds) if rounds else None,
            max(rounds) if rounds else None)


def tls_table(R):
    """IAMAT throughput of the TLS herd beside the plaintext one (interleaved runs)."""
    lines = ['| IAMAT, closed loop | plaintext peer links | TLS peer links | TLS ÷ plaintext | '
             'per round |', '|---|---|---|---|---|']
    for p in (1, 16):
        pl, tl, r, lo, hi = tls_pair(R, '50x%d' % p)
        lines.append('| 50 conns, pipeline %d | %s | %s | %s | %s |' % (
            p, f_rate(pl), f_rate(tl), '—' if r is None else '%.0f%%' % (100 * r),
            '—' if lo is None else '%.0f%%–%.0f%%' % (100 * lo, 100 * hi)))
    return '\n'.join(lines)


def runs_table(R):
    lines = ['| system | run | replies/s | p50 | p99 | p99.9 | generator CPU | entry server CPU | '
             'other servers CPU | machine busy | not ours | errors |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for key in RUN_ORDER:
        S = R['systems'].get(key)
        if not S:
            continue
        recs = list((S.get('throughput') or {}).values())
        for name in ('whatsat', 'openloop', 'whatsat_sim'):
            if S.get(name):
                recs.append(S[name])
        for pair in (S.get('tls_pairs') or {}).values():
            for a, b in zip(pair.get('plain', []), pair.get('tls', [])):
                recs += [a, b]
        if (S.get('idle') or {}).get('load'):
            recs.append(S['idle']['load'])
        if (S.get('memory') or {}).get('run'):
            recs.append(S['memory']['run'])
        entry = R['meta']['load_entry'] if S['kind'] == 'herd' else key
        for rec in recs:
            j = rec.get('json') or {}
            per = (rec.get('cpu') or {}).get('proc_cpu_percent', {})
            ecpu = per.get(entry)
            ocpu = sum(v for k, v in per.items() if k != entry) if len(per) > 1 else None
            errs = (j.get('errors') or {}).get('total')
            busy = (rec.get('cpu') or {}).get('machine_busy_percent', 0)
            ours = (sum(per.values()) + (j.get('cpu_percent', 0) if j else 0)
                    + (rec.get('sim_cpu_percent') or 0))   # the places simulator is ours too
            lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                SHORT[key], rec['name'], f_rate(j.get('throughput')) if j else rec.get('problem', '—'),
                f_ms(lat(rec, 'p50')), f_ms(lat(rec, 'p99')), f_ms(lat(rec, 'p99.9')),
                '—' if not j else '%.0f%%%s' % (j.get('cpu_percent', 0), ' (generator-bound)'
                                                 if j.get('cpu_percent', 0) >= 90 * R['meta']['gen_threads']
                                                 else ''),
                '—' if ecpu is None else '%.0f%%' % ecpu,
                '—' if ocpu is None else '%.0f%%' % ocpu,
                '%.0f%%' % busy, '%.0f%%' % max(0.0, busy - ours),
                '—' if errs is None else errs))
    return '\n'.join(lines)


def cpu_per_request(R):
    """Microseconds of CPU per reply in the 50-connection, pipeline-1 IAMAT run: where the CPU goes."""
    lines = ['| system | replies/s | entry server | other servers (floods) | generator | all of ours | '
             'not ours (other work on the machine) |',
             '|---|---|---|---|---|---|---|']
    for key in ORDER:
        S = R['systems'].get(key)
        rec = (S or {}).get('throughput', {}).get('50x1')
        j = (rec or {}).get('json')
        if not j or not j.get('throughput'):
            continue
        t = j['throughput']
        per = rec['cpu']['proc_cpu_percent']
        entry = R['meta']['load_entry'] if S['kind'] == 'herd' else key
        e = per.get(entry, 0.0)
        o = sum(v for k, v in per.items() if k != entry)
        g = j.get('cpu_percent', 0.0)
        busy = rec['cpu'].get('machine_busy_percent', 0.0)

        def us(pct):
            return '%.1f µs' % (pct / 100.0 / t * 1e6)
        lines.append('| %s | %s | %s | %s | %s | %s | %.0f%% of a core |' % (
            SHORT[key], f_rate(t), us(e), us(o) if S['kind'] == 'herd' else '—', us(g),
            us(e + o + g), max(0.0, busy - e - o - g)))
    return '\n'.join(lines)


def charts(R, out):
    scale = R['meta']['scale']
    present = [k for k in ORDER if k in R['systems']]
    written = []
    for p in scale['pipelines']:
        name = 'throughput_p%d.svg' % p
        svg.bar_chart(
            os.path.join(out, name), 'IAMAT throughput at one entry server, pipeline %d' % p,
            ['%d conn%s' % (c, '' if c == 1 else 's') for c in scale['connections']],
            [SHORT[k] for k in present],
            [[tput(R, k, c, p) for c in scale['connections']] for k in present],
            'replies per second (log scale)', xlabel='client connections',
            colors=[COLORS[k] for k in present],
            note='Redis: GEOADD; herd-null: a fixed line per line. Five-server herds, flooding and logging on.')
        written.append(name)

    def cdf_lines(get):
        lines = []
        for k in present:
            rec = get(k)
            pts = []
            for q, y in (('p50', 0.5), ('p90', 0.9), ('p99', 0.99), ('p99.9', 0.999)):
                v = lat(rec, q)
                if v is not None and v > 0:
                    pts.append((v, -math.log10(1 - y)))
            if pts:
                lines.append({'name': SHORT[k], 'points': pts, 'color': COLORS[k]})
        return lines

    yt = [(-math.log10(1 - y), label) for y, label in
          ((0.5, 'p50'), (0.9, 'p90'), (0.99, 'p99'), (0.999, 'p99.9'))]
    lines = cdf_lines(lambda k: sysres(R, k).get('openloop'))
    if lines:
        svg.line_chart(os.path.join(out, 'latency_cdf.svg'),
                       'Latency CDF, open loop at half of each system\'s own peak', lines,
                       'latency, ms (log scale, from the intended send time)', 'percentile',
                       logx=True, ylim=(0.25, 3.0), yticks=yt,
                       note='Each system at half of its own pipeline-1 peak: the rates differ (see the table).')
        written.append('latency_cdf.svg')
    lines = cdf_lines(lambda k: idle(R, k).get('load'))
    if lines:
        svg.line_chart(os.path.join(out, 'latency_cdf_idle.svg'),
                       'Latency CDF, light load (%g/s) beside %s idle connections'
                       % (scale['idle_rate'], f_int(scale['idle_connections'])), lines,
                       'latency, ms (log scale)', 'percentile', logx=True, ylim=(0.25, 3.0),
                       yticks=yt)
        written.append('latency_cdf_idle.svg')

    hops = R['meta'].get('prop_hops', 3)
    plines = []
    for k in ('herd', 'ref', 'ref-seed'):
        for q, dash in (('p99_ms', ''), ('p50_ms', '5,4')):
            pts = [(h, prop_hop(R, k, h, q)) for h in range(1, hops + 1)]
            pts = [(x, y) for x, y in pts if y]
            if pts:
                plines.append({'name': '%s %s' % (SHORT[k], q[:3]), 'points': pts,
                               'color': COLORS[k], 'dash': dash})
    if plines:
        svg.line_chart(os.path.join(out, 'propagation.svg'),
                       'Propagation delay by hops, at half of peak load', plines,
                       'hops from %s' % R['meta'].get('prop_entry'), 'delay until visible, ms (log scale)',
                       logy=True, xticks=list(range(1, hops + 1)),
                       note='Resolution: one WHATSAT poll round trip. Solid: p99; dashed: p50.')
        written.append('propagation.svg')

    mk = [k for k in ('herd', 'ref', 'redis') if k in R['systems'] and mem(R, k)]
    if mk:
        svg.bar_chart(os.path.join(out, 'memory.svg'),
                      'Resident memory after %s distinct clients' % f_int(scale['mem_clients']),
                      ['entry server', 'largest server'], [SHORT[k] for k in mk],
                      [[mem_entry_mb(R, k), mem_max_mb(R, k)] for k in mk], 'MB (log scale)',
                      colors=[COLORS[k] for k in mk],
                      note='VmRSS from /proc after the ingest (the reference may be capped by time: see the table).')
        written.append('memory.svg')
    return written


def write(R, out):
    meta = R['meta']
    scale = meta['scale']
    pics = charts(R, out)
    L = []
    L.append('# herd benchmark%s' % (' (quick smoke run: tiny scale, figures not meaningful)'
                                     if meta['quick'] else ''))
    L.append('')
    L.append('Run %s, %.0f s in all. Generated by `%s` (tools/bench/bench.py).' % (
        meta['started'], meta.get('seconds', 0), 'make bench-quick' if meta['quick'] else 'make bench'))
    L.append('')
    L.append('**Machine:** %d cores (%s), Linux %s; load average %.2f at the start, %.2f at the end; '
             'RLIMIT_NOFILE %s (soft, hard at start; raised to the hard limit for every process '
             'started). Redis %s.' % (
                 meta['cores'], meta['cpu_model'], meta['kernel'], meta['loadavg_start'][0],
                 meta.get('loadavg_end', [0])[0], '/'.join(str(x) for x in meta['nofile']),
                 meta.get('redis_version') or '?'))
    L.append('')
    L.append('**Settings.** All processes share the same %d cores. The generator (build/herd-load) '
             'runs with **%d thread%s** for every system. Each C++ herd server runs **%d event loop%s** '
             '(`threads: %d`), and herd-null gets the same %d: five servers plus the generator already '
             'outnumber the cores, the entry server is the only one that handles client traffic, and '
             'more loops per server would only add context switches and cross-thread handoffs; the '
             'reference and Redis are single-threaded as well. Closed-loop runs: %g s warm-up, %g s '
             'measured. Load goes to **%s** (the best-connected server: each update it takes is flooded '
             'to the most neighbours); propagation is measured from **%s** to every server, the farthest '
             'being **%s** at %d hops. Logging is on for every herd server (log files are emptied '
             'between runs to bound disk use).' % (
                 meta['cores'], meta['gen_threads'], '' if meta['gen_threads'] == 1 else 's',
                 meta['herd_threads'], '' if meta['herd_threads'] == 1 else 's', meta['herd_threads'],
                 meta['herd_threads'], scale['warmup'], scale['duration'], meta['load_entry'],
                 meta['prop_entry'], meta['prop_far'], meta['prop_hops']))
    L.append('')
    L.append('## How to read this')
    L.append('')
    L.append('Every figure comes from this one run; each system was started, driven by the same '
             'generator with the same settings, and stopped before the next one started. The '
             '"herd vs X" columns are ratios written so that **above 1 means the C++ herd is better** '
             '(throughput: herd ÷ X; latency and memory: X ÷ herd). Against herd-null, the do-nothing '
             'server, the ratio is the share of the floor-and-ceiling throughput the herd reaches. '
             'Latencies are measured by the generator from each request\'s *intended* send time in '
             'open-loop runs, so a stall cannot hide. Redis is driven with GEOADD (for IAMAT) and '
             'GEOSEARCH (for WHATSAT) — a single server with no flooding or logging, the yardstick of '
             'a well-tuned single-threaded store. The "runs" table lists every generator run with the '
             'generator\'s own CPU and the CPU of the servers: a process near 100%% of a core is the '
             'bottleneck of that run, and machine busy near %d%% means the cores were full.'
             % (100 * meta['cores']))
    L.append('')
    L.append('## Targets')
    L.append('')
    L.append('| target | figures | result |')
    L.append('|---|---|---|')
    for t, fig, v in targets(R):
        L.append('| %s | %s | **%s** |' % (t, fig, v))
    L.append('')
    L.append('## Results')
    L.append('')
    L.append(results_table(R, scale))
    L.append('')
    status = ['%s: %s (%.0f s)' % (SHORT[k], R['systems'][k].get('status', '?'),
                                   R['systems'][k].get('seconds', 0))
              for k in RUN_ORDER if k in R['systems']]
    L.append('Systems: ' + '; '.join(status) + '.')
    mref = mem(R, 'ref')
    if mref.get('capped'):
        L.append('')
        L.append('The reference\'s memory phase was capped at %.0f s: it stored %s of %s clients by then '
                 '(counted from %s); its RSS is what it had reached.' % (
                     mref['cap_s'], f_int(mref.get('clients_reached')), f_int(mref.get('clients_wanted')),
                     mref.get('reached_by')))
    L.append('')
    L.append('### Where the CPU goes (IAMAT, 50 connections, no pipelining)')
    L.append('')
    L.append('CPU time per reply, from the CPU each process used during the run divided by the replies. '
             'On a machine whose cores are full, throughput is roughly the CPU on offer divided by '
             '"all of ours": a herd pays for the flood traffic of the other servers on the same cores.')
    L.append('')
    L.append(cpu_per_request(R))
    L.append('')
    if any('whatsat_sim' in (R['systems'].get(k) or {}) for k in ('herd', 'ref')):
        rec = sysres(R, 'herd').get('whatsat_sim') or sysres(R, 'ref').get('whatsat_sim')
        L.append('### WHATSAT through the places simulator (%d ms of upstream latency)'
                 % rec.get('latency_ms', 20))
        L.append('')
        L.append('Each herd restarted with `places: {provider: google, endpoint: https://127.0.0.1:PORT, '
                 'ca_file: <the run\'s CA>}` pointed at tools/places_sim (legacy Nearby Search over '
                 'HTTPS, %d ms injected before each answer), default `max_inflight` (256 upstream '
                 'requests per server); `herd-load --seed` IAMATs every client first, then sends only '
                 'WHATSAT (radius 10 km, bound 5) from %d connections, one request in flight each. '
                 'The simulator\'s counters (GET /_sim/stats) are sampled every 0.25 s: the steady '
                 'window starts %g s after its first WHATSAT request and ends with the run; the CPU '
                 'of the five herd servers and of the simulator (from /proc) is sampled with them. '
                 'CPU per WHATSAT (steady) is the herd\'s CPU in that window divided by the '
                 'generator\'s WHATSAT rate; "whole run" divides the CPU of the whole run (seeding '
                 'included) instead. "WHATSAT/s" counts every reply that arrived in the generator\'s '
                 'measured window; the generator\'s usual throughput counts only requests sent in the '
                 'window and answered in it, which undercounts when a reply takes a sizeable part of the '
                 'window (p50 near 2 s for the reference here). One WHATSAT is one upstream request '
                 '(every client sits at its own location), so the simulator\'s requests/s is a third, '
                 'independent measure of the same rate. **The simulator is a single Python process and tops out near 2,000 '
                 'requests/s on this machine: when its CPU is near 100%% of a core, it, not the herd, '
                 'is the limit of both figures**, and the herd\'s extra capacity shows only as CPU '
                 'left idle.' % (rec.get('latency_ms', 20), scale['sim_connections'],
                                  scale['sim_warmup']))
        L.append('')
        L.append(whatsat_sim_table(R))
        L.append('')
    if 'herd-tls' in R['systems']:
        L.append('### IAMAT over TLS peer links')
        L.append('')
        L.append('The same five-server herd with `peer_tls` (certificates from tools/certs.py in the '
                 'run\'s directory): every flooded record travels over mutually authenticated TLS. A '
                 'plaintext copy of the herd runs beside it and the same closed-loop load goes to one, '
                 'then the other, %d rounds alternating which goes first (so that other work on the '
                 'machine weighs on both alike); means of the rounds, and the lowest and highest ratio '
                 'of one round. The runs are listed in the runs table (the plaintext ones under '
                 '"C++ herd, TLS peers" too, marked "plain").' % scale.get('tls_rounds', 0))
        L.append('')
        L.append(tls_table(R))
        L.append('')
    L.append('## Charts')
    L.append('')
    for p in pics:
        L.append('![%s](%s)' % (p[:-4], p))
        L.append('')
    L.append('## Runs: generator and server CPU')
    L.append('')
    L.append('CPU is %% of one core over the run (warm-up included), from /proc for the servers and '
             'from getrusage for the generator; "other servers" is the sum over the other herd servers '
             '(their work is the flood traffic). "Machine busy" is all CPU use on the machine (%d00%% = '
             'every core), "not ours" is what is left of it after the generator and the servers: '
             'other work sharing the machine (roughly: the generator\'s figure also counts its start).'
             % meta['cores'])
    L.append('')
    L.append(runs_table(R))
    L.append('')
    L.append('## Caveats')
    L.append('')
    cav = [
        'Two cores are shared by the generator and every server of the system under test; the '
        'generator\'s CPU is in the runs table. Where generator plus entry server fill both cores, the '
        'figure is a joint limit of the machine, not of the server alone.',
        'The machine may be shared with other work: "machine busy" above the sum of our processes is '
        'somebody else\'s. Load average at the start was %.2f. Short runs; expect ±10-20%% between runs.'
        % meta['loadavg_start'][0],
        'Loopback only: no network latency or bandwidth limits, so latencies are mostly scheduling '
        'and syscalls.',
        'Redis and herd-null are single servers: they do no flooding and (herd-null) no parsing, logging '
        'or storage. The herds carry every update to four other servers in the same two cores.',
        'The latency CDF is drawn through the generator\'s p50/p90/p99/p99.9 only, not a full '
        'histogram; the max is in results.json.',
        'Propagation resolution is one WHATSAT poll round trip per server; delays below that are '
        'rounded up to it. The poller adds a little load of its own.',
        'Memory: VmRSS of each server process after the ingest, measured once; allocator caches count. '
        'Clients carry short IDs (c<k>.load) and one location each.',
        'The open-loop rate is half of the best pipeline-1 closed-loop throughput of the same system '
        '(so each system runs at a different absolute rate).',
        'Log files are emptied between runs (logging itself stays on).',
        'WHATSAT through the simulator: the simulator (one Python process) shares the two cores with '
        'the herd and the generator, and near 2,000 requests/s it is the bottleneck; its CPU is in the '
        'table. Throughput there is bounded by the simulator, so the herd-vs-reference ratio '
        'understates the difference; CPU per WHATSAT is the fairer comparison. The C++ herd '
        'coalesces identical requests per loop and the reference per server; every generator client '
        'sits at its own location, so few requests are identical.',
        'TLS peer links: the TLS and plaintext runs are interleaved, yet each is only %g s long, so '
        'other work on the machine can still move one round\'s ratio by ±10%% or more (the spread is '
        'in the table).' % scale['duration'],
        'Single-connection runs measure little but wake-up latency: with one request in flight the '
        'cores idle between requests, and a virtual machine\'s idle cores wake slowly. A herd keeps '
        'the cores busy with its flood traffic, which flatters its 1-connection figures against Redis '
        'and herd-null.',
        'A run whose generator CPU is marked "generator-bound" measured the generator (one thread, as '
        'for every system) rather than the server; this happens with herd-null and can with Redis.',
        'The asyncio herds can fall behind on their floods during a run (seed-style especially: its '
        'entry server may stop answering clients while it opens flood connections, which shows as '
        '0/s); their client-side throughput does not wait for the floods to be delivered.',
    ]
    for c in cav:
        L.append('- ' + c)
    for n in R.get('notes', []):
        L.append('- Note from this run: ' + n)
    for w in R.get('warnings', []):
        L.append('- Warning from this run: ' + w)
    for f in R.get('failures', []):
        L.append('- **FAILURE in this run:** ' + f)
    L.append('')
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(L))
