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

  // Starts a family: type is "counter", "gauge", "histogram" or "untyped". The samples that follow
  // belong to it, so its name is written once.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(Labels labels, double value);
  void sample(Labels labels, uint64_t value);
  void sample(double value) { sample({}, value); }
  void sample(uint64_t value) { sample({}, value); }
  // The current family's histogram: `n` cumulative counts for the upper bounds `bounds` (the +Inf
  // bucket is `count`), then _sum and _count.
  void histogram(Labels labels, const double* bounds, const uint64_t* cumulative, size_t n, double sum,
                 uint64_t count);
  // A family of one unlabelled sample.
  void counter(std::string_view name, std::string_view help, uint64_t value) { single(name, "counter", help, value); }
  void counter(std::string_view name, std::string_view help, double value) { single(name, "counter", help, value); }
  void gauge(std::string_view name, std::string_view help, uint64_t value) { single(name, "gauge", help, value); }
  void gauge(std::string_view name, std::string_view help, double value) { single(name, "gauge", help, value); }

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  static void append_label_value(std::string& out, std::string_view value);
  // Go-style float text: integers without a fraction, +Inf/-Inf/NaN spelled as Prometheus wants.
  static void append_number(std::string& out, double value);

 private:
  template <typename T>
  void single(std::string_view name, std::string_view type, std::string_view help, T value) {
    family(name, type, help);
    sample(value);
  }
  // A sample line's name and labels (with `extra_name` = `extra_value` last, when given) and the space.
  void head(std::string_view suffix, Labels labels, std::string_view extra_name = {},
            std::string_view extra_value = {});
  std::string out_;
  std::string name_;  // the current family's
};

}  // namespace http
