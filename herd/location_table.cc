// LocationTable implementation: per-shard linear-probing tables of record pointers with their hashes,
// tombstones for evictions, sampled least-recently-stored eviction, and the resumable scan.
#include "herd/location_table.h"

#include "protocol/fields.h"
#include "protocol/reply.h"

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
  uint32_t touched;    // the shard's clock when it was stored: older ones are evicted first
  char bytes[1];  // `length` bytes follow

  std::string_view record() const { return {bytes, length}; }
  std::string_view id() const { return {bytes + id_offset, id_length}; }

  // The ID is a slice of the record (protocol::at_record_id_offset knows the layout); nullptr
  // when `client_id` is not in `record` at all.
  static Record* make(protocol::Timestamp time, std::string_view record, std::string_view client_id) {
    const size_t at = protocol::at_record_id_offset(record, client_id);
    if (at == std::string_view::npos) return nullptr;
    void* mem = std::malloc(offsetof(Record, bytes) + record.size());
    if (!mem) throw std::bad_alloc();
    auto* r = static_cast<Record*>(mem);
    r->time = time;
    r->stamp = 0;
    r->length = static_cast<uint32_t>(record.size());
    r->id_offset = static_cast<uint32_t>(at);
    r->id_length = static_cast<uint32_t>(client_id.size());
    r->touched = 0;
    std::memcpy(r->bytes, record.data(), record.size());
    return r;
  }
};

struct LocationTable::Shard {
  struct Slot {
    uint64_t hash = 0;
    Record* record = nullptr;  // null: empty, or a tombstone when hash == kTombstone
  };
  static constexpr size_t kNone = static_cast<size_t>(-1);
  static constexpr uint64_t kTombstone = ~uint64_t{0};  // an evicted record's slot (record null)

  mutable std::mutex mu;
  std::vector<Slot> slots;  // size is zero or a power of two
  size_t used = 0;
  size_t tombstones = 0;
  uint64_t generation = 0;  // bumped whenever a rehash moves the records to new slots
  size_t record_bytes = 0;  // charge() of every record held
  uint32_t clock = 0;       // counts stores; a record's `touched` is the count at its store
  uint64_t rng = 0;         // eviction sampling (xorshift), seeded per shard

  ~Shard() {
    for (auto& s : slots) std::free(s.record);
  }

  static bool is_tombstone(const Slot& s) { return !s.record && s.hash == kTombstone; }

  // The index of the slot holding `id`, or else of the slot where it would go (the first tombstone
  // on its probe path, or the empty slot that ends it). *probe (if given) is set to the number of
  // slots looked at past the first.
  size_t find(uint64_t h, std::string_view id, size_t* probe = nullptr) const {
    size_t mask = slots.size() - 1;
    size_t n = 0;
    size_t reuse = kNone;
    for (size_t i = h & mask;; i = (i + 1) & mask, ++n) {
      const Slot& s = slots[i];
      if (s.record ? (s.hash == h && s.record->id() == id) : !is_tombstone(s)) {
        if (probe) *probe = n;
        return s.record || reuse == kNone ? i : reuse;
      }
      if (is_tombstone(s) && reuse == kNone) reuse = i;
      if (n > slots.size()) {  // all tombstones and records: cannot happen below the load bound
        if (probe) *probe = n;
        return reuse;
      }
    }
  }

  // Rehashes into `size` slots (tombstones dropped): records move, so scans in progress restart.
  void grow(size_t size) {
    ++generation;
    tombstones = 0;
    std::vector<Slot> old;
    old.swap(slots);
    slots.resize(size);
    size_t mask = size - 1;
    for (const Slot& s : old) {
      if (!s.record) continue;
      size_t i = s.hash & mask;
      while (slots[i].record) i = (i + 1) & mask;
      slots[i] = s;
    }
  }

  // Leaves a tombstone in slot i: no other record moves, so a scan in progress misses none.
  void erase_at(size_t i) {
    slots[i] = Slot{kTombstone, nullptr};
    ++tombstones;
  }

  uint64_t next_random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }

  // The slot of the least recently stored record among a sample (among all, in a small shard),
  // never `keep`; kNone when there is no other record.
  size_t pick_victim(const Record* keep) {
    size_t best = kNone;
    uint32_t best_age = 0;
    auto consider = [&](size_t i) {
      const Record* r = slots[i].record;
      if (!r || r == keep) return false;
      uint32_t age = clock - r->touched;  // unsigned: right across the clock's wrap
      if (best == kNone || age > best_age) {
        best = i;
        best_age = age;
      }
      return true;
    };
    if (slots.size() > 4 * kEvictionSample) {
      size_t mask = slots.size() - 1, taken = 0;
      for (size_t tries = 0; taken < kEvictionSample && tries < 16 * kEvictionSample; ++tries) {
        if (consider(next_random() & mask)) ++taken;
      }
      if (best != kNone) return best;
    }
    for (size_t i = 0; i < slots.size(); ++i) consider(i);
    return best;
  }
};

