"""Turns the benchmark's results (the dict that bench.py also saves as results.json) into
report.md and the SVG charts."""

import math
import os

import svg

ORDER = ['herd', 'ref', 'ref-seed', 'redis', 'redis-rep', 'null']   # the main table and the charts
RUN_ORDER = ['herd', 'herd-one', 'ring', 'herd-tls', 'ref', 'ref-seed', 'redis', 'redis-rep',
             'null']   # every system that ran
AT50 = ['herd', 'herd-one', 'ref', 'ref-seed', 'redis', 'redis-rep', 'null']  # the 50-connection table
COLORS = {'herd': '#1f77b4', 'ref': '#d62728', 'ref-seed': '#ff7f0e', 'redis': '#2ca02c',
          'null': '#7f7f7f', 'herd-tls': '#9467bd', 'herd-one': '#17becf', 'redis-rep': '#8c564b',
          'ring': '#bcbd22'}
SHORT = {'herd': 'C++ herd', 'ref': 'reference', 'ref-seed': 'ref. seed-style', 'redis': 'Redis',
         'null': 'herd-null', 'herd-tls': 'C++ herd, TLS peers', 'herd-one': 'C++ herd, one server',
         'redis-rep': 'Redis + 4 replicas', 'ring': 'C++ ring'}
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


def rate_of(rec):
    """A run's throughput, None when missing, 'FAILED' when the run got no reply."""
    if not rec:
        return None
    if rec.get('failed'):
        return 'FAILED'
    return jget(rec, 'throughput')


def rate_num(rec):
    """A run's throughput as a number, None when missing or failed."""
    v = rate_of(rec)
    return v if isinstance(v, (int, float)) else None


def tput(R, key, c, p):
    """Closed-loop IAMAT throughput at c connections, pipeline p (None when not measured or failed)."""
    return rate_num(sysres(R, key).get('throughput', {}).get('%dx%d' % (c, p)))


def tput_shown(R, key, c, p):
    return rate_of(sysres(R, key).get('throughput', {}).get('%dx%d' % (c, p)))


def f_threads(n):
    return '%d thread%s' % (n, '' if n == 1 else 's')


def gen_threads_of(R, rec):
    """The generator threads of a run: its own count (the target comparisons try several), else the
    count every other run used."""
    return (rec or {}).get('gen_threads') or R['meta']['gen_threads']


def generator_bound(R, rec):
    """Whether the generator was the limit of a run: near 90% of each of its threads."""
    g = jget(rec, 'cpu_percent')
    return g is not None and g >= 90 * gen_threads_of(R, rec)


def gen_cell(R, rec):
    """The generator's CPU in a run, its thread count when the run was one of several tries, and
    "generator-bound" near 90% per thread."""
    g = jget(rec, 'cpu_percent')
    if g is None:
        return '—'
    n = gen_threads_of(R, rec)
    return '%.0f%%%s%s' % (g, ', %s' % f_threads(n) if (rec or {}).get('gen_tries') else '',
                           ' (generator-bound)' if generator_bound(R, rec) else '')


def entry_of(R, key):
    S = sysres(R, key)
    return S.get('entry_proc') or (R['meta']['load_entry'] if S.get('kind') == 'herd' else key)


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


def mem_after_quiet_s(R):
    """How long after the system went quiet the memory phase read RSS (3 s; runs made before the
    reading moved: 0)."""
    for key in R['systems']:
        m = mem(R, key)
        if m:
            return m.get('rss_after_quiet_s', 0)
    return 0


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


def mem_per_client(R, key):
    """The entry server's whole resident memory ÷ the clients it stores (issue 11's measure)."""
    m = mem(R, key)
    a = (m.get('rss_after_kb') or {}).get(m.get('entry'))
    n = m.get('clients_reached')
    return a * 1024.0 / n if a and n else None


def idle(R, key):
    return sysres(R, key).get('idle') or {}


# ---------------------------------------------------------------------------------------------
# Formatting.

def f_rate(v):
    if v == 'FAILED':
        return '**FAILED** (0 replies)'
    return '—' if v is None else '{:,.0f}/s'.format(v)


def f_ms(v):
    if v is None:
        return '—'
    return '%.3f ms' % v if v < 10 else '%.1f ms' % v


def f_mb(v):
    """v in MiB (every memory figure is kB from /proc ÷ 1024)."""
    return '—' if v is None else '%.0f MiB' % v


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


def f_ratio_vs(r, need):
    """f_ratio, with as many more decimals as it takes not to round across `need` (0.8953 against
    0.9 shows as 0.895×, not as a 0.90× that reads as met)."""
    text = f_ratio(r)
    if r is None:
        return text
    decimals = 1
    while (float(text[:-1]) >= need) != (r >= need) and decimals < 9:
        decimals += 1
        text = '%.*f×' % (decimals, r)
    return text


def ratio(herd, other, higher_better):
    if not isinstance(herd, (int, float)) or not isinstance(other, (int, float)) or herd <= 0 or other <= 0:
        return None
    return herd / other if higher_better else other / herd


# ---------------------------------------------------------------------------------------------
# The report.

