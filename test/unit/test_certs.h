// Certificates for the TLS unit tests, made at test time by tools/certs.py (the same tool `make certs`
// runs) into a temporary folder: a herd CA with leaf certificates, and a second, unrelated CA.
// Threads: any; the files are made once per process, on first use, under a lock.
#pragma once

#include <string>

namespace testcerts {

struct Files {
  std::string dir;  // holds ca.pem and NAME.pem / NAME.key per name
  std::string ca() const { return dir + "/ca.pem"; }
  std::string cert(const std::string& name) const { return dir + "/" + name + ".pem"; }
  std::string key(const std::string& name) const { return dir + "/" + name + ".key"; }
};

// The herd CA: leaves "alpha", "beta", "gamma", "A" and "B"; each also names "herd.test" and 127.0.0.1 in its
// subjectAltName (so alpha's names are alpha, herd.test, then the CN alpha).
const Files& herd();
// Another CA (CN "other test CA") with a leaf "alpha": a valid-looking certificate nobody trusts.
const Files& other();

}  // namespace testcerts
