// Request serialization and header lookup.
#include "http/message.h"

namespace http {

bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

const std::string* Response::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (same_name(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::string serialize(const Request& request, std::string_view authority, bool gzip) {
  std::string out;
  out.reserve(256 + request.target.size() + request.body.size());
  out.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(authority).append("\r\n");
  for (const auto& h : request.headers) out.append(h.name).append(": ").append(h.value).append("\r\n");
  if (gzip) out.append("Accept-Encoding: gzip\r\n");
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  out.append("\r\n").append(request.body);
  return out;
}

}  // namespace http