def results_rows(R, scale):
    """(label, {system: (value, formatted)}, higher_better) rows of the main table."""
    rows = []

    def row(label, fn, fmt, higher_better, keys=[k for k in ORDER if k != 'redis-rep'], phase=None):
        vals = {}
        for k in keys:
            if k in R['systems'] and (phase is None or phase in R['systems'][k].get('phases', ())):
                v = fn(k)
                vals[k] = (v, fmt(v))
        rows.append((label, vals, higher_better))

    for c in scale['connections']:
        for p in scale['pipelines']:
            keys = [k for k in ORDER if c == 50 or 'throughput' in sysres(R, k).get('phases', ())]
            row('IAMAT throughput, %d conn%s, pipeline %d' % (c, '' if c == 1 else 's', p),
                lambda k, c=c, p=p: tput_shown(R, k, c, p), f_rate, True, keys=keys)
    for b in scale.get('whatsat_bounds', [5]):
        key = 'whatsat' if b == 5 else 'whatsat_b%d' % b
        row('WHATSAT throughput, 50 conns, bound %d (offline places)' % b,
            lambda k, key=key: rate_of(sysres(R, k).get(key)), f_rate, True, phase='whatsat')
    row('open loop: rate (half of the pipeline-1 peak)',
        lambda k: (sysres(R, k).get('openloop') or {}).get('rate'), f_rate, True)
    for q, name in (('p50', 'p50'), ('p99', 'p99'), ('p99.9', 'p99.9')):
        row('open loop at half peak: latency %s' % name,
            lambda k, q=q: lat(sysres(R, k).get('openloop'), q), f_ms, False)
    hops = R['meta'].get('prop_hops', 3)
    for h in range(1, hops + 1):
        for q in ('p50_ms', 'p99_ms'):
            row('propagation at half peak, %d hop%s, %s (poll probe)' % (h, '' if h == 1 else 's', q[:3]),
                lambda k, h=h, q=q: prop_hop(R, k, h, q), f_ms, False, keys=['herd', 'ref', 'ref-seed'])
    for h in range(1, hops + 1):
        for q in ('p50_ms', 'p99_ms', 'p99.9_ms'):
            row('propagation at half peak, %d hop%s, %s (server logs, no polling)' % (
                h, '' if h == 1 else 's', q[:-3]),
                lambda k, h=h, q=q: prop_log_hop(R, k, h, q), f_ms, False, keys=['herd', 'ref', 'ref-seed'])
    row('idle connections held',
        lambda k: (idle(R, k).get('holder') or {}).get('held'), f_int, True, phase='idle')
    row('light load (%g/s) beside them: latency p99' % scale['idle_rate'],
        lambda k: lat(idle(R, k).get('load'), 'p99'), f_ms, False, phase='idle')
    row('distinct clients stored (of %s)' % f_int(scale['mem_clients']),
        lambda k: mem(R, k).get('clients_reached'), f_int, True, keys=['herd', 'ref', 'redis'])
    row('their ingest rate (records stored per second while seeding)',
        lambda k: mem(R, k).get('ingest_rate'), lambda v: '—' if v is None else '{:,.0f}/s'.format(v),
        True, keys=['herd', 'ref', 'redis'])
    row('resident memory, entry server', lambda k: mem_entry_mb(R, k), f_mb, False,
        keys=['herd', 'ref', 'redis'])
    row('resident memory, largest server', lambda k: mem_max_mb(R, k), f_mb, False,
        keys=['herd', 'ref', 'redis'])
    row('entry server growth per client stored', lambda k: mem_growth_per_client(R, k),
        lambda v: '—' if v is None else '%.0f B' % v, False, keys=['herd', 'ref', 'redis'])
    row('entry server resident memory per client stored (all of it, gazetteer included)',
        lambda k: mem_per_client(R, k), lambda v: '—' if v is None else '%.0f B' % v, False,
        keys=['herd', 'ref', 'redis'])
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

    def rate_gen(rec):
        g, n = jget(rec, 'cpu_percent'), (rec or {}).get('gen_threads')
        return '%s%s' % (f_rate(rate_of(rec)),
                         '' if g is None else ' (generator %.0f%%%s)' % (g, '' if n is None else ', %s' % f_threads(n)))

    def judged(r, need, a_key, a_rec, b_key, b_rec):
        """The verdict of "a ≥ need × b", said to be unsure when a generator-bound run could turn it:
        a MET whose other system was held back by the generator (its ceiling is higher, the ratio
        lower), or a MISSED whose herd figure was (its ceiling is higher, the ratio too)."""
        v = verdict(None if r is None else r >= need)
        if v == 'MET' and generator_bound(R, b_rec):
            return v + ' (unsure: the %s run was generator-bound)' % SHORT[b_key]
        if v == 'MISSED' and generator_bound(R, a_rec):
            return v + ' (unsure: the %s run was generator-bound)' % SHORT[a_key]
        return v

    def vs(a_key, b_key, p, need, text):
        a_rec, b_rec = (sysres(R, k).get('throughput', {}).get('50x%d' % p) for k in (a_key, b_key))
        r = ratio(rate_num(a_rec), rate_num(b_rec), True)
        out.append((text, '%s %s vs %s %s → %s' % (SHORT[a_key], rate_gen(a_rec), SHORT[b_key],
                                                 rate_gen(b_rec), f_ratio_vs(r, need) or '—'),
                    judged(r, need, a_key, a_rec, b_key, b_rec)))

    # Issue 11's targets, in its order.
    vs('herd', 'redis', 1, 1.0, 'IAMAT, 50 conns, depth 1: ≥ 1.0× Redis GEOADD')
    vs('herd', 'redis', 16, 1.5, 'IAMAT, 50 conns, depth 16: ≥ 1.5× Redis GEOADD')
    vs('herd', 'redis-rep', 1, 2.0, 'IAMAT, 50 conns, depth 1: ≥ 2× Redis with four replicas')
    vs('herd', 'redis-rep', 16, 2.0, 'IAMAT, 50 conns, depth 16: ≥ 2× Redis with four replicas')
    for p in (1, 16):
        vs('herd', 'null', p, 0.8, 'IAMAT, 50 conns, depth %d: ≥ 0.8× herd-null (generator not the '
           'limit: its CPU and threads are shown)' % p)
    vs('herd', 'ref', 1, 12.0, 'IAMAT, 50 conns, depth 1: ≥ 12× the asyncio reference (same design)')
    for p in (1, 16):
        vs('herd-one', 'null', p, 0.9, 'One server without peers, 50 conns, depth %d: ≥ 0.9× herd-null' % p)
    for b in (5, 20):
        key = 'whatsat' if b == 5 else 'whatsat_b%d' % b
        h_rec, r_rec = sysres(R, 'herd').get(key), sysres(R, 'redis').get(key)
        h, r_ = rate_of(h_rec), rate_of(r_rec)
        r = ratio(h, r_, True)
        def threads(rec):
            n = (rec or {}).get('gen_threads')
            return '' if n is None else ' (%s)' % f_threads(n)
        out.append(('WHATSAT (offline places), 50 conns, radius 10 km, bound %d: ≥ 1.5× Redis GEOSEARCH '
                    'over the same cities' % b,
                    'herd %s%s vs Redis %s%s → %s' % (f_rate(h), threads(h_rec), f_rate(r_), threads(r_rec),
                                                      f_ratio_vs(r, 1.5) or '—'),
                    judged(r, 1.5, 'herd', h_rec, 'redis', r_rec)))
    hops = meta.get('prop_hops', 3)
    rate = (sysres(R, 'herd').get('openloop') or {}).get('rate')
    p99, p999 = prop_hop(R, 'herd', hops, 'p99_ms'), prop_hop(R, 'herd', hops, 'p99.9_ms')
    l99, l999 = prop_log_hop(R, 'herd', hops, 'p99_ms'), prop_log_hop(R, 'herd', hops, 'p99.9_ms')
    missed = prop_missed(R, 'herd', hops)
    lmissed = prop_log_hop(R, 'herd', hops, 'missed')
    seen = prop_log_hop(R, 'herd', hops, 'seen') if l99 is not None else prop_hop(R, 'herd', hops, 'seen')
    # The logs judge unless a round is missing from them (a log that dropped entries under load).
    use_logs = l99 is not None and l999 is not None and not lmissed
    a99, a999 = (l99, l999) if use_logs else (p99, p999)
    out.append(('Propagation to the farthest server (%d hops) at half of peak load: p99 ≤ 1 ms and '
                'p99.9 ≤ 2 ms (judged by the server logs, which need no polling, when they hold every round)' % hops,
                '%s → %s under %s: logs p99 %s, p99.9 %s (missed %s); poll probe p99 %s, p99.9 %s '
                '(missed %s); %s rounds%s' % (
                    meta.get('prop_entry'), meta.get('prop_far'), f_rate(rate), f_ms(l99), f_ms(l999),
                    '—' if lmissed is None else lmissed, f_ms(p99), f_ms(p999),
                    '—' if missed is None else missed, '—' if seen is None else seen,
                    '' if not seen or seen >= 1000 else ' (p99.9 is then the max)'),
                verdict(None if a99 is None or a999 is None else
                        (a99 <= 1.0 and a999 <= 2.0 and not missed))))
    m = mem(R, 'herd')
    per = mem_per_client(R, 'herd')
    reached, wanted = m.get('clients_reached'), m.get('clients_wanted')
    out.append(('%s clients: ≤ 150 B resident per client at the entry server (its whole RSS ÷ clients, '
                'gazetteer included)' % f_int(wanted or 1000000),
                'entry %s for %s clients → %s per client%s' % (
                    f_mb(mem_entry_mb(R, 'herd')), f_int(reached),
                    '—' if per is None else '%.0f B' % per,
                    '' if reached == wanted else ' (not every client stored)'),
                verdict(None if per is None else (per <= 150 and reached == wanted))))

    # Earlier issues' targets, still checked.
    h50 = tput(R, 'herd', 50, 1)
    o = tput(R, 'ref-seed', 50, 1)
    r = ratio(h50, o, True)
    out.append(('IAMAT throughput, 50 conns, no pipelining, ≥ 100× the reference in --seed-style',
                'herd %s vs %s → %s' % (f_rate(h50), f_rate(o), f_ratio(r) or '—'),
                verdict(None if r is None else r >= 100.0)))
    mx = mem_max_mb(R, 'herd')
    out.append(('%s distinct clients: ≤ 256 MiB resident per server' % f_int(wanted or 1000000),
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


def at50_table(R):
    """IAMAT at 50 connections, depth 1 and 16, every system that ran it, with the generator's CPU
    and the servers' CPU beside each rate."""
    lines = ['| system | depth 1 | generator CPU | servers CPU | depth 16 | generator CPU | servers CPU |',
             '|---|---|---|---|---|---|---|']
    for key in AT50:
        S = R['systems'].get(key)
        if not S or 'throughput' not in S:
            continue
        cells = [SHORT[key]]
        for p in (1, 16):
            rec = S['throughput'].get('50x%d' % p)
            per = ((rec or {}).get('cpu') or {}).get('proc_cpu_percent') or {}
            cells += [f_rate(rate_of(rec)), gen_cell(R, rec),
                      '%.0f%% in %d process%s' % (sum(per.values()), len(per), '' if len(per) == 1 else 'es')
                      if per else '—']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def ratios_table(R):
    """The ratios issue 11 asks for, at 50 connections, depth 1 and 16."""
    lines = ['| ratio | depth 1 | depth 16 |', '|---|---|---|']
    for a, b in (('herd', 'redis'), ('herd', 'redis-rep'), ('herd', 'null'), ('herd', 'ref'),
                 ('herd-one', 'redis'), ('herd-one', 'null')):
        if a not in R['systems'] or b not in R['systems']:
            continue
        cells = ['%s ÷ %s' % (SHORT[a], SHORT[b])]
        for p in (1, 16):
            cells.append(f_ratio(ratio(tput(R, a, 50, p), tput(R, b, 50, p), True)) or '—')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def ring_table(R):
    """The N-server rings: the entry server's rate and the herd's deliveries (rate × N)."""
    ring = sysres(R, 'ring').get('ring') or {}
    lines = ['| N servers | entry server rate | herd deliveries (rate × N) | entry server CPU | '
             'all N servers CPU | generator CPU | machine busy |', '|---|---|---|---|---|---|---|']
    for n in sorted(ring, key=int):
        rec = ring[n]
        per = (rec.get('cpu') or {}).get('proc_cpu_percent') or {}
        e = per.get(rec.get('entry_proc'))
        g = jget(rec, 'cpu_percent')
        d = rec.get('deliveries_per_s')
        lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
            n, f_rate(rate_of(rec)) if rec.get('json') or rec.get('failed') else rec.get('problem', '—'),
            '—' if d is None else '{:,.0f}/s'.format(d), '—' if e is None else '%.0f%%' % e,
            '%.0f%%' % sum(per.values()) if per else '—', '—' if g is None else '%.0f%%' % g,
            '%.0f%%' % (rec.get('cpu') or {}).get('machine_busy_percent', 0) if rec.get('cpu') else '—'))
    return '\n'.join(lines)


