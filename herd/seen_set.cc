// SeenSet implementation.
#include "herd/seen_set.h"

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

bool SeenSet::contains(std::string_view name) const {
  for (size_t i = 0; i < size_; ++i) {
    if (names_[i] == name) return true;
  }
  return false;
}

void SeenSet::add(std::string_view name) {
  if (size_ < kMaxNames && !contains(name)) names_[size_++] = name;
}

void SeenSet::append_field(std::string& out) const {
  if (size_ == 0) return;
  out.push_back(' ');
  out.append(kPrefix);
  for (size_t i = 0; i < size_; ++i) {
    if (i) out.push_back(',');
    out.append(names_[i]);
  }
}

}  // namespace herd
