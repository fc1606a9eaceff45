// Unit tests for protocol/: field splitting, timestamps, ISO 6709 locations, command parsing,
// reply formatting, and a seeded robustness sweep of parse_command over random bytes.
#include <doctest/doctest.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/location.h"
#include "protocol/reply.h"
#include "protocol/timestamp.h"
#include "test/unit/xorshift.h"

using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

using protocol::Command;
using protocol::CommandKind;
using protocol::Timestamp;

CommandKind kind_of(std::string_view line) { return protocol::parse_command(line).kind; }

std::string diff(Timestamp a, Timestamp b) {
  std::string out;
  protocol::append_time_diff(out, a, b);
  return out;
}

std::string iamat_with_location(std::string_view loc) {
  return "IAMAT kiwi.cs.ucla.edu "s + std::string(loc) + " 1520023934.918963997";
}

std::string iamat_with_time(std::string_view time) {
  return "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 "s + std::string(time);
}

std::string whatsat(std::string_view radius, std::string_view bound) {
  return "WHATSAT kiwi.cs.ucla.edu "s + std::string(radius) + " " + std::string(bound);
}

// True when `v` is empty or lies entirely inside `line`.
bool inside(std::string_view v, std::string_view line) {
  if (v.empty()) return true;
  const char* begin = line.data();
  const char* end = begin + line.size();
  return v.data() >= begin && v.data() + v.size() <= end;
}

}  // namespace

TEST_SUITE("protocol") {

// ---------------------------------------------------------------------------------------------
// fields

TEST_CASE("is_space accepts exactly the six whitespace bytes") {
  int count = 0;
  for (int c = 0; c < 256; ++c) {
    if (protocol::is_space(static_cast<unsigned char>(c))) ++count;
  }
  CHECK(count == 6);
  for (unsigned char c : {' ', '\t', '\r', '\n', '\f', '\v'}) CHECK(protocol::is_space(c));
  CHECK_FALSE(protocol::is_space('\0'));
  CHECK_FALSE(protocol::is_space(0x85));
  CHECK_FALSE(protocol::is_space(0xa0));
}

TEST_CASE("split_fields splits on whitespace runs and reports over-long lines as max+1") {
  std::string_view f[4];
  CHECK(protocol::split_fields("", f, 4) == 0);
  CHECK(protocol::split_fields(" \t\r\n\f\v ", f, 4) == 0);
  REQUIRE(protocol::split_fields("  a\t\tbb \f\vccc\r", f, 4) == 3);
  CHECK(f[0] == "a");
  CHECK(f[1] == "bb");
  CHECK(f[2] == "ccc");
  CHECK(protocol::split_fields("a b c d", f, 4) == 4);
  CHECK(f[3] == "d");
  CHECK(protocol::split_fields("a b c d e", f, 4) == 5);
  CHECK(protocol::split_fields("a b c d e f g h", f, 4) == 5);
  CHECK(protocol::split_fields("a", nullptr, 0) == 1);
  CHECK(protocol::split_fields("   ", nullptr, 0) == 0);
}

TEST_CASE("split_fields agrees with the byte-by-byte rule on random lines of every length") {
  // The reference: the rule as written in fields.h, one byte at a time.
  auto reference = [](std::string_view line, std::string_view* out, size_t max) -> size_t {
    size_t count = 0, i = 0;
    const size_t n = line.size();
    while (true) {
      while (i < n && protocol::is_space(static_cast<unsigned char>(line[i]))) ++i;
      if (i == n) return count;
      if (count == max) return max + 1;
      const size_t start = i;
      while (i < n && !protocol::is_space(static_cast<unsigned char>(line[i]))) ++i;
      out[count++] = line.substr(start, i - start);
    }
  };
  const std::string alphabet = std::string(" \t\n\v\f\r\x08\x0e\x1f\x7f\x80\xff\x89", 13) + "abAT+-.019";
  XorShift next{0x243f6a8885a308d3ull};
  for (int round = 0; round < 30000; ++round) {
    std::string line;
    size_t len = next() % 200;  // across several of the 64-byte chunks the SSE2 split reads
    bool spaces_rare = next() & 1;
    for (size_t i = 0; i < len; ++i) {
      size_t k = next() % alphabet.size();
      if (spaces_rare && k < 6 && next() % 4) k += 6;  // longer fields half of the time
      line.push_back(alphabet[k]);
    }
    for (size_t max : {0, 1, 3, 7, 64}) {
      std::string_view got[64], want[64];
      size_t g = protocol::split_fields(line, max ? got : nullptr, max);
      size_t w = reference(line, max ? want : nullptr, max);
      REQUIRE(g == w);
      for (size_t i = 0; i < std::min(w, max); ++i) {
        REQUIRE(got[i].data() == want[i].data());
        REQUIRE(got[i].size() == want[i].size());
      }
    }
  }
}

TEST_CASE("next_field walks the same fields split_fields finds, any number of them") {
  const std::string line = " \tAT a  b\r\nc \v";
  std::string_view want[8];
  size_t n = protocol::split_fields(line, want, 8);
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    std::string_view f = protocol::next_field(line, &pos);
    CHECK(f.data() == want[i].data());
    CHECK(f.size() == want[i].size());
  }
  CHECK(protocol::next_field(line, &pos).empty());
  CHECK(pos == line.size());
}

TEST_CASE("trim drops whitespace at both ends only") {
  CHECK(protocol::trim(" \t a b \r\n") == "a b");
  CHECK(protocol::trim(" \v\f ").empty());
  CHECK(protocol::trim("x") == "x");
}

// ---------------------------------------------------------------------------------------------
// timestamps

TEST_CASE("parse_timestamp accepts D+ and D+.D+") {
  CHECK(protocol::parse_timestamp("0") == Timestamp{0, 0});
  CHECK(protocol::parse_timestamp("1520023934") == Timestamp{1520023934, 0});
  CHECK(protocol::parse_timestamp("1520023934.918963997") == Timestamp{1520023934, 918963997});
  CHECK(protocol::parse_timestamp("1.5") == Timestamp{1, 500000000});
  CHECK(protocol::parse_timestamp("1.000000001") == Timestamp{1, 1});
  CHECK(protocol::parse_timestamp("0007.05") == Timestamp{7, 50000000});
  CHECK(protocol::parse_timestamp("0.0") == Timestamp{0, 0});
}

TEST_CASE("parse_timestamp truncates beyond 9 fractional digits") {
  CHECK(protocol::parse_timestamp("1.9999999999") == Timestamp{1, 999999999});
  CHECK(protocol::parse_timestamp("1.1234567891") == Timestamp{1, 123456789});
  CHECK(protocol::parse_timestamp("1.000000000999999999999999") == Timestamp{1, 0});
  CHECK_FALSE(protocol::parse_timestamp("1.0000000009x"));
}

TEST_CASE("parse_timestamp bounds the seconds below 10^18") {
  CHECK(protocol::parse_timestamp("999999999999999999") == Timestamp{999999999999999999, 0});
  CHECK(protocol::parse_timestamp("000000999999999999999999.5") ==
        Timestamp{999999999999999999, 500000000});
  CHECK_FALSE(protocol::parse_timestamp("1000000000000000000"));
  CHECK_FALSE(protocol::parse_timestamp("1000000000000000000.0"));
  CHECK_FALSE(protocol::parse_timestamp("9223372036854775807"));
  CHECK_FALSE(protocol::parse_timestamp("99999999999999999999999999999999999999"));
}