def prop_log_hop(R, key, hops, q, idle_run=False):
    """A per-hop figure of the propagation timed from the servers' logs (no polling)."""
    p = sysres(R, key).get('propagation_idle' if idle_run else 'propagation') or {}
    for h in (p.get('log') or {}).get('by_hops', []):
        if h['hops'] == hops:
            return h.get(q)
    return None


def propagation_section(R):
    """Per-server propagation figures of the C++ herd: the polling probe, the same rounds from the
    servers' log timestamps, both under load and at rest; and, when the 3-hop median is below the
    2-hop one, what the figures say about why."""
    H = sysres(R, 'herd')
    prop = H.get('propagation') or {}
    servers = (prop.get('json') or {}).get('servers') or []
    if not servers:
        return []
    entry = R['meta'].get('load_entry')

    def by_name(rec):
        return {x['name']: x for x in ((rec or {}).get('servers') or [])}
    logs = by_name(prop.get('log'))
    rest = by_name((H.get('propagation_idle') or {}).get('json'))
    rest_logs = by_name((H.get('propagation_idle') or {}).get('log'))
    L = ['### Propagation, server by server (C++ herd)', '']
    L.append('Two clocks on the same rounds. **Poll probe**: `herd-load --propagation` polls each server '
             'on its own connection with `WHATSAT <id> 0.001 1`, one poll in flight, so a delay is the '
             'propagation plus up to one poll round trip (shown) and the probe\'s own loop. **Logs**: '
             'every server logs each line it receives with the time its event loop took it; the delay '
             'from the entry\'s `< IAMAT` entry to each server\'s first `< AT` entry for the same '
             'client needs no polling (tools/bench/proplog.py). Under load: during the open-loop run '
             'at half peak, whose client load goes to %s; at rest: the same probe just before it, with '
             'no load.' % entry)
    L.append('')
    L.append('| server | hops | poll probe p50 | p99 | p99.9 | poll round trip p50 | logs p50 | p99 | '
             'p99.9 | at rest: poll probe p50 | at rest: logs p50 |')
    L.append('|---|---|---|---|---|---|---|---|---|---|---|')
    unlogged = []
    for s in sorted(servers, key=lambda x: (x['hops'], x['name'])):
        g = logs.get(s['name']) or {}
        if g.get('missed'):
            unlogged.append('%s (%d of %d rounds not in its log%s)' % (
                s['name'], g['missed'], g['missed'] + (g.get('seen') or 0),
                ', which says it dropped {:,} entries: its log writer fell behind under load'.format(
                    g['log_dropped']) if g.get('log_dropped') else ''))
        L.append('| %s%s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            s['name'], ' (load entry)' if s['name'] == entry else '', s['hops'],
            f_ms(s.get('p50_ms')), f_ms(s.get('p99_ms')), f_ms(s.get('p99.9_ms')),
            f_ms(s.get('poll_rtt_p50_ms')), f_ms(g.get('p50_ms')), f_ms(g.get('p99_ms')),
            f_ms(g.get('p99.9_ms')), f_ms((rest.get(s['name']) or {}).get('p50_ms')),
            f_ms((rest_logs.get(s['name']) or {}).get('p50_ms'))))
    L.append('')
    notes = []
    if unlogged:
        notes.append('Missing from the logs under load: %s. Those servers\' log figures cover only the '
                     'rounds logged (— when none).' % '; '.join(unlogged))
    # At rest: is the probe's median its own resolution?
    rp = [prop_hop_idle(R, h) for h in (1, 2, 3)]
    rl = [prop_log_hop(R, 'herd', h, 'p50_ms', idle_run=True) for h in (1, 2, 3)]
    if None not in rp and None not in rl:
        notes.append('At rest the logs put the record at 1, 2 and 3 hops after %s, %s and %s (p50), while '
                     'the poll probe reports %s, %s and %s: %s' % (
                         f_ms(rl[0]), f_ms(rl[1]), f_ms(rl[2]), f_ms(rp[0]), f_ms(rp[1]), f_ms(rp[2]),
                         'the probe\'s medians are mostly its own cycle (a poll round trip and its '
                         'loop), not the hops, so they cannot order the hops.'
                         if max(rp) - min(rp) < (rl[2] - rl[0]) or max(rp) - min(rp) < 0.5 * min(rp)
                         else 'both order the hops.'))
    by = {h['hops']: h for h in (prop.get('json') or {}).get('by_hops', [])}
    if 2 in by and 3 in by and (by[3].get('p50_ms') or 0) < (by[2].get('p50_ms') or 0):
        two = [s for s in servers if s['hops'] == 2]
        slow = max(two, key=lambda s: s.get('p50_ms') or 0)
        why = ('**Why the probe\'s 3-hop median (%s) is below its 2-hop one (%s) under load:** the 2-hop '
               'row merges %s. ' % (f_ms(by[3].get('p50_ms')), f_ms(by[2].get('p50_ms')), ' and '.join(
                   '%s (p50 %s, poll round trip p50 %s)' % (s['name'], f_ms(s.get('p50_ms')),
                                                          f_ms(s.get('poll_rtt_p50_ms'))) for s in two)))
        if slow['name'] == entry:
            why += ('%s is the load entry: its one event loop also serves the open-loop client load, so '
                    'its answers to the polls, and the flooded record itself, wait behind client '
                    'batches. ' % slow['name'])
        l2, l3 = prop_log_hop(R, 'herd', 2, 'p50_ms'), prop_log_hop(R, 'herd', 3, 'p50_ms')
        if any((logs.get(s['name']) or {}).get('missed') for s in two):
            why += ('The logs cannot settle it in this run: %s log lacks rounds (above).' % ' and '.join(
                "%s's" % s['name'] for s in two if (logs.get(s['name']) or {}).get('missed')))
        elif l2 is not None and l3 is not None:
            g = logs.get(slow['name']) or {}
            if l3 >= l2:
                why += ('By the logs, which need no polling, the order follows the hops (2 hops %s, '
                        '3 hops %s; %s receives the record at %s): the inversion comes from the '
                        'polling, whose round trips are longest at the loaded server — an artefact of '
                        'the probe, not of the flood.' % (f_ms(l2), f_ms(l3), slow['name'],
                                                          f_ms(g.get('p50_ms'))))
            else:
                far = [x for x in (logs.get(s['name']) for s in servers if s['hops'] == 3) if x]
                f50 = min((x.get('p50_ms') or 0) for x in far) if far else None
                why += ('The logs show it too (2 hops %s, 3 hops %s; %s receives the record at %s, the '
                        '3-hop server at %s): ' % (f_ms(l2), f_ms(l3), slow['name'],
                                                   f_ms(g.get('p50_ms')), f_ms(f50)))
                if f50 is not None and (g.get('p50_ms') or 0) > f50:
                    why += ('the record really reaches the loaded server later than the 3-hop server, '
                            'which is reached through idle ones. Not an artefact of the clock: the '
                            'per-hop rows mix a loaded server with idle ones; the per-server rows are '
                            'the figures to read.')
                else:
                    why += ('by the logs the medians are within a few microseconds, so the probe\'s '
                            'inversion is mostly its polling at the loaded server.')
        notes.append(why)
    for n in notes:
        L.append(n)
        L.append('')
    return L


