// LogSink implementation.
#include "herd/log_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "herd/unaligned.h"
#include "reactor/threads.h"

namespace herd {
namespace {

// The longest line write_each_line copies in one scan; longer ones are written entry by entry.
constexpr size_t kLineScanBytes = 4096;

// How often the writer moves the lanes to disk when nobody asks for a flush.
constexpr auto kWriterPeriod = std::chrono::milliseconds(20);
// A lane's buffers up to this size are kept whatever the load (see run_writer).
constexpr size_t kKeepBatchBytes = 64 * 1024;
// Direct writes: offsets, lengths and buffer addresses in multiples of this (a page: enough for
// devices with 512-byte and with 4 KiB logical blocks). Rounds smaller than kDirectMinBytes go
// through the page cache (an idle or lightly loaded server writes its few entries at once).
constexpr size_t kDirectAlign = 4096;
constexpr size_t kDirectMinBytes = 64 * 1024;

size_t align_down(size_t n) { return n & ~(kDirectAlign - 1); }
size_t align_up(size_t n) { return align_down(n + kDirectAlign - 1); }
// Whether a writer buffer of `capacity` that took `used` bytes this round should be freed: it is over
// `keep` and the load fell (a round used under a quarter of it), so a burst's room does not stay
// resident after the burst.
bool load_fell(size_t capacity, size_t used, size_t keep) { return capacity > keep && used < capacity / 4; }

// The last 1/kEventReserveDivisor of each lane's backlog takes no `<`/`>` lines: when a flood of
// traffic outruns the disk, the events that explain what happened (a client dropped for running out
// of memory, a warning, the drop notices themselves) still reach the file.
constexpr size_t kEventReserveDivisor = 16;

// Whether `c` is written escaped: every ASCII control byte (NUL to 0x1f, and DEL) and the backslash,
// so that an entry is one line of printable text that grep treats as text and a terminal cannot
// take for commands (ESC sequences). Bytes from 0x80 up pass as they are (UTF-8 stays readable).
constexpr bool needs_escape(unsigned char c) { return c < 0x20 || c == 0x7f || c == '\\'; }

// Writes the escape of `c` (needs_escape(c)) at p; returns its length.
size_t put_escape(char* p, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  p[0] = '\\';
  switch (c) {
    case '\n': p[1] = 'n'; return 2;
    case '\r': p[1] = 'r'; return 2;
    case '\t': p[1] = 't'; return 2;
    case '\\': p[1] = '\\'; return 2;
    default:
      p[1] = 'x';
      p[2] = kHex[c >> 4];
      p[3] = kHex[c & 15];
      return 4;
  }
}

#if defined(__SSE2__)
// Of the 16 bytes in v, those needs_escape() names (0xff) and the others (0). The control bytes
// 0x00..0x1f are those the unsigned minimum with 0x1f leaves as they are; DEL and the backslash are
// compared for. Every entry goes through here (the receivers' CPU per record is what bounds a herd on
// shared cores), so sixteen bytes are checked at a time where SSE2 is there (every x86-64).
inline __m128i escape_bytes(__m128i v) {
  const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
  const __m128i other = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
  return _mm_or_si128(ctl, other);
}

// The same as bits (bit k for byte k) of the 16 bytes at p.
inline unsigned escape_mask(const char* p) {
  return static_cast<unsigned>(_mm_movemask_epi8(escape_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
}
#endif

// Copies `text` to `to` as it is, checking it on the way: true when nothing in it needs an escape
// (what is at `to` then is the text); false as soon as a 64-byte chunk shows something that does
// (`to` then holds bytes to be written over). The common case of every entry in one pass: within a
// chunk the checks of its sixteen-byte blocks are gathered, not tested, so that the loop is a load,
// the check and a store; a text that needs escapes (a WHATSAT reply's JSON, with a newline in its
// first bytes) is given up after its first chunk.
bool copy_if_clean(char* to, std::string_view text) {
  const char* s = text.data();
  const size_t n = text.size();
#if defined(__SSE2__)
  if (n >= 16) {
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    const auto block = [&](size_t at) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      bad = _mm_or_si128(bad, escape_bytes(v));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(to + at), v);
    };
    for (; i + 64 < n; i += 64) {
      block(i);
      block(i + 16);
      block(i + 32);
      block(i + 48);
      if (_mm_movemask_epi8(bad) != 0) return false;
    }
    for (; i + 16 < n; i += 16) block(i);
    block(n - 16);  // the last sixteen bytes (again in part, when the length is not a multiple of 16)
    return _mm_movemask_epi8(bad) == 0;
  }
#endif
  for (size_t i = 0; i < n; ++i) {
    if (needs_escape(static_cast<unsigned char>(s[i]))) return false;
    to[i] = s[i];
  }
  return true;
}

// Copies the bytes of `text` up to the first that needs_escape() names (a line's end, when the line is
// clean) to `to`, and returns that byte's index, or text.size() when there is none; `to` must have
// room for the whole text (bytes past the returned index may be written too). The scan and the copy
// of write_each_line's lines in one pass.
size_t copy_to_escape(char* to, std::string_view text) {
  const char* s = text.data();
  const size_t n = text.size();
  size_t i = 0;
#if defined(__SSE2__)
  if (n >= 16) {
    for (; i + 16 <= n; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), v);
      const auto m = static_cast<unsigned>(_mm_movemask_epi8(escape_bytes(v)));
      if (m) return i + static_cast<size_t>(__builtin_ctz(m));
    }
    if (i == n) return n;
    // The last bytes: the sixteen that end the text, of which those before i were looked at already.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + n - 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to + n - 16), v);
    const unsigned m = static_cast<unsigned>(_mm_movemask_epi8(escape_bytes(v))) >> (16 - (n - i));
    return m ? i + static_cast<size_t>(__builtin_ctz(m)) : n;
  }
#endif
  for (; i < n; ++i) {
    if (needs_escape(static_cast<unsigned char>(s[i]))) return i;
    to[i] = s[i];
  }
  return n;
}

