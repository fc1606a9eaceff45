// SeenSet: the servers known to hold, or to be about to receive, a flooded record. It travels with
// the record as the extra field `seen=A,B,C` of the AT line, so that a server does not forward a
// record to a neighbour that another server has already sent it to. This halves the flood traffic
// of the default herd (4 deliveries per update instead of 8) and ends the duplicate deliveries.
// Servers that do not send the field (the asyncio reference) simply get plain flooding.
//
// A server names a neighbour as seen only while its link to it is up; a neighbour whose link is
// down is left out, so others still deliver to it by another path. Pure; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace herd {

class SeenSet {
 public:
  // More names than this are not recorded: the record is then forwarded more than needed, never less.
  static constexpr size_t kMaxNames = 32;
  static constexpr std::string_view kPrefix = "seen=";

  // A name with its tag: its length and first seven bytes in one word, which for the names of a herd
  // (short ones, several of the same length) settles a comparison without comparing bytes. Every
  // record a server takes or floods looks up its own name and each neighbour's, so FloodRouter
  // makes their keys once.
  struct Key {
    uint64_t tag;
    std::string_view name;
  };
  static Key key_of(std::string_view name) { return {tag_of(name), name}; }

  // The set carried by `extra` (the fields after an AT record); other extra fields are ignored.
  static SeenSet parse(std::string_view extra);

  bool contains(const Key& key) const { return find(key); }
  bool contains(std::string_view name) const { return find(key_of(name)); }
  // Views are kept: the name must outlive the set.
  void add(const Key& key) {
    if (!find(key)) add_absent(key);
  }
  void add(std::string_view name) { add(key_of(name)); }
  // The same, for a name the caller knows is not in the set (no look-up).
  void add_absent(const Key& key) {
    if (size_ < kMaxNames) names_[size_++] = Entry{key.tag, key.name.data(), key.name.size()};
  }
  void add_absent(std::string_view name) { add_absent(key_of(name)); }
  size_t size() const { return size_; }

  // Appends " seen=A,B,..." (nothing when empty).
  void append_field(std::string& out) const;

 private:
  // A Key without string_view's constructor, so that a set (made for every record) leaves its
  // unused entries unwritten.
  struct Entry {
    uint64_t tag;
    const char* data;
    size_t size;
  };
  static uint64_t tag_of(std::string_view name);
  // The tag of a name of `size` bytes whose first bytes are the low bytes of `first8` (those past
  // the name may be anything): the one definition of the tag's layout.
  static uint64_t tag_from(uint64_t first8, size_t size) {
    const uint64_t kept = size >= 7 ? 0x00ffffffffffffffull : (uint64_t{1} << (8 * size)) - 1;
    return (first8 & kept) | static_cast<uint64_t>(size & 0xff) << 56;
  }
  // Extra fields at most this long are parsed by masks (parse_short); longer ones a byte at a time.
  static constexpr size_t kShortExtra = 63;
  static SeenSet parse_short(std::string_view extra);
  // Inline: a flooded record's set is searched a dozen times (its own names as they are parsed, this
  // server's name, each neighbour's), each a few compares.
  bool find(const Key& key) const {
    const size_t size = key.name.size();
    for (size_t i = 0; i < size_; ++i) {
      const Entry& e = names_[i];
      // Equal tags and sizes: equal names when they are at most seven bytes long.
      if (e.tag == key.tag && e.size == size &&
          (size <= 7 || std::memcmp(e.data + 7, key.name.data() + 7, size - 7) == 0)) {
        return true;
      }
    }
    return false;
  }

  Entry names_[kMaxNames];  // the first size_ are set (the rest is never read)
  size_t size_ = 0;
};

}  // namespace herd