TEST_CASE("parse_timestamp agrees with the digit-by-digit rule on random digit strings") {
  // The reference: the rule of SPEC.md one byte at a time (below 10^18 seconds, 9 fractional
  // digits kept); parse_timestamp takes runs of eight digits at once.
  auto reference = [](std::string_view text) -> std::optional<Timestamp> {
    size_t dot = text.find('.');
    std::string_view whole = text.substr(0, dot);
    if (whole.empty()) return std::nullopt;
    int64_t sec = 0;
    size_t significant = 0;
    for (char c : whole) {
      if (!protocol::is_digit(static_cast<unsigned char>(c))) return std::nullopt;
      if (sec == 0 && c == '0') continue;
      if (++significant > 18) return std::nullopt;
      sec = sec * 10 + (c - '0');
    }
    Timestamp t{sec, 0};
    if (dot == std::string_view::npos) return t;
    std::string_view frac = text.substr(dot + 1);
    if (frac.empty()) return std::nullopt;
    for (char c : frac) {
      if (!protocol::is_digit(static_cast<unsigned char>(c))) return std::nullopt;
    }
    int32_t nsec = 0;
    for (size_t k = 0; k < 9; ++k) {
      char c = k < frac.size() ? frac[k] : '0';
      nsec = nsec * 10 + (c - '0');
    }
    t.nsec = nsec;
    return t;
  };
  const std::string alphabet = "0123456789012345678901234567890123456789.:/ a";
  XorShift next{0x13198a2e03707344ull};
  for (int round = 0; round < 200000; ++round) {
    std::string text;
    const size_t whole = next() % 24, frac = next() % 14;
    const bool dot = next() % 4 != 0, dirty = next() % 8 == 0;
    for (size_t i = 0; i < whole; ++i) text.push_back(static_cast<char>('0' + next() % 10));
    if (next() % 3 == 0 && whole) text[0] = '0';  // leading zeros
    if (dot) text.push_back('.');
    for (size_t i = 0; i < frac; ++i) text.push_back(static_cast<char>('0' + next() % 10));
    if (dirty && !text.empty()) text[next() % text.size()] = alphabet[next() % alphabet.size()];
    CAPTURE(text);
    REQUIRE(protocol::parse_timestamp(text) == reference(text));
  }
}

TEST_CASE("parse_timestamp rejects everything else") {
  for (std::string_view bad : {""sv, "."sv, "5."sv, ".5"sv, "-1"sv, "+1"sv, "-0.5"sv, "1e9"sv,
                               "1E9"sv, "1.5e3"sv, "nan"sv, "NaN"sv, "inf"sv, "infinity"sv,
                               "abc"sv, "12a"sv, "1.2.3"sv, " 1"sv, "1 "sv, "1,5"sv, "0x10"sv,
                               "1..5"sv, "\xff"sv}) {
    CAPTURE(bad);
    CHECK_FALSE(protocol::parse_timestamp(bad));
  }
}

TEST_CASE("Timestamp orders by seconds then nanoseconds") {
  CHECK(Timestamp{1, 999999999} < Timestamp{2, 0});
  CHECK(Timestamp{2, 1} > Timestamp{2, 0});
  CHECK(Timestamp{3, 4} == Timestamp{3, 4});
}

TEST_CASE("append_time_diff writes an explicit sign and exactly 9 fractional digits") {
  CHECK(diff({10, 0}, {9, 999999999}) == "+0.000000001");
  CHECK(diff({9, 0}, {10, 500000000}) == "-1.500000000");
  CHECK(diff({5, 5}, {5, 5}) == "+0.000000000");
  CHECK(diff({0, 0}, {0, 0}) == "+0.000000000");
  CHECK(diff({1520023935, 182837383}, {1520023934, 918963997}) == "+0.263873386");
  CHECK(diff({1, 0}, {1, 500000000}) == "-0.500000000");
  CHECK(diff({0, 0}, {0, 1}) == "-0.000000001");
  CHECK(diff({9, 999999999}, {10, 0}) == "-0.000000001");
  CHECK(diff({12, 250000000}, {2, 0}) == "+10.250000000");
  CHECK(diff({2, 0}, {12, 250000000}) == "-10.250000000");
  CHECK(diff({100, 100}, {0, 999999999}) == "+99.000000101");
}

TEST_CASE("append_time_diff at the extremes of valid timestamps") {
  const Timestamp max{999999999999999999, 999999999};
  const Timestamp zero{0, 0};
  CHECK(diff(max, zero) == "+999999999999999999.999999999");
  CHECK(diff(zero, max) == "-999999999999999999.999999999");
  CHECK(diff(max, max) == "+0.000000000");
  CHECK(diff({999999999999999999, 0}, {0, 999999999}) == "+999999999999999998.000000001");
}

TEST_CASE("append_time_diff never mixes signs") {
  for (int64_t as = 0; as < 3; ++as) {
    for (int32_t an : {0, 1, 499999999, 500000000, 999999999}) {
      for (int64_t bs = 0; bs < 3; ++bs) {
        for (int32_t bn : {0, 1, 499999999, 500000000, 999999999}) {
          const std::string d = diff({as, an}, {bs, bn});
          CAPTURE(d);
          REQUIRE(d.size() >= 12);
          CHECK((d[0] == '+') == (Timestamp{as, an} >= Timestamp{bs, bn}));
          CHECK(d.find_first_of("+-", 1) == std::string::npos);
          CHECK(d[d.size() - 10] == '.');
          // Recompute exactly from the text and compare.
          const int64_t total_a = as * 1000000000 + an;
          const int64_t total_b = bs * 1000000000 + bn;
          const int64_t mag = total_a >= total_b ? total_a - total_b : total_b - total_a;
          const std::string expect_tail =
              std::to_string(mag / 1000000000) + "." +
              std::string(9 - std::to_string(mag % 1000000000).size(), '0') +
              std::to_string(mag % 1000000000);
          CHECK(d.substr(1) == expect_tail);
        }
      }
    }
  }
}

TEST_CASE("format_time_diff writes every fraction digit and every seconds width exactly") {
  // The fraction is written as one digit and two 4-digit lanes; each lane takes all 10,000 values
  // here (7919 is prime to 10,000, so the low lane is a permutation of the high one).
  char text[protocol::kMaxTimeDiffSize];
  for (int32_t i = 0; i < 10000; ++i) {
    const int32_t nsec = (i % 10) * 100000000 + i * 10000 + (i * 7919) % 10000;
    char expect[16];
    std::snprintf(expect, sizeof expect, "+0.%09d", nsec);
    const size_t n = protocol::format_time_diff(text, {5, nsec}, {5, 0});
    REQUIRE(std::string_view(text, n) == expect);
  }
  // Seconds of every width from 1 to 18 digits, on both sides of the one-digit fast path.
  int64_t sec = 1;
  for (int digits = 1; digits <= 18; ++digits, sec *= 10) {
    for (int64_t s : {sec - 1, sec, 9 * sec, sec * 10 - 1}) {
      if (s < 0 || s >= protocol::kMaxTimestampSeconds) continue;
      const std::string expect = "-" + std::to_string(s) + ".000000007";
      const size_t n = protocol::format_time_diff(text, {0, 0}, {s, 7});
      CAPTURE(s);
      CHECK(std::string_view(text, n) == expect);
      CHECK(n <= protocol::kMaxTimeDiffSize);
    }
  }
}

TEST_CASE("append_time_diff appends without touching earlier bytes") {
  std::string out = "AT X ";
  protocol::append_time_diff(out, {3, 0}, {1, 0});
  CHECK(out == "AT X +2.000000000");
}