// Appends `text` with every byte needs_escape() names written as `\n`, `\r`, `\t`, `\\` or `\xHH`.
// Called for text that has some (a WHATSAT reply's JSON has a newline every few dozen bytes, 600
// in a 20-result reply). One pass, by segments of up to 4 KiB: room for the worst case (every
// byte \xHH) is reserved, not filled, and the written length committed; blocks with nothing to
// escape go 16 bytes at a time, and in the others each run before an escape is one 16-byte store
// that the next write partly overwrites (fixed-size moves near the text's end, where 16 bytes
// cannot be read past the run).
void append_escaped(reactor::Buffer& out, std::string_view text) {
  const char* s = text.data();
  const size_t n = text.size();
  size_t i = 0;
  constexpr size_t kSegment = 4096;
  while (i < n) {
    const size_t stop = i + std::min(kSegment, n - i);
    char* const start = out.prepare(4 * (stop - i) + 16);
    char* p = start;
#if defined(__SSE2__)
    for (; i + 16 <= stop; i += 16) {
      unsigned escaped = escape_mask(s + i);
      if (!escaped) {
        std::memcpy(p, s + i, 16);
        p += 16;
        continue;
      }
      size_t from = 0;
      const bool overread = i + 32 <= n;  // s[i + from .. i + from + 16) is inside the text
      for (; escaped; escaped &= escaped - 1) {
        const auto bit = static_cast<size_t>(__builtin_ctz(escaped));
        if (overread) {
          std::memcpy(p, s + i + from, 16);
        } else {
          copy_short(p, s + i + from, bit - from);
        }
        p += bit - from;
        const auto c = static_cast<unsigned char>(s[i + bit]);
        if (c == '\n') {
          p[0] = '\\';
          p[1] = 'n';
          p += 2;
        } else {
          p += put_escape(p, c);
        }
        from = bit + 1;
      }
      if (overread) {
        std::memcpy(p, s + i + from, 16);
      } else {
        copy_short(p, s + i + from, 16 - from);
      }
      p += 16 - from;
    }
#endif
    for (; i < stop; ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (needs_escape(c)) {
        p += put_escape(p, c);
      } else {
        *p++ = static_cast<char>(c);
      }
    }
    out.commit(static_cast<size_t>(p - start));
  }
}

