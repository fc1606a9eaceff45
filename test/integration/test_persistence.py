"""Persistence (data_dir, fsync): SIGKILL of the whole herd loses nothing that was answered (fsync:
always), a server restarted with its data is caught up by a replay rather than a full transfer, a
torn tail is cut off with a log message, other damage stops the start naming the file, the record
log is rewritten in the background under load, and a data directory serves one server at a time."""

import glob
import os
import re
import resource
import signal
import socket
import struct
import time

from herdlib import NAMES, Client, at_lines, http_get, missing_at, run_server_once, unique_id, updates, wait_all_at, wait_for

UCLA = b'+34.068930-118.445127'
DURABLE = 'data_dir: data\nfsync: always\n'


def record_logs(herd, name):
    return sorted(glob.glob(os.path.join(herd.data_path(name), 'records-*.log')))


def cut_back(herd, name, log, size):
    """As if what `name` wrote after `log` was `size` bytes long never reached its disk (a power cut):
    that log is cut back to `size`, and the logs begun since are removed."""
    for path in record_logs(herd, name):
        if path == log:
            with open(path, 'r+b') as f:
                f.truncate(size)
        elif os.path.getmtime(path) >= os.path.getmtime(log):
            os.remove(path)


def test_kill_9_of_the_whole_herd_loses_nothing_that_was_answered(make_herd):
    herd = make_herd(extra_yaml=DURABLE)
    acked = {}
    for k, entry in enumerate(NAMES):
        acked.update(updates(herd, entry, 'durable-%s' % entry, 100))
    # The same clients again, newer, at other servers: the newest answer is what must survive.
    movers = list(acked)[:50]
    acked.update(updates(herd, 'Welsh', None, 0, t=b'1600000001.5', ids=movers))
    herd.kill_all()  # right after the last answer: floods may still be on their way
    for name in NAMES:
        herd.restart(name)
    for name in NAMES:
        wait_all_at(herd, name, acked)
    for name in NAMES:
        wait_for(lambda: b'records from the snapshot' in herd.log_bytes(name), 5, 'the recovery line')


def test_a_server_restarted_with_its_data_gets_a_replay_not_a_full_transfer(make_herd):
    herd = make_herd(extra_yaml='data_dir: data\nfsync: everysec\n')
    base = updates(herd, 'Goloman', 'base', 300)
    wait_all_at(herd, 'Welsh', base)
    herd.kill('Welsh', signal.SIGTERM)  # a clean stop: everything it held is on its disk
    missed = updates(herd, 'Hands', 'missed', 40)
    wait_all_at(herd, 'Holiday', missed)
    fulls = herd.log_bytes('Holiday').count(b'Welsh * catch-up: full transfer')
    herd.restart('Welsh')
    wait_all_at(herd, 'Welsh', {**base, **missed})
    wait_for(lambda: re.search(rb'Welsh \* catch-up: replaying backlog seqs', herd.log_bytes('Holiday')),
             10, 'a replay to Welsh in Holiday.log')
    assert herd.log_bytes('Holiday').count(b'Welsh * catch-up: full transfer') == fulls
    # And the other way: Holiday holds Welsh's earlier run, so Welsh replays too (nothing to send).
    wait_for(lambda: re.search(rb'Holiday \* catch-up: replaying backlog seqs', herd.log_bytes('Welsh')),
             10, 'a replay to Holiday in Welsh.log')


def test_a_record_flooded_then_lost_at_its_origin_comes_back_from_the_neighbours(make_herd):
    """A server floods a record, then dies before its disk has it (here: the record log's tail is
    cut after the kill, as if the write never happened). Its neighbours hold the record but owe it
    nothing (it came from there); restarted with its data, the server must still get it back, or
    the herd disagrees for good. Found by the chaos run with hostile clients."""
    herd = make_herd(names=['Goloman', 'Hands', 'Holiday'], links=[['Goloman', 'Hands'], ['Hands', 'Holiday']],
                     extra_yaml='data_dir: data\nfsync: always\n')
    cid = unique_id('lost')
    older = updates(herd, 'Hands', None, 0, t=b'1600000000.5', ids=[cid])
    wait_all_at(herd, 'Goloman', older)
    wait_all_at(herd, 'Holiday', older)
    herd.kill('Hands', signal.SIGTERM)   # a clean stop: its log ends with the older record
    herd.restart('Hands')
    log = record_logs(herd, 'Hands')[-1]
    size = os.path.getsize(log)
    newer = updates(herd, 'Hands', None, 0, t=b'1600000001.5', ids=[cid])
    wait_all_at(herd, 'Goloman', newer)
    wait_all_at(herd, 'Holiday', newer)
    herd.kill('Hands')
    cut_back(herd, 'Hands', log, size)  # the newer record never reached Hands' disk
    herd.restart('Hands')
    wait_all_at(herd, 'Hands', newer)
    # Goloman was asked for everything (its log reaches the file within the writer's period).
    wait_for(lambda: re.search(rb'Hands \* catch-up: replaying backlog seqs .*every current record: it restarted',
                               herd.log_bytes('Goloman')), 10, 'the replay of everything to Hands in Goloman.log')


