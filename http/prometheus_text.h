// PrometheusText: builds a body in the Prometheus text exposition format 0.0.4 (what /metrics
// serves): a `# HELP` and `# TYPE` line per metric family, then its samples, each
// `name{label="value",...} number`. Label values are escaped (backslash, double quote, newline), so
// client-chosen text can never break a line or a label; HELP text escapes backslash and newline.
//
// Not thread-safe: one writer per body, on one thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace http {

class PrometheusText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // Starts a family: type is "counter", "gauge", "histogram" or "untyped".
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, uint64_t value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  void sample(std::string_view name, uint64_t value) { sample(name, {}, value); }
  // One histogram's samples: `buckets` cumulative counts for the upper bounds `bounds` (the +Inf
  // bucket is `count`), then _sum and _count.
  void histogram(std::string_view name, Labels labels, const double* bounds, const uint64_t* cumulative,
                 size_t n, double sum, uint64_t count);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  static void append_label_value(std::string& out, std::string_view value);
  // Go-style float text: integers without a fraction, +Inf/-Inf/NaN spelled as Prometheus wants.
  static void append_number(std::string& out, double value);

 private:
  void head(std::string_view name, Labels labels, std::string_view extra_name = {},
            std::string_view extra_value = {});
  std::string out_;
};

}  // namespace http
