// PrometheusText implementation.
#include "http/prometheus_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace http {

void PrometheusText::append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out.append("\\\\"); break;
      case '"': out.append("\\\""); break;
      case '\n': out.append("\\n"); break;
      default: out.push_back(c);
    }
  }
}

void PrometheusText::append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out.append("NaN");
  } else if (std::isinf(value)) {
    out.append(value > 0 ? "+Inf" : "-Inf");
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    out.append(std::to_string(static_cast<long long>(value)));
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, ec == std::errc() ? static_cast<size_t>(end - buf) : 0);
  }
}

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  name_.assign(name);
  out_.append("# HELP ").append(name).push_back(' ');
  for (char c : help) {
    if (c == '\\') out_.append("\\\\");
    else if (c == '\n') out_.append("\\n");
    else out_.push_back(c);
  }
  out_.append("\n# TYPE ").append(name).push_back(' ');
  out_.append(type).push_back('\n');
}

void PrometheusText::head(std::string_view suffix, Labels labels, std::string_view extra_name,
                          std::string_view extra_value) {
  out_.append(name_).append(suffix);
  if (labels.size() == 0 && extra_name.empty()) {
    out_.push_back(' ');
    return;
  }
  out_.push_back('{');
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(k).append("=\"");
    append_label_value(out_, v);
    out_.push_back('"');
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (!extra_name.empty()) one(extra_name, extra_value);
  out_.append("} ");
}

void PrometheusText::sample(Labels labels, double value) {
  head({}, labels);
  append_number(out_, value);
  out_.push_back('\n');
}

void PrometheusText::sample(Labels labels, uint64_t value) {
  head({}, labels);
  out_.append(std::to_string(value)).push_back('\n');
}

void PrometheusText::histogram(Labels labels, const double* bounds, const uint64_t* cumulative, size_t n,
                               double sum, uint64_t count) {
  std::string le;
  for (size_t i = 0; i < n; ++i) {
    le.clear();
    append_number(le, bounds[i]);
    head("_bucket", labels, "le", le);
    out_.append(std::to_string(cumulative[i])).push_back('\n');
  }
  head("_bucket", labels, "le", "+Inf");
  out_.append(std::to_string(count)).push_back('\n');
  head("_sum", labels);
  append_number(out_, sum);
  out_.push_back('\n');
  head("_count", labels);
  out_.append(std::to_string(count)).push_back('\n');
}

}  // namespace http
