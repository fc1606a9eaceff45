// Reply formatting.
#include "protocol/reply.h"

namespace protocol {

namespace {

// The two halves of an AT record around its time difference, which is either computed (a fresh
// IAMAT) or copied (a flooded record): "AT <server> " and " <client_id> <location> <time>".
void append_head(std::string& out, std::string_view server) {
  out.append("AT ");
  out.append(server);
  out.push_back(' ');
}

void append_tail(std::string& out, std::string_view client_id, std::string_view location,
                 std::string_view time) {
  out.push_back(' ');
  out.append(client_id);
  out.push_back(' ');
  out.append(location);
  out.push_back(' ');
  out.append(time);
}

}  // namespace

void append_at_line(std::string& out, std::string_view server, Timestamp received,
                    const Iamat& cmd) {
  append_head(out, server);
  append_time_diff(out, received, cmd.time);
  append_tail(out, cmd.client_id, cmd.location_text, cmd.time_text);
}

void append_at_record(std::string& out, const At& at) {
  append_head(out, at.server);
  out.append(at.diff);
  append_tail(out, at.client_id, at.location_text, at.time_text);
}

size_t at_record_id_offset(std::string_view record, std::string_view client_id) {
  size_t at = 0;
  for (int spaces = 0; spaces < 3 && at != std::string_view::npos; ++spaces) {
    at = record.find(' ', at);
    if (at != std::string_view::npos) ++at;
  }
  if (at != std::string_view::npos && record.substr(at, client_id.size()) == client_id) return at;
  return record.find(client_id);  // not laid out by append_at_*: anywhere in it
}

void append_invalid(std::string& out, std::string_view line) {
  out.append("? ");
  out.append(line);
  out.push_back('\n');
}

void append_places_reply(std::string& out, std::string_view at_line, std::string_view json) {
  out.append(at_line);
  out.push_back('\n');
  size_t begin = 0;
  size_t end = json.size();
  while (begin < end && json[begin] == '\n') ++begin;
  while (end > begin && json[end - 1] == '\n') --end;
  size_t run_start = begin;  // start of the current stretch copied verbatim
  for (size_t i = begin; i < end; ++i) {
    if (json[i] == '\n' && json[i - 1] == '\n') {
      out.append(json.substr(run_start, i - run_start));
      run_start = i + 1;
    }
  }
  out.append(json.substr(run_start, end - run_start));
  out.append("\n\n");
}

}  // namespace protocol