size_t LocationTable::charge(size_t record_length) { return offsetof(Record, bytes) + record_length; }

LocationTable::LocationTable(size_t max_clients, size_t max_bytes, SipKey key)
    : key_(key),
      shard_max_records_(max_clients / kShards + (max_clients % kShards != 0)),
      shard_max_bytes_(max_bytes / kShards),
      shards_(new Shard[kShards]) {
  for (size_t i = 0; i < kShards; ++i) shards_[i].rng = (key.k0 ^ (0x9e3779b97f4a7c15ull * (i + 1))) | 1;
}

LocationTable::~LocationTable() = default;

uint64_t LocationTable::hash(std::string_view id) const { return siphash13(key_, id); }

LocationTable::Shard& LocationTable::shard_for(uint64_t h) const {
  return shards_[h >> 56 & (kShards - 1)];
}

bool LocationTable::offer(std::string_view client_id, protocol::Timestamp time,
                          std::string_view record, Source source, std::string* stored, Observer* observer) {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  // Allocate before locking; free after unlocking.
  Record* fresh = Record::make(time, record, client_id);
  if (!fresh) return false;
  Record* old = nullptr;
  constexpr size_t kFreeLater = 16;  // evicted records freed after the lock; more are freed under it
  Record* evicted[kFreeLater];
  size_t n_evicted = 0;
  uint64_t evicted_total = 0;
  {
    std::lock_guard lock(shard.mu);
    if ((shard.used + shard.tombstones + 1) * 4 > shard.slots.size() * 3) {
      // Full of records: twice the slots. Mostly tombstones (evictions): the same size, cleared.
      size_t size = shard.slots.empty() ? 16 : shard.slots.size();
      if ((shard.used + 1) * 2 > size) size *= 2;
      shard.grow(size);
    }
    size_t probe = 0;
    size_t i = shard.find(h, client_id, &probe);
    Shard::Slot* slot = &shard.slots[i];
    if (slot->record) {
      const Record& cur = *slot->record;
      bool newer = time > cur.time ||
                   (source == Source::kPeer && time == cur.time && record > cur.record());
      if (!newer) {
        if (stored) stored->append(cur.record());
        old = fresh;  // not stored: freed below
      } else {
        old = slot->record;
        shard.record_bytes += charge(fresh->length);
        shard.record_bytes -= charge(old->length);
        slot->record = fresh;
        if (observer) fresh->stamp = observer->on_stored(record);
      }
    } else {
      if (probe > kMaxProbe && shard.slots.size() < (shard.used + 1) * 64) {
        // A run this long is bad luck (the key is secret): spread it over twice the slots.
        shard.grow(shard.slots.size() * 2);
        slot = &shard.slots[shard.find(h, client_id)];
      }
      if (Shard::is_tombstone(*slot)) --shard.tombstones;
      slot->hash = h;
      slot->record = fresh;
      ++shard.used;
      shard.record_bytes += charge(fresh->length);
      if (observer) fresh->stamp = observer->on_stored(record);
    }
    if (old != fresh) {
      fresh->touched = ++shard.clock;
      while ((shard.used > shard_max_records_ || shard.record_bytes > shard_max_bytes_) && shard.used > 1) {
        size_t v = shard.pick_victim(fresh);
        if (v == Shard::kNone) break;
        Record* gone = shard.slots[v].record;
        shard.record_bytes -= charge(gone->length);
        --shard.used;
        shard.erase_at(v);
        ++evicted_total;
        if (n_evicted < kFreeLater) {
          evicted[n_evicted++] = gone;
        } else {
          std::free(gone);
        }
      }
    }
  }
  bool won = old != fresh;
  std::free(old);
  for (size_t k = 0; k < n_evicted; ++k) std::free(evicted[k]);
  if (evicted_total) evictions_.fetch_add(evicted_total, std::memory_order_relaxed);
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
    const Shard::Slot& slot = shard.slots[shard.find(h, client_id)];
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
  const Shard::Slot& slot = shard.slots[shard.find(h, client_id)];
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
    n += shards_[i].slots.size() * sizeof(Shard::Slot) + shards_[i].record_bytes;
  }
  return n;
}

}  // namespace herd