def prop_hop_idle(R, hops):
    j = (sysres(R, 'herd').get('propagation_idle') or {}).get('json') or {}
    for h in j.get('by_hops', []):
        if h['hops'] == hops:
            return h.get('p50_ms')
    return None


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


def run_rate(rec):
    """The rate column of the runs table: the ingest rate for the memory phase (one request is
    measured after the seeding, so its throughput and latency mean nothing), FAILED for a run
    with no reply."""
    j = rec.get('json') or {}
    if rec.get('failed'):
        return '**FAILED** (0 replies)'
    if 'ingest_rate' in rec:
        v = rec['ingest_rate']
        return '—' if v is None else 'ingest {:,.0f} records/s'.format(v)
    return f_rate(j.get('throughput')) if j else rec.get('problem', '—')


def runs_table(R):
    lines = ['| system | run | replies/s | p50 | p99 | p99.9 | generator CPU | entry server CPU | '
             'other servers CPU | machine busy | not ours | errors |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for key in RUN_ORDER:
        S = R['systems'].get(key)
        if not S:
            continue
        recs = list((S.get('throughput') or {}).values())
        recs += [S['ring'][n] for n in sorted(S.get('ring') or {}, key=int)]
        for name in ('whatsat', 'whatsat_b20', 'openloop', 'whatsat_sim'):
            if S.get(name):
                recs.append(S[name])
        for pair in (S.get('tls_pairs') or {}).values():
            for a, b in zip(pair.get('plain', []), pair.get('tls', [])):
                recs += [a, b]
        if (S.get('idle') or {}).get('load'):
            recs.append(S['idle']['load'])
        if (S.get('memory') or {}).get('run'):
            recs.append(S['memory']['run'])
        for rec in recs:
            entry = rec.get('entry_proc') or entry_of(R, key)
            j = rec.get('json') or {}
            per = (rec.get('cpu') or {}).get('proc_cpu_percent', {})
            ecpu = per.get(entry)
            ocpu = sum(v for k, v in per.items() if k != entry) if len(per) > 1 else None
            errs = (j.get('errors') or {}).get('total')
            busy = (rec.get('cpu') or {}).get('machine_busy_percent', 0)
            ours = (sum(per.values()) + (j.get('cpu_percent', 0) if j else 0)
                    + (rec.get('sim_cpu_percent') or 0))   # the places simulator is ours too
            lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                SHORT[key], rec['name'], run_rate(rec),
                *(('—', '—', '—') if 'ingest_rate' in rec or rec.get('failed') else
                  (f_ms(lat(rec, 'p50')), f_ms(lat(rec, 'p99')), f_ms(lat(rec, 'p99.9')))),
                gen_cell(R, rec),
                '—' if ecpu is None else '%.0f%%' % ecpu,
                '—' if ocpu is None else '%.0f%%' % ocpu,
                '%.0f%%' % busy, '%.0f%%' % max(0.0, busy - ours),
                '—' if errs is None else errs))
    return '\n'.join(lines)


