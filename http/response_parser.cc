// ResponseParser implementation: llhttp callbacks fill a Response; bounds are checked as bytes come.
#include "http/response_parser.h"

#include <algorithm>

namespace http {
namespace {

ResponseParser* self(llhttp_t* p) { return static_cast<ResponseParser*>(p->data); }

// Per-header overhead counted against the header bound (": " and CRLF), so a flood of empty
// headers is bounded too.
constexpr size_t kHeaderLineOverhead = 4;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

const llhttp_settings_t& ResponseParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t x;
    llhttp_settings_init(&x);
    x.on_message_begin = &ResponseParser::on_message_begin;
    x.on_status = &ResponseParser::on_status;
    x.on_header_field = &ResponseParser::on_header_field;
    x.on_header_value = &ResponseParser::on_header_value;
    x.on_headers_complete = &ResponseParser::on_headers_complete;
    x.on_body = &ResponseParser::on_body;
    x.on_chunk_header = &ResponseParser::on_chunk_header;
    x.on_message_complete = &ResponseParser::on_message_complete;
    return x;
  }();
  return s;
}

ResponseParser::ResponseParser(ParserLimits limits) : limits_(limits) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
}

int ResponseParser::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return HPE_USER;
}

bool ResponseParser::count_header_bytes(size_t n) {
  header_bytes_ += n;
  return header_bytes_ <= limits_.max_header_bytes;
}

ResponseParser::State ResponseParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (state_ != State::kIncomplete) return state_;
  if (data.empty()) return state_;
  started_ = true;
  llhttp_errno_t rc = llhttp_execute(&parser_, data.data(), data.size());
  if (rc == HPE_OK) {
    *consumed = data.size();
    return state_;
  }
  if (rc == HPE_PAUSED && complete_) {
    const char* pos = llhttp_get_error_pos(&parser_);
    *consumed = pos ? static_cast<size_t>(pos - data.data()) : data.size();
    state_ = State::kComplete;
    return state_;
  }
  if (error_.empty()) {
    const char* reason = llhttp_get_error_reason(&parser_);
    error_ = std::string("malformed response: ") + llhttp_errno_name(rc) + (reason && *reason ? std::string(" (") + reason + ")" : "");
  }
  state_ = State::kError;
  return state_;
}

ResponseParser::State ResponseParser::finish() {
  if (state_ != State::kIncomplete) return state_;
  llhttp_errno_t rc = llhttp_finish(&parser_);
  if (complete_ && (rc == HPE_OK || rc == HPE_PAUSED)) {
    state_ = State::kComplete;
    return state_;
  }
  if (error_.empty()) {
    if (rc != HPE_OK && rc != HPE_PAUSED) {
      error_ = "the connection closed in the middle of the response";
    } else {
      error_ = started_ ? "the connection closed in the middle of the response"
                        : "the connection closed before any response";
    }
  }
  state_ = State::kError;
  return state_;
}

int ResponseParser::on_message_begin(llhttp_t* p) {
  ResponseParser* r = self(p);
  r->response_ = Response{};
  r->gzip_.reset();
  r->header_bytes_ = 0;
  r->raw_body_bytes_ = 0;
  r->in_value_ = false;
  return 0;
}

int ResponseParser::on_status(llhttp_t* p, const char*, size_t n) {
  ResponseParser* r = self(p);
  if (!r->count_header_bytes(n)) {
    return r->fail("header section over " + std::to_string(r->limits_.max_header_bytes) + " bytes");
  }
  return 0;
}

int ResponseParser::on_header_field(llhttp_t* p, const char* at, size_t n) {
  ResponseParser* r = self(p);
  if (!r->count_header_bytes(n + (r->in_value_ || r->response_.headers.empty() ? kHeaderLineOverhead : 0))) {
    return r->fail("header section over " + std::to_string(r->limits_.max_header_bytes) + " bytes");
  }
  if (r->in_value_ || r->response_.headers.empty()) {
    if (r->response_.headers.size() >= r->limits_.max_headers) {
      return r->fail("more than " + std::to_string(r->limits_.max_headers) + " header fields");
    }
    r->response_.headers.push_back(Header{});
    r->in_value_ = false;
  }
  r->response_.headers.back().name.append(at, n);
  return 0;
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, size_t n) {
  ResponseParser* r = self(p);
  if (!r->count_header_bytes(n)) {
    return r->fail("header section over " + std::to_string(r->limits_.max_header_bytes) + " bytes");
  }
  if (r->response_.headers.empty()) return r->fail("a header value without a name");
  r->in_value_ = true;
  r->response_.headers.back().value.append(at, n);
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  ResponseParser* r = self(p);
  for (auto& h : r->response_.headers) h.value = std::string(trim(h.value));
  r->response_.status = llhttp_get_status_code(p);
  // 1xx, 204 and 304 never have a body, whatever Content-Length or Transfer-Encoding say (RFC 9112
  // 6.3; a 304 carries the Content-Length of the representation it stands for). llhttp leaves that
  // to us: 1 tells it so. An interim response is then skipped at its end; 101 stays an upgrade,
  // which llhttp reports as such.
  const int status = r->response_.status;
  if (status < 200 || status == 204 || status == 304) return 1;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->limits_.max_body_bytes) {
    return r->fail("body of " + std::to_string(p->content_length) + " bytes announced, over the limit of " +
                   std::to_string(r->limits_.max_body_bytes));
  }
  if (const std::string* enc = r->response_.header("Content-Encoding")) {
    if (same_name(*enc, "gzip") || same_name(*enc, "x-gzip")) {
      r->gzip_ = std::make_unique<GzipDecoder>(r->limits_.max_body_bytes);
    } else if (!enc->empty() && !same_name(*enc, "identity")) {
      return r->fail("unsupported Content-Encoding '" + *enc + "'");
    }
  }
  return 0;
}

int ResponseParser::on_chunk_header(llhttp_t* p) {
  // A chunk announced past the body's limit is refused now, as a Content-Length would be, not after
  // its bytes have been waited for (and counted against the limit as they come).
  ResponseParser* r = self(p);
  if (p->content_length > r->limits_.max_body_bytes - std::min(r->raw_body_bytes_, r->limits_.max_body_bytes)) {
    return r->fail("chunk of " + std::to_string(p->content_length) + " bytes announced, over the body limit of " +
                   std::to_string(r->limits_.max_body_bytes));
  }
  return 0;
}

int ResponseParser::on_body(llhttp_t* p, const char* at, size_t n) {
  ResponseParser* r = self(p);
  std::string& body = r->response_.body;
  r->raw_body_bytes_ += n;  // bounds compressed bodies too, even ones that expand to nothing
  if (r->raw_body_bytes_ > r->limits_.max_body_bytes) {
    return r->fail("body over the limit of " + std::to_string(r->limits_.max_body_bytes) + " bytes");
  }
  if (r->gzip_) {
    std::string why;
    if (!r->gzip_->feed(std::string_view(at, n), &body, &why)) return r->fail(why);
    return 0;
  }
  if (body.size() + n > r->limits_.max_body_bytes) {
    return r->fail("body over the limit of " + std::to_string(r->limits_.max_body_bytes) + " bytes");
  }
  body.append(at, n);
  return 0;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  ResponseParser* r = self(p);
  if (r->response_.status < 200) return 0;  // an interim response: the final one follows
  if (r->gzip_) {
    std::string why;
    if (!r->gzip_->finish(&why)) return r->fail(why);
  }
  r->keep_alive_ = llhttp_should_keep_alive(p) != 0;
  r->complete_ = true;
  return HPE_PAUSED;
}

}  // namespace http
