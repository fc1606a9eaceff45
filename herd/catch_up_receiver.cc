// CatchUpReceiver implementation.
#include "herd/catch_up_receiver.h"

#include "herd/flood_router.h"
#include "herd/loop_context.h"
#include "herd/sync_state.h"
#include "protocol/sync_line.h"

namespace herd {

bool CatchUpReceiver::handle(reactor::Connection& c, std::string_view peer, std::string_view tag,
                             std::string_view line) {
  // (The session tells an AT record, the common case, from a catch-up line before calling this;
  // parse_sync_line asks the same first-bytes question of anything else.)
  protocol::SyncLine s = protocol::parse_sync_line(line);
  if (s.kind == protocol::SyncKind::kNone) return false;
  const LoopLog& log = ctx_.log;
  log.write(tag, '<', line);
  switch (s.kind) {
    case protocol::SyncKind::kSync: {
      run_.assign(s.run);
      std::string answer;
      if (auto held = ctx_.server.sync.held(peer)) {
        protocol::append_sync_from(answer, held->run, held->seq, ctx_.server.sync.wants_everything_from(peer));
      } else {
        protocol::append_sync_from(answer, "-", 0);
      }
      if (c.pending_output() > kMaxUnsentAnswers) {
        log.write(tag, '!', "SYNC after SYNC with the answers unread; dropping the connection");
        c.close("a peer that does not read its SYNC-FROM answers");
        return true;
      }
      log.write(tag, '>', std::string_view(answer).substr(0, answer.size() - 1));
      c.send(answer);
      catching_up_ = true;
      started_ = std::chrono::steady_clock::now();
      received_ = stored_ = 0;
      return true;
    }
    case protocol::SyncKind::kBulk:
      bulk_left_ = s.number;
      if (!catching_up_) {  // a full transfer on a live link (the neighbour fell behind)
        catching_up_ = true;
        started_ = std::chrono::steady_clock::now();
        received_ = stored_ = 0;
      }
      return true;
    case protocol::SyncKind::kMark:
      if (run_.empty()) {
        log.write(tag, '!', "MARK before SYNC; ignored");
        return true;
      }
      ctx_.server.sync.set_held(peer, run_, s.number);
      ctx_.server.router.append_progress(peer, run_, s.number);
      if (catching_up_) {
        catching_up_ = false;
        ctx_.server.sync.catch_up_completed(peer);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
        log.write(tag, '*',
                  "caught up: " + std::to_string(received_) + " catch-up records received, " +
                      std::to_string(stored_) + " stored, in " + std::to_string(ms.count()) + " ms");
      }
      return true;
    default:
      log.write(tag, '!', "malformed catch-up line; ignored");
      return true;
  }
}

void CatchUpReceiver::took_bulk_line(bool stored) {
  if (bulk_left_ > 0) --bulk_left_;
  ++received_;
  if (stored) ++stored_;
}

}  // namespace herd