def cpu_per_request(R):
    """Microseconds of CPU per reply in the 50-connection, pipeline-1 IAMAT run: where the CPU goes."""
    lines = ['| system | replies/s | entry server | other servers (floods, replication) | generator | all of ours | '
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
        entry = entry_of(R, key)
        e = per.get(entry, 0.0)
        o = sum(v for k, v in per.items() if k != entry)
        g = j.get('cpu_percent', 0.0)
        busy = rec['cpu'].get('machine_busy_percent', 0.0)

        def us(pct):
            return '%.1f µs' % (pct / 100.0 / t * 1e6)
        lines.append('| %s | %s | %s | %s | %s | %s | %.0f%% of a core |' % (
            SHORT[key], f_rate(t), us(e), us(o) if len(per) > 1 else '—', us(g),
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
        """The whole distribution from herd-load's percentile export (HdrHistogram's iteration:
        ten points per halving of the distance to 100%); y is -log10(1 - p), so p90, p99, p99.9
        are evenly spaced. Older results without the export fall back to the four percentiles."""
        lines, top = [], 0.0
        for k in present:
            rec = get(k)
            pts = []
            export = jget(rec, 'latency_percentiles')
            if export:
                for q, v_us, _ in export:
                    if 0 < q < 100 and v_us > 0:
                        pts.append((v_us / 1000.0, -math.log10(1 - q / 100.0)))
            else:
                for q, y in (('p50', 0.5), ('p90', 0.9), ('p99', 0.99), ('p99.9', 0.999)):
                    v = lat(rec, q)
                    if v is not None and v > 0:
                        pts.append((v, -math.log10(1 - y)))
            if pts:
                top = max(top, max(y for _, y in pts))
                lines.append({'name': SHORT[k], 'points': pts, 'color': COLORS[k], 'dots': not export})
        return lines, top

    def yticks(top):
        ticks = [(0.0, 'p0'), (-math.log10(0.5), 'p50'), (1.0, 'p90'), (2.0, 'p99'), (3.0, 'p99.9'),
                 (4.0, 'p99.99'), (5.0, 'p99.999')]
        return [t for t in ticks if t[0] <= max(top, 3.0) + 1e-9]

    lines, top = cdf_lines(lambda k: sysres(R, k).get('openloop'))
    if lines:
        svg.line_chart(os.path.join(out, 'latency_cdf.svg'),
                       'Latency CDF, open loop at half of each system\'s own peak', lines,
                       'latency, ms (log scale, from the intended send time)', 'percentile',
                       logx=True, ylim=(0.0, max(top, 3.0)), yticks=yticks(top),
                       note='The full histogram (herd-load\'s percentile export). Each system at half '
                            'of its own pipeline-1 peak: the rates differ.')
        written.append('latency_cdf.svg')
    lines, top = cdf_lines(lambda k: idle(R, k).get('load'))
    if lines:
        svg.line_chart(os.path.join(out, 'latency_cdf_idle.svg'),
                       'Latency CDF, light load (%g/s) beside %s idle connections'
                       % (scale['idle_rate'], f_int(scale['idle_connections'])), lines,
                       'latency, ms (log scale)', 'percentile', logx=True,
                       ylim=(0.0, max(top, 3.0)), yticks=yticks(top),
                       note='The full histogram (herd-load\'s percentile export).')
        written.append('latency_cdf_idle.svg')

    hops = R['meta'].get('prop_hops', 3)
    plines = []
    for k in ('herd', 'ref', 'ref-seed'):
        for q, dash in (('p99.9_ms', '2,3'), ('p99_ms', ''), ('p50_ms', '5,4')):
            pts = [(h, prop_hop(R, k, h, q)) for h in range(1, hops + 1)]
            pts = [(x, y) for x, y in pts if y]
            if pts:
                plines.append({'name': '%s %s' % (SHORT[k], q[:-3]), 'points': pts,
                               'color': COLORS[k], 'dash': dash})
    for q, dash in (('p99_ms', ''), ('p50_ms', '5,4')):
        pts = [(h, prop_log_hop(R, 'herd', h, q)) for h in range(1, hops + 1)]
        pts = [(x, y) for x, y in pts if y]
        if pts:
            plines.append({'name': 'C++ herd, logs %s' % q[:-3], 'points': pts, 'color': '#17becf',
                           'dash': dash})
    if plines:
        svg.line_chart(os.path.join(out, 'propagation.svg'),
                       'Propagation delay by hops, at half of peak load', plines,
                       'hops from %s' % R['meta'].get('prop_entry'), 'delay until visible, ms (log scale)',
                       logy=True, xticks=list(range(1, hops + 1)),
                       note='Poll probe (resolution: one WHATSAT poll round trip) and, for the C++ herd, '
                            'the servers\' log timestamps. Dotted: p99.9; solid: p99; dashed: p50.')
        written.append('propagation.svg')

    mk = [k for k in ('herd', 'ref', 'redis') if k in R['systems'] and mem(R, k)]
    if mk:
        svg.bar_chart(os.path.join(out, 'memory.svg'),
                      'Resident memory after %s distinct clients' % f_int(scale['mem_clients']),
                      ['entry server', 'largest server'], [SHORT[k] for k in mk],
                      [[mem_entry_mb(R, k), mem_max_mb(R, k)] for k in mk], 'MiB (linear, from 0)',
                      colors=[COLORS[k] for k in mk], log=False,
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
             'started). Redis %s%s.' % (
                 meta['cores'], meta['cpu_model'], meta['kernel'], meta['loadavg_start'][0],
                 meta.get('loadavg_end', [0])[0], '/'.join(str(x) for x in meta['nofile']),
                 meta.get('redis_version') or '?',
                 ', holding the %s GeoNames cities beside the clients (GEOSEARCH searches what the '
                 'herd\'s WHATSAT searches)' % format(R['systems']['redis']['cities'], ',')
                 if R.get('systems', {}).get('redis', {}).get('cities') else ''))
    L.append('')
    tries = meta.get('gen_tries') or [meta['gen_threads']]
    L.append('**Settings.** All processes share the same %d cores. The generator (build/herd-load) '
             'runs with **%d thread%s**%s. Each C++ herd server runs **%d event loop%s** '
             '(`threads: %d`), and herd-null gets the same %d: five servers plus the generator already '
             'outnumber the cores, the entry server is the only one that handles client traffic, and '
             'more loops per server would only add context switches and cross-thread handoffs; the '
             'reference and Redis are single-threaded as well. Closed-loop runs: %g s warm-up, %g s '
             'measured (%g s for the asyncio herds). Load goes to **%s** (the best-connected server: each update it takes is flooded '
             'to the most neighbours); propagation is measured from **%s** to every server, the farthest '
             'being **%s** at %d hops. Logging is on for every herd server (log files are emptied '
             'between runs to bound disk use).' % (
                 meta['cores'], meta['gen_threads'], '' if meta['gen_threads'] == 1 else 's',
                 '' if len(tries) < 2 else
                 ', except in the target comparisons (IAMAT at 50 connections, WHATSAT): there every '
                 'system is run once with each of %s generator threads and keeps its better run, whose '
                 'thread count is shown with it. The generator shares the cores with the system it '
                 'measures, so a thread it does not need is one more thread for the scheduler to fit '
                 'in beside the servers' % (
                     ' and '.join(str(n) for n in tries)),
                 meta['herd_threads'], '' if meta['herd_threads'] == 1 else 's', meta['herd_threads'],
                 meta['herd_threads'], scale['warmup'], scale['duration'],
                 scale.get('duration_slow', scale['duration']), meta['load_entry'],
                 meta['prop_entry'], meta['prop_far'], meta['prop_hops']))
    L.append('')
    if R.get('failures'):
        L.append('**This run FAILED** (the benchmark exits 1): ' + '; '.join(R['failures']) + '.')
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
    if any(k in R['systems'] for k in ('herd-one', 'redis-rep')):
        L.append('### IAMAT at 50 connections: every system, with the generator\'s CPU')
        L.append('')
        L.append('Closed loop, 50 connections, depth (pipeline) 1 and 16, each system\'s better run with '
                 '%s generator threads (the count is beside its CPU). "C++ herd, '
                 'one server" is one herd server alone (no peers, logging on, %d event loop%s); "Redis + 4 '
                 'replicas" is a Redis primary with four `--replicaof` processes on loopback, every '
                 'run started only when all four were online at the primary\'s offset (INFO '
                 'replication), the load going to the primary. Each client\'s GEOADDs alternate between '
                 'two points 10 m apart, so that every one is a write Redis stores and replicates (a '
                 'GEOADD that changes nothing is not propagated), as the herd stores and floods every '
                 'IAMAT. A generator CPU near 90%% per thread (marked '
                 'generator-bound) means the figure is the generator\'s limit, not the server\'s. '
                 '"Servers CPU" is the sum over every process of the system (the herd: five servers; '
                 'Redis + 4 replicas: five processes).' % (
                     ' or '.join(str(n) for n in tries), meta['herd_threads'],
                     '' if meta['herd_threads'] == 1 else 's'))
        L.append('')
        L.append(at50_table(R))
        L.append('')
        L.append(ratios_table(R))
        L.append('')
        rep = sysres(R, 'redis-rep').get('throughput') or {}
        lags = ['depth %s: %s bytes behind at the end' % (k.split('x')[1],
                                                        (v.get('replication_after') or {}).get('lag_bytes', '?'))
                for k, v in sorted(rep.items())]
        if lags:
            L.append('Redis replication right after each run (the primary does not wait for its '
                     'replicas; the next run waits until they have caught up): %s.' % '; '.join(lags))
            L.append('')
    if sysres(R, 'ring').get('ring'):
        L.append('### N C++ servers in a ring')
        L.append('')
        L.append('N herd servers linked in a ring (N = 2: one link), each started alone in turn; '
                 'closed-loop IAMAT, 50 connections, depth 16, all into one server. Every update is '
                 'stored by all N servers, so the herd\'s deliveries per second are the entry '
                 'server\'s rate × N. On two shared cores the N servers and the generator share the '
                 'CPU: the entry rate falls as N grows while the deliveries measure the whole herd\'s '
                 'CPU per update.')
        L.append('')
        L.append(ring_table(R))
        L.append('')
    L.extend(propagation_section(R))
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
        'The latency CDFs are herd-load\'s whole histogram (log-linear buckets, under 0.8% wide), '
        'exported at HdrHistogram\'s percentile ticks; the far tail rests on few samples.',
        'Memory figures are MiB (kB from /proc ÷ 1024); the memory chart\'s axis is linear from 0.',
        'Propagation by the poll probe: its resolution is one WHATSAT poll round trip per server plus '
        'its own loop, and it adds a little load of its own. The same rounds timed from the servers\' '
        'log timestamps need no polling (microsecond stamps taken by each event loop as it reads the '
        'line; one machine, one clock); the herd\'s propagation target is judged on those.',
        'Memory: VmRSS of each server process %g s after the system went quiet following the ingest '
        '(the JSON also keeps the reading taken the moment it went quiet); allocator caches count. '
        'Clients carry short IDs (c<k>.load) and one location each.' % mem_after_quiet_s(R),
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
        'A run whose generator CPU is marked "generator-bound" (near 90% per generator thread) '
        'measured the generator rather than the server; the generator\'s threads share the same two '
        'cores as the servers, so more threads do not always raise the ceiling (the target '
        'comparisons try each count and keep the better run).',
        'A run with no reply at all is marked **FAILED** (not 0/s) and fails the benchmark '
        '(exit status 1).',
        'The asyncio herds can fall behind on their floods during a run (seed-style especially: its '
        'entry server may stop answering clients while it opens flood connections, which then shows '
        'as a FAILED run); their client-side throughput does not wait for the floods to be delivered.',
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
