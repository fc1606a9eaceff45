// Command-line parsing: IAMAT, WHATSAT and AT.
#include "protocol/command.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <system_error>

#include "protocol/fields.h"

namespace protocol {

std::optional<double> parse_radius_km(std::string_view text) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n && is_digit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return std::nullopt;
  const std::string_view int_digits = text.substr(0, i);
  std::string_view frac_digits;
  if (i < n) {
    if (text[i] != '.') return std::nullopt;
    frac_digits = text.substr(i + 1);
    if (frac_digits.empty()) return std::nullopt;
    for (char c : frac_digits) {
      if (!is_digit(static_cast<unsigned char>(c))) return std::nullopt;
    }
  }
  if (!has_nonzero(int_digits) && !has_nonzero(frac_digits)) return std::nullopt;
  if (!decimal_at_most(int_digits, frac_digits, kMaxRadiusKm)) return std::nullopt;
  double value = 0;
  const auto result =
      std::from_chars(text.data(), text.data() + n, value, std::chars_format::fixed);
  if (result.ptr != text.data() + n) return std::nullopt;
  if (result.ec != std::errc() || !(value > 0)) {
    // The text is a positive number of at most 50 (checked above), so only an underflow can get
    // here (0.000...0001 with 400 zeros): SPEC.md makes it a valid radius, the smallest there is.
    value = std::numeric_limits<double>::denorm_min();
  }
  return value;
}

std::optional<int> parse_bound(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (!is_digit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + (c - '0');
    if (value > kMaxBound) return std::nullopt;  // stops before any overflow
  }
  if (value < kMinBound) return std::nullopt;
  return value;
}

bool is_time_diff(std::string_view text) {
  // [+-]D+.D{9}: the dot is tenth from the end; the last eight digits are checked as one word.
  const size_t n = text.size();
  if (n < 12 || (text[0] != '+' && text[0] != '-') || text[n - 10] != '.') return false;
  uint64_t last8;
  std::memcpy(&last8, text.data() + n - 8, 8);
  if (!is_digit(static_cast<unsigned char>(text[n - 9])) || !eight_digits(last8)) return false;
  for (size_t i = 1; i < n - 10; ++i) {
    if (!is_digit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

namespace {

// The AT record in `line` from its first fields f[0..count) as split_fields gave them (at most 7:
// the seventh, if any, is where the extra fields begin), or false when it is not one.
bool at_from_fields(std::string_view line, const std::string_view* f, size_t count, At* at) {
  if (count < 6 || f[0] != "AT" || !is_time_diff(f[2])) return false;
  const auto time = parse_timestamp(f[5]);
  if (!valid_location(f[4]) || !time) return false;
  std::string_view extra;
  if (count > 6) {  // from the seventh field to the line's end, less the whitespace there
    const char* end = line.data() + line.size();
    while (is_space(static_cast<unsigned char>(end[-1]))) --end;
    extra = std::string_view(f[6].data(), static_cast<size_t>(end - f[6].data()));
  }
  *at = At{f[1], f[2], f[3], f[4], f[5], *time, extra};
  return true;
}

}  // namespace

CommandKind parse_at(std::string_view line, At* at) {
  std::string_view f[7];
  const size_t count = split_fields(line, f, 7);
  if (count == 0) return CommandKind::kEmpty;
  return at_from_fields(line, f, count, at) ? CommandKind::kAt : CommandKind::kInvalid;
}

Command parse_command(std::string_view line) {
  Command cmd;
  std::string_view f[7];
  const size_t count = split_fields(line, f, 7);
  if (count == 0) {
    cmd.kind = CommandKind::kEmpty;
    return cmd;
  }
  cmd.kind = CommandKind::kInvalid;
  const std::string_view verb = f[0];
  if (verb == "IAMAT") {
    if (count != 4) return cmd;
    const auto time = parse_timestamp(f[3]);
    if (!valid_location(f[2]) || !time) return cmd;
    cmd.iamat = Iamat{f[1], f[2], f[3], *time};
    cmd.kind = CommandKind::kIamat;
  } else if (verb == "WHATSAT") {
    if (count != 4) return cmd;
    const auto radius = parse_radius_km(f[2]);
    const auto bound = parse_bound(f[3]);
    if (!radius || !bound) return cmd;
    cmd.whatsat = Whatsat{f[1], *radius, *bound};
    cmd.kind = CommandKind::kWhatsat;
  } else if (at_from_fields(line, f, count, &cmd.at)) {
    cmd.kind = CommandKind::kAt;
  }
  return cmd;
}

}  // namespace protocol
