// Stored AT records: the compact form in which the location table keeps a record laid out by
// append_at_record ("AT server diff id location time", single spaces). The server's name becomes a
// one-byte code the caller keeps a dictionary for, the client ID stays as it is (so a lookup compares
// it in place), and the time difference and "location time" become packed text
// (protocol/packed_text.h): a typical 80-byte record is stored in about 40 bytes. Any other text is
// kept as it is (code kLiteralRecord), so every input comes back byte for byte.
//
// Layout: code, then for a literal: varint length, the bytes; otherwise: varint ID length, the ID,
// varint packed-diff length, the packed diff, varint packed-tail length, the packed "location time".
// Varints are LEB128 (7 bits per byte, low first). Pure functions, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace protocol {

// The code meaning "kept as it is"; the caller's server codes are 0..kLiteralRecord-1.
inline constexpr uint8_t kLiteralRecord = 255;

// A record about to be stored: split once, then written for the server code the caller chose.
// Views into the record, which must outlive it.
class RecordForm {
 public:
  explicit RecordForm(std::string_view record);
  // The form of a record known to be laid out by append_at_record: "AT <server> <diff> <id> <tail>"
  // with single spaces, the tail being "location time", each part a non-empty view into `record`
  // and the first three without a space. The same form RecordForm(record) finds, without looking
  // for the spaces again: the functions of protocol/reply.h that write or check the layout return it.
  RecordForm(std::string_view record, std::string_view server, std::string_view diff, std::string_view id,
             std::string_view tail)
      : record_(record), server_(server), diff_(diff), id_(id), tail_(tail), packable_(true) {}

  // The record's text.
  std::string_view record() const { return record_; }

  // The server name if the record is laid out by append_at_record (and so can be stored packed),
  // else an empty view.
  std::string_view server() const { return packable_ ? server_ : std::string_view{}; }
  // The client ID when server() is non-empty.
  std::string_view id() const { return id_; }
  // Replaces *out with the stored form for server code `code`: kLiteralRecord, or the caller's code
  // for server(), which must then be non-empty.
  void store(uint8_t code, std::string* out) const;

 private:
  std::string_view record_, server_, diff_, id_, tail_;  // tail: "location time"
  bool packable_ = false;
};

// Replaces *out with the stored form that keeps `record` as it is (code kLiteralRecord).
void store_record_as_is(std::string_view record, std::string* out);

// Of a stored form: its code, its size in bytes, and the client ID (a view into it).
inline uint8_t stored_record_code(const uint8_t* stored) { return stored[0]; }
size_t stored_record_bytes(const uint8_t* stored);
std::string_view stored_record_id(const uint8_t* stored);

// Appends the record to *out; `server` is the name of the stored code (unused for a literal).
// False when `stored` is not a form store_record writes.
bool load_record(const uint8_t* stored, std::string_view server, std::string* out);

}  // namespace protocol
