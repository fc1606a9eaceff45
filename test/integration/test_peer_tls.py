"""Peer links over TLS (peer_tls): a five-server TLS herd floods as the plaintext one does; on a peer
port, plaintext, a client without a certificate, a certificate from another CA, a valid certificate
for a name other than the hello's, and a valid certificate of a server that is not a neighbour are
each refused, logged, and store nothing, while the real links keep flooding; unusable peer_tls files
are configuration errors (exit 2 naming the key); a herd without peer_tls warns at start-up."""

import os
import shutil
import socket
import ssl
import subprocess

import pytest

from herdlib import (IO_TIMEOUT, NAMES, ServerProc, free_ports, iamat, invalid, make_certs,
                     poll_whatsat, run_server_once, unique_id, wait_for, whatsat)


@pytest.fixture(scope='module')
def other_ca(tmp_path_factory):
    """A second CA, unrelated to the herd's, with certificates for the herd's names."""
    return make_certs(tmp_path_factory.mktemp('otherca'), NAMES, ca_name='some other CA')


def wait_log(herd, name, needle, timeout=10):
    return wait_for(lambda: needle in herd.log_bytes(name), timeout,
                    '%r in the log of %s' % (needle, name))


def cert(herd, name):
    return os.path.join(herd.cert_dir, name + '.pem'), os.path.join(herd.cert_dir, name + '.key')


def refused(port, data, ca=None, chain=None, server_name='Goloman'):
    """Connects to a peer port (TLS when `ca` is given, presenting `chain` = (cert, key) if any),
    sends `data`, and returns how the server ended it: 'handshake' when the TLS handshake failed,
    'closed' when it closed the connection without writing a byte. Fails if it stays open."""
    raw = socket.create_connection(('127.0.0.1', port), timeout=IO_TIMEOUT)
    sock = raw
    try:
        if ca:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(ca)
            if chain:
                ctx.load_cert_chain(*chain)
            try:
                sock = ctx.wrap_socket(raw, server_hostname=server_name)
            except (ssl.SSLError, OSError):
                return 'handshake'
        try:
            sock.sendall(data)
        except (ssl.SSLError, OSError):
            return 'closed'
        got = b''
        while True:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                raise AssertionError('the server kept the connection open; got %r' % got)
            except (ssl.SSLError, OSError):
                break
            if not chunk:
                break
            got += chunk
        assert got == b'', got
        return 'closed'
    finally:
        sock.close()


def at_record(cid, claimed='Hands'):
    return b'AT %s +0.500000000 %s +01.000000+002.000000 1234.5' % (claimed.encode(), cid)


def assert_not_stored(herd, cid):
    for name in ('Goloman', 'Hands', 'Wilkes'):
        assert whatsat(herd.port(name), cid, 1, 1) == invalid(b'WHATSAT %s 1 1' % cid), name


def assert_still_flooding(herd):
    """A report at Welsh reaches Hands, three TLS hops away."""
    cid = unique_id('tlsflood')
    at = iamat(herd.port('Welsh'), cid, b'+34.068930-118.445127', b'1621464827.959498503')
    assert at.startswith(b'AT Welsh ')
    poll_whatsat(herd.port('Hands'), cid, at, radius=1, bound=1)


def test_flooding_across_a_tls_herd(tls_herd):
    assert_still_flooding(tls_herd)
    # Every link is TLS, with the neighbour's certificate verified.
    for a, b in (('Goloman', 'Hands'), ('Holiday', 'Welsh'), ('Welsh', 'Holiday')):
        wait_log(tls_herd, a, b'link up (TLSv1.3, certificate of %s verified)' % b.encode())
    wait_log(tls_herd, 'Goloman', b'TLSv1.3 with a certificate from the herd CA for Hands')
    assert b'(TLS), 2 loops' in tls_herd.log_bytes('Goloman')


def test_plaintext_on_a_tls_peer_port_is_refused(tls_herd):
    cid = unique_id('tlsplain')
    how = refused(tls_herd.peer_ports['Goloman'], b'HERD Hands\n' + at_record(cid) + b'\n')
    assert how == 'closed'
    wait_log(tls_herd, 'Goloman', b'TLS handshake failed: ')
    assert_not_stored(tls_herd, cid)
    assert_still_flooding(tls_herd)


def test_a_client_without_a_certificate_is_refused(tls_herd):
    cid = unique_id('tlsnocert')
    refused(tls_herd.peer_ports['Goloman'], b'HERD Hands\n' + at_record(cid) + b'\n',
            ca=os.path.join(tls_herd.cert_dir, 'ca.pem'))
    wait_log(tls_herd, 'Goloman', b'TLS handshake failed: peer did not return a certificate')
    assert_not_stored(tls_herd, cid)
    assert_still_flooding(tls_herd)


