// ClientSession: one client connection. It splits the bytes into command lines, answers IAMAT from
// the location table (flooding winners), WHATSAT through the places provider, and everything else
// with `? `, and writes the replies in the order the commands came, in one write per read burst.
// With fsync: always an IAMAT's reply waits until its record is on disk (Persistence), in the same
// in-order queue as replies waiting for places. Bounded: a line longer than the limit is answered and
// the client dropped; too many replies waiting (on places or the disk) or too many unsent bytes stop
// reading from the client until they drain. Bounded in
// time too (check_deadlines): an incomplete line held too long, a client silent too long, or output
// that the client does not take for too long closes the connection.
//
// Threads: loop thread only. Owned by its LoopContext; freed at the end of the iteration it closed in.
#pragma once

#include <chrono>
#include <ctime>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "reactor/tcp_connection.h"
#include "reactor/socket.h"

namespace herd {

struct LoopContext;

class ClientSession final : public reactor::ConnectionHandler {
 public:
  ClientSession(LoopContext& ctx, uint64_t id, int fd, const reactor::SocketAddress& from);
  void start();
  // No reply is waiting or unsent (for a graceful stop).
  bool quiet() const { return pending_.empty() && out_.empty() && (!conn_.is_open() || conn_.pending_output() == 0); }

  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_drained(reactor::Connection& c) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;

  using Clock = std::chrono::steady_clock;
  // Loop thread, from the loop's periodic sweep: closes the connection (the log says why) when it
  // has held an incomplete line for over limits.line_timeout_ms, received nothing and owes nothing
  // for over limits.idle_timeout_ms, or had output waiting of which the client took nothing for over
  // limits.write_timeout_ms (a client that does not read). A limit of 0 is off.
  void check_deadlines(Clock::time_point now);

 private:
  // A reply that must wait for an earlier one (places answers can complete out of order).
  struct Pending {
    uint64_t seq;
    bool ready;
    std::string bytes;
    std::chrono::steady_clock::time_point since{};  // for the latency histogram (places answers, durable IAMATs)
    uint64_t durable_seq = 0;  // fsync: always: the reply (in bytes) waits for this backlog seq on disk
  };

  size_t take_lines(std::string_view data, bool at_eof);
  // Logs an entry stamped with the burst's time while in one, else with the time now.
  void log_entry(char dir, std::string_view text1, std::string_view text2 = {});
  void handle_line(std::string_view line);
  // Queues the reply `line` + "\n" behind any reply still waiting (logged when it is released).
  void reply(std::string_view line);
  // Queues the same way the `? ` reply to the command `line` (protocol::append_invalid).
  void reply_invalid(std::string_view line);
  // Where the next reply goes: the output, or a new ready entry of the queue when a reply waits.
  std::string& reply_slot();
  // Queues `line` + "\n" as reply(), but with fsync: always only once backlog seq `seq` is durable.
  // Replies now (true) or once `seq` is on disk (false; the latency is then observed on completion).
  bool reply_when_durable(std::string_view line, uint64_t seq);
  // With replies waiting for the disk, one waiter for the lowest seq among them is registered with
  // Persistence (at most one per session, cancelled when the connection closes).
  void watch_durable();
  void on_durable();  // the watched seq is on disk: releases every reply whose seq is
  void complete(uint64_t seq, std::string bytes);
  void after_completion();  // outside a burst: writes what is ready and reconsiders reading
  void release_ready();
  void flush();
  bool has_room() const;  // replies queued and unsent are within the bounds
  void update_reading();
  void update_read_size();  // small reads past the server's budget for buffered bytes, else full ones
  void resume_after_eof();
  void maybe_finish();

  LoopContext& ctx_;  // its loop, and the table, router, places and limits it answers with
  const uint64_t id_;
  const std::string tag_;  // "c<id>" in the log
  reactor::TcpConnection conn_;
  std::string out_;            // replies of the current burst, written once by flush()
  std::string scratch_;        // the AT line being built
  std::deque<Pending> pending_;
  uint64_t next_seq_ = 0;
  bool durable_armed_ = false;    // a waiter of watch_durable is registered (or queued to run)
  uint64_t durable_watch_ = 0;    // its seq
  uint64_t durable_ticket_ = 0;   // its ticket (0: queued to run, nothing to cancel)
  bool in_batch_ = false;      // inside on_data/on_eof: flush happens at the end
  bool eof_ = false;           // the client half-closed
  bool finishing_ = false;     // no more commands will be taken (oversize line or EOF)
  bool held_ = false;          // commands were left unread because of the bounds: owed a resume
  bool resume_queued_ = false; // a resume_after_eof is on its way
  std::string eof_rest_;       // lines that came before EOF and wait for room
  std::chrono::steady_clock::time_point batch_start_{};  // when the current burst was read
  timespec batch_wall_{};  // the same, on the wall clock: the burst's log entries and AT times
  uint64_t batch_replies_ = 0;  // replies of this burst answered at once (observed at its end)
  // Deadlines (check_deadlines); a default time_point means "not running".
  Clock::time_point last_input_;     // when bytes last came (or the connection opened)
  Clock::time_point partial_since_;  // an incomplete line has been waiting since then
  Clock::time_point stalled_since_;  // output has waited with no byte taken since then
  uint64_t sent_total_ = 0;          // bytes handed to conn_.send()
  uint64_t written_seen_ = 0;        // of those, taken by the kernel, at the last sweep
  int64_t unacked_seen_ = -1;        // the kernel's unacknowledged bytes at the last sweep
};

}  // namespace herd