TEST_CASE("too_far_ahead bounds how far a report may lead the clock, exactly") {
  using protocol::Timestamp;
  using protocol::too_far_ahead;
  const Timestamp now{1700000000, 500};
  CHECK_FALSE(too_far_ahead(now, now, 60));
  CHECK_FALSE(too_far_ahead(Timestamp{1700000060, 500}, now, 60));  // exactly at the bound
  CHECK(too_far_ahead(Timestamp{1700000060, 501}, now, 60));         // one nanosecond past it
  CHECK_FALSE(too_far_ahead(Timestamp{0, 0}, now, 60));               // the past is never refused
  CHECK(too_far_ahead(Timestamp{protocol::kMaxTimestampSeconds - 1, 999999999}, now, 86400));
  CHECK_FALSE(too_far_ahead(Timestamp{protocol::kMaxTimestampSeconds - 1, 999999999}, now, 0));  // off
}

TEST_CASE("realtime_now is a valid, plausible timestamp") {
  const Timestamp t = protocol::realtime_now();
  CHECK(t.sec > 1500000000);
  CHECK(t.sec < protocol::kMaxTimestampSeconds);
  CHECK(t.nsec >= 0);
  CHECK(t.nsec < 1000000000);
}

// ---------------------------------------------------------------------------------------------
// locations

TEST_CASE("parse_location's fast path gives the double from_chars gives, digit counts 1..17") {
  // Up to 15 digits take the exact-division path; more go to from_chars. Both must agree with
  // from_chars on the same digits for every length on either side of the boundary.
  XorShift next{0x9e3779b97f4a7c15ull};
  for (int round = 0; round < 20000; ++round) {
    size_t int_len = 1 + next() % 2;                 // 0..89
    size_t frac_len = 1 + next() % (17 - int_len);   // 2..17 digits in all
    std::string lat = (next() & 1) ? "-" : "+";
    std::string digits;
    for (size_t i = 0; i < int_len + frac_len; ++i) digits.push_back(static_cast<char>('0' + next() % 10));
    if (digits[0] == '9') digits[0] = '8';          // below 90: a latitude
    lat += digits.substr(0, int_len) + "." + digits.substr(int_len);
    std::string text = lat + "+1.5";
    auto loc = protocol::parse_location(text);
    REQUIRE_MESSAGE(loc, text);
    double want = 0;
    std::string plain = digits.substr(0, int_len) + "." + digits.substr(int_len);
    std::from_chars(plain.data(), plain.data() + plain.size(), want, std::chars_format::fixed);
    if (lat[0] == '-') want = -want;
    CHECK_MESSAGE(loc->lat == want, text);
  }
}

TEST_CASE("parse_location accepts ISO 6709 decimal degrees") {
  auto loc = protocol::parse_location("+34.068930-118.445127");
  REQUIRE(loc);
  CHECK(loc->lat == doctest::Approx(34.068930));
  CHECK(loc->lng == doctest::Approx(-118.445127));
  loc = protocol::parse_location("-0.5+0.25");
  REQUIRE(loc);
  CHECK(loc->lat == -0.5);
  CHECK(loc->lng == 0.25);
  loc = protocol::parse_location("+0034.50-0118.0");
  REQUIRE(loc);
  CHECK(loc->lat == 34.5);
  CHECK(loc->lng == -118.0);
  loc = protocol::parse_location("+0.0-0.0");
  REQUIRE(loc);
  CHECK(loc->lat == 0.0);
  CHECK(loc->lng == 0.0);
}

TEST_CASE("parse_location boundaries are exact") {
  for (std::string_view ok : {"+90.0+180.0"sv, "-90.0-180.0"sv, "+90.000000000000+180.00"sv,
                              "-90.0+0.0"sv, "+89.9999999999999999999-179.99999999999999999"sv,
                              "+0.00000000000000000000000000000000000000000000000000000000000000"
                              "00000000000000000000000000000000000000000000000000000000000000000"
                              "00000000000000000000000000000000000000000000000000000000000000000"
                              "00000000000000000000000000000000000000000000000000000000000000000"
                              "00000000000000000000000000000000000000000000000000000000000000000"
                              "0000000000000000000000000000000000000000000001+0.0"sv}) {
    CAPTURE(ok);
    CHECK(protocol::parse_location(ok));
  }
  auto loc = protocol::parse_location("+90.0+180.0");
  REQUIRE(loc);
  CHECK(loc->lat == 90.0);
  CHECK(loc->lng == 180.0);
  for (std::string_view bad : {"+90.0000001+0.0"sv, "-90.0000001+0.0"sv, "+0.0+180.0000001"sv,
                               "+0.0-180.0000001"sv, "+91.0+0.0"sv, "+0.0-181.0"sv,
                               "+90.00000000000000000000001+0.0"sv, "+100.0+0.0"sv,
                               "+0.0+1000.0"sv, "+99999999999999999999999.0+0.0"sv,
                               "+0.0+9999999999999999999999999999999999999999.0"sv}) {
    CAPTURE(bad);
    CHECK_FALSE(protocol::parse_location(bad));
  }
}

TEST_CASE("parse_location rejects malformed text") {
  for (std::string_view bad :
       {""sv, "34.068930-118.445127"sv, "+34.068930118.445127"sv, "+34.068930"sv, "+34-118"sv,
        "+34.0-118"sv, "+34-118.0"sv, "+34.0,-118.0"sv, "+34.0+-118.0"sv, "+34.0-+118.0"sv,
        "+34.0--118.0"sv, "++34.0-118.0"sv, "+34.0-118.0x"sv, "x+34.0-118.0"sv, "+ab.cd-ef.gh"sv,
        "+34.0 -118.0"sv, "+.5-118.0"sv, "+5.-118.0"sv, "+34.0-.5"sv, "+34.0-118."sv,
        "+34.0e1-118.0"sv, "+nan-118.0"sv, "+inf-118.0"sv, "+34.0-118.0-1.0"sv,
        "+34.0.0-118.0"sv, "+3,4-118.0"sv, "-"sv, "+"sv, "+."sv}) {
    CAPTURE(bad);
    CHECK_FALSE(protocol::parse_location(bad));
  }
}

// The rule of SPEC.md written out byte by byte: [+-]D+.D+[+-]D+.D+, |lat| <= 90, |lng| <= 180
// (compared as decimal strings, so that no rounding can decide).
bool location_by_rule(std::string_view t, std::string* lat_digits, std::string* lng_digits) {
  size_t i = 0;
  auto number = [&](std::string_view limit, std::string* kept) {
    if (i >= t.size() || (t[i] != '+' && t[i] != '-')) return false;
    ++i;
    std::string whole, frac;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') whole += t[i++];
    if (whole.empty() || i >= t.size() || t[i] != '.') return false;
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') frac += t[i++];
    if (frac.empty()) return false;
    *kept = whole + "." + frac;
    whole.erase(0, std::min(whole.find_first_not_of('0'), whole.size()));
    if (whole.size() != limit.size()) return whole.size() < limit.size();
    if (whole != limit) return whole < limit;
    return frac.find_first_not_of('0') == std::string::npos;
  };
  return number("90", lat_digits) && number("180", lng_digits) && i == t.size();
}

