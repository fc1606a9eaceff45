#!/usr/bin/python3
"""Creates a development certificate authority and one certificate per herd server: `make certs`.

    /usr/bin/python3 tools/certs.py [--config config.yaml] [--out certs] [--names N ...]
                                    [--hosts H ...] [--ca-name NAME] [--days N]

Writes, into OUT (default: certs/ beside the config file):
  ca.pem, ca.key        the CA (created once, kept afterwards; CN = --ca-name)
  NAME.pem, NAME.key    per server of the config (or per --names entry): CN = NAME and a
                        subjectAltName DNS:NAME plus one DNS or IP entry per --hosts value,
                        usable both as a TLS server and as a TLS client (peer links are mutually
                        authenticated: one identity accepts and dials), signed by the CA.
Files that exist and still verify against the CA with more than a day left are kept, so the command is
idempotent and cheap; a certificate that does not verify (say, the CA was replaced) is made again.
Keys are P-256 (fast handshakes), mode 0600. The openssl command line tool does the work.

This is a development CA: the key sits beside the certificates unencrypted. For real hosts see the
README (certificates from your own CA, one per server name).
"""
import argparse
import ipaddress
import os
import subprocess
import sys
import tempfile

import yaml


def run(args, **kw):
    p = subprocess.run(['openssl'] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        sys.exit('certs: openssl %s failed: %s' % (args[0], p.stderr.decode(errors='replace').strip()))
    return p.stdout


def new_key(path):
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path])
    os.chmod(path, 0o600)


def still_good(cert, ca):
    """The certificate exists, is signed by this CA and is valid for at least one more day."""
    if not (os.path.exists(cert) and os.path.exists(ca)):
        return False
    ok = subprocess.run(['openssl', 'verify', '-CAfile', ca, '-purpose', 'sslserver', cert],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    fresh = subprocess.run(['openssl', 'x509', '-checkend', '86400', '-noout', '-in', cert],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    return ok and fresh


def make_ca(out, ca_name, days):
    ca_pem, ca_key = os.path.join(out, 'ca.pem'), os.path.join(out, 'ca.key')
    if os.path.exists(ca_pem) and os.path.exists(ca_key):
        return ca_pem, ca_key, False
    new_key(ca_key)
    run(['req', '-x509', '-new', '-key', ca_key, '-sha256', '-days', str(days), '-subj', '/CN=' + ca_name,
         '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
         '-out', ca_pem])
    return ca_pem, ca_key, True


def san_entries(name, hosts):
    entries = ['DNS:' + name]
    for h in hosts:
        try:
            entries.append('IP:' + str(ipaddress.ip_address(h)))
        except ValueError:
            entries.append('DNS:' + h)
    return entries


def make_leaf(out, name, hosts, ca_pem, ca_key, days):
    pem, key = os.path.join(out, name + '.pem'), os.path.join(out, name + '.key')
    if os.path.exists(key) and still_good(pem, ca_pem):
        return False
    new_key(key)
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = os.path.join(tmp, 'req.csr'), os.path.join(tmp, 'ext.cnf')
        run(['req', '-new', '-key', key, '-subj', '/CN=' + name, '-out', csr])
        with open(ext, 'w') as f:
            f.write('basicConstraints=critical,CA:FALSE\n'
                    'keyUsage=critical,digitalSignature\n'
                    'extendedKeyUsage=serverAuth,clientAuth\n'
                    'subjectAltName=' + ','.join(san_entries(name, hosts)) + '\n')
        run(['x509', '-req', '-in', csr, '-CA', ca_pem, '-CAkey', ca_key, '-set_serial',
             str(int.from_bytes(os.urandom(8), 'big')), '-days', str(days), '-sha256', '-extfile', ext,
             '-out', pem])
    return True


def server_names(config_path):
    try:
        with open(config_path, 'rb') as f:
            config = yaml.safe_load(f)
        return [str(n) for n in config['servers']]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        sys.exit('certs: %s: cannot read the servers of the herd: %s' % (config_path, e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--config', default='config.yaml', help='herd config whose servers get certificates')
    ap.add_argument('--out', help='output folder (default: certs/ beside the config)')
    ap.add_argument('--names', nargs='+', help='certificate names instead of the config\'s servers')
    ap.add_argument('--hosts', nargs='*', default=[], help='extra subjectAltName entries (IP or DNS)')
    ap.add_argument('--ca-name', default='herd development CA', help='the CA\'s common name')
    ap.add_argument('--days', type=int, default=825, help='validity of new certificates')
    args = ap.parse_args()

    names = args.names or server_names(args.config)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.config)), 'certs')
    for n in names:
        if not n or '/' in n or n.startswith('.') or any(c.isspace() for c in n):
            sys.exit('certs: %r cannot name a certificate file' % n)
    os.makedirs(out, exist_ok=True)
    ca_pem, ca_key, new_ca = make_ca(out, args.ca_name, args.days)
    made = [n for n in names if make_leaf(out, n, args.hosts, ca_pem, ca_key, args.days)]
    what = ('created the CA and ' if new_ca else '') + (
        '%d certificate(s): %s' % (len(made), ', '.join(made)) if made else 'all certificates up to date')
    print('certs: %s in %s' % (what, out))


if __name__ == '__main__':
    main()