def test_a_certificate_from_another_ca_is_refused(tls_herd, other_ca):
    cid = unique_id('tlsotherca')
    # It trusts the herd's CA (so it accepts Goloman) but shows a Hands certificate the herd's CA
    # never signed.
    refused(tls_herd.peer_ports['Goloman'], b'HERD Hands\n' + at_record(cid) + b'\n',
            ca=os.path.join(tls_herd.cert_dir, 'ca.pem'),
            chain=(os.path.join(other_ca, 'Hands.pem'), os.path.join(other_ca, 'Hands.key')))
    wait_log(tls_herd, 'Goloman', b'TLS handshake failed: certificate verify failed')
    assert_not_stored(tls_herd, cid)
    assert_still_flooding(tls_herd)


def test_a_valid_certificate_for_another_name_is_refused_at_the_hello(tls_herd):
    cid = unique_id('tlsname')
    # Hands' real certificate, claiming to be Wilkes (also a neighbour of Goloman).
    how = refused(tls_herd.peer_ports['Goloman'],
                  b'HERD Wilkes\n' + at_record(cid, 'Wilkes') + b'\n',
                  ca=os.path.join(tls_herd.cert_dir, 'ca.pem'), chain=cert(tls_herd, 'Hands'))
    assert how == 'closed'
    wait_log(tls_herd, 'Goloman', b'hello refused: the certificate names Hands, not Wilkes')
    assert_not_stored(tls_herd, cid)
    assert_still_flooding(tls_herd)


def test_a_valid_certificate_of_a_non_neighbour_is_refused_at_the_hello(tls_herd):
    cid = unique_id('tlsnonneighbour')
    # Welsh is a server of the herd, with a good certificate, but links only to Holiday.
    how = refused(tls_herd.peer_ports['Goloman'],
                  b'HERD Welsh\n' + at_record(cid, 'Welsh') + b'\n',
                  ca=os.path.join(tls_herd.cert_dir, 'ca.pem'), chain=cert(tls_herd, 'Welsh'))
    assert how == 'closed'
    wait_log(tls_herd, 'Goloman', b'hello refused: Welsh is not a neighbour of Goloman')
    assert_not_stored(tls_herd, cid)
    assert_still_flooding(tls_herd)


def test_a_good_neighbour_certificate_is_served(tls_herd):
    """The control for the refusals above: the same client, with Hands' certificate and hello, is
    stored and flooded (so what refused them was the certificate check, not the client)."""
    cid = unique_id('tlsgood')
    record = at_record(cid)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(tls_herd.cert_dir, 'ca.pem'))
    ctx.load_cert_chain(*cert(tls_herd, 'Hands'))
    raw = socket.create_connection(('127.0.0.1', tls_herd.peer_ports['Goloman']), timeout=IO_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname='Goloman') as s:
        assert s.getpeercert()['subject'] == ((('commonName', 'Goloman'),),)
        s.sendall(b'HERD Hands\n' + record + b'\n')
        for name in NAMES:
            poll_whatsat(tls_herd.port(name), cid, record, radius=1, bound=1)
    # And a dialler that expects another server's name refuses Goloman's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        raw = socket.create_connection(('127.0.0.1', tls_herd.peer_ports['Goloman']), timeout=IO_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname='Hands'):
            pass


# ------------------------------------------------------------------------------------------------
# Configuration

def one_server_yaml(peer_tls_lines):
    client, peer = free_ports(2)
    return ('threads: 1\nlog_dir: logs\nservers:\n'
            '  Hands: { host: 127.0.0.1, port: %d, peer_port: %d }\n' % (client, peer)
            + peer_tls_lines)


def openssl(*args):
    subprocess.run(('openssl',) + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def signed_leaf(out, stem, ca_dir, days, usage):
    """out/stem.pem and .key: a certificate for Hands (subjectAltName DNS:Hands) signed by the CA in
    ca_dir, valid for `days` from now (-1: it expired a day ago), with extendedKeyUsage `usage`."""
    key, csr, ext = (os.path.join(out, stem + x) for x in ('.key', '.csr', '.cnf'))
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key)
    openssl('req', '-new', '-key', key, '-subj', '/CN=Hands', '-out', csr)
    with open(ext, 'w') as f:
        f.write('subjectAltName=DNS:Hands\nextendedKeyUsage=%s\n' % usage)
    openssl('x509', '-req', '-in', csr, '-CA', os.path.join(ca_dir, 'ca.pem'), '-CAkey',
            os.path.join(ca_dir, 'ca.key'), '-CAcreateserial', '-days', str(days), '-extfile', ext,
            '-out', os.path.join(out, stem + '.pem'))


