"""Memory after a burst: a server that has just ingested a burst of updates gives the heap its
buffers and batches used back to the kernel once the burst is over (herd/memory_trim.h), exactly
once per burst, and never while idle. Counted in /metrics and said in the log."""

import re
import socket
import threading
import time

import herdlib
from herdlib import http_get, wait_for


def samples(port):
    out = {}
    for line in http_get(port, '/metrics')[2].decode().splitlines():
        m = re.match(r'(herd_memory_\w+) (\S+)$', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def burst(port, n, prefix):
    """n IAMATs for fresh clients sent in one go on one connection while a thread reads the replies
    (so the work does not pause between batches); returns once all n are answered."""
    t = b'%.9f' % time.time()
    data = b''.join(b'IAMAT %s%d +34.068930-118.445127 %s\n' % (prefix, i, t) for i in range(n))
    with socket.create_connection(('127.0.0.1', port), timeout=60) as s:
        got = {'lines': 0, 'bad': 0}

        def read():
            tail = b''
            while got['lines'] < n:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return
                lines = (tail + chunk).split(b'\n')
                tail = lines.pop()
                got['lines'] += len(lines)
                got['bad'] += sum(1 for l in lines if not l.startswith(b'AT '))

        reader = threading.Thread(target=read)
        reader.start()
        s.sendall(data)
        reader.join(120)
        assert not reader.is_alive(), 'replies still missing after 120 s: %d of %d' % (got['lines'], n)
    assert got == {'lines': n, 'bad': 0}


def trim_lines(herd, name):
    with open(herd.log_path(name), 'rb') as f:
        return [l for l in f.read().splitlines() if b' memory: a burst has passed; ' in l]


def test_a_burst_is_trimmed_once_and_idle_never(make_herd):
    herd = make_herd(names=['Goloman', 'Hands'], links=[['Goloman', 'Hands']], admin=True)
    port = herd.admin_ports['Goloman']
    # Idle (the start-up's work is far below a burst): nothing, for well over the calm second.
    time.sleep(1.5)
    assert samples(port) == {'herd_memory_trims_total': 0, 'herd_memory_released_bytes_total': 0}

    # 150,000 updates (the threshold is 100,000 units of work: commands, records in and out). The
    # entry answers them and floods them to Hands, which receives them: both trim, once each.
    burst(herd.port('Goloman'), 150000, b'burst.')
    for name in ('Goloman', 'Hands'):
        wait_for(lambda: samples(herd.admin_ports[name])['herd_memory_trims_total'] == 1, 30,
                 '%s trims after the burst' % name, diagnose=lambda: samples(herd.admin_ports[name]))
        assert samples(herd.admin_ports[name])['herd_memory_released_bytes_total'] >= 0
        wait_for(lambda: len(trim_lines(herd, name)) == 1, 10, '%s logs the trim' % name)
        assert re.search(rb' - \* memory: a burst has passed; \d+ MiB of freed heap given back to the system in \d+\.\d ms$',
                         trim_lines(herd, name)[0])

    # Calm after the trim: no second one. A trickle of work is not a burst either.
    herdlib.updates(herd, 'Goloman', 'trickle', 100)
    time.sleep(2.0)
    assert samples(port)['herd_memory_trims_total'] == 1

    # The next burst trims again.
    burst(herd.port('Goloman'), 110000, b'again.')
    wait_for(lambda: samples(port)['herd_memory_trims_total'] == 2, 30, 'a second trim after a second burst')
