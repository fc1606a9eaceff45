// Stored AT records: splitting a record into its parts, and the stored form's varints.
#include "protocol/packed_record.h"

#include <cstring>

#include "protocol/packed_text.h"
#include "protocol/reply.h"

namespace protocol {

namespace {

size_t varint_size(size_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

uint8_t* put_varint(uint8_t* out, size_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<uint8_t>(v);
  return out;
}

const uint8_t* get_varint(const uint8_t* in, size_t* v) {
  size_t value = 0;
  for (unsigned shift = 0;; shift += 7) {
    const uint8_t b = *in++;
    value |= static_cast<size_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  *v = value;
  return in;
}

}  // namespace

RecordForm::RecordForm(std::string_view record) : record_(record) {
  if (record.substr(0, 3) != "AT ") return;
  size_t end = 2;
  auto field = [&]() -> std::string_view {
    const size_t from = end + 1;
    end = record.find(' ', from);
    return end == std::string_view::npos ? std::string_view{} : record.substr(from, end - from);
  };
  server_ = field();
  if (server_.empty()) return;
  diff_ = field();
  if (diff_.empty()) return;
  id_ = field();
  if (id_.empty()) return;
  tail_ = record.substr(end + 1);
  packable_ = !tail_.empty();
}

void store_record_as_is(std::string_view record, std::string* out) {
  out->resize(1 + varint_size(record.size()) + record.size());
  uint8_t* p = reinterpret_cast<uint8_t*>(out->data());
  *p++ = kLiteralRecord;
  p = put_varint(p, record.size());
  std::memcpy(p, record.data(), record.size());
}

void RecordForm::store(uint8_t code, std::string* out) const {
  if (code == kLiteralRecord || !packable_) {
    store_record_as_is(record_, out);
    return;
  }
  // First as if every byte of the numbers had a code (the fast path), else again in general.
  const char* record_end = record_.data() + record_.size();
  for (bool fast : {true, false}) {
    const size_t diff = fast ? (diff_.size() + 1) / 2 : packed_size(diff_);
    const size_t tail = fast ? (tail_.size() + 1) / 2 : packed_size(tail_);
    const size_t size = 1 + varint_size(id_.size()) + id_.size() + varint_size(diff) + diff +
                        varint_size(tail) + tail;
    out->resize(size + 8);  // pack_all_coded may write 8 bytes past what it packs
    uint8_t* p = reinterpret_cast<uint8_t*>(out->data());
    *p++ = code;
    p = put_varint(p, id_.size());
    std::memcpy(p, id_.data(), id_.size());
    p += id_.size();
    p = put_varint(p, diff);
    bool ok = true;
    if (fast) {
      ok = pack_all_coded(diff_.data(), diff_.size(), static_cast<size_t>(record_end - diff_.data()), p);
    } else {
      pack_text(diff_, p);
    }
    p += diff;
    p = put_varint(p, tail);
    if (fast) {
      ok = pack_all_coded(tail_.data(), tail_.size(), tail_.size(), p) && ok;
    } else {
      pack_text(tail_, p);
    }
    if (ok) {
      out->resize(size);
      return;
    }
  }
}

size_t stored_record_bytes(const uint8_t* stored) {
  const uint8_t* p = stored + 1;
  size_t n = 0;
  p = get_varint(p, &n);
  p += n;
  if (stored[0] == kLiteralRecord) return static_cast<size_t>(p - stored);
  for (int k = 0; k < 2; ++k) {
    p = get_varint(p, &n);
    p += n;
  }
  return static_cast<size_t>(p - stored);
}

std::string_view stored_record_id(const uint8_t* stored) {
  size_t n = 0;
  const uint8_t* p = get_varint(stored + 1, &n);
  const std::string_view text(reinterpret_cast<const char*>(p), n);
  return stored[0] == kLiteralRecord ? at_record_id(text) : text;
}

bool load_record(const uint8_t* stored, std::string_view server, std::string* out) {
  size_t n = 0;
  const uint8_t* p = get_varint(stored + 1, &n);
  if (stored[0] == kLiteralRecord) {
    out->append(reinterpret_cast<const char*>(p), n);
    return true;
  }
  const std::string_view id(reinterpret_cast<const char*>(p), n);
  p += n;
  out->append("AT ").append(server).push_back(' ');
  p = get_varint(p, &n);
  bool ok = unpack_text(p, n, out);
  p += n;
  out->push_back(' ');
  out->append(id).push_back(' ');
  p = get_varint(p, &n);
  return unpack_text(p, n, out) && ok;
}

}  // namespace protocol