TEST_CASE("valid_location and parse_location agree with the rule on random and mutated text") {
  // Lengths around 16 and 32 (where the bit-set check takes over from the scan and hands back),
  // valid locations with one byte changed, and random strings over the location alphabet.
  XorShift next{0x9e3779b97f4a7c15ull};
  const std::string alphabet = "+-.0123456789 x";
  size_t accepted = 0;
  for (int k = 0; k < 200000; ++k) {
    std::string t;
    if (k % 2 == 0) {
      // A well-formed location with 0..3 leading zeros, 1..3 integer and 1..14 fraction digits.
      auto part = [&](unsigned max_int) {
        std::string p(1, next() % 2 ? '+' : '-');
        p.append(next() % 4, '0');
        p += std::to_string(next() % (max_int + 1));
        p += '.';
        const size_t decimals = 1 + next() % 14;
        for (size_t d = 0; d < decimals; ++d) p += static_cast<char>('0' + next() % (next() % 8 == 0 ? 1 : 10));
        return p;
      };
      t = part(next() % 4 == 0 ? 99 : 90) + part(next() % 4 == 0 ? 199 : 180);
      if (k % 4 == 0) t[next() % t.size()] = alphabet[next() % alphabet.size()];
    } else {
      t.resize(10 + next() % 28);
      for (char& c : t) c = alphabet[next() % (next() % 3 == 0 ? alphabet.size() : 13)];
      t[0] = next() % 2 ? '+' : '-';
    }
    std::string lat, lng;
    const bool want = location_by_rule(t, &lat, &lng);
    CAPTURE(t);
    REQUIRE(protocol::valid_location(t) == want);
    const auto loc = protocol::parse_location(t);
    REQUIRE(loc.has_value() == want);
    if (want) {
      ++accepted;
      CHECK(loc->lat == (t[0] == '-' ? -1 : 1) * std::strtod(lat.c_str(), nullptr));
      CHECK(loc->lng == (t[t.find_first_of("+-", 1)] == '-' ? -1 : 1) * std::strtod(lng.c_str(), nullptr));
    }
  }
  CHECK(accepted > 20000);  // the mutations and random text did not crowd out the valid ones
}

// ---------------------------------------------------------------------------------------------
// IAMAT

TEST_CASE("IAMAT: the SPEC example parses with every view in place") {
  const std::string_view line = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997";
  const Command cmd = protocol::parse_command(line);
  REQUIRE(cmd.kind == CommandKind::kIamat);
  CHECK(cmd.iamat.client_id == "kiwi.cs.ucla.edu");
  CHECK(cmd.iamat.location_text == "+34.068930-118.445127");
  CHECK(cmd.iamat.time_text == "1520023934.918963997");
  CHECK(cmd.iamat.time == Timestamp{1520023934, 918963997});
  const auto where = protocol::parse_location(cmd.iamat.location_text);
  REQUIRE(where);
  CHECK(where->lat == doctest::Approx(34.06893));
  CHECK(where->lng == doctest::Approx(-118.445127));
  CHECK(cmd.iamat.client_id.data() == line.data() + 6);
  CHECK(inside(cmd.iamat.location_text, line));
  CHECK(inside(cmd.iamat.time_text, line));
}

TEST_CASE("IAMAT: the eleven kinds of malformed line are invalid") {
  const std::vector<std::string> bad = {
      iamat_with_location("34.068930-118.445127"),          // no sign
      iamat_with_location("+34.068930"),                    // single number
      iamat_with_location("+34-118"),                       // no decimal point
      iamat_with_location("+abc.def-ghi.jkl"),              // letters
      iamat_with_location("+34.0,-118.0"),                  // comma
      iamat_with_location("+34.0+-118.0"),                  // doubled sign
      iamat_with_time("yesterday"),                         // alphabetic time
      iamat_with_time("-1520023934.918963997"),             // negative time
      iamat_with_time("nan"),                               // nan
      iamat_with_time("inf"),                               // inf
      iamat_with_time("1.520023934e9"),                     // exponent
      iamat_with_time("1520023934.918963997 extra"),        // extra field
      "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127",       // missing field
      "IAMAT +34.068930-118.445127 1520023934.918963997",   // missing client id
      "IAMAT",
  };
  for (const std::string& line : bad) {
    CAPTURE(line);
    CHECK(kind_of(line) == CommandKind::kInvalid);
  }
}

TEST_CASE("IAMAT: more rejected times and locations") {
  for (std::string_view t : {"NaN"sv, "-inf"sv, "+1520023934"sv, "1520023934."sv, ".5"sv,
                             "1E9"sv, "1000000000000000000"sv, "0x5"sv}) {
    CAPTURE(t);
    CHECK(kind_of(iamat_with_time(t)) == CommandKind::kInvalid);
  }
  for (std::string_view loc : {"+90.0000001+0.0"sv, "+0.0-180.0000001"sv, "+91.0+0.0"sv,
                               "-90.1-118.0"sv, "+34.0-118.0x"sv, ""sv}) {
    CAPTURE(loc);
    CHECK(kind_of(iamat_with_location(loc)) == CommandKind::kInvalid);
  }
  CHECK(kind_of(iamat_with_location("+90.0+180.0")) == CommandKind::kIamat);
  CHECK(kind_of(iamat_with_location("-90.0-180.0")) == CommandKind::kIamat);
  CHECK(kind_of(iamat_with_time("999999999999999999.9999999999")) == CommandKind::kIamat);
  CHECK(kind_of(iamat_with_time("0")) == CommandKind::kIamat);
}

TEST_CASE("IAMAT: fractional digits beyond nine are truncated and kept byte for byte") {
  const std::string line = iamat_with_time("1520023934.9189639979999");
  const Command cmd = protocol::parse_command(line);
  REQUIRE(cmd.kind == CommandKind::kIamat);
  CHECK(cmd.iamat.time == Timestamp{1520023934, 918963997});
  CHECK(cmd.iamat.time_text == "1520023934.9189639979999");
}

TEST_CASE("IAMAT: client IDs are arbitrary non-whitespace bytes") {
  const std::vector<std::string> ids = {
      "caf\xc3\xa9",            // NFC é
      "cafe\xcc\x81",           // NFD e + combining acute
      "\xf0\x9f\xa5\x9d",       // emoji (kiwi fruit)
      "\xff\xfe",               // invalid UTF-8
      "\xc3",                   // truncated UTF-8 sequence
      "\x01\x7f",               // control bytes that are not whitespace
      "IAMAT", "AT", "?",       // verbs as IDs
  };
  for (const std::string& id : ids) {
    const std::string line = "IAMAT " + id + " +34.068930-118.445127 1520023934.918963997";
    CAPTURE(line);
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kIamat);
    CHECK(cmd.iamat.client_id == id);
  }
}

TEST_CASE("IAMAT: any whitespace separates fields, and leading/trailing whitespace is ignored") {
  const std::vector<std::string> lines = {
      "IAMAT kiwi +34.0-118.0 1.5\r",
      "IAMAT\tkiwi\t+34.0-118.0\t1.5",
      "IAMAT\vkiwi\f+34.0-118.0 \t\v\f\r 1.5",
      "   IAMAT    kiwi     +34.0-118.0     1.5    ",
      "\t\r\f\vIAMAT kiwi +34.0-118.0 1.5\n\r",
  };
  for (const std::string& line : lines) {
    CAPTURE(line);
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kIamat);
    CHECK(cmd.iamat.client_id == "kiwi");
    CHECK(cmd.iamat.location_text == "+34.0-118.0");
    CHECK(cmd.iamat.time_text == "1.5");
    CHECK(cmd.iamat.time == Timestamp{1, 500000000});
  }
}

