"""Temporary herd configs for the benchmark: the servers and links of the repository's config.yaml,
moved to free loopback ports, with the log directory inside the run's temporary directory."""

import collections
import os

import yaml

import procs


def read_topology(path):
    with open(path, 'rb') as f:
        cfg = yaml.safe_load(f)
    names = list(cfg['servers'])
    links = [tuple(l) for l in cfg.get('links') or []]
    return names, links


def hops_from(names, links, start):
    adj = {n: [] for n in names}
    for a, b in links:
        adj[a].append(b)
        adj[b].append(a)
    dist = {start: 0}
    queue = collections.deque([start])
    while queue:
        n = queue.popleft()
        for m in adj[n]:
            if m not in dist:
                dist[m] = dist[n] + 1
                queue.append(m)
    return dist


def choose_entries(names, links):
    """(load entry, propagation entry, farthest server, its hop count).

    The load goes to the best-connected server (the one that floods to the most neighbours:
    the most work per IAMAT). Propagation is measured from one end of a longest shortest path, so
    that the farthest server is as many hops away as the herd allows."""
    degree = collections.Counter()
    for a, b in links:
        degree[a] += 1
        degree[b] += 1
    load_entry = max(names, key=lambda n: (degree[n], -names.index(n)))
    best = None
    for n in names:
        dist = hops_from(names, links, n)
        far = max(dist, key=lambda m: (dist[m], -names.index(m)))
        # Prefer a leaf as the source (ties: the order of the config).
        key = (dist[far], -degree[n], -names.index(n))
        if best is None or key > best[0]:
            best = (key, n, far, dist[far])
    return load_entry, best[1], best[2], best[3]


def write_config(path, names, links, threads, log_dir, gazetteer, limits=None, places=None,
                 peer_tls=None):
    """places: None for the offline provider, or the `places:` mapping to use instead (a google
    provider pointed at the simulator); peer_tls: None for plaintext peer links, or the
    `peer_tls:` mapping (ca_file, cert_file, key_file)."""
    ports = procs.free_ports(2 * len(names))
    servers = {}
    for i, n in enumerate(names):
        servers[n] = {'host': '127.0.0.1', 'port': ports[2 * i], 'peer_port': ports[2 * i + 1]}
    cfg = {
        'threads': threads,
        'log_dir': log_dir,
        'places': dict(places) if places else {'provider': 'offline',
                                               'gazetteer': os.path.abspath(gazetteer)},
        'servers': servers,
        'links': [list(l) for l in links],
        'peer_backoff': {'initial_ms': 50, 'max_ms': 1000},
    }
    if limits:
        cfg['limits'] = limits
    if peer_tls:
        cfg['peer_tls'] = dict(peer_tls)
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f, default_flow_style=None, sort_keys=False)
    return servers
