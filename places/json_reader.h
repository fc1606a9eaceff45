// read_json: rapidjson's DOM reading of JSON from outside, with every number converted by the C
// library rather than by rapidjson.
//
// rapidjson 1.1.0 (Debian's rapidjson-dev) converts decimal text to doubles with code that is not
// safe on every input. Its full-precision path computes __builtin_clzll(0) for a zero written with
// a low enough exponent ("0e-30", "0." and 25 zeros), and indexes its table of cached powers of ten
// out of bounds for a digit after hundreds of fractional zeros ("0.<400 zeros>1": a read past a
// static array, a crash); its normal path divides by a power of ten read past its table for such
// numbers too. fuzz_upstream_json found three of these in turn. Here rapidjson only checks a
// number's grammar and hands over its text (kParseNumbersAsStringsFlag); the text becomes the value
// rapidjson would have made of it: an integer that fits 32 or 64 bits as Int/Uint/Int64/Uint64 (as
// rapidjson sorts them), anything else as a double from strtod in the C locale (correctly rounded,
// so the same as rapidjson's full precision where that is right). A number past a double's range
// is refused (kParseErrorNumberTooBig), as rapidjson refuses most of them; one that underflows is
// the zero or subnormal strtod makes of it.
#pragma once

#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/error/error.h>

namespace places {

// Parses `text` (its length, not a NUL, ends it) into *doc without recursion (kParseIterativeFlag:
// no nesting can exhaust the caller's stack). On an error *doc is left null and the result says
// what and where. Thread-safe.
rapidjson::ParseResult read_json(std::string_view text, rapidjson::Document* doc);

}  // namespace places
