// Fuzz harness: the client/peer command parser (protocol/command.h) and the reply formatting built on
// it. Properties: parsing never reads outside the line; every parsed view points into the line; an
// accepted IAMAT formats into an AT line that parses back as the same record; an accepted AT record,
// normalised, parses back to the same fields.
// Dictionary: command.dict
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/reply.h"
#include "protocol/timestamp.h"
#include "test/fuzz/fuzz_check.h"

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool valid_time(protocol::Timestamp t) {
  return t.sec >= 0 && t.sec < protocol::kMaxTimestampSeconds && t.nsec >= 0 && t.nsec < 1000000000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copied so that ASan sees the exact extent of the line.
  std::string copy(reinterpret_cast<const char*>(data), size);
  std::string_view line(copy);
  protocol::Command cmd = protocol::parse_command(line);
  switch (cmd.kind) {
    case protocol::CommandKind::kEmpty:
      FUZZ_CHECK(protocol::trim(line).empty());
      break;
    case protocol::CommandKind::kIamat: {
      const protocol::Iamat& i = cmd.iamat;
      FUZZ_CHECK(inside(i.client_id, line) && inside(i.location_text, line) && inside(i.time_text, line));
      FUZZ_CHECK(valid_time(i.time));
      const auto where = protocol::parse_location(i.location_text);
      FUZZ_CHECK(where && where->lat >= -90 && where->lat <= 90);
      FUZZ_CHECK(where->lng >= -180 && where->lng <= 180);
      std::string at;
      protocol::append_at_line(at, "Fuzz", protocol::Timestamp{1700000000, 5}, i);
      FUZZ_CHECK(at.size() <= line.size() + 4 + protocol::kAtLineGrowth);
      protocol::Command back = protocol::parse_command(at);
      FUZZ_CHECK(back.kind == protocol::CommandKind::kAt);
      FUZZ_CHECK(back.at.client_id == i.client_id && back.at.location_text == i.location_text &&
                 back.at.time_text == i.time_text && back.at.time == i.time && back.at.extra.empty());
      break;
    }
    case protocol::CommandKind::kWhatsat: {
      const protocol::Whatsat& w = cmd.whatsat;
      FUZZ_CHECK(inside(w.client_id, line));
      FUZZ_CHECK(w.radius_km > 0 && w.radius_km <= protocol::kMaxRadiusKm);
      FUZZ_CHECK(w.bound >= protocol::kMinBound && w.bound <= protocol::kMaxBound);
      break;
    }
    case protocol::CommandKind::kAt: {
      const protocol::At& a = cmd.at;
      FUZZ_CHECK(inside(a.server, line) && inside(a.diff, line) && inside(a.client_id, line) &&
                 inside(a.location_text, line) && inside(a.time_text, line) && inside(a.extra, line));
      FUZZ_CHECK(valid_time(a.time));
      FUZZ_CHECK(protocol::is_time_diff(a.diff));
      std::string record;
      protocol::append_at_record(record, a);
      protocol::Command back = protocol::parse_command(record);
      FUZZ_CHECK(back.kind == protocol::CommandKind::kAt);
      FUZZ_CHECK(back.at.server == a.server && back.at.diff == a.diff && back.at.client_id == a.client_id &&
                 back.at.location_text == a.location_text && back.at.time_text == a.time_text &&
                 back.at.extra.empty());
      break;
    }
    case protocol::CommandKind::kInvalid: {
      std::string reply;
      protocol::append_invalid(reply, line);
      FUZZ_CHECK(reply.size() == line.size() + 3);
      break;
    }
  }
  // The field splitter on its own: fields are non-empty, whitespace-free and in order.
  std::string_view fields[8];
  size_t n = protocol::split_fields(line, fields, 8);
  const char* last_end = line.data();
  for (size_t k = 0; k < n && k < 8; ++k) {
    FUZZ_CHECK(!fields[k].empty() && inside(fields[k], line) && fields[k].data() >= last_end);
    for (char c : fields[k]) FUZZ_CHECK(!protocol::is_space(static_cast<unsigned char>(c)));
    last_end = fields[k].data() + fields[k].size();
  }
  return 0;
}