def test_a_record_lost_at_its_origin_reaches_the_neighbour_its_seen_set_named(make_herd):
    """As above, in a triangle, with one neighbour that had not yet got the record when its origin
    died: the record comes back to the origin from the other neighbour, in a replay of everything,
    still carrying the seen= set the origin wrote. Taken at its word, that set names the neighbour
    that never got the record, and nobody would send it there. Found in review."""
    herd = make_herd(names=['Goloman', 'Hands', 'Holiday'],
                     links=[['Goloman', 'Hands'], ['Hands', 'Holiday'], ['Goloman', 'Holiday']],
                     extra_yaml='data_dir: data\nfsync: always\n', proxied=True)
    cid = unique_id('named')
    older = updates(herd, 'Hands', None, 0, t=b'1600000000.5', ids=[cid])
    for name in ('Goloman', 'Holiday'):
        wait_all_at(herd, name, older)
    herd.kill('Hands', signal.SIGTERM)   # a clean stop: its log ends with the older record
    before = len(herd.log_bytes('Hands'))
    herd.restart('Hands')
    log = record_logs(herd, 'Hands')[-1]
    size = os.path.getsize(log)
    for n in ('Goloman', 'Holiday'):  # both links up, so that the seen= set names both
        wait_for(lambda: b'%s + link up' % n.encode() in herd.log_bytes('Hands')[before:], 10,
                 "Hands' link to %s up" % n)
    # Hands' link to Goloman stays up but delivers nothing: the newer record is sent with
    # seen=Hands,Goloman,Holiday, and only Holiday gets it.
    herd.proxy('mode Hands>Goloman blackhole')
    newer = updates(herd, 'Hands', None, 0, t=b'1600000001.5', ids=[cid])
    wait_all_at(herd, 'Holiday', newer)
    assert missing_at(herd, 'Goloman', newer) == {cid}
    herd.kill('Hands')
    cut_back(herd, 'Hands', log, size)  # the newer record never reached Hands' disk
    herd.proxy('mode Hands>Goloman pass')
    herd.restart('Hands')
    wait_all_at(herd, 'Hands', newer)
    wait_all_at(herd, 'Goloman', newer, timeout=15)


def test_a_neighbour_down_is_not_named_even_across_a_restart_with_data(make_herd):
    """The issue's case of the second flood-routing rule: Hands stops, an update comes to Goloman
    (whose link to Hands is down, so it must not name Hands in seen=), Goloman is killed so what it
    owed Hands is gone, and Hands comes back with its data: the record must still reach it, replayed
    by Wilkes (which owed it to Hands because nobody had named Hands)."""
    herd = make_herd(extra_yaml='data_dir: data\nfsync: everysec\n')
    herd.kill('Hands', signal.SIGTERM)
    for n in ('Goloman', 'Wilkes'):
        wait_for(lambda: b'Hands - link down' in herd.log_bytes(n), 10, 'the link down at %s' % n)
    rec = updates(herd, 'Goloman', 'through-wilkes', 1)
    wait_all_at(herd, 'Wilkes', rec)
    herd.kill('Goloman')
    herd.restart('Hands')
    wait_all_at(herd, 'Hands', rec)
    wait_for(lambda: re.search(rb'Hands \* catch-up: replaying backlog seqs', herd.log_bytes('Wilkes')),
             10, 'a replay to Hands in Wilkes.log')


def durable_waits(herd):
    status, _, body = http_get(herd.admin_ports['Solo'], '/metrics')
    assert status == 200
    m = re.search(rb'^herd_durable_waits (\d+)$', body, re.M)
    assert m, body[:2000]
    return int(m.group(1))


DISK_LIMIT = 48 * 1024  # RLIMIT_FSIZE of the servers whose disk stops taking records