TEST_CASE("verbs are case-sensitive and must be whole fields") {
  CHECK(kind_of("iamat kiwi +34.0-118.0 1.5") == CommandKind::kInvalid);
  CHECK(kind_of("Iamat kiwi +34.0-118.0 1.5") == CommandKind::kInvalid);
  CHECK(kind_of("IAMATX kiwi +34.0-118.0 1.5") == CommandKind::kInvalid);
  CHECK(kind_of("whatsat kiwi 10 5") == CommandKind::kInvalid);
  CHECK(kind_of("at Goloman +0.000000000 kiwi +34.0-118.0 1.5") == CommandKind::kInvalid);
  CHECK(kind_of("HELLO") == CommandKind::kInvalid);
  CHECK(kind_of("?") == CommandKind::kInvalid);
  CHECK(kind_of("\xff\xfe") == CommandKind::kInvalid);
  CHECK(kind_of("IAMAT\x00kiwi +34.0-118.0 1.5"sv) == CommandKind::kInvalid);
}

TEST_CASE("empty and whitespace-only lines are kEmpty") {
  for (std::string_view line : {""sv, " "sv, "\r"sv, "\t\t"sv, "\v\f"sv, " \t\r\n\f\v "sv}) {
    CAPTURE(line);
    CHECK(kind_of(line) == CommandKind::kEmpty);
  }
  CHECK(kind_of("\x00"sv) == CommandKind::kInvalid);  // NUL is not whitespace
}

// ---------------------------------------------------------------------------------------------
// WHATSAT

TEST_CASE("WHATSAT: the SPEC example parses") {
  const std::string_view line = "WHATSAT kiwi.cs.ucla.edu 10 5";
  const Command cmd = protocol::parse_command(line);
  REQUIRE(cmd.kind == CommandKind::kWhatsat);
  CHECK(cmd.whatsat.client_id == "kiwi.cs.ucla.edu");
  CHECK(cmd.whatsat.client_id.data() == line.data() + 8);
  CHECK(cmd.whatsat.radius_km == 10.0);
  CHECK(cmd.whatsat.bound == 5);
}

TEST_CASE("WHATSAT: radius forms") {
  struct Ok {
    std::string_view text;
    double value;
  };
  for (const Ok& ok : {Ok{"50", 50.0}, Ok{"50.0", 50.0}, Ok{"50.000000000000000000", 50.0},
                       Ok{"0.5", 0.5}, Ok{"1", 1.0}, Ok{"007", 7.0}, Ok{"49.99", 49.99},
                       Ok{"0.001", 0.001}, Ok{"000050.0", 50.0}}) {
    CAPTURE(ok.text);
    const std::string line = whatsat(ok.text, "5");
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kWhatsat);
    CHECK(cmd.whatsat.radius_km == ok.value);
  }
  for (std::string_view bad : {"1000"sv, "0"sv, "0.0"sv, "000"sv, "50.0001"sv, "51"sv,
                               "50.00000000000000000001"sv, "-1"sv, "-10"sv, "+10"sv, "-0"sv,
                               "1e1"sv, "1E1"sv, "5e-1"sv, "nan"sv, "inf"sv, "ten"sv, "10km"sv,
                               ".5"sv, "5."sv, "."sv, "1.2.3"sv, "1,5"sv, "0x10"sv,
                               "99999999999999999999999999999999"sv}) {
    CAPTURE(bad);
    CHECK(kind_of(whatsat(bad, "5")) == CommandKind::kInvalid);
  }
}

TEST_CASE("WHATSAT: a positive radius that underflows a double is valid, as the smallest radius") {
  // SPEC.md: a radius is a positive decimal number of at most 50; 0.000...0001 is one, however many
  // zeros it has (the asyncio reference answers it too). It reads as the smallest positive double.
  for (size_t zeros : {330, 400, 5000}) {
    CAPTURE(zeros);
    const std::string tiny = "0." + std::string(zeros, '0') + "1";
    const std::string line = whatsat(tiny, "5");
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kWhatsat);
    CHECK(cmd.whatsat.radius_km > 0);
    CHECK(cmd.whatsat.radius_km == std::numeric_limits<double>::denorm_min());
    CHECK(protocol::parse_radius_km("00" + tiny.substr(1)) == std::numeric_limits<double>::denorm_min());
  }
  // Zero stays invalid however it is written.
  CHECK(kind_of(whatsat("0." + std::string(400, '0'), "5")) == CommandKind::kInvalid);
}

TEST_CASE("WHATSAT: bound forms") {
  struct Ok {
    std::string_view text;
    int value;
  };
  for (const Ok& ok : {Ok{"1", 1}, Ok{"20", 20}, Ok{"5", 5}, Ok{"007", 7}, Ok{"0020", 20},
                       Ok{"000000000000000000000000000000000001", 1}}) {
    CAPTURE(ok.text);
    const std::string line = whatsat("10", ok.text);
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kWhatsat);
    CHECK(cmd.whatsat.bound == ok.value);
  }
  for (std::string_view bad : {"1000"sv, "0"sv, "00"sv, "21"sv, "-1"sv, "-5"sv, "+5"sv, "5.0"sv,
                               "5."sv, "1e1"sv, "five"sv, "5x"sv, "nan"sv, "inf"sv,
                               "99999999999999999999999999999999999999"sv,
                               "4294967301"sv, "18446744073709551621"sv}) {
    CAPTURE(bad);
    CHECK(kind_of(whatsat("10", bad)) == CommandKind::kInvalid);
  }
}

TEST_CASE("WHATSAT: field counts and whitespace") {
  CHECK(kind_of("WHATSAT") == CommandKind::kInvalid);
  CHECK(kind_of("WHATSAT kiwi") == CommandKind::kInvalid);
  CHECK(kind_of("WHATSAT kiwi 10") == CommandKind::kInvalid);
  CHECK(kind_of("WHATSAT 10 5") == CommandKind::kInvalid);
  CHECK(kind_of("WHATSAT kiwi 10 5 extra") == CommandKind::kInvalid);
  CHECK(kind_of("WHATSAT kiwi 10 5\r") == CommandKind::kWhatsat);
  CHECK(kind_of("\tWHATSAT\vkiwi\f10  \t 5 ") == CommandKind::kWhatsat);
  const Command cmd = protocol::parse_command("WHATSAT \xf0\x9f\xa5\x9d 50 20");
  REQUIRE(cmd.kind == CommandKind::kWhatsat);
  CHECK(cmd.whatsat.client_id == "\xf0\x9f\xa5\x9d");
}

// ---------------------------------------------------------------------------------------------
// AT

TEST_CASE("AT: a peer line parses, with and without extra fields") {
  const std::string_view line =
      "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997";
  Command cmd = protocol::parse_command(line);
  REQUIRE(cmd.kind == CommandKind::kAt);
  CHECK(cmd.at.server == "Goloman");
  CHECK(cmd.at.diff == "+0.263873386");
  CHECK(cmd.at.client_id == "kiwi.cs.ucla.edu");
  CHECK(cmd.at.location_text == "+34.068930-118.445127");
  CHECK(cmd.at.time_text == "1520023934.918963997");
  CHECK(cmd.at.time == Timestamp{1520023934, 918963997});
  CHECK(protocol::parse_location(cmd.at.location_text)->lng == doctest::Approx(-118.445127));
  CHECK(cmd.at.extra.empty());
  CHECK(inside(cmd.at.extra, line));

  const std::string_view with_extra =
      "AT Hands -12.000000001 kiwi +34.0-118.0 1.5 \t hop=2  via Goloman \r";
  cmd = protocol::parse_command(with_extra);
  REQUIRE(cmd.kind == CommandKind::kAt);
  CHECK(cmd.at.server == "Hands");
  CHECK(cmd.at.diff == "-12.000000001");
  CHECK(cmd.at.time_text == "1.5");
  CHECK(cmd.at.extra == "hop=2  via Goloman");
  CHECK(inside(cmd.at.extra, with_extra));

  cmd = protocol::parse_command("AT Welsh +0.000000000 kiwi +34.0-118.0 1.5 x");
  REQUIRE(cmd.kind == CommandKind::kAt);
  CHECK(cmd.at.extra == "x");

  cmd = protocol::parse_command("  AT\tWelsh\v+0.000000000\fkiwi +34.0-118.0 1.5   \r");
  REQUIRE(cmd.kind == CommandKind::kAt);
  CHECK(cmd.at.time_text == "1.5");
  CHECK(cmd.at.extra.empty());
}

