// Which reports the location table takes: the limits a client's IAMAT or a peer's AT record must
// meet before it is offered (limits.max_id_bytes, limits.max_clock_skew). Client and peer sessions
// ask the same question, so a record one server refuses is refused by every server of a herd that
// shares the config. Pure; any thread.
#pragma once

#include <string_view>

#include "herd/config.h"
#include "protocol/timestamp.h"

namespace herd {

// nullptr when a report for `client_id` dated `time` may be offered to the table at `now`; else
// why not, for the log.
inline const char* refusal(const Limits& limits, std::string_view client_id, protocol::Timestamp time,
                           protocol::Timestamp now) {
  if (client_id.size() > limits.max_id_bytes) return "client ID longer than limits.max_id_bytes";
  if (protocol::too_far_ahead(time, now, limits.max_clock_skew)) {
    return "time more than limits.max_clock_skew ahead of this server's clock";
  }
  return nullptr;
}

}  // namespace herd
