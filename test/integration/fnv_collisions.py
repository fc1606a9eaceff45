"""Client IDs that all have the same 64-bit FNV-1a hash: the attack on the location table's old,
unkeyed hash (issue 9). Any number of them (2^blocks) come from one short integer vector found once
by lattice reduction, so a test can make thousands in milliseconds.

Why it works: FNV-1a does h = (h XOR c) * P per byte. XOR-ing a byte only changes the low 8 bits of
h, i.e. it adds a small d = (L XOR c) - L, where L is h's low byte. After a block of n bytes from a
state S, h = S*P^n + sum(d_i * P^(n-i+1)) (mod 2^64). Two blocks collide from any common state when
their d's differ by a vector delta with sum(delta_i * P^(n-i+1)) = 0 mod 2^64 and small entries,
which LLL finds (derive() below, about a minute in pure Python, so the result is written down here).
Blocks chain: t blocks with two choices each give 2^t IDs with one hash (a Joux multicollision).

With a keyed hash (SipHash under a secret key) these IDs are as good as random ones.
"""

import itertools

P = 0x100000001b3
# The start value the old table used (1469598103934665603: the published FNV offset basis less its
# last digit). Any start value works: the construction only needs to know it.
OFFSET = 1469598103934665603
MASK = (1 << 64) - 1
# sum(DELTA[i] * P^(16 - i)) == 0 mod 2^64, found by derive().
DELTA = [2, -2, -5, 8, 7, 7, -3, -6, 0, -2, -9, -1, 4, -8, -1, 3]
ALLOWED = bytes(b for b in range(1, 256) if b not in b' \t\r\n\f\v')  # no NUL, no whitespace


def fnv1a(data, h=OFFSET):
    for c in data:
        h = ((h ^ c) * P) & MASK
    return h


def _block_pair(state):
    """Two different n-byte blocks that take `state` to one same state."""
    a, b = bytearray(), bytearray()
    ha = hb = state
    for delta in DELTA:
        la, lb = ha & 0xff, hb & 0xff
        for ca in ALLOWED:
            d = (la ^ ca) - la
            want = lb + d - delta          # lb XOR cb must equal this
            if 0 <= want <= 255 and (lb ^ want) in ALLOWED:
                cb = lb ^ want
                break
        else:
            raise AssertionError('no byte pair for this state')
        a.append(ca)
        b.append(cb)
        ha = ((ha ^ ca) * P) & MASK
        hb = ((hb ^ cb) * P) & MASK
    assert ha == hb and a != b
    return bytes(a), bytes(b), ha


def colliding_ids(blocks, prefix=b''):
    """2^blocks distinct IDs (prefix + 16*blocks bytes) with one FNV-1a hash."""
    assert sum(d * pow(P, len(DELTA) - i, 1 << 64) for i, d in enumerate(DELTA)) % (1 << 64) == 0
    state = fnv1a(prefix)
    pairs = []
    for _ in range(blocks):
        a, b, state = _block_pair(state)
        pairs.append((a, b))
    return [prefix + b''.join(choice) for choice in itertools.product(*pairs)]


def derive(n=16):
    """The lattice reduction that found DELTA (slow; not used by the tests)."""
    from fractions import Fraction
    m = 1 << 64
    k = 1 << 20
    basis = [[int(i == j) for j in range(n)] + [k * pow(P, n - i, m)] for i in range(n)]
    basis.append([0] * n + [k * m])

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v))

    def gram_schmidt(b):
        bs, mu = [], [[Fraction(0)] * len(b) for _ in b]
        for i in range(len(b)):
            v = [Fraction(x) for x in b[i]]
            for j in range(i):
                mu[i][j] = dot(b[i], bs[j]) / dot(bs[j], bs[j])
                v = [x - mu[i][j] * y for x, y in zip(v, bs[j])]
            bs.append(v)
        return bs, mu

    b = basis
    bs, mu = gram_schmidt(b)
    i = 1
    while i < len(b):
        for j in range(i - 1, -1, -1):
            q = round(mu[i][j])
            if q:
                b[i] = [x - q * y for x, y in zip(b[i], b[j])]
                bs, mu = gram_schmidt(b)
        if dot(bs[i], bs[i]) >= (Fraction(3, 4) - mu[i][i - 1] ** 2) * dot(bs[i - 1], bs[i - 1]):
            i += 1
        else:
            b[i], b[i - 1] = b[i - 1], b[i]
            bs, mu = gram_schmidt(b)
            i = max(i - 1, 1)
    return next(v[:n] for v in b if v[n] == 0 and any(v[:n]))


if __name__ == '__main__':
    ids = colliding_ids(4)
    print(len(ids), len(set(ids)), {fnv1a(i) for i in ids})
