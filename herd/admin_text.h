// The admin endpoint's pure text handling: percent-decoding, query parameters, bearer credentials and
// JSON strings. Pure functions, thread-safe; used by AdminSession and the dashboard's JSON.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace herd {

// The percent-decoded value of the first parameter called `name` in the query of `target`
// (`name=value` pairs separated by `&`); false when there is none or it is malformed.
bool query_parameter(std::string_view target, std::string_view name, std::string* value);

// Percent-decodes a path segment; false when an escape is malformed.
bool percent_decode(std::string_view in, std::string* out);
// Appends `s` as a JSON string (quoted; quote, backslash and control bytes escaped). JSON text is
// Unicode, and client IDs may be any bytes: a byte that does not belong to a well-formed UTF-8
// sequence is written as U+FFFD, so the document stays valid (the client port has the exact bytes).
void append_json_string(std::string& out, std::string_view s);
// The length of the well-formed UTF-8 sequence at the start of `s` (1 to 4), or 0 when there is none.
size_t utf8_sequence_length(std::string_view s);
// The credentials of an `Authorization` value in the Bearer scheme (RFC 7235: the scheme in any case,
// then one or more spaces): false when the scheme is another or no credentials follow.
bool bearer_credentials(std::string_view authorization, std::string_view* credentials);
// Compares without an early exit, so the time taken says nothing about where a guess went wrong;
// false when `b` (the secret) is empty.
bool same_secret(std::string_view a, std::string_view b);

}  // namespace herd
