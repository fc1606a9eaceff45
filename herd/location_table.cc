// LocationTable implementation: per-shard linear-probing tables of record pointers with their hashes.
#include "herd/location_table.h"

#include "protocol/fields.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace herd {

// One heap block per client: fixed header, then the record bytes. The client ID is a slice of the
// record (its fourth field), so it is not stored twice; nor is the location, which WHATSAT parses
// from the record (16 bytes a client saved: a million clients is the benchmark's memory test).
struct LocationTable::Record {
  protocol::Timestamp time;
  uint64_t stamp;      // the observer's stamp when it was stored (0: none)
  uint32_t length;     // bytes of the record
  uint32_t id_offset;  // where the client ID starts in the record
  uint32_t id_length;
  char bytes[1];  // `length` bytes follow

  std::string_view record() const { return {bytes, length}; }
  std::string_view id() const { return {bytes + id_offset, id_length}; }

  // `record` is an AT record with single spaces between fields, so the client ID starts after
  // the third space; `client_id` is checked against that slice. nullptr when it is not there.
  static Record* make(protocol::Timestamp time, std::string_view record, std::string_view client_id) {
    size_t at = 0;
    for (int spaces = 0; spaces < 3 && at != std::string_view::npos; ++spaces) {
      at = record.find(' ', at);
      if (at != std::string_view::npos) ++at;
    }
    if (at == std::string_view::npos || record.substr(at, client_id.size()) != client_id) {
      at = record.find(client_id);  // not a normalised record: find the ID anywhere in it
      if (at == std::string_view::npos) return nullptr;
    }
    void* mem = std::malloc(offsetof(Record, bytes) + record.size());
    if (!mem) throw std::bad_alloc();
    auto* r = static_cast<Record*>(mem);
    r->time = time;
    r->stamp = 0;
    r->length = static_cast<uint32_t>(record.size());
    r->id_offset = static_cast<uint32_t>(at);
    r->id_length = static_cast<uint32_t>(client_id.size());
    std::memcpy(r->bytes, record.data(), record.size());
    return r;
  }
};

struct LocationTable::Shard {
  struct Slot {
    uint64_t hash = 0;
    Record* record = nullptr;  // null: empty slot (records are never deleted, so no tombstones)
  };
  mutable std::mutex mu;
  std::vector<Slot> slots;  // size is zero or a power of two
  size_t used = 0;
  size_t record_bytes = 0;
  uint64_t generation = 0;  // bumped whenever grow() moves the records to new slots

  ~Shard() {
    for (auto& s : slots) std::free(s.record);
  }

  // The slot holding `id`, or the empty slot where it would go.
  Slot& find(uint64_t h, std::string_view id) {
    size_t mask = slots.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots[i];
      if (!s.record) return s;
      if (s.hash == h && s.record->id() == id) return s;
    }
  }

  void grow() {
    ++generation;
    std::vector<Slot> old;
    old.swap(slots);
    slots.resize(old.empty() ? 16 : old.size() * 2);
    size_t mask = slots.size() - 1;
    for (const Slot& s : old) {
      if (!s.record) continue;
      size_t i = s.hash & mask;
      while (slots[i].record) i = (i + 1) & mask;
      slots[i] = s;
    }
  }
};

LocationTable::LocationTable() : shards_(new Shard[kShards]) {}
LocationTable::~LocationTable() = default;

uint64_t LocationTable::hash(std::string_view id) {
  // FNV-1a, then a final avalanche so that both the shard bits (high) and slot bits (low) are mixed.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

LocationTable::Shard& LocationTable::shard_for(uint64_t h) const {
  return shards_[h >> 56 & (kShards - 1)];
}

bool LocationTable::offer(std::string_view client_id, protocol::Timestamp time,
                          std::string_view record, Source source, std::string* stored,
                          Observer* observer) {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  // Allocate before locking; free after unlocking.
  Record* fresh = Record::make(time, record, client_id);
  if (!fresh) return false;
  Record* old = nullptr;
  {
    std::lock_guard lock(shard.mu);
    if ((shard.used + 1) * 4 > shard.slots.size() * 3) shard.grow();
    Shard::Slot& slot = shard.find(h, client_id);
    if (slot.record) {
      const Record& cur = *slot.record;
      bool newer = time > cur.time ||
                   (source == Source::kPeer && time == cur.time && record > cur.record());
      if (!newer) {
        if (stored) stored->append(cur.record());
        old = fresh;  // not stored: freed below
      } else {
        old = slot.record;
        shard.record_bytes += fresh->length;
        shard.record_bytes -= old->length;
        slot.record = fresh;
        if (observer) fresh->stamp = observer->on_stored(record);
      }
    } else {
      slot.hash = h;
      slot.record = fresh;
      ++shard.used;
      shard.record_bytes += fresh->length;
      if (observer) fresh->stamp = observer->on_stored(record);
    }
  }
  bool won = old != fresh;
  std::free(old);
  return won;
}

bool LocationTable::lookup(std::string_view client_id, std::string* record,
                           protocol::Location* where) const {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  size_t start = record->size();
  {
    std::lock_guard lock(shard.mu);
    if (shard.slots.empty()) return false;
    Shard::Slot& slot = shard.find(h, client_id);
    if (!slot.record) return false;
    record->append(slot.record->record());
  }
  if (where) {
    std::string_view fields[6];
    std::string_view copy = std::string_view(*record).substr(start);
    if (protocol::split_fields(copy, fields, 6) == 6) {
      if (auto loc = protocol::parse_location(fields[4])) *where = *loc;
    }
  }
  return true;
}

bool LocationTable::holds(std::string_view client_id, std::string_view record) const {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  std::lock_guard lock(shard.mu);
  if (shard.slots.empty()) return false;
  const Shard::Slot& slot = shard.find(h, client_id);
  return slot.record && slot.record->record() == record;
}

size_t LocationTable::scan(ScanPosition* pos, std::string* out, size_t max_bytes, uint64_t stamped_up_to) const {
  size_t count = 0;
  const size_t start = out->size();
  while (!pos->done && out->size() - start < max_bytes) {
    if (pos->shard >= kShards) {
      pos->done = true;
      break;
    }
    const Shard& shard = shards_[pos->shard];
    std::lock_guard lock(shard.mu);
    if (pos->slot == 0) {
      pos->generation = shard.generation;
    } else if (pos->generation != shard.generation) {
      // Rehashed since the scan entered it: records may have moved to slots already passed.
      pos->slot = 0;
      pos->generation = shard.generation;
    }
    const size_t end = std::min(shard.slots.size(), pos->slot + kScanSlotsPerLock);
    for (; pos->slot < end; ++pos->slot) {
      const Record* r = shard.slots[pos->slot].record;
      if (!r || r->stamp > stamped_up_to) continue;
      out->append(r->bytes, r->length).push_back('\n');
      ++count;
      if (out->size() - start >= max_bytes) {
        ++pos->slot;
        break;
      }
    }
    if (pos->slot >= shard.slots.size()) {
      ++pos->shard;
      pos->slot = 0;
    }
  }
  if (pos->shard >= kShards) pos->done = true;
  return count;
}

size_t LocationTable::size() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].used;
  }
  return n;
}

size_t LocationTable::memory_bytes() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].slots.size() * sizeof(Shard::Slot) +
         shards_[i].used * offsetof(Record, bytes) + shards_[i].record_bytes;
  }
  return n;
}

}  // namespace herd
