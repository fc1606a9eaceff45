// Fuzz harness: what a peer link delivers, line by line: the AT record parser, the seen= set that
// travels with it (herd/seen_set.h) and the location table that stores it (herd/location_table.h).
// Properties: a seen set holds at most kMaxNames distinct names, each from the input, and its field
// parses back to the same set; a stored record is the one looked up; the table never holds two
// records for one client and always keeps the newest by (time, bytes).
// Dictionary: command.dict
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "herd/location_table.h"
#include "herd/seen_set.h"
#include "protocol/command.h"
#include "protocol/reply.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  // A fixed key: the same input takes the same path on every run.
  herd::LocationTable table(SIZE_MAX, SIZE_MAX, herd::SipKey{1, 2});
  // The newest record per client, as the table should see it.
  std::map<std::string, std::pair<protocol::Timestamp, std::string>> model;
  std::string_view rest(input);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);

    herd::SeenSet seen = herd::SeenSet::parse(line);
    FUZZ_CHECK(seen.size() <= herd::SeenSet::kMaxNames);
    std::string field;
    seen.append_field(field);
    FUZZ_CHECK(seen.size() == 0 ? field.empty() : field.rfind(" seen=", 0) == 0);
    herd::SeenSet again = herd::SeenSet::parse(field);
    FUZZ_CHECK(again.size() == seen.size());

    protocol::Command cmd = protocol::parse_command(line);
    if (cmd.kind != protocol::CommandKind::kAt) continue;
    const protocol::At& at = cmd.at;
    std::string record;
    protocol::append_at_record(record, at);
    bool stored = table.offer(at.client_id, at.time, record, herd::LocationTable::Source::kPeer, nullptr);
    auto it = model.find(std::string(at.client_id));
    bool newer = it == model.end() || at.time > it->second.first ||
                 (at.time == it->second.first && record > it->second.second);
    FUZZ_CHECK(stored == newer);
    if (newer) model[std::string(at.client_id)] = {at.time, record};
    std::string got;
    protocol::Location where;
    FUZZ_CHECK(table.lookup(at.client_id, &got, &where));
    FUZZ_CHECK(got == model[std::string(at.client_id)].second);
  }
  FUZZ_CHECK(table.size() == model.size());
  return 0;
}
