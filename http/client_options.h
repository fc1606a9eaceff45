// What an HttpClient is configured with (ClientOptions) and what a request ends with (Result).
//
// Plain values; thread-safe as values are.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"
#include "http/response_parser.h"
#include "http/url.h"

namespace reactor {
class EventLoop;
class TlsContext;
}  // namespace reactor

namespace http {

struct ClientOptions {
  Url endpoint;                                      // the one upstream this client talks to
  std::shared_ptr<const reactor::TlsContext> tls;    // required when endpoint.tls()
  ParserLimits limits;                               // per response
  bool gzip = true;                                  // send Accept-Encoding: gzip
  size_t max_idle_per_loop = 8;                      // kept-alive connections waiting, per loop
                                                     // (more are closed when they come free)
  std::chrono::milliseconds idle_timeout{30000};     // an idle connection is closed after this
  std::chrono::milliseconds dns_ttl{60000};          // a looked-up address is reused this long
  std::chrono::milliseconds handshake_timeout{10000};  // TLS handshake bound (the request's own
                                                       // timeout applies too)
  // Optional: told of connection events ("connected to ...", "idle connection closed: ...") on the
  // loop thread concerned. Never given request bytes.
  std::function<void(reactor::EventLoop& loop, std::string_view event)> log;
};

struct Result {
  std::string error;  // empty: `response` is a complete response (any status code)
  Response response;
  bool timed_out = false;  // the error is the request's timeout
  bool ok() const { return error.empty(); }
};

}  // namespace http
