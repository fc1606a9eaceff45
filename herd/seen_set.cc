// SeenSet implementation.
#include "herd/seen_set.h"

#include <cstring>

#include "protocol/fields.h"

namespace herd {

SeenSet SeenSet::parse(std::string_view extra) {
  SeenSet set;
  size_t pos = 0;
  for (std::string_view field; !(field = protocol::next_field(extra, &pos)).empty();) {
    if (field.substr(0, kPrefix.size()) != kPrefix) continue;
    field.remove_prefix(kPrefix.size());
    while (!field.empty()) {
      size_t comma = field.find(',');
      std::string_view name = field.substr(0, comma);
      if (!name.empty()) set.add(name);
      if (comma == std::string_view::npos) break;
      field.remove_prefix(comma + 1);
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

bool SeenSet::find(uint64_t tag, std::string_view name) const {
  for (size_t i = 0; i < size_; ++i) {
    const Name& n = names_[i];
    // Equal tags and sizes: equal names when they are at most seven bytes long.
    if (n.tag == tag && n.size == name.size() &&
        (name.size() <= 7 || std::memcmp(n.data + 7, name.data() + 7, name.size() - 7) == 0)) {
      return true;
    }
  }
  return false;
}

void SeenSet::add(std::string_view name) {
  const uint64_t tag = tag_of(name);
  if (size_ < kMaxNames && !find(tag, name)) names_[size_++] = {tag, name.data(), name.size()};
}

void SeenSet::add_absent(std::string_view name) {
  if (size_ < kMaxNames) names_[size_++] = {tag_of(name), name.data(), name.size()};
}

void SeenSet::append_field(std::string& out) const {
  if (size_ == 0) return;
  out.push_back(' ');
  out.append(kPrefix);
  for (size_t i = 0; i < size_; ++i) {
    if (i) out.push_back(',');
    out.append(names_[i].data, names_[i].size);
  }
}

}  // namespace herd