@pytest.fixture(scope='module')
def certs_dir(tmp_path_factory, other_ca):
    """The herd CA's certificates for Hands and Goloman, and for Hands: one that expired
    (expired.pem), one without clientAuth (serveronly.pem), one from another CA (other-Hands.pem),
    and a CA bundle that holds both CAs (both-cas.pem)."""
    out = make_certs(tmp_path_factory.mktemp('certs') / 'certs', ['Hands', 'Goloman'])
    signed_leaf(out, 'expired', out, -1, 'serverAuth,clientAuth')
    signed_leaf(out, 'serveronly', out, 30, 'serverAuth')
    for ext in ('pem', 'key'):
        shutil.copy(os.path.join(other_ca, 'Hands.' + ext), os.path.join(out, 'other-Hands.' + ext))
    with open(os.path.join(out, 'both-cas.pem'), 'wb') as f:
        for ca in (out, other_ca):
            with open(os.path.join(ca, 'ca.pem'), 'rb') as src:
                f.write(src.read())
    return out


@pytest.mark.parametrize('lines, needles', [
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: nowhere/{name}.pem\n  key_file: certs/{name}.key\n',
     ["peer_tls.cert_file: 'nowhere/{name}.pem'", 'nowhere/Hands.pem', 'No such file or directory']),
    ('peer_tls:\n  ca_file: certs/missing-ca.pem\n  cert_file: certs/{name}.pem\n  key_file: certs/{name}.key\n',
     ["peer_tls.ca_file: 'certs/missing-ca.pem'", 'No such file or directory']),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/{name}.pem\n  key_file: certs/Goloman.key\n',
     ["peer_tls.key_file: 'certs/Goloman.key'", 'does not match the certificate']),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/Goloman.pem\n  key_file: certs/Goloman.key\n',
     ["peer_tls.cert_file: 'certs/Goloman.pem'", 'names Goloman, not this server Hands']),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/{name}.key\n  key_file: certs/{name}.key\n',
     ["peer_tls.cert_file: 'certs/{name}.key'", 'not a PEM certificate']),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/{name}.pem\n',
     ['peer_tls.key_file: is required']),
    ('peer_tls: certs\n', ["peer_tls: expected a mapping with ca_file, cert_file and key_file, got 'certs'"]),
    # Certificates the neighbours would refuse, found at start rather than by a herd that never links.
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/expired.pem\n  key_file: certs/expired.key\n',
     ["peer_tls.cert_file: 'certs/expired.pem'", 'the certificate expired on ',
      "certs/ca.pem) would refuse it"]),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/serveronly.pem\n  key_file: certs/serveronly.key\n',
     ["peer_tls.cert_file: 'certs/serveronly.pem'", 'its extendedKeyUsage lacks clientAuth']),
    ('peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/other-{name}.pem\n  key_file: certs/other-{name}.key\n',
     ["peer_tls.cert_file: 'certs/other-{name}.pem'", 'not signed by a trusted CA']),
])
def test_unusable_peer_tls_is_a_configuration_error(tmp_path, certs_dir, lines, needles):
    os.symlink(certs_dir, tmp_path / 'certs')
    path = tmp_path / 'config.yaml'
    path.write_text(one_server_yaml(lines))
    r = run_server_once(['Hands', '--config', str(path)], cwd=str(tmp_path), timeout=30)
    err = r.stderr.decode('utf-8', 'replace')
    assert r.returncode == 2, (r.returncode, err)
    assert str(path) in err, err
    for n in needles:
        assert n in err, (n, err)
    assert b'ready' not in r.stdout


def test_a_certificate_from_any_ca_of_the_bundle_is_accepted(tmp_path, certs_dir):
    """The control for the refusals above: ca_file may hold several CAs (a CA rotation), and a
    certificate from the second one starts."""
    os.symlink(certs_dir, tmp_path / 'certs')
    path = tmp_path / 'config.yaml'
    path.write_text(one_server_yaml('peer_tls:\n  ca_file: certs/both-cas.pem\n'
                                    '  cert_file: certs/other-{name}.pem\n  key_file: certs/other-{name}.key\n'))
    r = run_server_once(['Hands', '--config', str(path), '--check'], cwd=str(tmp_path), timeout=30)
    assert r.returncode == 0, r.stderr


def test_relative_peer_tls_paths_are_relative_to_the_config_file(tmp_path, certs_dir):
    conf_dir = tmp_path / 'conf'
    conf_dir.mkdir()
    os.symlink(certs_dir, conf_dir / 'certs')
    path = conf_dir / 'config.yaml'
    path.write_text(one_server_yaml(
        'peer_tls:\n  ca_file: certs/ca.pem\n  cert_file: certs/{name}.pem\n  key_file: certs/{name}.key\n'))
    s = ServerProc('Hands', str(path), str(tmp_path))  # run from another directory
    s.start()
    try:
        assert s.wait_ready()
        assert b'no peer_tls' not in s.stderr()
    finally:
        code, err = s.stop()
    assert code == 0, err


