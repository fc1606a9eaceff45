// RouteMemo: a loop thread's memory of the routes FloodRouter worked out for the last few records.
//
// Which links a record is owed to depends only on who sent it and on its extra fields (its seen=
// set), and the seen= field it is sent on with depends on those and on which of the owed links are
// up. In a running herd both repeat: the records of an update arrive from the same neighbour with
// the same set (every receiver in the default herd gets "seen=Goloman,Hands,Holiday,Wilkes" from
// Goloman), and a client's IAMATs all come with no sender and no set. So FloodRouter keeps, per
// thread, the last kWays (router, sender, extra fields) it saw, with the links owed and the field it
// wrote, and a record that matches one byte for byte skips the set's parse and the field's build.
//
// An entry belongs to one router (`owner`, a number no other router has, renewed when its links
// change), so two routers on one thread (tests) never share routes. Pure; not thread-safe: one per
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace herd {

class RouteMemo {
 public:
  static constexpr size_t kWays = 4;
  // Senders and extra fields longer than this together, and fields longer than kMaxField, are
  // worked out every time (a herd's names are short: 4 names of 7 bytes are 37 bytes of extra).
  static constexpr size_t kMaxKey = 160;
  static constexpr size_t kMaxField = 256;

  struct Route {
    uint64_t owed = 0;      // the links owed the record (FloodRouter::bit_for)
    bool has_field = false;
    uint64_t field_up = 0;  // the owed links that were up when `field` was written
    std::string_view field() const { return {field_, field_size_}; }

   private:
    friend class RouteMemo;
    uint64_t owner_ = 0;  // 0: unused
    uint16_t from_size_ = 0;
    uint16_t extra_size_ = 0;
    uint16_t field_size_ = 0;
    char key_[kMaxKey]{};  // from, then extra
    char field_[kMaxField]{};
  };

  // The route kept for (owner, from, extra), or null.
  Route* find(uint64_t owner, std::string_view from, std::string_view extra) {
    for (Route& r : ways_) {
      if (r.owner_ == owner && r.from_size_ == from.size() && r.extra_size_ == extra.size() &&
          starts_with(r.key_, from) && starts_with(r.key_ + from.size(), extra)) {
        return &r;
      }
    }
    return nullptr;
  }

  // Keeps `owed` as the route for (owner, from, extra) in place of the oldest entry, with no field
  // yet; returns it, or null when the key is too long to keep.
  Route* put(uint64_t owner, std::string_view from, std::string_view extra, uint64_t owed) {
    if (from.size() + extra.size() > kMaxKey) return nullptr;
    Route& r = ways_[next_];
    next_ = (next_ + 1) % kWays;
    r.owner_ = owner;
    r.owed = owed;
    r.has_field = false;
    r.from_size_ = static_cast<uint16_t>(from.size());
    r.extra_size_ = static_cast<uint16_t>(extra.size());
    if (!from.empty()) std::memcpy(r.key_, from.data(), from.size());
    if (!extra.empty()) std::memcpy(r.key_ + from.size(), extra.data(), extra.size());
    return &r;
  }

  // Keeps `field` as what a record on route r carries when the owed links `up` are up (replacing
  // the field kept for another set of links up); a field longer than kMaxField is not kept.
  static void set_field(Route* r, uint64_t up, std::string_view field) {
    if (field.size() > kMaxField) {
      r->has_field = false;
      return;
    }
    r->has_field = true;
    r->field_up = up;
    r->field_size_ = static_cast<uint16_t>(field.size());
    if (!field.empty()) std::memcpy(r->field_, field.data(), field.size());
  }

 private:
  // Whether the bytes at p begin with s. Asked of every record with a sender name and a seen= set
  // of a few words, so it compares words inline rather than call memcmp: 8 bytes at a time, the
  // last 8 (or 4) overlapping those before, and bytes one by one only in a view under 4 bytes
  // (which may be empty with no data pointer).
  static bool starts_with(const char* p, std::string_view s) {
    const char* q = s.data();
    const size_t n = s.size();
    if (n >= 8) {
      for (size_t i = 0; i + 8 < n; i += 8) {
        if (load<uint64_t>(p + i) != load<uint64_t>(q + i)) return false;
      }
      return load<uint64_t>(p + n - 8) == load<uint64_t>(q + n - 8);
    }
    if (n >= 4) return load<uint32_t>(p) == load<uint32_t>(q) && load<uint32_t>(p + n - 4) == load<uint32_t>(q + n - 4);
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != q[i]) return false;
    }
    return true;
  }
  template <class Word>
  static Word load(const char* p) {
    Word w;
    std::memcpy(&w, p, sizeof w);
    return w;
  }

  Route ways_[kWays];
  size_t next_ = 0;
};

}  // namespace herd
