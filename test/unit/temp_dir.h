// TempDir: a fresh directory under /tmp for one test, removed with everything in it when the test
// is done (also when an assertion ends it early).
#pragma once

#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace testing_fs {

struct TempDir {
  // `prefix` names the test in the directory's name: /tmp/<prefix>-XXXXXX.
  explicit TempDir(const std::string& prefix = "herd-unit") {
    std::string name = "/tmp/" + prefix + "-XXXXXX";
    REQUIRE(::mkdtemp(name.data()) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path;
};

}  // namespace testing_fs
