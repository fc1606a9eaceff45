// Handing the bytes of a read to a connection's handler: the one rule TcpConnection and
// TlsConnection share for what they buffer.
#pragma once

#include <cstddef>
#include <string_view>

#include "reactor/buffer.h"

namespace reactor {

// Offers `fresh` (the bytes a read just produced, in a buffer of the caller's) to `handler` after
// the unconsumed bytes `in` holds, and leaves in `in` what the handler does not take. `is_open()`
// says whether the connection is still open (the handler may close it); once it is not, nothing
// more is offered or kept. `in` gives its memory back when it empties above `keep_capacity`.
//
// A stream of lines (a peer link's flood) ends a read in the middle of a line nearly every time, so
// `in` is seldom empty when the next read comes, and appending the whole read to it would copy
// every byte once more. Only the read's bytes up to its first newline are appended; the line they
// complete is offered, then the rest of the read from where it was read. A handler that does not
// take all of `in` (it paused, or it waits for more than a line) is then offered everything at
// once, as if the read had been appended whole.
// (Templated on the handler and connection types so that tests can drive it without sockets.)
template <class Handler, class Conn, class IsOpen>
void offer_read(Handler& handler, Conn& conn, Buffer& in, std::string_view fresh, IsOpen is_open,
                size_t keep_capacity) {
  if (!in.empty()) {
    const size_t newline = fresh.find('\n');
    const size_t head = newline == std::string_view::npos ? fresh.size() : newline + 1;
    in.append(fresh.substr(0, head));
    fresh.remove_prefix(head);
    const size_t used = handler.on_data(conn, in.view());
    if (!is_open()) return;
    in.consume(used);
    if (!in.empty()) {
      if (fresh.empty()) return;
      in.append(fresh);
      const size_t more = handler.on_data(conn, in.view());
      if (is_open()) in.consume(more);
      return;
    }
    if (in.capacity() > keep_capacity) in.release();
    if (fresh.empty()) return;
  }
  const size_t used = handler.on_data(conn, fresh);
  if (is_open() && used < fresh.size()) in.append(fresh.substr(used));
}

}  // namespace reactor
