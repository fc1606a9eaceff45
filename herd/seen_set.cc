// SeenSet implementation.
#include "herd/seen_set.h"

#include <array>
#include <cstring>

#include "protocol/fields.h"

namespace herd {

namespace {

// The bytes the parse stops at: whitespace (SPEC.md's six) ends a field, a comma a name.
constexpr uint8_t kText = 0, kSpace = 1, kComma = 2;
constexpr auto kByteClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = protocol::is_space(static_cast<unsigned char>(c)) ? kSpace : kText;
  t[','] = kComma;
  return t;
}();

}  // namespace

SeenSet SeenSet::parse(std::string_view extra) {
  // One pass over the extra fields (every flooded record has them), a byte at a time through a
  // class table: the names of each seen= field, and any other field passed over.
  SeenSet set;
  const char* p = extra.data();
  const size_t n = extra.size();
  size_t i = 0;
  while (i < n) {
    if (kByteClass[static_cast<unsigned char>(p[i])] == kSpace) {
      ++i;
      continue;
    }
    if (n - i <= kPrefix.size() || std::memcmp(p + i, kPrefix.data(), kPrefix.size()) != 0) {
      while (i < n && kByteClass[static_cast<unsigned char>(p[i])] != kSpace) ++i;  // another field
      continue;
    }
    i += kPrefix.size();
    size_t name = i;
    for (;; ++i) {
      const uint8_t c = i < n ? kByteClass[static_cast<unsigned char>(p[i])] : kSpace;
      if (c == kText) continue;
      if (i > name) set.add(std::string_view(p + name, i - name));
      name = i + 1;
      if (c == kSpace) break;
    }
  }
  return set;
}

uint64_t SeenSet::tag_of(std::string_view name) {
  uint64_t tag = static_cast<uint64_t>(name.size() & 0xff) << 56;
  const size_t n = name.size() < 7 ? name.size() : 7;
  for (size_t i = 0; i < n; ++i) tag |= static_cast<uint64_t>(static_cast<unsigned char>(name[i])) << (8 * i);
  return tag;
}

bool SeenSet::find(const Key& key) const {
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

void SeenSet::add(const Key& key) {
  if (size_ < kMaxNames && !find(key)) names_[size_++] = Entry{key.tag, key.name.data(), key.name.size()};
}

void SeenSet::append_field(std::string& out) const {
  if (size_ == 0) return;
  // One sized write: the field goes on every record a server floods.
  size_t total = 1 + kPrefix.size() + (size_ - 1);
  for (size_t i = 0; i < size_; ++i) total += names_[i].size;
  const size_t start = out.size();
  out.resize(start + total);
  char* p = out.data() + start;
  *p++ = ' ';
  std::memcpy(p, kPrefix.data(), kPrefix.size());
  p += kPrefix.size();
  for (size_t i = 0; i < size_; ++i) {
    if (i) *p++ = ',';
    std::memcpy(p, names_[i].data, names_[i].size);
    p += names_[i].size;
  }
}

}  // namespace herd
