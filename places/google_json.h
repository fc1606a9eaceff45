// A JSON writer that reproduces Google's legacy Places byte layout (JsonCpp's "styled" writer
// with Google's string escaping and number format; rules in PLACES.md), plus its scalar pieces.
#pragma once

#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace places {

// Appends `v` to `out` in Google's legacy layout: 3-space indent, `"key" : value` with members in
// lexicographic byte order of their keys, `{`/`[` on the key's line, short scalar arrays on one
// line `[ a, b ]`, Google's string escaping and number format, no trailing newline. The value is
// rendered as if it began a line at indent 0. Pure function; thread-safe as long as `v` is not
// being modified.
void append_google_json(std::string& out, const rapidjson::Value& v);

// append_google_json into a fresh string. Same contract.
std::string google_json(const rapidjson::Value& v);

// Appends `s` as a quoted JSON string with Google's escaping: `\"`, `\\`, `\b \f \n \r \t`,
// other bytes below 0x20 as `\u00xx` (lowercase hex), `<` `>` as `\u003c` `\u003e`; everything
// else (including `&`, `/`, non-ASCII and invalid UTF-8) raw. Thread-safe.
void append_google_string(std::string& out, std::string_view s);

// Appends a double as Google does: `%.16g` (so integral values carry no ".0"), independent of
// the C locale; NaN and infinities, which JSON cannot express, become `null`. Thread-safe.
void append_google_double(std::string& out, double d);

}  // namespace places
