// Formatting of the lines the server writes: AT lines, AT records, "? " replies and WHATSAT
// replies, and reading the ID and time back out of a record. The append_ functions only append to
// the caller's string; at_record replaces its scratch string when it builds there; the at_record_
// readers write nothing.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/command.h"
#include "protocol/packed_record.h"
#include "protocol/timestamp.h"

namespace protocol {

// The most bytes by which an AT line can exceed the IAMAT line it answers, besides the server's name:
// the time difference (a sign, at most 20 digits of seconds, a point and 9 digits) and its space,
// less the three bytes "AT" saves over "IAMAT". With it a server can bound the records it floods.
inline constexpr size_t kAtLineGrowth = 1 + 20 + 1 + 9 + 1 - 3;

// Appends "AT <server> <received - cmd.time> <client_id> <location_text> <time_text>" with single
// spaces, the difference as format_time_diff writes it, and no newline. Returns the appended record
// as a RecordForm (its parts already known), valid until `out` changes.
RecordForm append_at_line(std::string& out, std::string_view server, Timestamp received,
                          const Iamat& cmd);

// Appends the six AT fields of `at` ("AT", server, diff, client_id, location_text, time_text)
// joined by single spaces; `extra` is dropped and no newline is written. Returns the appended
// record as append_at_line does.
RecordForm append_at_record(std::string& out, const At& at);

// The AT record of `line`, parsed into `at`, as append_at_record writes it, with its parts: a view
// of the line itself when its six fields already stand one space apart from its start (a herd
// server's flood lines always do, so receivers copy nothing), else built in *scratch and viewed
// there.
RecordForm at_record(std::string_view line, const At& at, std::string* scratch);

// The client ID of a record laid out by the two functions above (single spaces): its fourth field,
// from the third space to the fourth or the end. An empty view when `record` has fewer than three
// spaces. Fast (SSE2 where there is SSE2) on the location table's every store and lookup.
std::string_view at_record_id(std::string_view record);

// The time of a record laid out by the two functions above: its last field, parsed.
std::optional<Timestamp> at_record_time(std::string_view record);

// Appends "? " + line + "\n" (line exactly as received, without its line ending).
void append_invalid(std::string& out, std::string_view line);

// Appends a WHATSAT reply: at_line, "\n", then `json` with every run of '\n' collapsed to one and
// leading and trailing '\n's dropped, then "\n\n". Other bytes of `json` are copied unchanged.
void append_places_reply(std::string& out, std::string_view at_line, std::string_view json);

}  // namespace protocol
