// ErrorKind: every way a reply or a connection can go wrong, with the names used in reports.
#pragma once

#include <cstddef>

namespace herd_load {

enum class ErrorKind {
  kNone = 0,
  kInvalid,      // the server answered "? ..." (it judged our request invalid)
  kMalformed,    // the reply does not have the protocol's shape
  kMismatch,     // well-formed, but not the answer to the request at the head of the FIFO
  kWrongServer,  // an IAMAT reply naming another server than the one we sent it to
  kBadJson,      // the WHATSAT JSON part does not parse
  kBadResults,   // JSON parses but "results"/"status" are missing, mistyped or too many
  kRedisError,   // redis answered with -ERR
  kConnect,      // a connection attempt failed
  kClosed,       // the server closed (or reset) a connection
  kLost,         // a request that was in flight when its connection dropped
  kTimeout,      // no reply within --timeout
  kOversize,     // a reply grew past the framing limit without ending
  kCount
};

constexpr size_t kErrorKindCount = static_cast<size_t>(ErrorKind::kCount);

inline const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kInvalid: return "invalid";
    case ErrorKind::kMalformed: return "malformed";
    case ErrorKind::kMismatch: return "mismatch";
    case ErrorKind::kWrongServer: return "wrong_server";
    case ErrorKind::kBadJson: return "bad_json";
    case ErrorKind::kBadResults: return "bad_results";
    case ErrorKind::kRedisError: return "redis_error";
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kClosed: return "closed";
    case ErrorKind::kLost: return "lost";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kOversize: return "oversize";
    case ErrorKind::kCount: break;
  }
  return "?";
}

}  // namespace herd_load
