// LogSink: the entry format, escaping, one entry per line for batches, and dropping (with a count)
// once the backlog bound is reached, I/O lines before the events that explain them; what stays in
// the page cache, and direct writes that keep every byte in its place.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "herd/log_sink.h"
#include "test/unit/xorshift.h"

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "2026-11-26T01:20:18.185959Z ": digits where the pattern has 'd'.
bool has_stamp(const std::string& line) {
  const std::string pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ ";
  if (line.size() < pattern.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    bool ok = pattern[i] == 'd' ? (line[i] >= '0' && line[i] <= '9') : line[i] == pattern[i];
    if (!ok) return false;
  }
  return true;
}

// What the log makes of `text`, by the rule, byte by byte: \n \r \t \\ for those four, \xHH for
// the other control bytes and DEL, every other byte as it is.
std::string escaped_by_rule(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    char buf[8];
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7f) { std::snprintf(buf, sizeof buf, "\\x%02x", c); out += buf; }
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

std::string temp_path() {
  char tmpl[] = "/tmp/herd-log-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  return tmpl;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Whether the file system of `path` takes O_DIRECT writes (tmpfs does not).
bool takes_direct_writes(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Bytes of `path` in the page cache.
size_t cached_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  const size_t size = static_cast<size_t>(st.st_size);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  REQUIRE(map != MAP_FAILED);
  std::vector<unsigned char> resident((size + page - 1) / page);
  REQUIRE(::mincore(map, size, resident.data()) == 0);
  size_t cached = 0;
  for (unsigned char r : resident) cached += r & 1;
  ::munmap(map, size);
  ::close(fd);
  return cached * page;
}

// A LogSink whose writer stalls for good, as it would behind a disk that does not keep up: its file
// is a FIFO (holding one page) that nobody reads until finish().
struct StalledLog {
  static constexpr size_t kBacklog = 4096;
  char dir[32] = "/tmp/herd-log-fifo-XXXXXX";
  std::string path;
  int rd = -1;
  std::unique_ptr<herd::LogSink> log;

  StalledLog() {
    REQUIRE(::mkdtemp(dir));
    path = std::string(dir) + "/x.log";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    rd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(rd >= 0);
    ::fcntl(rd, F_SETPIPE_SZ, 4096);
    std::string error;
    log = herd::LogSink::open(path, 1, kBacklog, &error);
    REQUIRE(log);
  }
  ~StalledLog() {
    if (log) finish();
  }

  // Writes `<` lines until the lane is full for good: 50 in a row dropped, over more than two of the
  // writer's 20 ms periods (it would have emptied the lane meanwhile, were it not stalled).
  bool fill_with_io_lines() {
    const std::string text(100, 'x');
    int dropped_in_a_row = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (dropped_in_a_row < 50 && std::chrono::steady_clock::now() < deadline) {
      const uint64_t before = log->dropped();
      log->write(0, "c1", '<', text);
      dropped_in_a_row = log->dropped() > before ? dropped_in_a_row + 1 : 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return dropped_in_a_row == 50;
  }

  // Frees the sink while reading the FIFO to its end (the end comes when the sink's descriptor
  // closes); returns the lines written.
  std::vector<std::string> finish() {
    ::fcntl(rd, F_SETFL, 0);  // blocking reads from here on
    std::string all;
    std::thread reader([&] {
      char buf[4096];
      for (ssize_t n; (n = ::read(rd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
    });
    log.reset();
    reader.join();
    ::close(rd);
    ::unlink(path.c_str());
    ::rmdir(dir);
    std::istringstream in(all);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
};

}  // namespace

TEST_SUITE("log_sink") {
  TEST_CASE("entries carry a UTC microsecond timestamp, who, direction and escaped text") {
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 2, 1 << 20, &error);
      REQUIRE(log);
      log->write(0, "c7", '<', "IAMAT kiwi +1.0+2.0 5");
      log->write(1, "c7", '>', "AT S +0.1 kiwi\n{\n}", " back\\slash");
      log->write_each_line(0, "Hands", '>', "AT one\nAT two\r\n\nAT three");
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == 5);
    for (const auto& l : lines) CHECK(has_stamp(l));
    // Lanes are written in order, so lane 0's entries come first.
    CHECK(lines[0].substr(28) == "c7 < IAMAT kiwi +1.0+2.0 5");
    CHECK(lines[1].substr(28) == "Hands > AT one");
    CHECK(lines[2].substr(28) == "Hands > AT two");
    CHECK(lines[3].substr(28) == "Hands > AT three");
    CHECK(lines[4].substr(28) == "c7 > AT S +0.1 kiwi\\n{\\n} back\\\\slash");
    ::unlink(path.c_str());
  }

  TEST_CASE("entries stamped with a given time carry its second and microsecond") {
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error);
      REQUIRE(log);
      const timespec a{1795755860, 593815316}, b{1795755860, 5999}, c{1795755861, 5000};
      log->write_at(0, a, "c1", '<', "one");
      log->write_at(0, a, "c1", '>', "two");  // a read's entries share its time
      log->write_at(0, b, "c1", '<', "three");
      log->write_at(0, c, "c1", '<', "four");
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "2026-11-27T05:04:20.593815Z c1 < one");
    CHECK(lines[1] == "2026-11-27T05:04:20.593815Z c1 > two");
    CHECK(lines[2] == "2026-11-27T05:04:20.000005Z c1 < three");
    CHECK(lines[3] == "2026-11-27T05:04:21.000005Z c1 < four");
    ::unlink(path.c_str());
  }

  TEST_CASE("the who of an entry comes out whole at every length") {
    // Names shorter than 16 bytes are copied with fixed-size moves, longer ones by memcpy.
    std::string path = temp_path();
    const timespec t{1795755860, 593815316};
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error);
      REQUIRE(log);
      for (size_t n = 1; n <= 40; ++n) log->write_at(0, t, std::string(n, static_cast<char>('a' + n % 26)), '<', "x");
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == 40);
    for (size_t n = 1; n <= 40; ++n) {
      CHECK(lines[n - 1] == "2026-11-27T05:04:20.593815Z " + std::string(n, static_cast<char>('a' + n % 26)) + " < x");
    }
    ::unlink(path.c_str());
  }

  TEST_CASE("every control byte is escaped, so an entry is one line of text") {
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error);
      REQUIRE(log);
      const char raw[] = "a\0b\x1b[31mc\rd\te\x7f\x01\x1f\\f\xc3\xa9";
      std::string nasty(raw, sizeof raw - 1);
      log->write(0, "c1", '<', nasty);
      log->write_each_line(0, "c1", '<', std::string("x\0y\r\nz\x1b", 7));
      std::string every;
      for (int c = 0; c < 256; ++c) every.push_back(static_cast<char>(c));
      log->write(0, "c2", '<', every);
      log->flush();
    }
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto lines = read_lines(path);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].substr(28) == "c1 < a\\x00b\\x1b[31mc\\rd\\te\\x7f\\x01\\x1f\\\\f\xc3\xa9");
    CHECK(lines[1].substr(28) == "c1 < x\\x00y");
    CHECK(lines[2].substr(28) == "c1 < z\\x1b");
    // No control byte but the entries' own newlines reaches the file.
    for (char c : all) {
      unsigned char u = static_cast<unsigned char>(c);
      CHECK((u == '\n' || (u >= 0x20 && u != 0x7f)));
    }
    CHECK(lines[3].find("\\x00\\x01") != std::string::npos);
    CHECK(lines[3].find("\\x1f !\"#") != std::string::npos);
    CHECK(lines[3].find("~\\x7f\x80") != std::string::npos);
    ::unlink(path.c_str());
  }

  TEST_CASE("the vector scan finds an escaped byte at every position and of every value") {
    // A byte of each value at each position of texts shorter than, as long as, and longer than the
    // 16-byte blocks (a 41-byte one: two blocks and a tail; 32 and 48: whole blocks only), so the
    // SSE2 scan and copy, their overlapping last block and the byte loop for short text are all
    // checked against the rule, byte by byte. Every other text goes in two parts (the entry's text1
    // and text2).
    std::string path = temp_path();
    std::vector<std::string> texts;
    const std::string base = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL";
    for (int c = 0; c < 256; ++c) {
      for (size_t len : {1, 7, 15, 16, 17, 31, 32, 41, 48}) {
        for (size_t pos : {size_t{0}, size_t{1}, len / 2, size_t{14}, size_t{15}, size_t{16}, size_t{17},
                           size_t{31}, size_t{32}, size_t{33}, size_t{47}, len - 1}) {
          if (pos >= len) continue;
          std::string t = base.substr(0, len);
          t[pos] = static_cast<char>(c);
          texts.push_back(t);
        }
      }
    }
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (size_t i = 0; i < texts.size(); ++i) {
        const std::string_view t = texts[i];
        if (i % 2) {
          log->write(0, "c", '<', t.substr(0, t.size() / 3), t.substr(t.size() / 3));
        } else {
          log->write(0, "c", '<', t);
        }
      }
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      CHECK_MESSAGE(lines[i].substr(28 + 4) == escaped_by_rule(texts[i]), i);
    }
    ::unlink(path.c_str());
  }

  TEST_CASE("text dense with escapes (a WHATSAT reply's JSON) comes out byte for byte") {
    // Random texts of 0 to 300 bytes, a third of their bytes needing an escape (of both lengths);
    // texts just shorter and longer than the writer's 4 KiB segments and two of them; sparse ones
    // (one byte in 60 escaped, so that clean and dirty 16-byte blocks alternate); one of nothing but
    // \xHH bytes (the worst case the writer reserves room for); and a WHATSAT-like text of 12 KB
    // with a newline every 20 bytes: each entry equals the rule applied byte by byte (under ASan a
    // store past the reserved room would show).
    const char pool[] = {'\n', '\r', '\t', '\\', '\0', '\x1b', '\x7f', '\x80', '\xff', ' ', 'a', '"', '{', '9'};
    XorShift next{0x9e3779b97f4a7c15ull};
    std::vector<std::string> texts;
    std::vector<size_t> sizes;
    for (int k = 0; k < 2000; ++k) sizes.push_back(next() % 301);
    for (size_t n = 4064; n <= 4128; ++n) sizes.push_back(n);
    for (size_t n = 8176; n <= 8208; ++n) sizes.push_back(n);
    for (size_t n : sizes) {
      std::string t(n, 'x');
      for (char& c : t) {
        const uint64_t r = next();
        c = r % 3 == 0 ? pool[(r >> 8) % sizeof pool] : static_cast<char>('A' + (r >> 8) % 26);
      }
      texts.push_back(t);
    }
    for (int k = 0; k < 1000; ++k) {
      std::string t(next() % 700, 'x');
      for (char& c : t) {
        const uint64_t r = next();
        c = r % 60 == 0 ? pool[(r >> 8) % sizeof pool] : static_cast<char>('A' + (r >> 8) % 26);
      }
      texts.push_back(t);
    }
    texts.push_back(std::string(5000, '\x01'));
    std::string json;
    while (json.size() < 12000) json += "\n      \"lat\": 34.07,";
    texts.push_back(json);
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (const auto& t : texts) log->write(0, "c", '<', t, t.size() % 2 ? std::string_view("\n[tail]") : std::string_view());
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string want = escaped_by_rule(texts[i]) + (texts[i].size() % 2 ? "\\n[tail]" : "");
      CHECK_MESSAGE(lines[i].substr(28 + 4) == want, i);
    }
    ::unlink(path.c_str());
  }

  TEST_CASE("a batch of lines makes one entry per line, each by the rule") {
    // Batches as a peer link sends them: random lines of 0 to 200 bytes (around the 16-byte blocks
    // the scan takes), most clean, some with a byte to escape anywhere (a lone \r among them), some
    // ending in \r\n, some empty, the batch ending with or without a newline. Each non-empty line
    // (a \r before its \n dropped) must be one entry, the rule applied byte by byte.
    const char pool[] = {'\r', '\t', '\\', '\0', '\x1b', '\x7f', '\x80', '\xff', ' ', '"'};
    XorShift next{0x2545f4914f6cdd1dull};
    std::vector<std::string> batches;
    std::vector<std::string> want;
    for (int b = 0; b < 400; ++b) {
      std::string batch;
      const int count = 1 + static_cast<int>(next() % 12);
      for (int k = 0; k < count; ++k) {
        std::string line(next() % 201, 'x');
        const bool dirty = next() % 4 == 0;
        for (char& c : line) {
          const uint64_t r = next();
          c = dirty && r % 40 == 0 ? pool[(r >> 8) % sizeof pool] : static_cast<char>('a' + (r >> 8) % 26);
        }
        batch += line;
        const bool last = k == count - 1;
        const uint64_t end = next() % 4;
        if (end == 0) batch += "\r\n";
        else if (!last || end == 1) batch += "\n";
        // (else the batch's last line ends without a newline)
        // One \r before a line's end is dropped: the one of \r\n, or else the line's own last byte.
        if (end != 0 && !line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) want.push_back("c > " + escaped_by_rule(line));
      }
      batches.push_back(batch);
    }
    // Lines around and past the 4 KiB the scan looks ahead (longer ones are written entry by entry),
    // clean and not, the last one without a newline.
    const size_t long_sizes[] = {4094, 4095, 4096, 4097, 9000, 4096};
    std::string long_lines;
    for (size_t k = 0; k < std::size(long_sizes); ++k) {
      std::string line(long_sizes[k], 'L');
      if (k == 3) line[4000] = '\t';
      long_lines += line;
      if (k + 1 < std::size(long_sizes)) long_lines += '\n';
      want.push_back("c > " + escaped_by_rule(line));
    }
    batches.push_back(long_lines);
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (const auto& batch : batches) log->write_each_line(0, "c", '>', batch);
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      CHECK(has_stamp(lines[i]));
      CHECK_MESSAGE(lines[i].substr(28) == want[i], i);
    }
    ::unlink(path.c_str());
  }

  TEST_CASE("a batch of lines past the backlog bound is dropped line by line and reported") {
    std::string path = temp_path();
    uint64_t dropped = 0;
    {
      std::string error;
      auto log = herd::LogSink::open(path, 1, 4096, &error);
      REQUIRE(log);
      std::string batch;
      for (int i = 0; i < 400; ++i) batch += "AT line " + std::to_string(i) + std::string(40, 'x') + "\n";
      log->write_each_line(0, "p1/Hands", '>', batch);  // far more than the lane takes before a pass
      dropped = log->dropped();
      log->flush();
      log->write(0, "c1", '<', "after");
      log->flush();
    }
    CHECK(dropped > 0);
    auto lines = read_lines(path);
    size_t kept = 0;
    bool reported = false;
    for (const auto& l : lines) {
      kept += l.find(" p1/Hands > AT line ") != std::string::npos;
      if (l.find("log backlog full: " + std::to_string(dropped) + " entries dropped") != std::string::npos) reported = true;
    }
    CHECK(kept + dropped == 400);
    CHECK(reported);
    CHECK(lines.back().substr(28) == "c1 < after");
    ::unlink(path.c_str());
  }

  TEST_CASE("past the backlog bound entries are dropped and the drop is reported") {
    std::string path = temp_path();
    {
      std::string error;
      // A bound this small fills before the writer's first pass.
      auto log = herd::LogSink::open(path, 1, 4096, &error);
      REQUIRE(log);
      std::string text(100, 'x');
      for (int i = 0; i < 1000; ++i) log->write(0, "c1", '<', text);
      CHECK(log->dropped() > 0);
      log->flush();
      log->write(0, "c1", '<', "after");
      log->flush();
    }
    auto lines = read_lines(path);
    bool reported = false;
    for (const auto& l : lines) reported = reported || l.find("log backlog full: ") != std::string::npos;
    CHECK(reported);
    CHECK(lines.back().substr(28) == "c1 < after");
    CHECK(lines.size() < 1000);
    ::unlink(path.c_str());
  }

  TEST_CASE("a flood of I/O lines does not crowd out the event that explains it") {
    StalledLog stalled;
    REQUIRE(stalled.fill_with_io_lines());
    const uint64_t before = stalled.log->dropped();
    stalled.log->write(0, "c1", '-', "out of memory");
    CHECK(stalled.log->dropped() == before);
    auto lines = stalled.finish();
    REQUIRE(lines.size() >= 2);
    CHECK(lines.back().substr(28) == "c1 - out of memory");
    CHECK(lines[lines.size() - 2].find("! log backlog full: ") != std::string::npos);
  }

  TEST_CASE("drops are reported even when no entry follows them") {
    // The server goes idle (or stops) right after its lane overflowed: the count must still come.
    StalledLog stalled;
    REQUIRE(stalled.fill_with_io_lines());
    const uint64_t dropped = stalled.log->dropped();
    auto lines = stalled.finish();
    REQUIRE(!lines.empty());
    CHECK(lines.back().substr(28) == "- ! log backlog full: " + std::to_string(dropped) + " entries dropped");
  }

  TEST_CASE("a batch of event lines written after I/O lines were dropped comes after the drop notice") {
    // The I/O lines filled the lane to their bound and are being dropped; the lane still has room
    // for events. A batch of event lines (write_each_line) gets in, and the drop must be reported
    // in front of it: its lines are entries written after the drop. The writer is stalled, so the
    // count is still the lane's when the batch comes (the writer's own report comes only once it
    // has emptied the lane).
    StalledLog stalled;
    REQUIRE(stalled.fill_with_io_lines());
    const uint64_t dropped = stalled.log->dropped();
    REQUIRE(dropped > 0);
    stalled.log->write_each_line(0, "c1", '-', "first event\nsecond event\n");
    CHECK(stalled.log->dropped() == dropped);  // the events were not dropped themselves
    auto lines = stalled.finish();

    // The I/O lines that got in, the notice, then the two events; nothing else. (Should the writer
    // have taken the lane once after the drops began, there is an earlier notice among the I/O lines
    // too: the counts add up to every drop.)
    REQUIRE(lines.size() >= 4);
    CHECK(lines[lines.size() - 2].substr(28) == "c1 - first event");
    CHECK(lines[lines.size() - 1].substr(28) == "c1 - second event");
    const std::string notice = "- ! log backlog full: ";
    const std::string& last_notice = lines[lines.size() - 3];
    REQUIRE_MESSAGE(last_notice.substr(28, notice.size()) == notice, last_notice);
    uint64_t earlier = 0;
    size_t io_lines = 0;
    for (size_t i = 0; i + 3 < lines.size(); ++i) {
      const std::string entry = lines[i].substr(28);
      if (entry.compare(0, notice.size(), notice) == 0) {
        earlier += std::stoull(entry.substr(notice.size()));
      } else {
        CHECK_MESSAGE(entry == "c1 < " + std::string(100, 'x'), i);
        ++io_lines;
      }
    }
    CHECK(io_lines > 0);
    REQUIRE(earlier < dropped);
    CHECK(last_notice.substr(28) == notice + std::to_string(dropped - earlier) + " entries dropped");
  }

  TEST_CASE("an unwritable path is refused with the path named") {
    std::string error;
    CHECK_FALSE(herd::LogSink::open("/nonexistent-dir/x.log", 1, 1 << 20, &error));
    CHECK(error.find("/nonexistent-dir/x.log") != std::string::npos);
  }

  TEST_CASE("failed writes (a full disk) count their entries as dropped") {
    std::string error;
    auto log = herd::LogSink::open("/dev/full", 1, 1 << 20, &error);
    REQUIRE(log);
    for (int i = 0; i < 10; ++i) log->write(0, "c1", '<', "IAMAT x +1.0+1.0 1.0");
    log->flush();
    CHECK(log->dropped() == 10);
    CHECK(log->bytes_written() == 0);
  }

  TEST_CASE("a file truncated behind the writer's back is not rotated early") {
    // logrotate's copytruncate (and the benchmark between runs) empties the file in place: the
    // size bound must apply to what the file holds, not to what was written since it was opened.
    std::string path = temp_path();
    herd::LogOptions options;
    options.max_bytes = 4096;
    std::string error;
    {
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error, options);
      REQUIRE(log);
      for (int i = 0; i < 30; ++i) log->write(0, "c1", '<', std::string(60, 'a'));
      log->flush();
      REQUIRE(::truncate(path.c_str(), 0) == 0);
      for (int i = 0; i < 30; ++i) log->write(0, "c1", '<', std::string(60, 'b'));
      log->flush();
    }
    auto lines = read_lines(path);
    CHECK(lines.size() == 30);
    CHECK(::access((path + ".1").c_str(), F_OK) != 0);  // no rotation: 30 entries of ~100 bytes < 4096
    ::unlink(path.c_str());
    ::unlink((path + ".1").c_str());
  }

  TEST_CASE("levels, size rotation and reopen") {
    std::string path = temp_path();
    herd::LogOptions options;
    options.level = herd::LogLevel::kEvents;
    options.max_bytes = 4096;
    options.keep = 2;
    std::string error;
    {
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error, options);
      REQUIRE(log);
      CHECK_FALSE(log->enabled('<'));
      CHECK(log->enabled('+'));
      CHECK(log->enabled('!'));
      log->write(0, "c1", '<', "not kept at events");
      for (int round = 0; round < 6; ++round) {
        for (int i = 0; i < 40; ++i) log->write(0, "c1", '+', std::string(50, 'a' + round));
        log->flush();  // one batch per round: each rotation happens between whole batches
      }
      // Reopen after the file was moved away: a new file at the path.
      ::rename(path.c_str(), (path + ".moved").c_str());
      log->reopen();
      log->flush();
      log->write(0, "-", '*', "after reopen");
      log->flush();
    }
    auto now = read_lines(path);
    REQUIRE(now.size() == 1);
    CHECK(now[0].substr(28) == "- * after reopen");
    CHECK(read_lines(path + ".1").size() > 0);
    CHECK(read_lines(path + ".2").size() > 0);
    CHECK(read_lines(path + ".3").empty());  // log_keep 2
    for (const auto& suffix : {".moved", ".1", ".2"}) {
      for (const auto& l : read_lines(path + suffix)) {
        CHECK(has_stamp(l));
        CHECK(l.find("not kept") == std::string::npos);
      }
      ::unlink((path + suffix).c_str());
    }
    ::unlink(path.c_str());
  }

  TEST_CASE("the log rotates before it passes log_max_bytes, not when it reaches it") {
    // README: log_max_bytes rotates NAME.log "before it passes this size": a file may hold exactly
    // log_max_bytes; the entry that would take it past them goes to a fresh file.
    std::string path = temp_path();
    herd::LogOptions options;
    options.level = herd::LogLevel::kEvents;
    options.max_bytes = 4096;
    options.keep = 2;
    std::string error;
    {
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error, options);
      REQUIRE(log);
      // An entry is a 28-byte stamp, "c1 + ", its text and a newline: 2,048 bytes with 2,014 of text.
      for (int i = 0; i < 2; ++i) {
        log->write(0, "c1", '+', std::string(2014, 'a' + i));
        log->flush();
      }
      struct stat st {};
      REQUIRE(::stat(path.c_str(), &st) == 0);
      CHECK(st.st_size == 4096);
      CHECK(::access((path + ".1").c_str(), F_OK) != 0);  // not rotated at exactly the bound
      log->write(0, "c1", '+', "z");
      log->flush();
    }
    CHECK(read_lines(path + ".1").size() == 2);
    auto now = read_lines(path);
    REQUIRE(now.size() == 1);
    CHECK(now[0].substr(28) == "c1 + z");
    ::unlink((path + ".1").c_str());
    ::unlink(path.c_str());
  }

  TEST_CASE("a rotation whose rename fails writes on, says so once, and is not retried every round") {
    // NAME.log.1 a directory that is not empty: renaming the file onto it fails (EISDIR), as any
    // refused rename would (a directory that takes none, an immutable file). Before, every round
    // past the bound tried again (and shifted the older files along), and nothing said why.
    std::string path = temp_path();
    const std::string blocker = path + ".1";
    REQUIRE(::mkdir(blocker.c_str(), 0700) == 0);
    const std::string inside = blocker + "/keep";
    { std::ofstream(inside) << "kept\n"; }
    herd::LogOptions options;
    options.max_bytes = 4096;
    options.keep = 1;
    std::string error;
    uint64_t failures = 0;
    {
      auto log = herd::LogSink::open(path, 1, 1 << 20, &error, options);
      REQUIRE(log);
      for (int round = 0; round < 6; ++round) {
        for (int i = 0; i < 40; ++i) log->write(0, "c1", '<', std::string(60, 'a' + round));
        log->flush();  // each round passes the bound again
      }
      failures = log->reopen_failures();
    }
    CHECK(failures == 1);
    auto lines = read_lines(path);
    CHECK(lines.size() == 6 * 40 + 1);  // every entry, in the one file, and the note
    size_t notes = 0;
    for (const auto& l : lines) {
      if (l.find("cannot rotate the log (rename to " + blocker + ": ") != std::string::npos) {
        ++notes;
        CHECK(l.find("writing on past log_max_bytes, next try in 60 s") != std::string::npos);
      }
    }
    CHECK(notes == 1);
    CHECK(read_lines(inside) == std::vector<std::string>{"kept"});
    ::unlink(inside.c_str());
    ::rmdir(blocker.c_str());
    ::unlink(path.c_str());
  }

  TEST_CASE("the page cache keeps only the log's last few MiB") {
    // 48 MiB of entries in rounds too small to be written directly: without the writer's writeback
    // and DONTNEED all of them would stay cached (this machine has memory to spare); with them,
    // about kKeepCachedBytes to twice that.
    std::string path = temp_path();
    struct statfs fs {};
    REQUIRE(::statfs(path.c_str(), &fs) == 0);
    const bool tmpfs = fs.f_type == TMPFS_MAGIC;  // shared memory: nothing to drop (the check is moot)
    std::string error;
    const std::string text(1000, 'x');
    {
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (int round = 0; round < 48 * 32; ++round) {
        for (int i = 0; i < 32; ++i) log->write(0, "c1", '<', text);  // 33 KiB a round
        log->flush();
      }
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_size > 48 << 20);
    const size_t cached = cached_bytes(path);
    INFO("cached MiB: " << cached / (1 << 20));
    if (!tmpfs) CHECK(cached <= size_t{12} << 20);
    ::unlink(path.c_str());
  }

  TEST_CASE("large rounds are written directly: the page cache holds none of them") {
    std::string path = temp_path();
    if (!takes_direct_writes(path)) {
      MESSAGE("the file system of /tmp takes no O_DIRECT writes: nothing to check");
      ::unlink(path.c_str());
      return;
    }
    std::string error;
    const std::string text(1000, 'x');
    {
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (int mib = 0; mib < 48; ++mib) {
        for (int i = 0; i < 1024; ++i) log->write(0, "c1", '<', text);
        log->flush();
      }
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_size > 48 << 20);
    const size_t cached = cached_bytes(path);
    INFO("cached KiB: " << cached / 1024);
    CHECK(cached <= size_t{256} << 10);  // the partial last block of each round, at most
    const auto lines = read_lines(path);
    CHECK(lines.size() == 48 * 1024);
    ::unlink(path.c_str());
  }

  TEST_CASE("direct and cached rounds keep every byte in order, after what the file held") {
    // Entries of varying length, so that each round ends at another place in its last block; rounds
    // large enough for direct writes alternate with small ones, and the file starts with a line of
    // an earlier run (its length not a multiple of any block).
    std::string path = temp_path();
    {
      std::ofstream earlier(path, std::ios::binary);
      earlier << std::string(1234, 'e') << "\n";
    }
    std::string error;
    std::vector<std::string> texts;
    {
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      int n = 0;
      for (int round = 0; round < 40; ++round) {
        const int entries = round % 3 == 0 ? 3 : 400 + 37 * round;  // 3 entries: a cached round
        for (int i = 0; i < entries; ++i, ++n) {
          texts.push_back("n=" + std::to_string(n) + " " + std::string(static_cast<size_t>(n % 251), 'a' + n % 26));
          log->write(0, "c1", '<', texts.back());
        }
        log->flush();
      }
    }
    const std::string all = read_file(path);
    CHECK(all.find('\0') == std::string::npos);
    const auto lines = read_lines(path);
    REQUIRE(lines.size() == texts.size() + 1);
    CHECK(lines[0] == std::string(1234, 'e'));
    size_t wrong = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string& l = lines[i + 1];
      if (!has_stamp(l) || l.substr(28) != "c1 < " + texts[i]) ++wrong;
    }
    CHECK(wrong == 0);
    ::unlink(path.c_str());
  }

  TEST_CASE("a file emptied between direct rounds starts again at its beginning") {
    // copytruncate (and the benchmark between runs) empties the file in place: the next direct
    // round must land at offset 0, not where the writer left off (which would leave a hole of NULs).
    std::string path = temp_path();
    std::string error;
    const std::string text(500, 'y');
    {
      auto log = herd::LogSink::open(path, 1, 64 << 20, &error);
      REQUIRE(log);
      for (int i = 0; i < 300; ++i) log->write(0, "c1", '<', text);
      log->flush();
      REQUIRE(::truncate(path.c_str(), 0) == 0);
      for (int i = 0; i < 300; ++i) log->write(0, "c1", '>', text);
      log->flush();
    }
    const std::string all = read_file(path);
    CHECK(all.find('\0') == std::string::npos);
    const auto lines = read_lines(path);
    CHECK(lines.size() == 300);
    for (const auto& l : lines) CHECK(l.substr(28, 5) == "c1 > ");
    ::unlink(path.c_str());
  }
}

