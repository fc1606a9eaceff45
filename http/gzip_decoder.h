// GzipDecoder: incremental gzip (RFC 1952) decompression of a response body with a bound on the
// decompressed size, so a small compressed body cannot expand without limit (a "gzip bomb").
//
// Not thread-safe: one decoder per response, used on one thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <zlib.h>

namespace http {

class GzipDecoder {
 public:
  // Output beyond `max_output` bytes in total is an error.
  explicit GzipDecoder(size_t max_output);
  ~GzipDecoder();
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  // Decompresses `in`, appending to *out. False with *error set on corrupt data, on bytes after the
  // end of the gzip stream, or when the output would pass the bound.
  bool feed(std::string_view in, std::string* out, std::string* error);
  // The body ended: false with *error set when the gzip stream is incomplete.
  bool finish(std::string* error) const;

 private:
  z_stream zs_{};
  bool ready_ = false;   // inflateInit2 succeeded
  bool ended_ = false;   // Z_STREAM_END seen
  size_t max_output_;
  size_t produced_ = 0;
};

}  // namespace http