// Writes ".123456Z " (the microseconds of `nsec`) at p; returns p + 9.
char* put_micros(char* p, long nsec) {
  long us = nsec / 1000;
  p[0] = '.';
  for (int i = 6; i >= 1; --i) {
    p[i] = static_cast<char>('0' + us % 10);
    us /= 10;
  }
  p[7] = 'Z';
  p[8] = ' ';
  return p + 9;
}

// Writes as much of `data` as the file takes; returns the bytes written (fewer on an error, such as
// a full disk, with errno set: logging must not take the server down).
size_t write_all(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return off;
    }
    off += static_cast<size_t>(n);
  }
  return off;
}

// Read access too: the last byte is read back to see whether a previous run ended its last entry.
int open_append(const std::string& path) {
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

}  // namespace

std::unique_ptr<LogSink> LogSink::open(const std::string& path, int lanes, size_t backlog_bytes,
                                       std::string* error, LogOptions options) {
  if (path == "-") {
    return std::unique_ptr<LogSink>(new LogSink(STDERR_FILENO, "", lanes < 1 ? 1 : lanes, backlog_bytes, options));
  }
  int fd = open_append(path);
  if (fd < 0) {
    *error = path + ": cannot open the log file: " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<LogSink>(new LogSink(fd, path, lanes < 1 ? 1 : lanes, backlog_bytes, options));
}

LogSink::LogSink(int fd, std::string path, int lanes, size_t backlog_bytes, LogOptions options)
    : fd_(fd),
      path_(std::move(path)),
      level_(options.level),
      options_(options),
      backlog_bytes_(backlog_bytes),
      io_backlog_bytes_(backlog_bytes - backlog_bytes / kEventReserveDivisor) {
  for (int i = 0; i < lanes; ++i) lanes_.push_back(std::make_unique<Lane>());
  if (!path_.empty()) {
    ::close(fd_);
    fd_ = -1;
    open_file();
  }
  writer_ = reactor::start_thread("log-writer", [this] { run_writer(); });
}

LogSink::~LogSink() {
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  writer_.join();
  if (!path_.empty() && fd_ >= 0) ::close(fd_);
  if (direct_fd_ >= 0) ::close(direct_fd_);
  std::free(staging_);
}

void LogSink::reopen() {
  reopen_.store(true, std::memory_order_relaxed);
  std::lock_guard lock(wake_mu_);
  ++flush_requests_;
  wake_cv_.notify_all();
}

void LogSink::open_file() {
  int fd = open_append(path_);
  if (fd < 0) {
    const std::string why = path_ + ": cannot reopen the log file (" + std::strerror(errno) + ")";
    if (fd_ >= 0) {
      // Keep writing to the old file rather than nowhere, and say so there and on stderr: after a
      // rotation the old file may be renamed or deleted, and its entries would go unseen. The entry
      // goes through the off-loop lane like any other (stamped and escaped); no lane lock is held
      // here, and this round of the writer collects it into the old file.
      write(lanes() - 1, "-", '!', why, "; writing on to the file it replaced");
      std::fprintf(stderr, "herd-server: %s; writing on to the file it replaced\n", why.c_str());
      reopen_failures_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  struct stat st {};
  const bool regular = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  file_bytes_ = regular ? static_cast<uint64_t>(st.st_size) : 0;
  // The same file again, for direct writes (through /proc, so a rename in between cannot make it
  // another file). A file system without O_DIRECT (tmpfs) refuses it: the page cache path only.
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = -1;
  if (regular) {
    const std::string self = "/proc/self/fd/" + std::to_string(fd_);
    direct_fd_ = ::open(self.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  }
  writeback_from_ = cached_from_ = static_cast<off_t>(file_bytes_);
  // A previous run that died mid-entry left a partial line: end it, so no two entries share a line.
  char last = '\n';
  if (file_bytes_ > 0 && ::pread(fd_, &last, 1, static_cast<off_t>(file_bytes_ - 1)) == 1 && last != '\n') {
    file_bytes_ += write_all(fd_, "\n");
  }
}

void LogSink::rotate() {
  // NAME.log.<keep-1> -> NAME.log.<keep>, …, NAME.log -> NAME.log.1; the oldest is replaced.
  const int keep = std::max(options_.keep, 1);
  for (int i = keep - 1; i >= 1; --i) {
    std::string from = path_ + "." + std::to_string(i);
    std::string to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  const std::string first = path_ + ".1";
  if (::rename(path_.c_str(), first.c_str()) != 0) {
    // The file stays where it is: write on in it past the bound, say so (this round's entries are
    // collected already, so the note comes with the next), and try again kRotateRetry later.
    const std::string why = path_ + ": cannot rotate the log (rename to " + first + ": " + std::strerror(errno) + ")";
    write(lanes() - 1, "-", '!', why,
          "; writing on past log_max_bytes, next try in " + std::to_string(kRotateRetry.count()) + " s");
    std::fprintf(stderr, "herd-server: %s; writing on past log_max_bytes\n", why.c_str());
    reopen_failures_.fetch_add(1, std::memory_order_relaxed);
    rotate_retry_at_ = std::chrono::steady_clock::now() + kRotateRetry;
    return;
  }
  open_file();
}

void LogSink::write_round(const std::vector<reactor::Buffer>& batches) {
  size_t total = 0;
  const reactor::Buffer* first = nullptr;
  for (const auto& b : batches) {
    total += b.size();
    if (!first && !b.empty()) first = &b;
  }
  if (load_fell(staging_cap_, total, 4 * kDirectMinBytes)) {
    // The load fell (or stopped): give the staging buffer back; the next busy round allocates again.
    std::free(staging_);
    staging_ = nullptr;
    staging_cap_ = 0;
  }
  if (total == 0) return;
  if (!path_.empty() && options_.max_bytes > 0 && file_bytes_ > 0 && file_bytes_ + total > options_.max_bytes &&
      std::chrono::steady_clock::now() >= rotate_retry_at_) {
    // Our count may be stale: someone may have truncated the file meanwhile (logrotate's
    // copytruncate, a benchmark emptying logs between runs). Rotate on what the file holds.
    struct stat st;
    if (::fstat(fd_, &st) == 0) file_bytes_ = static_cast<uint64_t>(st.st_size);
    if (file_bytes_ > 0 && file_bytes_ + total > options_.max_bytes) rotate();
  }
  if (failed_entries_) {
    // Report what failed writes lost, once the file takes bytes again.
    std::string note = std::string(first->view().substr(0, 19)) + ".000000Z - ! log write failed (" + failure_ + "): " +
                       std::to_string(failed_entries_) + " entries dropped\n";
    size_t n = write_all(fd_, note);
    file_bytes_ += n;
    written_total_.fetch_add(n, std::memory_order_relaxed);
    if (n == note.size()) failed_entries_ = 0;
  }
  if (direct_fd_ >= 0 && total >= kDirectMinBytes && write_direct(batches, total)) return;
  for (const auto& b : batches) write_buffered(b.view());
  if (!path_.empty()) release_written_pages();
}

void LogSink::write_buffered(std::string_view bytes) {
  if (bytes.empty()) return;
  size_t n = write_all(fd_, bytes);
  if (n < bytes.size()) {
    failure_ = std::strerror(errno);
    // Entries not (completely) written are dropped; a partial one is ended so the next starts a line.
    uint64_t lost = static_cast<uint64_t>(std::count(bytes.begin() + static_cast<std::ptrdiff_t>(n), bytes.end(), '\n'));
    if (n > 0 && bytes[n - 1] != '\n') n += write_all(fd_, "\n");
    failed_entries_ += lost;
    dropped_total_.fetch_add(lost, std::memory_order_relaxed);
  }
  file_bytes_ += n;
  written_total_.fetch_add(n, std::memory_order_relaxed);
}

bool LogSink::write_direct(const std::vector<reactor::Buffer>& batches, size_t total) {
  // The file ends in a partial block (the tail of the last round, written through the page cache):
  // the direct write starts at that block, with the tail read back in front of the new bytes.
  struct stat st;
  if (::fstat(fd_, &st) != 0) return false;
  const auto size = static_cast<size_t>(st.st_size);
  const size_t base = align_down(size);
  const size_t head = size - base;
  const size_t need = align_up(head + total);
  if (need > staging_cap_) {
    // With room for rounds a quarter larger, so that a load that varies does not reallocate often.
    const size_t cap = align_up(need + need / 4);
    std::free(staging_);
    staging_cap_ = 0;
    staging_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, cap));
    if (!staging_) return false;
    staging_cap_ = cap;
  }
  if (head > 0 && ::pread(fd_, staging_, head, static_cast<off_t>(base)) != static_cast<ssize_t>(head)) return false;
  char* p = staging_ + head;
  for (const auto& b : batches) {
    if (b.empty()) continue;  // (a lane that never logged has no memory at all)
    std::memcpy(p, b.data(), b.size());
    p += b.size();
  }
  // Whole blocks go straight to the disk; what is left of the last one goes through the page cache.
  const size_t whole = align_down(head + total);
  size_t done = 0;
  while (done < whole) {
    ssize_t n = ::pwrite(direct_fd_, staging_ + done, whole - done, static_cast<off_t>(base + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  if (done < whole && errno == EINVAL) {
    // The file or its device does not take these direct writes: the page cache from now on.
    ::close(direct_fd_);
    direct_fd_ = -1;
  }
  // Nothing new on disk: the caller writes the round through the page cache (errors counted there).
  if (done <= head) return false;
  file_bytes_ = base + done;  // what the file holds now (our count may have been stale)
  written_total_.fetch_add(done - head, std::memory_order_relaxed);
  write_buffered(std::string_view(staging_ + done, head + total - done));
  // Only the tail is in the page cache; nothing before it is waiting to be written back.
  writeback_from_ = cached_from_ = static_cast<off_t>(base + done);
  return true;
}

void LogSink::release_written_pages() {
  const off_t end = ::lseek(fd_, 0, SEEK_CUR);
  if (end < 0) return;  // not a file (a pipe): nothing cached
  if (end < writeback_from_) writeback_from_ = cached_from_ = 0;  // truncated meanwhile (copytruncate)
  if (end - writeback_from_ >= kStartWritebackBytes) {
    ::sync_file_range(fd_, writeback_from_, end - writeback_from_, SYNC_FILE_RANGE_WRITE);
    writeback_from_ = end;
  }
  if (writeback_from_ - cached_from_ >= 2 * kKeepCachedBytes) {
    // Started at least kKeepCachedBytes ago: by now mostly on disk, so the wait is short.
    const off_t upto = writeback_from_ - kKeepCachedBytes;
    ::sync_file_range(fd_, cached_from_, upto - cached_from_,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    ::posix_fadvise(fd_, cached_from_, upto - cached_from_, POSIX_FADV_DONTNEED);
    cached_from_ = upto;
  }
}

void LogSink::write(int lane, std::string_view who, char dir, std::string_view text) {
  write(lane, who, dir, text, {});
}

LogSink::Lane& LogSink::lane_for(int lane) {
  // Callers off the loops (and any out-of-range index) share the last lane.
  return *lanes_[lane < 0 || lane >= lanes() ? lanes() - 1 : lane];
}

namespace {
// The lane this thread holds (LogSink::Hold), if any.
thread_local const void* t_held_lane = nullptr;
}  // namespace

LogSink::Hold::Hold(LogSink& sink, int lane) {
  if (t_held_lane) return;
  lane_ = &sink.lane_for(lane);
  lane_->mu.lock();
  t_held_lane = lane_;
}

LogSink::Hold::~Hold() {
  if (!lane_ || t_held_lane != lane_) return;  // nothing held, or given up to the writer already
  t_held_lane = nullptr;
  lane_->mu.unlock();
}

template <class Append>
void LogSink::with_lane(Lane& lane, Append&& append) {
  if (t_held_lane == &lane) {
    if (!lane.writer_waiting.load(std::memory_order_relaxed)) {
      append();
      return;
    }
    // The writer waits for this lane: the hold ends here (the rest of the burst locks per entry),
    // so a loop streaming reads cannot keep the lane from the writer for longer than one entry.
    t_held_lane = nullptr;
    lane.mu.unlock();
  }
  std::lock_guard lock(lane.mu);
  append();
}

void LogSink::write(int lane, std::string_view who, char dir, std::string_view text1,
                    std::string_view text2) {
  if (!enabled(dir)) return;
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  write_at(lane, ts, who, dir, text1, text2);
}

void LogSink::write_at(int lane, const timespec& ts, std::string_view who, char dir, std::string_view text1,
                       std::string_view text2) {
  if (!enabled(dir)) return;
  Lane& l = lane_for(lane);
  with_lane(l, [&] { append_locked(l, ts, who, dir, text1, text2); });
}

void LogSink::write_each_line(int lane, std::string_view who, char dir, std::string_view lines) {
  if (!enabled(dir)) return;
  Lane& l = lane_for(lane);
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  with_lane(l, [&] { append_lines_locked(l, ts, who, dir, lines); });
}

void LogSink::append_lines_locked(Lane& lane, const timespec& ts, std::string_view who, char dir,
                                  std::string_view lines) {
  // A batch of lines a peer link sends (a hundred flooded records at a time under load): the stamp is
  // brought up to date once, and each line is found, checked and copied in one scan. A line with
  // something to escape, or one that must report drops or be dropped, is written by append_locked.
  stamp_locked(lane, ts);
  const size_t bound = backlog_bound(dir);
  const size_t head = entry_head_size(lane, who);
  while (!lines.empty()) {
    if (lane.buf.size() < bound && lane.dropped == 0) {
      // The scan looks at most kLineScanBytes ahead, so that the room asked for past the lane's
      // bound stays small whatever the batch; a longer line goes through append_locked.
      const std::string_view window = lines.substr(0, kLineScanBytes);
      char* q = put_entry_head(lane, who, dir, window.size());
      const size_t end = copy_to_escape(q, window);
      size_t next = 0;  // where the next line starts, when this one is clean
      if (end == window.size()) {
        if (end == lines.size()) next = end;  // (else: longer than the window)
      } else if (lines[end] == '\n') {
        next = end + 1;
      } else if (lines[end] == '\r' && end + 1 < lines.size() && lines[end + 1] == '\n') {
        next = end + 2;  // (a line's \r before its \n is dropped, as write_each_line promises)
      }
      if (next) {
        if (end > 0) {  // (an empty line makes no entry)
          q[end] = '\n';
          lane.buf.commit(head + end + 1);
        }
        lines.remove_prefix(next);
        continue;
      }
    }
    const size_t nl = lines.find('\n');
    std::string_view line = lines.substr(0, nl);
    lines.remove_prefix(nl == std::string_view::npos ? lines.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) append_locked(lane, ts, who, dir, line, {});
  }
}

void LogSink::append_locked(Lane& lane, const timespec& ts, std::string_view who, char dir,
                            std::string_view t1, std::string_view t2) {
  if (lane.buf.size() >= backlog_bound(dir)) {
    ++lane.dropped;
    dropped_total_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  stamp_locked(lane, ts);
  append_drop_notice_locked(lane, lane.buf);
  // Every record a server takes or sends is logged, so this is on the hot path: the entry is sized
  // once as if nothing needs an escape (nearly always so) and written in place, its text checked as
  // it is copied; text that does need escapes is written again by append_escaped.
  const size_t head = entry_head_size(lane, who);
  char* p = put_entry_head(lane, who, dir, t1.size() + t2.size());
  if (copy_if_clean(p, t1) && (t2.empty() || copy_if_clean(p + t1.size(), t2))) {
    p[t1.size() + t2.size()] = '\n';
    lane.buf.commit(head + t1.size() + t2.size() + 1);
    return;
  }
  lane.buf.commit(head);
  append_escaped(lane.buf, t1);
  append_escaped(lane.buf, t2);
  lane.buf.append("\n");
}

size_t LogSink::entry_head_size(const Lane& lane, std::string_view who) {
  return lane.stamp_len + 9 + who.size() + 3;
}

char* LogSink::put_entry_head(Lane& lane, std::string_view who, char dir, size_t text_room) {
  // Room for the whole entry first: if memory runs out, nothing of the entry is in the lane. (And
  // for the time's whole array, copied in one move and then partly overwritten.)
  char* p = lane.buf.prepare(entry_head_size(lane, who) + text_room + 1 + sizeof lane.stamp);
  std::memcpy(p, lane.stamp, sizeof lane.stamp);
  p += lane.stamp_len + 9;
  if (who.size() < 16) {
    copy_short(p, who.data(), who.size());  // (a name like c12 or p3/Goloman: no call to memcpy)
  } else {
    std::memcpy(p, who.data(), who.size());
  }
  p += who.size();
  p[0] = ' ';
  p[1] = dir;
  p[2] = ' ';
  return p + 3;
}

void LogSink::restamp_locked(Lane& lane, const timespec& ts) {
  set_stamp_locked(lane, ts.tv_sec);
  if (ts.tv_nsec / 1000 != lane.micros_us) {
    lane.micros_us = ts.tv_nsec / 1000;
    put_micros(lane.stamp + lane.stamp_len, ts.tv_nsec);
  }
}

void LogSink::set_stamp_locked(Lane& lane, time_t sec) {
  if (lane.stamp_sec == sec) return;
  tm parts;
  ::gmtime_r(&sec, &parts);
  lane.stamp_len = ::strftime(lane.stamp, sizeof lane.stamp - 9, "%Y-%m-%dT%H:%M:%S", &parts);
  lane.stamp_sec = sec;
  lane.micros_us = -1;
}

void LogSink::append_drop_notice_locked(Lane& lane, reactor::Buffer& out) {
  if (!lane.dropped) return;
  out.append(std::string_view(lane.stamp, lane.stamp_len));
  out.append(".000000Z - ! log backlog full: ");
  out.append(std::to_string(lane.dropped));
  out.append(" entries dropped\n");
  lane.dropped = 0;
}

void LogSink::flush() {
  std::unique_lock lock(wake_mu_);
  uint64_t ticket = ++flush_requests_;
  wake_cv_.notify_all();
  flushed_cv_.wait(lock, [&] { return flushes_done_ >= ticket || stopping_; });
}

void LogSink::run_writer() {
  // One buffer per lane, swapped with the lane's each round: a lane gets back the buffer it filled
  // two rounds ago, with its capacity, so a busy loop appends into room it already has instead of
  // growing a small buffer again (and copying what it holds) every round.
  std::vector<reactor::Buffer> batches(lanes_.size());
  for (;;) {
    uint64_t serving;
    bool last;
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait_for(lock, kWriterPeriod, [&] { return stopping_ || flush_requests_ > flushes_done_; });
      serving = flush_requests_;
      last = stopping_;
    }
    // Between two whole batches: an entry is never split across the old and the new file.
    if (!path_.empty() && reopen_.exchange(false, std::memory_order_relaxed)) open_file();
    for (size_t i = 0; i < lanes_.size(); ++i) {
      Lane& lane = *lanes_[i];
      reactor::Buffer& batch = batches[i];
      lane.writer_waiting.store(true, std::memory_order_relaxed);
      std::lock_guard lock(lane.mu);
      lane.writer_waiting.store(false, std::memory_order_relaxed);
      batch.swap(lane.buf);
      // Entries dropped since the last one that got in are reported now that the lane is empty,
      // not when (or if) another entry comes: a server that goes idle, or stops, owes the count.
      if (lane.dropped) {
        timespec ts;
        ::clock_gettime(CLOCK_REALTIME, &ts);
        set_stamp_locked(lane, ts.tv_sec);
        append_drop_notice_locked(lane, batch);
      }
    }
    write_round(batches);
    for (reactor::Buffer& batch : batches) {
      // Keep the room while the lane uses it; give it back once the lane's load falls.
      if (load_fell(batch.capacity(), batch.size(), kKeepBatchBytes)) {
        batch.release();
      } else {
        batch.clear();
      }
    }
    {
      std::lock_guard lock(wake_mu_);
      flushes_done_ = serving;
    }
    flushed_cv_.notify_all();
    if (last) return;
  }
}

}  // namespace herd