def test_a_herd_without_peer_tls_warns_at_start(tmp_path):
    path = tmp_path / 'config.yaml'
    path.write_text(one_server_yaml(''))
    s = ServerProc('Hands', str(path), str(tmp_path))
    s.start()
    try:
        assert s.wait_ready()
        warning = b'no peer_tls: peer links are plaintext and unauthenticated'
        assert warning in s.stderr()
        log = tmp_path / 'logs' / 'Hands.log'
        wait_for(lambda: log.exists() and warning in log.read_bytes(), 10, 'the warning in the log')
    finally:
        code, err = s.stop()
    assert code == 0, err


def test_a_link_the_neighbour_refuses_is_never_logged_up(make_herd, other_ca):
    """Over TLS 1.3 the dialler's handshake ends before the neighbour has checked the dialler's
    certificate; a refusal comes after. A link counts as up (and is logged so) only once the
    neighbour has answered, so a refused one reads `link not established`, never `link up` and
    `link down` in turn, each redial. Found by a black-box run with an expired certificate (now
    refused at start): here the two ends trust different CAs. Goloman trusts both its own CA and
    another; Hands only the other, which signed its certificate. So Goloman's handshake to Hands
    succeeds and Hands refuses Goloman's certificate afterwards."""
    herd = make_herd(names=['Goloman', 'Hands'], links=[['Goloman', 'Hands']], peer_tls=True)
    wait_log(herd, 'Goloman', b'Hands + link up (TLSv1.3, certificate of Hands verified)')
    ca = os.path.join(herd.cert_dir, 'ca.pem')
    def read(path):
        with open(path, 'rb') as f:
            return f.read()
    herd_ca, other = read(ca), read(os.path.join(other_ca, 'ca.pem'))
    # Each server reads ca_file once, at start: Goloman is restarted with both CAs in it ...
    with open(ca, 'wb') as f:
        f.write(herd_ca + other)
    herd.kill('Goloman')
    before = len(herd.log_bytes('Goloman'))
    herd.restart('Goloman')
    wait_for(lambda: b'Hands + link up' in herd.log_bytes('Goloman')[before:], 15, 'the link up again')
    # ... and Hands with only the other CA and its certificate.
    herd.kill('Hands')
    with open(ca, 'wb') as f:
        f.write(other)
    for ext in ('pem', 'key'):
        with open(os.path.join(herd.cert_dir, 'Hands.' + ext), 'wb') as f:
            f.write(read(os.path.join(other_ca, 'Hands.' + ext)))
    before = len(herd.log_bytes('Goloman'))
    herd.restart('Hands')
    wait_for(lambda: herd.log_bytes('Goloman')[before:].count(b'Hands ! link not established: ') >= 2,
             15, "two refused dials in Goloman's log")
    assert b'Hands + link up' not in herd.log_bytes('Goloman')[before:]
    # What refused the link was Hands' check of Goloman's certificate.
    assert b'TLS handshake failed: certificate verify failed (unable to get local issuer certificate)' \
        in herd.log_bytes('Hands')


def test_a_neighbour_certificate_naming_it_only_case_insensitively_is_refused(make_herd):
    """OpenSSL's host name check folds case; the dialler also asks for the neighbour's name exactly.
    A listener on Hands' peer port with a certificate from the herd CA for `hands` passes the
    first check, and its link is closed before the hello is sent."""
    herd = make_herd(names=['Goloman', 'Hands'], links=[['Goloman', 'Hands']], peer_tls=True)
    wait_log(herd, 'Goloman', b'Hands + link up')
    make_certs(herd.cert_dir, ['hands'])  # the same CA (tools/certs.py keeps it)
    herd.kill('Hands')
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert(herd, 'hands'))
    ctx.load_verify_locations(os.path.join(herd.cert_dir, 'ca.pem'))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(('127.0.0.1', herd.peer_ports['Hands']))
    lsock.listen(4)
    lsock.settimeout(IO_TIMEOUT)
    try:
        raw, _ = lsock.accept()  # Goloman's redial
        raw.settimeout(IO_TIMEOUT)
        with ctx.wrap_socket(raw, server_side=True) as s:
            try:
                got = s.recv(4096)  # the end of the connection, or (were the link up) its hello
            except (ssl.SSLError, ConnectionResetError):
                got = b''
        assert got == b'', got
    finally:
        lsock.close()
    wait_log(herd, 'Goloman', b"the neighbour's certificate names hands, not Hands")
