// RequestParser implementation.
#include "http/request_parser.h"

#include <cctype>

namespace http {

const std::string* IncomingRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

std::string_view IncomingRequest::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

RequestParser::RequestParser(RequestLimits limits) : limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_header_value_complete = on_header_value_complete;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_message_complete = on_message_complete;
  reset();
}

void RequestParser::reset() {
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
  state_ = State::kIncomplete;
  request_ = IncomingRequest{};
  head_bytes_ = 0;
  in_value_ = false;
  error_status_ = 0;
  error_.clear();
}

int RequestParser::fail(int status, std::string why) {
  error_status_ = status;
  error_ = std::move(why);
  return -1;
}

RequestParser::State RequestParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  if (state_ != State::kIncomplete || data.empty()) return state_;
  // No body is accepted, so every byte before the end of the request is head: parse at most one
  // byte past the bound, so a head that never ends costs no more than the bound to reject.
  const size_t room = limits_.max_head_bytes - head_bytes_ + 1;
  if (data.size() > room) data = data.substr(0, room);
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) {
    *consumed = data.size();
    head_bytes_ += data.size();
    if (head_bytes_ > limits_.max_head_bytes) {
      state_ = State::kError;
      fail(431, "request head over " + std::to_string(limits_.max_head_bytes) + " bytes");
    }
    return state_;
  }
  if (err == HPE_PAUSED && state_ == State::kComplete) {
    *consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    head_bytes_ += *consumed;
    // A head ends with an empty line, so with LF (bare LF ends a line too, RFC 9112 2.2). llhttp
    // 8.1 also ends it at CR followed by any other byte, which it takes along (CVE-2023-30589):
    // the next request would begin a byte late, or that byte be lost. The byte that completed the
    // request is in `data` (*consumed >= 1).
    if (*consumed == 0 || data[*consumed - 1] != '\n') {
      state_ = State::kError;
      *consumed = 0;
      fail(400, "the request head does not end with CRLF CRLF");
      return state_;
    }
    // The byte parsed past the bound may be the one that ends the head: the head is still too long.
    if (head_bytes_ > limits_.max_head_bytes) {
      state_ = State::kError;
      fail(431, "request head over " + std::to_string(limits_.max_head_bytes) + " bytes");
    }
    return state_;
  }
  state_ = State::kError;
  if (error_status_ == 0) {
    const char* reason = llhttp_get_error_reason(&parser_);
    if (err == HPE_INVALID_METHOD) {
      error_status_ = 405;
      error_ = "unsupported method";
    } else if (err == HPE_INVALID_VERSION) {
      error_status_ = 505;
      error_ = "unsupported HTTP version";
    } else {
      error_status_ = 400;
      error_ = reason ? reason : llhttp_errno_name(err);
    }
  }
  return state_;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->request_ = IncomingRequest{};
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->request_.target.append(at, n);
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<RequestParser*>(p->data);
  if (self->in_value_ || self->request_.headers.empty()) {
    if (self->request_.headers.size() >= self->limits_.max_headers) {
      return self->fail(431, "more than " + std::to_string(self->limits_.max_headers) + " header fields");
    }
    self->request_.headers.emplace_back();
    self->in_value_ = false;
  }
  for (size_t i = 0; i < n; ++i) {
    self->request_.headers.back().first.push_back(
        static_cast<char>(std::tolower(static_cast<unsigned char>(at[i]))));
  }
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->in_value_ = true;
  self->request_.headers.back().second.append(at, n);
  return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  // A field name is a token, one character at least (RFC 9110 5.1): llhttp takes `: value` whole.
  if (self->request_.headers.back().first.empty()) return self->fail(400, "a header field without a name");
  // llhttp skips the whitespace before a value but hands over the whitespace after it, which is
  // optional whitespace too (RFC 9110 5.5): `Bearer t ` is the credential `Bearer t`.
  std::string& value = self->request_.headers.back().second;
  const size_t end = value.find_last_not_of(" \t");
  value.resize(end == std::string::npos ? 0 : end + 1);
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  auto method = static_cast<llhttp_method_t>(llhttp_get_method(p));
  if (method != HTTP_GET && method != HTTP_HEAD) {
    return self->fail(405, std::string("method ") + llhttp_method_name(method) + " not allowed");
  }
  if (p->http_major != 1) return self->fail(505, "unsupported HTTP version");
  // GET and HEAD carry no body here: one announced is refused rather than read. Any
  // Transfer-Encoding announces one (RFC 9112 6.3), chunked last or not, empty too: llhttp refuses a
  // request whose last coding is not chunked, but not when Connection: Upgrade makes it hand over
  // the rest, and it takes no notice of an empty one. So the header itself is looked for.
  if ((p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) || self->request_.header("transfer-encoding") ||
      ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)) {
    return self->fail(413, "a request body is not accepted");
  }
  self->request_.method = llhttp_method_name(method);
  self->request_.keep_alive = llhttp_should_keep_alive(p) != 0;
  self->request_.http_1_0 = p->http_minor == 0;
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->state_ = State::kComplete;
  return HPE_PAUSED;
}

}  // namespace http