TEST_CASE("AT: bad lines are invalid") {
  for (std::string_view bad : {
           "AT"sv,
           "AT Goloman +0.263873386 kiwi +34.0-118.0"sv,                // 5 fields
           "AT Goloman 0.263873386 kiwi +34.0-118.0 1.5"sv,             // diff without sign
           "AT Goloman +0.26387338 kiwi +34.0-118.0 1.5"sv,             // 8 fraction digits
           "AT Goloman +0.2638733860 kiwi +34.0-118.0 1.5"sv,           // 10 fraction digits
           "AT Goloman +.263873386 kiwi +34.0-118.0 1.5"sv,             // no integer digits
           "AT Goloman +0 kiwi +34.0-118.0 1.5"sv,                      // no fraction
           "AT Goloman +-0.263873386 kiwi +34.0-118.0 1.5"sv,           // +-
           "AT Goloman -+0.263873386 kiwi +34.0-118.0 1.5"sv,           // -+
           "AT Goloman +2.63873386e-1 kiwi +34.0-118.0 1.5"sv,          // exponent
           "AT Goloman +0.26387338x kiwi +34.0-118.0 1.5"sv,            // letter
           "AT Goloman +0.263873386 kiwi +34-118 1.5"sv,                // bad location
           "AT Goloman +0.263873386 kiwi +91.0-118.0 1.5"sv,            // out of range
           "AT Goloman +0.263873386 kiwi +34.0-118.0 -1.5"sv,           // negative time
           "AT Goloman +0.263873386 kiwi +34.0-118.0 nan"sv,            // nan time
           "AT Goloman +0.263873386 kiwi +34.0-118.0 1000000000000000000"sv,
       }) {
    CAPTURE(bad);
    CHECK(kind_of(bad) == CommandKind::kInvalid);
  }
}

TEST_CASE("parse_at: what parse_command makes of a peer's line, without the Command") {
  for (std::string_view line : {
           "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"sv,
           "AT Hands -12.000000001 kiwi +34.0-118.0 1.5 \t hop=2  via Goloman \r"sv,
           "AT Welsh +0.000000000 kiwi +34.0-118.0 1.5 x"sv,
           "AT Welsh +0.000000000 kiwi +34.0-118.0 1.5 seen=Goloman,Hands,Holiday,Wilkes"sv,
           "  AT\tWelsh\v+0.000000000\fkiwi +34.0-118.0 1.5   \r"sv,
           "AT Welsh +0.000000000 kiwi +34.0-118.0 1.5 a b c d e f g h"sv,
           ""sv,
           " \t\r"sv,
           "AT"sv,
           "AT Goloman +0.263873386 kiwi +34.0-118.0"sv,
           "AT Goloman +0.263873386 kiwi +91.0-118.0 1.5"sv,
           "AT Goloman +0.263873386 kiwi +34.0-118.0 nan"sv,
           "IAMAT kiwi +34.0-118.0 1.5"sv,
           "WHATSAT kiwi 10 5"sv,
           "at Welsh +0.000000000 kiwi +34.0-118.0 1.5"sv,
       }) {
    CAPTURE(line);
    const Command cmd = protocol::parse_command(line);
    protocol::At at;
    const CommandKind kind = protocol::parse_at(line, &at);
    CHECK(kind == (cmd.kind == CommandKind::kAt || cmd.kind == CommandKind::kEmpty ? cmd.kind : CommandKind::kInvalid));
    if (kind != CommandKind::kAt) continue;
    for (auto [mine, theirs] : {std::pair{at.server, cmd.at.server}, {at.diff, cmd.at.diff},
                                {at.client_id, cmd.at.client_id}, {at.location_text, cmd.at.location_text},
                                {at.time_text, cmd.at.time_text}, {at.extra, cmd.at.extra}}) {
      CHECK(mine == theirs);
      CHECK((mine.empty() || mine.data() == theirs.data()));
    }
    CHECK(at.time == cmd.at.time);
  }
}