// Run under ThreadSanitizer by `make test` (the *concurrency* suites).
TEST_SUITE("log_sink concurrency") {
  TEST_CASE("a hold gives its lane up to a waiting writer at its next entry") {
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 2, 1 << 20, &error);
      REQUIRE(log);
      herd::LoopLog lane0(*log, 0);
      std::atomic<bool> flushed{false};
      {
        const herd::LogSink::Hold hold = lane0.hold();
        lane0.write("c1", '<', "before the flush");
        // flush() returns once the writer has taken every lane: this one is held.
        std::thread flusher([&] {
          log->flush();
          flushed = true;
        });
        // A loop streaming entries (for up to 5 s): the writer must get the lane meanwhile.
        for (int i = 0; i < 5000 && !flushed; ++i) {
          lane0.write("c1", '<', "during");
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        CHECK(flushed);  // while the hold's scope is still open
        flusher.join();
        lane0.write("c1", '<', "after the flush");
      }
      log->flush();
    }
    auto lines = read_lines(path);
    REQUIRE(lines.size() >= 3);
    CHECK(lines.front().substr(28) == "c1 < before the flush");
    CHECK(lines.back().substr(28) == "c1 < after the flush");
    ::unlink(path.c_str());
  }

  TEST_CASE("a hold keeps its lane to one thread: another thread's entry waits for its end") {
    // Deterministic whatever the writer does: the holder writes nothing while the other thread
    // waits, so the hold cannot be given up to the writer meanwhile (that happens at an entry).
    std::string path = temp_path();
    {
      std::string error;
      auto log = herd::LogSink::open(path, 2, 1 << 20, &error);
      REQUIRE(log);
      herd::LoopLog lane0(*log, 0);
      std::atomic<bool> other_done{false};
      std::thread other;
      {
        const herd::LogSink::Hold hold = lane0.hold();
        // A second hold by the same thread (of either lane) does nothing; it must not deadlock.
        {
          const herd::LogSink::Hold again = lane0.hold();
          const herd::LogSink::Hold other_lane(*log, 1);
          lane0.write("c1", '<', "first");
          log->write(1, "c3", '*', "lane one");
        }
        lane0.write_each_line("c1", '>', "second\nthird");
        other = std::thread([&] {
          log->write(0, "c2", '<', "other thread");
          other_done = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(other_done);  // still waiting for the lane
      }
      other.join();
      CHECK(other_done);
      log->flush();
    }
    auto lines = read_lines(path);
    std::vector<std::string> lane0_lines;
    for (const auto& l : lines) {
      if (l.substr(28, 3) != "c3 ") lane0_lines.push_back(l.substr(28));
    }
    REQUIRE(lines.size() == 5);
    REQUIRE(lane0_lines.size() == 4);
    CHECK(lane0_lines[0] == "c1 < first");
    CHECK(lane0_lines[1] == "c1 > second");
    CHECK(lane0_lines[2] == "c1 > third");
    CHECK(lane0_lines[3] == "c2 < other thread");
    ::unlink(path.c_str());
  }
}
