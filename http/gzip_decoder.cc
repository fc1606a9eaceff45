// GzipDecoder implementation on zlib's inflate.
#include "http/gzip_decoder.h"

namespace http {
namespace {
constexpr size_t kOutStep = 16 * 1024;  // decompressed bytes produced per inflate call
constexpr int kGzipWindow = 15 + 16;    // 32 KiB window, gzip header and trailer only
}  // namespace

GzipDecoder::GzipDecoder(size_t max_output) : max_output_(max_output) {
  ready_ = inflateInit2(&zs_, kGzipWindow) == Z_OK;
}

GzipDecoder::~GzipDecoder() {
  if (ready_) inflateEnd(&zs_);
}

bool GzipDecoder::feed(std::string_view in, std::string* out, std::string* error) {
  if (!ready_) {
    *error = "cannot start the gzip decoder";
    return false;
  }
  if (in.empty()) return true;
  if (ended_) {
    *error = "bytes after the end of the gzip body";
    return false;
  }
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());
  // Go on while input remains, or while the last call filled the output (zlib may hold more).
  bool more = true;
  while (more && !ended_) {
    size_t old = out->size();
    out->resize(old + kOutStep);
    zs_.next_out = reinterpret_cast<Bytef*>(out->data() + old);
    zs_.avail_out = static_cast<uInt>(kOutStep);
    int rc = inflate(&zs_, Z_NO_FLUSH);
    size_t got = kOutStep - zs_.avail_out;
    out->resize(old + got);
    produced_ += got;
    if (produced_ > max_output_) {
      *error = "the gzip body expands to more than " + std::to_string(max_output_) + " bytes";
      return false;
    }
    if (rc == Z_STREAM_END) {
      ended_ = true;
    } else if (rc == Z_BUF_ERROR && got == 0) {
      break;  // needs more input
    } else if (rc != Z_OK) {
      *error = std::string("corrupt gzip body: ") + (zs_.msg ? zs_.msg : "inflate failed");
      return false;
    }
    more = zs_.avail_in > 0 || zs_.avail_out == 0;
  }
  if (ended_ && zs_.avail_in > 0) {
    *error = "bytes after the end of the gzip body";
    return false;
  }
  return true;
}

bool GzipDecoder::finish(std::string* error) const {
  if (ended_) return true;
  *error = "the gzip body ends before its end";
  return false;
}

}  // namespace http
