// Test certificates: runs tools/certs.py once per CA into a temporary folder (see test_certs.h).
#include "test/unit/test_certs.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace testcerts {
namespace {

Files make(const char* ca_name, const char* names) {
  char dir_template[] = "/tmp/herd-certs-XXXXXX";
  Files files;
  if (!::mkdtemp(dir_template)) FAIL("cannot make a temporary folder");
  files.dir = dir_template;
  // Run from the repository root (as make unit does): the tool is tools/certs.py.
  std::string command = std::string("/usr/bin/python3 tools/certs.py --out ") + files.dir + " --ca-name '" +
                        ca_name + "' --names " + names + " --hosts herd.test 127.0.0.1 >/dev/null";
  if (std::system(command.c_str()) != 0) FAIL("tools/certs.py failed: " << command);
  return files;
}

// Removes its folder at exit.
struct Made {
  Files files;
  ~Made() {
    std::error_code ignored;
    if (!files.dir.empty()) std::filesystem::remove_all(files.dir, ignored);
  }
};

}  // namespace

const Files& herd() {
  static std::once_flag once;
  static Made made;
  std::call_once(once, [] { made.files = make("herd test CA", "alpha beta gamma A B"); });
  return made.files;
}

const Files& other() {
  static std::once_flag once;
  static Made made;
  std::call_once(once, [] { made.files = make("other test CA", "alpha"); });
  return made.files;
}

}  // namespace testcerts
