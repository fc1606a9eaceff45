// Reply formatting.
#include "protocol/reply.h"

namespace protocol {

void append_at_line(std::string& out, std::string_view server, Timestamp received,
                    const Iamat& cmd) {
  out.append("AT ");
  out.append(server);
  out.push_back(' ');
  append_time_diff(out, received, cmd.time);
  out.push_back(' ');
  out.append(cmd.client_id);
  out.push_back(' ');
  out.append(cmd.location_text);
  out.push_back(' ');
  out.append(cmd.time_text);
}

void append_at_record(std::string& out, const At& at) {
  out.append("AT ");
  out.append(at.server);
  out.push_back(' ');
  out.append(at.diff);
  out.push_back(' ');
  out.append(at.client_id);
  out.push_back(' ');
  out.append(at.location_text);
  out.push_back(' ');
  out.append(at.time_text);
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
