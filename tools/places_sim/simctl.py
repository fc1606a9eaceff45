"""Start a places simulator process and drive it from a test: one class, standard library only.

    import sys; sys.path.insert(0, 'tools/places_sim')
    from simctl import PlacesSim
    with PlacesSim(cert='certs/places-sim.pem', key='certs/places-sim.key',
                   ca='certs/ca.pem') as sim:          # or PlacesSim(plain=True)
        sim.url                                          # https://127.0.0.1:PORT
        sim.config(latency_ms=20, fail_first=2, http_status=503)   # POST /_sim/config
        sim.stats()['tls_handshakes']                    # GET /_sim/stats
        sim.reset_stats()                                # POST /_sim/reset-stats

The process listens on a free loopback port (read from its first stdout line) and is stopped by
stop() / the with-block (SIGTERM, then SIGKILL after a grace period). Its stderr and access log go
to `log_path` (by default a temporary file, which stop() removes unless the start failed), never to
a pipe that could fill. Control requests use their own connection each, which the simulator does not
count in tcp_connections/tls_handshakes.
Not thread-safe: one test thread drives one simulator.
"""

import http.client
import json
import os
import re
import selectors
import signal
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = '/usr/bin/python3'
SIM = os.path.join(HERE, 'places_sim.py')
DEFAULT_GAZETTEER = os.path.join(REPO, 'build', 'data', 'cities.pbf')
READY_TIMEOUT = 60.0               # seconds for the gazetteer to load and the port to listen
STOP_GRACE = 10.0
CONTROL_TIMEOUT = 10.0
LISTENING = re.compile(r'places-sim listening on (https?)://127\.0\.0\.1:(\d+)')


class PlacesSim:
    def __init__(self, cert=None, key=None, ca=None, plain=False, gazetteer=DEFAULT_GAZETTEER,
                 faults=None, extra_args=(), log_path=None, ready_timeout=READY_TIMEOUT, port=0):
        """cert/key: the server's certificate (not with plain); ca: the CA file clients verify
        it with (used by the control client); faults: initial fault settings (dict); port: 0
        for a free one, or a given one (say, to restart a killed simulator where it was)."""
        cmd = [PYTHON, SIM, '--port', str(port), '--gazetteer', gazetteer]
        if plain:
            cmd.append('--plain')
        else:
            cmd += ['--cert', cert, '--key', key]
        if faults:
            cmd += ['--faults', json.dumps(faults)]
        # A log of our own making goes with stop(), unless the start failed (the error names it).
        self._own_log = log_path is None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix='places-sim-', suffix='.log')
            os.close(fd)
        self.log_path = log_path
        self._log = open(log_path, 'ab')
        cmd += ['--access-log', log_path] + list(extra_args)
        self.plain = plain
        self.ca = ca
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
        try:
            self.line = self._first_line(ready_timeout)
            m = LISTENING.fullmatch(self.line)
            if m is None:
                raise RuntimeError('places-sim said %r' % self.line)
        except BaseException:
            self._own_log = False
            self.stop()
            raise
        self.port = int(m.group(2))
        self.url = '%s://127.0.0.1:%d' % (m.group(1), self.port)
        self.ssl_context = None if plain else ssl.create_default_context(cafile=ca)

    def _first_line(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b''
        deadline = time.monotonic() + timeout
        try:
            while b'\n' not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError('places-sim not listening after %.0fs' % timeout)
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise RuntimeError('places-sim exited with status %s; see %s'
                                           % (self.proc.wait(5), self.log_path))
                    buf += chunk
        finally:
            sel.close()
        return buf.split(b'\n', 1)[0].decode()

    # -- control --------------------------------------------------------------------------------

    def connection(self, timeout=CONTROL_TIMEOUT):
        """A new http.client connection to the simulator (verified against `ca`)."""
        if self.plain:
            return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        return http.client.HTTPSConnection('127.0.0.1', self.port, timeout=timeout,
                                           context=self.ssl_context)

    def control(self, method, path, value=None):
        """One control request on its own connection -> (HTTP status, decoded JSON)."""
        c = self.connection()
        try:
            body = None if value is None else json.dumps(value)
            c.request(method, path, body=body, headers={'Connection': 'close',
                                                        'Content-Type': 'application/json'})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def config(self, **faults):
        """Replace the fault settings (no arguments: reset). Raises ValueError when refused."""
        status, v = self.control('POST', '/_sim/config', faults)
        if status != 200:
            raise ValueError(v.get('error', v))
        return v

    def stats(self):
        return self.control('GET', '/_sim/stats')[1]

    def reset_stats(self):
        self.control('POST', '/_sim/reset-stats')

    # -- life cycle -----------------------------------------------------------------------------

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        if self._own_log:
            self._own_log = False
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass

    def kill(self):
        """SIGKILL, as a crashed upstream would go."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