TEST_CASE("is_time_diff") {
  CHECK(protocol::is_time_diff("+0.000000000"));
  CHECK(protocol::is_time_diff("-123456789012.999999999"));
  CHECK_FALSE(protocol::is_time_diff(""));
  CHECK_FALSE(protocol::is_time_diff("+"));
  CHECK_FALSE(protocol::is_time_diff("+."));
  CHECK_FALSE(protocol::is_time_diff("+0."));
  CHECK_FALSE(protocol::is_time_diff("0.000000000"));
  CHECK_FALSE(protocol::is_time_diff("+0.000000000 "));
  // Against the rule byte by byte: every byte of valid diffs replaced, and lengths 0 to 24.
  auto rule = [](std::string_view t) {
    size_t i = 1;
    if (t.empty() || (t[0] != '+' && t[0] != '-')) return false;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == 1 || i >= t.size() || t[i] != '.') return false;
    const size_t frac = t.size() - i - 1;
    for (size_t k = i + 1; k < t.size(); ++k) {
      if (t[k] < '0' || t[k] > '9') return false;
    }
    return frac == 9;
  };
  const std::string bytes = std::string("+-.09/:a \0", 11);
  for (std::string base : {"+0.123456789", "-12.000000000", "+123456.987654321"}) {
    for (size_t at = 0; at <= base.size(); ++at) {
      for (char c : bytes) {
        std::string t = base;
        if (at < t.size()) t[at] = c;
        else t += c;
        CHECK_MESSAGE(protocol::is_time_diff(t) == rule(t), t);
        CHECK_MESSAGE(protocol::is_time_diff(t.substr(0, at)) == rule(t.substr(0, at)), t.substr(0, at));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// replies

TEST_CASE("append_at_line: the SPEC example, byte for byte") {
  const std::string_view line =
      "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997";
  const Command cmd = protocol::parse_command(line);
  REQUIRE(cmd.kind == CommandKind::kIamat);
  std::string out = "prefix|";
  protocol::append_at_line(out, "Goloman", Timestamp{1520023935, 182837383}, cmd.iamat);
  CHECK(out ==
        "prefix|AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 "
        "1520023934.918963997");
}

TEST_CASE("append_at_line: client clock ahead gives a negative difference below one second") {
  const Command cmd = protocol::parse_command("IAMAT k +0.0+0.0 100.75");
  REQUIRE(cmd.kind == CommandKind::kIamat);
  std::string out;
  protocol::append_at_line(out, "Hands", Timestamp{100, 250000000}, cmd.iamat);
  CHECK(out == "AT Hands -0.500000000 k +0.0+0.0 100.75");
}

TEST_CASE("append_at_line copies operands byte for byte, even odd-looking ones") {
  const Command cmd =
      protocol::parse_command("IAMAT\t\xff\xfe  +089.10-000.5\v0001.1000000009 \r");
  REQUIRE(cmd.kind == CommandKind::kIamat);
  std::string out;
  protocol::append_at_line(out, "W", Timestamp{1, 100000000}, cmd.iamat);
  CHECK(out == "AT W +0.000000000 \xff\xfe +089.10-000.5 0001.1000000009"s);
  // Operands one space apart are copied as one piece; any other separator is still written as one space.
  for (const char* sent : {"IAMAT k +1.0+2.0 5", "IAMAT k +1.0+2.0\t5", "IAMAT k\t+1.0+2.0 5", "IAMAT k  +1.0+2.0  5 "}) {
    const Command c = protocol::parse_command(sent);
    REQUIRE(c.kind == CommandKind::kIamat);
    out.clear();
    protocol::append_at_line(out, "W", Timestamp{5, 0}, c.iamat);
    CHECK(out == "AT W +0.000000000 k +1.0+2.0 5");
  }
}

TEST_CASE("at_record_id: the fourth field of an AT record") {
  const std::string rec = "AT Hands +0.000000001 kiwi +1.0+2.0 5";
  CHECK(protocol::at_record_id(rec) == "kiwi");
  CHECK(protocol::at_record_id(rec).data() == rec.data() + 22);
  // An ID that also appears earlier (here in the server name) is still found in its field.
  const std::string twice = "AT kiwi +0.000000001 kiwi +1.0+2.0 5";
  CHECK(protocol::at_record_id(twice).data() == twice.data() + 21);
  CHECK(protocol::at_record_id("AT Hands +0.000000001").empty());
  CHECK(protocol::at_record_id("AT Hands +0.000000001 ").empty());
  CHECK(protocol::at_record_id("AT Hands +0.000000001 last") == "last");
  const std::string long_id = "AT Goloman +0.263873386 " + std::string(50, 'k') + " +1+2 5";
  CHECK(protocol::at_record_id(long_id) == std::string(50, 'k'));
}

TEST_CASE("at_record_id agrees with splitting on spaces, across the 32-byte fast path's edges") {
  // The plain rule: the text between the third and the fourth space (or the end).
  auto plain = [](std::string_view r) -> std::string_view {
    size_t at = 0;
    for (int k = 0; k < 3; ++k) {
      at = r.find(' ', at);
      if (at == std::string_view::npos) return {};
      ++at;
    }
    size_t stop = r.find(' ', at);
    return r.substr(at, stop == std::string_view::npos ? std::string_view::npos : stop - at);
  };
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200000; ++trial) {
    const size_t n = rng() % 80;
    std::string r(n, 'x');
    const unsigned space_odds = 2 + rng() % 12;  // sparse to dense spaces
    for (auto& c : r) {
      if (rng() % space_odds == 0) c = ' ';
    }
    const std::string_view got = protocol::at_record_id(r), want = plain(r);
    REQUIRE_MESSAGE(got == want, '"' << r << '"');
    if (!want.empty()) REQUIRE(got.data() == want.data());
  }
}

TEST_CASE("at_record_time: the record's last field") {
  CHECK(protocol::at_record_time("AT Hands +0.000000001 kiwi +1.0+2.0 1520023934.918963997") ==
        protocol::Timestamp{1520023934, 918963997});
  CHECK_FALSE(protocol::at_record_time("AT Hands +0.000000001 kiwi +1.0+2.0 x").has_value());
  CHECK_FALSE(protocol::at_record_time("nospace").has_value());
}

TEST_CASE("the split records reply.h returns are the ones RecordForm finds in their text") {
  // at_record, append_at_record and append_at_line hand the table a record with its parts already
  // known; the table packs it from those parts, so they must be what a split of the text finds.
  auto same_form = [](const protocol::RecordForm& got) {
    const protocol::RecordForm want(got.record());
    REQUIRE(got.server() == want.server());
    REQUIRE(got.id() == want.id());
    for (uint8_t code : {uint8_t{3}, protocol::kLiteralRecord}) {
      if (code != protocol::kLiteralRecord && want.server().empty()) continue;
      std::string a = "x", b = "y";
      got.store(code, &a);
      want.store(code, &b);
      REQUIRE(a == b);
    }
  };
  XorShift next{0x9e3779b97f4a7c15ull};
  const std::string_view seps[] = {" ", " ", " ", "  ", "\t", " \r"};
  auto pick = [&](std::initializer_list<std::string_view> from) { return *(from.begin() + next() % from.size()); };
  std::string scratch;
  for (int round = 0; round < 20000; ++round) {
    auto sep = [&] { return std::string(seps[next() % std::size(seps)]); };
    const std::string server(pick({"Hands", "G", "Goloman", "a.b-c"}));
    const std::string diff(pick({"+0.000123456", "-12.500000000", "+1234567890.000000001"}));
    std::string id = "c" + std::to_string(next() % 100000) + std::string(next() % 3, '.');
    const std::string loc(pick({"+34.068930-118.445127", "+1.5+2.25", "-89.9999+179.5"}));
    const std::string time(pick({"1764251234.123456789", "1.5", "7.0"}));
    std::string line = (next() % 4 ? "" : " ") + std::string("AT") + sep() + server + sep() + diff + sep() + id +
                       sep() + loc + sep() + time;
    if (next() % 2) line += sep() + std::string(pick({"seen=Hands,Welsh", "x=1 y=2"}));
    const Command cmd = protocol::parse_command(line);
    REQUIRE_MESSAGE(cmd.kind == CommandKind::kAt, line);
    same_form(protocol::at_record(line, cmd.at, &scratch));
    std::string out(next() % 5, 'p');  // appended after what the string held
    same_form(protocol::append_at_record(out, cmd.at));
    const std::string iamat_line = "IAMAT" + sep() + id + sep() + loc + sep() + time;  // (the views need it)
    const Command iamat = protocol::parse_command(iamat_line);
    REQUIRE(iamat.kind == CommandKind::kIamat);
    out.assign(next() % 5, 'q');
    const protocol::RecordForm form =
        protocol::append_at_line(out, server, protocol::Timestamp{static_cast<int64_t>(next() % 2000000000), 7}, iamat.iamat);
    CHECK(form.record().data() + form.record().size() == out.data() + out.size());
    same_form(form);
  }
}

TEST_CASE("append_at_record re-emits the six fields without extras") {
  const Command cmd = protocol::parse_command(
      "AT\tHands  -0.500000000 kiwi +34.0-118.0   1.5 hop=3 origin=Welsh\r");
  REQUIRE(cmd.kind == CommandKind::kAt);
  std::string out;
  protocol::append_at_record(out, cmd.at);
  CHECK(out == "AT Hands -0.500000000 kiwi +34.0-118.0 1.5");
  // The record re-parses to the same fields.
  const Command again = protocol::parse_command(out);
  REQUIRE(again.kind == CommandKind::kAt);
  CHECK(again.at.client_id == "kiwi");
  CHECK(again.at.time == cmd.at.time);
}

TEST_CASE("at_record views a line whose fields stand one space apart, and rebuilds any other") {
  std::string scratch = "left over";
  auto record_of = [&](std::string_view line) {
    const Command cmd = protocol::parse_command(line);
    REQUIRE(cmd.kind == CommandKind::kAt);
    std::string rebuilt;
    protocol::append_at_record(rebuilt, cmd.at);
    const std::string_view got = protocol::at_record(line, cmd.at, &scratch).record();
    CHECK(got == rebuilt);  // the same bytes either way
    return got;
  };
  // Laid out already (a herd server's flood line): a view into the line, extras and all cut off.
  const std::string flood = "AT Hands -0.500000000 kiwi +34.0-118.0 1.5 seen=Hands,Welsh";
  std::string_view got = record_of(flood);
  CHECK(got.data() == flood.data());
  CHECK(got == "AT Hands -0.500000000 kiwi +34.0-118.0 1.5");
  const std::string bare = "AT Hands -0.500000000 kiwi +34.0-118.0 1.5";
  CHECK(record_of(bare).data() == bare.data());
  // Any other layout is rebuilt in the scratch string: two spaces, a tab, leading blanks.
  for (std::string line : {"AT Hands  -0.500000000 kiwi +34.0-118.0 1.5", "AT\tHands -0.500000000 kiwi +34.0-118.0 1.5",
                           " AT Hands -0.500000000 kiwi +34.0-118.0 1.5", "AT Hands -0.500000000 kiwi +34.0-118.0\t1.5 x=1"}) {
    got = record_of(line);
    CHECK(got.data() == scratch.data());
    CHECK(got == std::string_view(scratch));
  }
}

TEST_CASE("append_invalid echoes the line exactly") {
  std::string out;
  protocol::append_invalid(out, "IAMAT  kiwi +34-118 \t1.5");
  CHECK(out == "? IAMAT  kiwi +34-118 \t1.5\n");
  out.clear();
  protocol::append_invalid(out, "");
  CHECK(out == "? \n");
  out.clear();
  protocol::append_invalid(out, "\xff\xfe\r");
  CHECK(out == "? \xff\xfe\r\n");
}

TEST_CASE("append_places_reply collapses newline runs and ends in exactly }\\n\\n") {
  const std::string at = "AT Goloman +0.1 kiwi +34.0-118.0 1.5";
  auto reply = [&](std::string_view json) {
    std::string out;
    protocol::append_places_reply(out, at, json);
    return out;
  };
  CHECK(reply("{}") == at + "\n{}\n\n");
  CHECK(reply("{\n  \"a\": 1\n}\n") == at + "\n{\n  \"a\": 1\n}\n\n");
  CHECK(reply("\n\n{\n\n\n  \"a\": 1,\n\n  \"b\": [\n\n]\n}\n\n\n") ==
        at + "\n{\n  \"a\": 1,\n  \"b\": [\n]\n}\n\n");
  CHECK(reply("{\"s\": \"x\"}\n\n") == at + "\n{\"s\": \"x\"}\n\n");
  CHECK(reply("{\r\n\r\n}") == at + "\n{\r\n\r\n}\n\n");  // only '\n' runs are collapsed
  CHECK(reply("") == at + "\n\n\n");
  CHECK(reply("\n\n\n") == at + "\n\n\n");
  CHECK(reply("a\nb") == at + "\na\nb\n\n");
  const std::string out = reply("\n{\n\n\"results\": []\n\n}\n\n");
  CHECK(out.size() >= 3);
  CHECK(out.substr(out.size() - 3) == "}\n\n");
  CHECK(out.find("\n\n") == out.size() - 2);
}

// ---------------------------------------------------------------------------------------------
// robustness

TEST_CASE("parse_command survives random bytes and keeps every view inside the line") {
  uint64_t state = 0x9e3779b97f4a7c15ULL;  // fixed seed: the run is reproducible
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  // Pieces that steer random lines towards the interesting parts of the grammar.
  const std::string_view pieces[] = {
      "IAMAT", "WHATSAT", "AT", " ", "\t", "\r", "\v", "\f", "\n", "+", "-", ".", "0", "9",
      "34.068930", "118.445127", "1520023934.918963997", "e", "nan", "50", "20", "\xff",
      "+34.0-118.0", "+0.000000000", "1000000000000000000", "kiwi"};
  const size_t piece_count = sizeof pieces / sizeof pieces[0];
  int kinds[5] = {0, 0, 0, 0, 0};
  for (int round = 0; round < 5000; ++round) {
    std::string line;
    const size_t parts = next() % 16;
    for (size_t p = 0; p < parts; ++p) {
      if (next() % 3 == 0) {
        const size_t bytes = next() % 6;
        for (size_t b = 0; b < bytes; ++b) line.push_back(static_cast<char>(next() & 0xff));
      } else {
        line.append(pieces[next() % piece_count]);
      }
    }
    // Every few rounds, mutate a valid line at one byte.
    if (round % 4 == 0) {
      static const std::string_view valid[] = {
          "IAMAT kiwi +34.068930-118.445127 1520023934.918963997", "WHATSAT kiwi 10 5",
          "AT Goloman +0.263873386 kiwi +34.068930-118.445127 1520023934.918963997 x y"};
      line = std::string(valid[next() % 3]);
      line[next() % line.size()] = static_cast<char>(next() & 0xff);
    }
    // Parse a heap copy of exactly the line's size so ASan catches any read past its end.
    const std::vector<char> buf(line.begin(), line.end());
    const std::string_view view(buf.data(), buf.size());
    const Command cmd = protocol::parse_command(view);
    ++kinds[static_cast<int>(cmd.kind)];
    CAPTURE(line);
    switch (cmd.kind) {
      case CommandKind::kIamat:
        REQUIRE(inside(cmd.iamat.client_id, view));
        REQUIRE(inside(cmd.iamat.location_text, view));
        REQUIRE(inside(cmd.iamat.time_text, view));
        REQUIRE(!cmd.iamat.client_id.empty());
        REQUIRE(cmd.iamat.time.sec < protocol::kMaxTimestampSeconds);
        REQUIRE(cmd.iamat.time.nsec >= 0);
        REQUIRE(cmd.iamat.time.nsec < 1000000000);
        {
          const auto where = protocol::parse_location(cmd.iamat.location_text);
          REQUIRE(where);
          REQUIRE(where->lat >= -90.0);
          REQUIRE(where->lat <= 90.0);
          REQUIRE(where->lng >= -180.0);
          REQUIRE(where->lng <= 180.0);
        }
        break;
      case CommandKind::kWhatsat:
        REQUIRE(inside(cmd.whatsat.client_id, view));
        REQUIRE(cmd.whatsat.radius_km > 0);
        REQUIRE(cmd.whatsat.radius_km <= 50);
        REQUIRE(cmd.whatsat.bound >= 1);
        REQUIRE(cmd.whatsat.bound <= 20);
        break;
      case CommandKind::kAt:
        for (std::string_view v : {cmd.at.server, cmd.at.diff, cmd.at.client_id,
                                   cmd.at.location_text, cmd.at.time_text, cmd.at.extra}) {
          REQUIRE(inside(v, view));
        }
        REQUIRE(protocol::is_time_diff(cmd.at.diff));
        break;
      case CommandKind::kEmpty:
        REQUIRE(protocol::trim(view).empty());
        break;
      case CommandKind::kInvalid:
        break;
    }
    // Whatever came in, the formatting functions must cope with it.
    std::string out;
    protocol::append_invalid(out, view);
    REQUIRE(out.size() == view.size() + 3);
    protocol::append_places_reply(out, view, view);
  }
  // The generator reaches every outcome, so the checks above are exercised.
  CHECK(kinds[static_cast<int>(CommandKind::kInvalid)] > 0);
  CHECK(kinds[static_cast<int>(CommandKind::kEmpty)] > 0);
  CHECK(kinds[static_cast<int>(CommandKind::kIamat)] > 0);
  CHECK(kinds[static_cast<int>(CommandKind::kWhatsat)] > 0);
  CHECK(kinds[static_cast<int>(CommandKind::kAt)] > 0);
}

}  // TEST_SUITE("protocol")