def solo_with_a_full_disk(make_herd):
    """fsync: always, and a file size limit the record log reaches: from then on every write of
    the record writer fails and it retries, so IAMAT replies wait."""
    return make_herd(names=['Solo'], links=[], admin=True, extra_yaml=DURABLE + 'log_level: warnings\n',
                     preexec={'Solo': lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_LIMIT, DISK_LIMIT))})


def fill_the_disk(c):
    """Sends IAMATs on `c` until one gets no reply: the record log is at the limit."""
    for i in range(DISK_LIMIT // 100 + 50):
        c.send(b'IAMAT fill%d %s 1621464827.959498503\n' % (i, UCLA))
        try:
            assert c.read_line(timeout=2).startswith(b'AT ')
        except AssertionError:  # no reply: the disk took nothing more
            return
    raise AssertionError('the record log never filled up')


def test_clients_that_leave_take_their_durable_waits_along(make_herd):
    """fsync: always and a disk that takes nothing (here a file size limit, so every record log
    write fails): IAMAT replies wait. A client that closes used to leave a waiter (and its reply)
    per IAMAT behind until the disk came back: every connection that came and went added up to
    max_pending_replies of them, without bound. Now a session waits once, for its lowest record,
    and its wait goes when it does."""
    herd = solo_with_a_full_disk(make_herd)
    port = herd.port('Solo')
    # Fill the record log up to the limit; from then on the writer's writes fail and it retries.
    def reset(c):
        # A client that leaves for good: its end resets (a plain close is a half-close to the
        # server, which keeps the session to send what it owes, as SPEC's half-close asks).
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()

    c = Client(port)
    try:
        fill_the_disk(c)
    finally:
        reset(c)
    wait_for(lambda: b'write failed: File too large' in herd.log_bytes('Solo'), 10, 'a failed write in the log')
    holder = Client(port)  # a client that stays, with replies waiting: the control
    holder.send(b''.join(b'IAMAT stay%d +34.068930-118.445127 1621464827.959498503\n' % i for i in range(5)))
    wait_for(lambda: durable_waits(herd) == 1, 10, 'the staying client waiting once for its 5 replies', diagnose=lambda: '%d waits; log: %r' % (durable_waits(herd), herd.log_bytes('Solo')[-1500:]))
    for n in range(40):  # clients that each send IAMATs nobody can answer now, and leave
        c = Client(port)
        c.send(b''.join(b'IAMAT gone%d-%d +34.068930-118.445127 1621464827.959498503\n' % (n, i)
                        for i in range(20)))
        time.sleep(0.02)  # read by the server before the reset
        reset(c)
    wait_for(lambda: durable_waits(herd) == 1, 10, 'only the staying client waiting')
    reset(holder)
    wait_for(lambda: durable_waits(herd) == 0, 10, 'no wait left')


def test_a_whatsat_behind_an_iamat_waiting_for_the_disk_waits_its_turn(make_herd):
    """fsync: always and a disk that takes nothing: an IAMAT's reply waits, and the WHATSAT sent
    after it on the same connection (which the offline provider could answer at once) waits behind
    it, since replies go in command order."""
    herd = solo_with_a_full_disk(make_herd)
    with Client(herd.port('Solo')) as c:
        fill_the_disk(c)
        # The last fill's reply waits for the disk; a WHATSAT for a known client goes behind it.
        c.send(b'WHATSAT fill0 10 1\n')
        wait_for(lambda: durable_waits(herd) == 1, 10, 'the IAMAT reply waiting for the disk')
        c.expect_silence(0.3)


def test_a_torn_tail_is_cut_off_and_the_start_goes_on(make_herd):
    herd = make_herd(names=['Solo'], links=[], extra_yaml=DURABLE)
    kept = updates(herd, 'Solo', 'kept', 30)
    herd.kill('Solo')
    log = record_logs(herd, 'Solo')[-1]
    size = os.path.getsize(log)
    with open(log, 'r+b') as f:  # a last frame cut short, then garbage (a write torn by a crash)
        f.truncate(size - 7)
        f.seek(0, 2)
        f.write(b'\x00\x13garbage')
    herd.restart('Solo')
    held = at_lines(herd.port('Solo'), kept.keys())
    assert sum(1 for i, l in kept.items() if held[i] == l) == len(kept) - 1  # all but the torn one
    wait_for(lambda: re.search(rb'! .*records-[0-9a-f]{16}\.log: a torn tail of \d+ bytes at offset \d+',
                               herd.log_bytes('Solo')), 5, 'the torn tail, in the log')
    # The server goes on writing after the cut.
    more = updates(herd, 'Solo', 'more', 5)
    herd.kill('Solo')
    herd.restart('Solo')
    held = at_lines(herd.port('Solo'), more.keys())
    assert all(held[i] == l for i, l in more.items())


def test_damage_inside_a_record_log_stops_the_start(make_herd):
    herd = make_herd(names=['Solo'], links=[], extra_yaml=DURABLE)
    updates(herd, 'Solo', 'damaged', 50)
    herd.kill('Solo')
    log = record_logs(herd, 'Solo')[-1]
    with open(log, 'r+b') as f:
        f.seek(os.path.getsize(log) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    r = run_server_once(['Solo', '--config', herd.config_path], cwd=herd.workdir)
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert os.path.basename(log) in err and 'offset' in err and 'not a torn tail' in err, err


def test_a_damaged_snapshot_stops_the_start(make_herd):
    herd = make_herd(names=['Solo'], links=[], extra_yaml=DURABLE + 'compact_bytes: 4096\n')
    updates(herd, 'Solo', 'snap', 200)  # well past 4 KiB: a rewrite follows
    wait_for(lambda: os.path.exists(os.path.join(herd.data_path('Solo'), 'snapshot')), 10, 'a snapshot')
    herd.kill('Solo', signal.SIGTERM)
    snap = os.path.join(herd.data_path('Solo'), 'snapshot')
    with open(snap, 'r+b') as f:
        f.seek(os.path.getsize(snap) - 30)
        f.write(b'X')
    r = run_server_once(['Solo', '--config', herd.config_path], cwd=herd.workdir)
    err = r.stderr.decode()
    assert r.returncode == 1 and 'snapshot' in err and 'offset' in err, (r.returncode, err)


def test_the_record_log_is_rewritten_in_the_background_under_load(make_herd):
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']],
                     extra_yaml='data_dir: data\nfsync: everysec\ncompact_bytes: 65536\n')
    acked = {}
    ids = [unique_id('compact') for _ in range(300)]
    for k in range(20):  # 6,000 updates of 300 clients: many times the rewrite threshold
        acked.update(updates(herd, 'A' if k % 2 else 'B', None, 0, t=b'1600000000.%d' % (k + 10), ids=ids))
    wait_for(lambda: len(re.findall(rb'rewrite: snapshot of \d+ records', herd.log_bytes('A'))) >= 2, 20,
             'two rewrites at A')
    # Old record logs go away: what is left is about one rewrite's worth.
    assert len(record_logs(herd, 'A')) <= 3, record_logs(herd, 'A')
    wait_all_at(herd, 'A', acked)
    herd.kill('A', signal.SIGTERM)
    herd.restart('A')
    held = at_lines(herd.port('A'), acked.keys())
    assert all(held[i] == l for i, l in acked.items())


def test_a_data_directory_serves_one_server_at_a_time(make_herd):
    herd = make_herd(names=['Solo'], links=[], extra_yaml=DURABLE)
    other = os.path.join(herd.workdir, 'other.yaml')
    with open(herd.config_path) as f:
        text = f.read()
    # Same name and data_dir, other ports.
    text = re.sub(r'port: \d+, peer_port: \d+', 'port: 1, peer_port: 2', text)
    from herdlib import free_ports
    p, q = free_ports(2)
    text = text.replace('port: 1, peer_port: 2', 'port: %d, peer_port: %d' % (p, q))
    with open(other, 'w') as f:
        f.write(text)
    r = run_server_once(['Solo', '--config', other], cwd=herd.workdir)
    err = r.stderr.decode()
    assert r.returncode == 1 and 'in use by another running server' in err, (r.returncode, err)


def test_a_stale_iamat_is_answered_at_once_with_fsync_always(make_herd):
    """fsync: always: an IAMAT older than the stored record is answered with that record, which is
    on disk already: its reply waits for no later write."""
    herd = make_herd(names=['Solo'], links=[], extra_yaml=DURABLE)
    cid = unique_id('stale')
    with Client(herd.port('Solo')) as c:
        c.send(b'IAMAT %s %s 1621464828.5\n' % (cid, UCLA))
        winner = c.read_line()
        assert winner.startswith(b'AT Solo '), winner
        c.send(b'IAMAT %s %s 1621464827.5\n' % (cid, UCLA))
        assert c.read_line(timeout=3) == winner
